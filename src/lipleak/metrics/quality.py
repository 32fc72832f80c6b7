"""SSIM and PSNR of generated vs GT frames (SPEC §4), on the C++ core.

Per frame: ``lipleak._core.ssim`` (Gaussian 11×11, σ 1.5, K1 0.01, K2 0.03, data range
255, float64, mean over channels — skimage's ``structural_similarity`` with
``gaussian_weights=True, use_sample_covariance=False``) and ``lipleak._core.psnr``
(10·log10(255² / MSE), MSE in float64). Frames are paired by index; both sides must
have the same shape (face crops: crop the generated frame with the GT frame's box).

Aggregation: per frame → mean per video → mean over the videos of a cell.

PSNR of identical frames is +inf (MSE 0). Rule: an identical frame keeps its inf in
``psnr_per_frame``, is left out of the video's mean and counted in ``n_identical``; a
video whose frames are all identical has PSNR +inf. At the cell level the same rule
applies to videos (mean over finite video PSNRs, ``n_identical_videos`` counted). No
cap is used: the smallest non-zero MSE of a uint8 frame is 1/(H·W·C), so any cap would
collide with real values on large frames.

Public API: ``frame_ssim``/``frame_psnr`` (per frame), ``video_quality`` and
``cell_quality`` (the aggregation above) for frames from any source; ``lipleak.visual``
streams ``QualityAccumulator`` itself, and the protocol's report takes the cell means of
the stored per-video values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .. import _core
from ..errors import InputError

__all__ = [
    "CellQuality",
    "QualityAccumulator",
    "QualityResult",
    "cell_quality",
    "finite_mean",
    "frame_psnr",
    "frame_ssim",
    "video_quality",
]


def _stack(frames: np.ndarray | Sequence[np.ndarray], what: str) -> np.ndarray:
    if isinstance(frames, np.ndarray) and frames.ndim == 4:
        arr = frames
    else:
        try:
            arr = np.stack(list(frames))
        except ValueError as exc:
            raise InputError(None, f"{what} frames differ in shape ({exc})", "bad_frame") from exc
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise InputError(
            None, f"{what} frames must be uint8 F×H×W×3, got {arr.dtype} {arr.shape}", "bad_frame"
        )
    return np.ascontiguousarray(arr)


def _pair(gen, gt) -> tuple[np.ndarray, np.ndarray]:
    a, b = _stack(gen, "generated"), _stack(gt, "GT")
    if a.shape != b.shape:
        raise InputError(
            None, f"generated {a.shape} and GT {b.shape} frames differ in shape", "frame_mismatch"
        )
    return a, b


def _core_call(fn, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.asarray(fn(a, b), np.float64)
    except ValueError as exc:  # the core's one-line reason (size, dtype)
        raise InputError(None, str(exc), "bad_frame") from exc


def frame_ssim(gen, gt) -> np.ndarray:
    """float64[F] SSIM of F generated/GT frame pairs (uint8 F×H×W×3 or lists of H×W×3)."""
    if len(gen) == 0 and len(gt) == 0:
        return np.zeros(0)
    return _core_call(_core.ssim, *_pair(gen, gt))


def frame_psnr(gen, gt) -> np.ndarray:
    """float64[F] PSNR in dB (+inf where the frames are identical)."""
    if len(gen) == 0 and len(gt) == 0:
        return np.zeros(0)
    return _core_call(_core.psnr, *_pair(gen, gt))


def finite_mean(values: np.ndarray) -> tuple[float, int]:
    """(mean over the finite values, number of +inf values); +inf if all are +inf."""
    v = np.asarray(values, np.float64)
    n_inf = int(np.isposinf(v).sum())
    finite = v[np.isfinite(v)]
    if finite.size:
        return float(finite.mean()), n_inf
    return (float("inf") if n_inf else float("nan")), n_inf


@dataclass
class QualityResult:
    ssim: float  # mean over frames
    psnr: float  # mean over non-identical frames (see module doc)
    n_frames: int
    n_identical: int  # frames with PSNR +inf (left out of the PSNR mean)
    ssim_per_frame: np.ndarray
    psnr_per_frame: np.ndarray


class QualityAccumulator:
    """Streams frame pairs of one video; keeps two floats per frame."""

    def __init__(self):
        self.ssim: list[np.ndarray] = []
        self.psnr: list[np.ndarray] = []

    def update(self, gen, gt) -> None:
        """Add F frame pairs (uint8 F×H×W×3 arrays, or equal-length lists of H×W×3; a
        batch's frames must share one shape, e.g. crops resized to a fixed size)."""
        if len(gen) != len(gt):
            raise InputError(None, f"{len(gen)} generated vs {len(gt)} GT frames", "frame_mismatch")
        if len(gen):
            a, b = _pair(gen, gt)
            self.ssim.append(_core_call(_core.ssim, a, b))
            self.psnr.append(_core_call(_core.psnr, a, b))

    def result(self) -> QualityResult:
        if not self.ssim:
            raise InputError(None, "SSIM/PSNR: no frames", "too_short")
        s, p = np.concatenate(self.ssim), np.concatenate(self.psnr)
        psnr_mean, n_inf = finite_mean(p)
        return QualityResult(float(s.mean()), psnr_mean, int(s.size), n_inf, s, p)


def video_quality(gen, gt) -> QualityResult:
    """SSIM and PSNR of one generated video against its GT (frames aligned by index)."""
    acc = QualityAccumulator()
    acc.update(gen, gt)
    return acc.result()


@dataclass
class CellQuality:
    ssim: float  # mean of the videos' SSIM
    psnr: float  # mean of the videos' finite PSNR
    n_videos: int
    n_identical_videos: int  # videos with PSNR +inf (all frames identical)


def cell_quality(videos: Iterable[QualityResult]) -> CellQuality:
    """Mean over the videos of a cell (each video weighs the same, whatever its length)."""
    vids = list(videos)
    if not vids:
        raise InputError(None, "SSIM/PSNR: no videos in the cell", "too_short")
    psnr_mean, n_inf = finite_mean(np.array([v.psnr for v in vids]))
    return CellQuality(float(np.mean([v.ssim for v in vids])), psnr_mean, len(vids), n_inf)

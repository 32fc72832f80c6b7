"""LMD: mouth landmark distance between generated and GT frames (SPEC §6, AM setup).

Per frame: take the 20 mouth points (68-point indices 48–67) of each face, centre each
set on its own mean (so head translation does not count), and SUM the Euclidean
distances of corresponding points; a video's LMD is the mean over frames. Units are the
pixels of the GT crop (landmarks of both frames in the same coordinates, e.g. both from
``PFLD.landmarks`` with the GT frame's box; centring makes any common offset irrelevant).

Public API: ``lmd`` and ``LMDAccumulator`` for landmark arrays from any source;
``lipleak.visual`` streams ``lmd_per_frame`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = ["LMDAccumulator", "LMDResult", "lmd", "lmd_per_frame"]

MOUTH = slice(48, 68)


def _mouth(lm: np.ndarray) -> np.ndarray:
    lm = np.asarray(lm, np.float64)
    if lm.ndim == 2:
        lm = lm[None]
    if lm.ndim != 3 or lm.shape[2] != 2 or lm.shape[1] not in (68, 20):
        raise InputError(
            None,
            f"landmarks must be N×68×2 (or N×20×2 mouth points), got {lm.shape}",
            "bad_landmarks",
        )
    return lm[:, MOUTH] if lm.shape[1] == 68 else lm


def lmd_per_frame(gen_landmarks: np.ndarray, gt_landmarks: np.ndarray) -> np.ndarray:
    """float64[N]: Σ over the 20 mouth points of ‖(g − ḡ) − (t − t̄)‖ per frame."""
    g, t = _mouth(gen_landmarks), _mouth(gt_landmarks)
    if g.shape != t.shape:
        raise InputError(
            None, f"{g.shape[0]} generated vs {t.shape[0]} GT landmark frames", "frame_mismatch"
        )
    g = g - g.mean(axis=1, keepdims=True)
    t = t - t.mean(axis=1, keepdims=True)
    return np.linalg.norm(g - t, axis=2).sum(axis=1)


@dataclass
class LMDResult:
    lmd: float  # mean over frames, GT-crop pixels
    per_frame: np.ndarray  # float64[N]
    n_frames: int
    landmark_model: str  # which landmark model made the points (SPEC §6 asks to say it)


class LMDAccumulator:
    """Streams per-frame LMD of one video (one float per frame kept)."""

    def __init__(self, landmark_model: str = "pfld_68"):
        self.landmark_model = landmark_model
        self.values: list[np.ndarray] = []

    def update(self, gen_landmarks: np.ndarray, gt_landmarks: np.ndarray) -> None:
        self.values.append(lmd_per_frame(gen_landmarks, gt_landmarks))

    def result(self) -> LMDResult:
        per = np.concatenate(self.values) if self.values else np.zeros(0)
        if per.size == 0:
            raise InputError(None, "LMD: no frame with landmarks", "no_face")
        return LMDResult(float(per.mean()), per, int(per.size), self.landmark_model)


def lmd(
    gen_landmarks: np.ndarray, gt_landmarks: np.ndarray, landmark_model: str = "pfld_68"
) -> LMDResult:
    """LMD of one generated video against its GT (N×68×2 each, frames aligned by index)."""
    acc = LMDAccumulator(landmark_model)
    acc.update(gen_landmarks, gt_landmarks)
    return acc.result()

"""The FID Inception-v3 network behind the runtime interface, with SPEC §3 preprocessing.

pytorch-fid feeds the network RGB in [0, 1], resized to 299×299 with
``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` (no
antialias), then scaled to [−1, 1]. ``resize_bilinear`` reproduces that resize in numpy
to float32 rounding: torch computes each source coordinate as one fused
``scale·(dst + 0.5) − 0.5`` rounded once to float32, with ``scale = in/out`` in float32,
and always blends exactly 2 taps (also when shrinking by more than 2×, where
``cv2.resize(INTER_LINEAR)`` agrees only to ~1e-4 because it computes the coordinates in
double precision).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..runtime.batching import BatchedModel

SIZE = 299
DIM = 2048


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (i0, i1) and weights (w0, w1) of torch's bilinear, align_corners=False."""
    if n_in == n_out:  # torch copies rows/cols unchanged when the size does not change
        i = np.arange(n_out)
        return i, i, np.ones(n_out, np.float32), np.zeros(n_out, np.float32)
    scale = np.float64(np.float32(n_in) / np.float32(n_out))
    # The float64 product of two float32 values is exact, so one rounding to float32
    # here equals the fused multiply-add torch's compiled kernel performs.
    src = (scale * (np.arange(n_out, dtype=np.float64) + 0.5) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    w1 = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
    i1 = i0 + (i0 < n_in - 1)
    return i0, i1, np.float32(1) - w1, w1


def resize_bilinear(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a float32 H×W×C image like torch bilinear (align_corners=False, no antialias)."""
    img = np.asarray(img, dtype=np.float32)
    y0, y1, a0, a1 = _taps(img.shape[0], height)
    x0, x1, b0, b1 = _taps(img.shape[1], width)
    rows = img[y0] * a0[:, None, None] + img[y1] * a1[:, None, None]
    return rows[:, x0] * b0[None, :, None] + rows[:, x1] * b1[None, :, None]


def _check_crop(crop: np.ndarray) -> None:
    if not (
        isinstance(crop, np.ndarray)
        and crop.dtype == np.uint8
        and crop.ndim == 3
        and crop.shape[2] == 3
        and crop.shape[0] > 0
        and crop.shape[1] > 0
    ):
        shape = getattr(crop, "shape", None)
        dtype = getattr(crop, "dtype", type(crop).__name__)
        raise InputError(
            None, f"expected a BGR uint8 H×W×3 image, got {dtype} {shape}", "bad_frame"
        )


def preprocess(crops_bgr: Sequence[np.ndarray]) -> np.ndarray:
    """BGR uint8 crops (any sizes) → float32 N×3×299×299 RGB in [−1, 1] (SPEC §3)."""
    out = np.empty((len(crops_bgr), 3, SIZE, SIZE), np.float32)
    for k, crop in enumerate(crops_bgr):
        _check_crop(crop)
        rgb = crop[:, :, ::-1].astype(np.float32) / np.float32(255)
        out[k] = resize_bilinear(rgb, SIZE, SIZE).transpose(2, 0, 1)
    return out * np.float32(2) - np.float32(1)


class FIDInception:
    """N BGR crops → N×2048 float32 pool3 features (ONNX from ``lipleak.export.inception_onnx``)."""

    def __init__(
        self,
        onnx_path: str | Path,
        backend: str = "auto",
        batch_size: int = 32,
        concurrent: bool = False,
    ):
        self.batched = BatchedModel.open(onnx_path, backend, batch_size, concurrent)
        self.runtime = self.batched.runtime
        self.fixed_batch, self.batch_size = self.batched.fixed_batch, self.batched.batch_size

    def run(self, images: np.ndarray) -> np.ndarray:
        """Preprocessed N×3×299×299 float32 → N×2048 float32."""
        return self.batched.run_rows(images, (0, DIM)).reshape(len(images), -1)

    def features(self, crops_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """BGR uint8 crops (any sizes) → N×2048 float32."""
        return self.run(preprocess(crops_bgr))

    def describe(self):
        return self.runtime.describe()

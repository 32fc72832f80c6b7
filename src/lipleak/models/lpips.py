"""LPIPS v0.1 distances behind the runtime interface (SPEC §8).

Input: pairs of BGR uint8 crops as decoded (the crops SSIM/PSNR use), any size of at
least 32×32 (AlexNet's and VGG16's last tapped layers need that many pixels); a pair must
share its size. The graph sees RGB in [0, 1] (the ``lpips`` package's
``normalize=True``) and returns one distance per pair. Lower is more similar; identical
crops give 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelError
from ..runtime import open_model
from . import onnx_files

MIN_SIDE = 32


def to_input(crops_bgr: Sequence[np.ndarray]) -> np.ndarray:
    """N BGR uint8 H×W×3 crops of one size → float32 N×3×H×W RGB in [0, 1]."""
    x = np.stack([c[:, :, ::-1] for c in crops_bgr]).astype(np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) / np.float32(255)


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    for c in (a, b):
        if not (isinstance(c, np.ndarray) and c.dtype == np.uint8 and c.ndim == 3):
            raise InputError(
                None,
                f"LPIPS expects H×W×3 uint8 crops, got {getattr(c, 'dtype', None)} "
                f"{getattr(c, 'shape', None)}",
                "bad_frame",
            )
    if a.shape != b.shape or a.shape[2] != 3 or min(a.shape[:2]) < MIN_SIDE:
        raise InputError(
            None,
            f"LPIPS compares crops of one size, H, W >= {MIN_SIDE}: got {a.shape} and {b.shape}",
            "bad_frame",
        )


class LPIPS:
    """Pairs of BGR crops → LPIPS v0.1 distances (the graph of ``lipleak.export.lpips_onnx``)."""

    def __init__(
        self,
        onnx_path: str | Path,
        backend: str = "auto",
        batch_size: int = 16,
        provenance: dict | None = None,
        concurrent: bool = False,
    ):
        self.runtime = open_model(onnx_path, backend, concurrent=concurrent)
        names = [i.name for i in self.runtime.inputs]
        if names != ["img0", "img1"] or len(self.runtime.outputs) != 1:
            raise ModelError(f"{onnx_path}: not an LPIPS graph (inputs img0, img1 → distance)")
        self.output = self.runtime.outputs[0].name
        self.batch_size = max(1, int(batch_size))
        self.provenance = provenance or {}

    @classmethod
    def load(
        cls, net: str = "alex", trunk: str | Path | None = None, backend: str = "auto", **kw
    ) -> LPIPS:
        """The registry's heads for ``net`` with its torchvision trunk (or ``trunk``, a file)."""
        path, prov = onnx_files.lpips_onnx(net, trunk)
        return cls(path, backend, provenance=prov, **kw)

    def distance(self, a_bgr: Sequence[np.ndarray], b_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """LPIPS of each pair (a[k], b[k]) → float32 array (N,). Pairs of different sizes
        may be mixed: each size runs as its own batches."""
        if len(a_bgr) != len(b_bgr):
            raise InputError(None, f"LPIPS: {len(a_bgr)} crops against {len(b_bgr)}", "bad_frame")
        out = np.zeros(len(a_bgr), np.float32)
        groups: dict[tuple, list[int]] = {}
        for k, (a, b) in enumerate(zip(a_bgr, b_bgr, strict=True)):
            _check_pair(a, b)
            groups.setdefault(a.shape, []).append(k)
        for idx in groups.values():
            for s in range(0, len(idx), self.batch_size):
                part = idx[s : s + self.batch_size]
                feeds = {
                    "img0": to_input([a_bgr[k] for k in part]),
                    "img1": to_input([b_bgr[k] for k in part]),
                }
                out[part] = self.runtime.run(feeds)[self.output].reshape(-1)
        return out

    def describe(self):
        return self.runtime.describe()

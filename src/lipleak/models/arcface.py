"""ArcFace identity embeddings behind the runtime interface (SPEC §5).

Input: 112×112 faces aligned by ``lipleak.faces.align.norm_crop`` (BGR uint8, as decoded).
The model sees RGB, (x − 127.5) / 127.5, NCHW, as insightface feeds its PyTorch-trained
models (``w600k_r50.onnx``). Output: raw (not normalised) embeddings, N×D (512 for
IResNet-50). A graph with a fixed batch axis runs one chunk of that size at a time.

insightface switches to mean 0 / std 1 for old MXNet-converted graphs that normalise
inside (Sub/Mul at the graph's start); this wrapper always normalises, so such graphs
would see doubly scaled input — use PyTorch-era ArcFace ONNX files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..runtime.batching import BatchedModel

SIZE = 112


def preprocess(faces_bgr: Sequence[np.ndarray]) -> np.ndarray:
    """N aligned BGR uint8 112×112×3 faces → float32 N×3×112×112 RGB in [−1, 1]."""
    out = np.empty((len(faces_bgr), 3, SIZE, SIZE), np.float32)
    for k, face in enumerate(faces_bgr):
        if not (
            isinstance(face, np.ndarray)
            and face.shape == (SIZE, SIZE, 3)
            and face.dtype == np.uint8
        ):
            raise InputError(
                None,
                f"expected an aligned 112×112×3 uint8 face, got "
                f"{getattr(face, 'dtype', None)} {getattr(face, 'shape', None)}",
                "bad_frame",
            )
        out[k] = face[:, :, ::-1].transpose(2, 0, 1)
    return (out - np.float32(127.5)) / np.float32(127.5)


class ArcFace:
    """Aligned faces → N×D float32 embeddings (any ArcFace ONNX with a ·×3×112×112 input)."""

    def __init__(
        self,
        onnx_path: str | Path,
        backend: str = "auto",
        batch_size: int = 32,
        concurrent: bool = False,
    ):
        self.batched = BatchedModel.open(
            onnx_path, backend, batch_size, concurrent, (3, SIZE, SIZE), "ArcFace"
        )
        self.runtime = self.batched.runtime
        self.fixed_batch, self.batch_size = self.batched.fixed_batch, self.batched.batch_size

    def embed(self, faces_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """Aligned BGR uint8 112×112 faces → N×D float32 raw embeddings."""
        x = preprocess(faces_bgr)
        dim = self.runtime.outputs[0].shape[-1]
        out = self.batched.run_rows(x, (0, dim if isinstance(dim, int) else 512))
        return out.reshape(len(x), -1)

    def describe(self):
        return self.runtime.describe()

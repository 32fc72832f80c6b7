"""Run a one-input, one-output model over any number of rows in batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelError


class BatchedModel:
    """A Runtime whose first input/output are used, fed ``batch_size`` rows at a time.

    A graph exported with a fixed batch (or an engine built for one) runs in chunks of
    exactly that size, the last one zero-padded and its padding rows dropped.
    """

    def __init__(self, runtime, batch_size: int):
        self.runtime = runtime
        spec = runtime.inputs[0]
        self.input_name = spec.name
        self.output_name = runtime.outputs[0].name
        fixed = spec.shape[0] if spec.shape else None
        self.fixed_batch = fixed if isinstance(fixed, int) and fixed > 0 else None
        self.batch_size = self.fixed_batch or batch_size

    @classmethod
    def open(
        cls,
        onnx_path: str | Path,
        backend: str,
        batch_size: int,
        concurrent: bool = False,
        row_shape: tuple[int, ...] | None = None,
        what: str = "model",
    ) -> BatchedModel:
        """``onnx_path`` opened (``runtime.open_model``) and batched; with ``row_shape``, a
        graph whose input rows have another shape is refused, naming it as ``what``."""
        from .select import open_model

        runtime = open_model(onnx_path, backend, concurrent=concurrent)
        shape = tuple(runtime.inputs[0].shape)
        if row_shape is not None and (len(shape) != 1 + len(row_shape) or shape[1:] != row_shape):
            dims = "×".join(map(str, row_shape))
            raise ModelError(f"{onnx_path}: {what} input must be N×{dims}, got {shape}")
        return cls(runtime, batch_size)

    def _run_chunk(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        if self.fixed_batch and n < self.fixed_batch:
            x = np.concatenate([x, np.zeros((self.fixed_batch - n,) + x.shape[1:], x.dtype)])
        return self.runtime.run({self.input_name: x})[self.output_name][:n]

    def run_rows(self, x: np.ndarray, empty_shape: tuple) -> np.ndarray:
        """Rows of ``x`` → float32 outputs, one row each; ``empty_shape`` when x is empty."""
        parts = [
            self._run_chunk(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)
        ]
        if not parts:
            return np.zeros(empty_shape, np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)

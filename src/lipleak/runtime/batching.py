"""Run a one-input, one-output model over any number of rows in batches."""

from __future__ import annotations

import numpy as np


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

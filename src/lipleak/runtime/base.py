"""The one interface every model runs behind: an ONNX file in, batches of arrays out.

Backends (onnxruntime CPU/CUDA/TensorRT-EP, native TensorRT, PyTorch via onnx2torch)
implement ``Runtime``; ``lipleak.runtime.open_model`` (``select.py``) picks one. Callers
never see which backend ran, except through ``Runtime.describe()`` which goes into the
results so every number says what made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints, or None / str for dynamic axes
    dtype: str  # numpy dtype name, e.g. "float32"


@dataclass
class RuntimeInfo:
    backend: str  # "cpu", "ort-cuda", "ort-tensorrt", "tensorrt", "torch"
    model_path: str
    model_sha256: str
    details: dict = field(default_factory=dict)


class Runtime(Protocol):
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch. Arrays are C-contiguous numpy arrays with the batch axis first.

        Safe to call from several threads at once (the sync pipeline's workers share
        models): onnxruntime sessions are; the TensorRT and torch runtimes serialise
        their callers."""
        ...

    def describe(self) -> RuntimeInfo: ...

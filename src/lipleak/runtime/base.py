"""The one interface every model runs behind: an ONNX file in, batches of arrays out.

Backends (onnxruntime CPU/CUDA/TensorRT-EP, native TensorRT) implement ``Runtime``;
``open_model`` picks one. Callers never see which backend ran, except through
``Runtime.describe()`` which goes into the results so every number says what made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints, or None / str for dynamic axes
    dtype: str  # numpy dtype name, e.g. "float32"


@dataclass
class RuntimeInfo:
    backend: str  # "cpu", "ort-cuda", "ort-tensorrt", "tensorrt"
    model_path: str
    model_sha256: str
    details: dict = field(default_factory=dict)


class Runtime(Protocol):
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch. Arrays are C-contiguous numpy arrays with the batch axis first."""
        ...

    def describe(self) -> RuntimeInfo: ...


BACKENDS = ("auto", "tensorrt", "ort-cuda", "ort-tensorrt", "cpu")


def open_model(onnx_path: str | Path, backend: str = "auto", **options) -> Runtime:
    """Open an ONNX model on the requested backend ("auto" picks the best available)."""
    from .select import open_model as _open

    return _open(Path(onnx_path), backend, **options)

"""Backend selection. Only the CPU (onnxruntime) backend exists so far."""

from __future__ import annotations

from pathlib import Path

from ..errors import LipleakError
from .base import BACKENDS


def open_model(onnx_path: Path, backend: str = "auto", **options):
    if backend not in BACKENDS:
        raise LipleakError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    from .onnxrt import OrtRuntime

    return OrtRuntime(onnx_path, providers=("cpu",), **options)

"""onnxruntime backend: CPU by default, CUDA or TensorRT execution providers when asked."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..files import file_sha256
from .base import RuntimeInfo, TensorSpec

_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(int32)": "int32",
}


class OrtRuntime:
    """An ONNX model in an onnxruntime InferenceSession.

    Threads default to the machine's cores (LIPLEAK_ORT_THREADS overrides). Sequential
    execution keeps results independent of thread scheduling, so a run is reproducible.
    """

    def __init__(
        self,
        onnx_path: str | Path,
        providers: tuple[str, ...] = ("cpu",),
        threads: int | None = None,
    ):
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - depends on the installed extra
            raise ModelError(
                "onnxruntime is not installed; install the 'cpu' extra "
                "(pip install 'lipleak-fast[cpu]')"
            ) from exc
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: ONNX model file not found")
        opts = ort.SessionOptions()
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        n = threads or int(os.environ.get("LIPLEAK_ORT_THREADS", "0")) or (os.cpu_count() or 1)
        opts.intra_op_num_threads = n
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        wanted = [_PROVIDERS[p] for p in providers]
        missing = [p for p in wanted if p not in ort.get_available_providers()]
        if missing:
            raise ModelError(f"onnxruntime here lacks {', '.join(missing)}")
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=wanted)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{self.path}: cannot load ONNX model: {exc}") from exc
        self.providers = tuple(self.session.get_providers())
        self.inputs = [
            TensorSpec(i.name, tuple(i.shape), _ORT_TYPES.get(i.type, i.type))
            for i in self.session.get_inputs()
        ]
        self.outputs = [
            TensorSpec(o.name, tuple(o.shape), _ORT_TYPES.get(o.type, o.type))
            for o in self.session.get_outputs()
        ]
        self._sha256: str | None = None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.outputs]
        values = self.session.run(names, {k: np.ascontiguousarray(v) for k, v in feeds.items()})
        return dict(zip(names, values, strict=True))

    def describe(self) -> RuntimeInfo:
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        backend = {
            "CPUExecutionProvider": "cpu",
            "CUDAExecutionProvider": "ort-cuda",
            "TensorrtExecutionProvider": "ort-tensorrt",
        }[self.providers[0]]
        import onnxruntime as ort

        return RuntimeInfo(
            backend,
            str(self.path),
            self._sha256,
            {"onnxruntime": ort.__version__, "providers": list(self.providers)},
        )

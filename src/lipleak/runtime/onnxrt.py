"""onnxruntime backend: CPU by default, CUDA or TensorRT execution providers when asked.

onnxruntime never refuses a provider it cannot load: it logs and runs the graph on the
next one in the list, usually the CPU. So every session is checked after creation for
the provider it actually got, and a GPU session that came up on another provider is an
error (``select.open_model`` turns it into a logged fallback for ``auto``). The CUDA
provider runs with TF32 off (its default is on: a 10-bit mantissa in every convolution
and matmul, not fp32); the TensorRT provider keeps its engines and timing cache under
the model dir instead of rebuilding them in every session.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..files import file_sha256
from ..paths import model_dir
from . import probe
from .base import RuntimeInfo, TensorSpec
from .probe import cpu_threads

log = logging.getLogger(__name__)

_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
_BACKEND_OF = {
    "CPUExecutionProvider": "cpu",
    "CUDAExecutionProvider": "ort-cuda",
    "TensorrtExecutionProvider": "ort-tensorrt",
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
    ``providers`` lists the wanted providers, best first ("tensorrt", "cuda", "cpu");
    the session must come up on the first one or ModelError is raised. ``precision``
    "fp16" applies to the TensorRT provider only (its fp16 builder flag).
    """

    def __init__(
        self,
        onnx_path: str | Path,
        providers: tuple[str, ...] = ("cpu",),
        threads: int | None = None,
        precision: str = "fp32",
        device: int = 0,
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
        if precision not in ("fp32", "fp16"):
            raise ModelError(f"unknown precision {precision!r}")
        if precision != "fp32" and providers[0] != "tensorrt":
            raise ModelError(
                f"precision {precision!r} needs onnxruntime's TensorRT provider; "
                f"{providers[0]} runs the ONNX graph as it is (fp32)"
            )
        self.precision = precision
        opts = ort.SessionOptions()
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        n = threads or cpu_threads()
        self.threads = n  # intra-op threads: 1 for a session called from several threads
        opts.intra_op_num_threads = n
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        if providers[0] == "cpu" and shared_cpu_arena(ort):
            opts.add_session_config_entry("session.use_env_allocators", "1")
        wanted = [_PROVIDERS[p] for p in providers]
        missing = [p for p in wanted if p not in ort.get_available_providers()]
        if missing:
            raise ModelError(f"onnxruntime here lacks {', '.join(missing)}")
        gpu = providers[0] != "cpu"
        if gpu:
            _preload_cuda_libraries(ort)
            # cuDNN may otherwise pick non-deterministic algorithms (atomics in reductions).
            if hasattr(opts, "use_deterministic_compute"):
                opts.use_deterministic_compute = True
        self.cache_dir = (
            ort_tensorrt_cache_dir(ort.__version__, precision, device)
            if providers[0] == "tensorrt"
            else None
        )
        with_options = [
            (name, provider_options(p, device, precision, self.cache_dir))
            for name, p in zip(wanted, providers, strict=True)
        ]
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=with_options)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{self.path}: cannot load ONNX model: {exc}") from exc
        self.providers = tuple(self.session.get_providers())
        if not self.providers or self.providers[0] != wanted[0]:
            raise ModelError(
                f"{self.path}: onnxruntime was asked for {wanted[0]} but the session runs on "
                f"{', '.join(self.providers) or 'nothing'} (the provider failed to load: CUDA, "
                "cuDNN or TensorRT libraries missing or not matching this onnxruntime-gpu; "
                "`lipleak-fast doctor` and onnxruntime's log at severity 0 say which)"
            )
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
        backend = _BACKEND_OF[self.providers[0]]
        import onnxruntime as ort

        details = {"onnxruntime": ort.__version__, "providers": list(self.providers)}
        if backend != "cpu":
            details["precision"] = self.precision
            # The CUDA provider runs with use_tf32=0; the TensorRT provider has no TF32
            # switch, so its fp32 engines use TensorRT's default (TF32 on Ampere and later).
            details["tf32"] = backend == "ort-tensorrt"
        if self.cache_dir is not None:
            details["engine_cache"] = str(self.cache_dir)
        return RuntimeInfo(backend, str(self.path), self._sha256, details)


# ------------------------------------------------------------------------ helpers

_ARENA_LOCK = threading.Lock()
_ARENA: list[bool] = []  # [registered], once per process

# ORT's CPU arena grows by the next power of two: an hour of detect-mode video (hundreds
# of tracks, each ending in a batch of its own size) placed its runs' tensors ever
# elsewhere in a 512 MB region sized for ~300 MB and touched ~25 MB more of it in its
# first minutes. Growing by what is asked keeps the arena as large as the largest run,
# at the same windows/s (bench/README "Long videos").
_SAME_AS_REQUESTED = 1  # onnxruntime's ArenaExtendStrategy::kSameAsRequested


def shared_cpu_arena(ort) -> bool:
    """Register, once per process, one CPU arena that grows by what is asked, for the
    CPU sessions to share (``session.use_env_allocators``). False where onnxruntime
    refuses it (another one already registered, an old onnxruntime): the sessions then
    keep their own default arenas."""
    with _ARENA_LOCK:
        if not _ARENA:
            try:
                info = ort.OrtMemoryInfo(
                    "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
                )
                ort.create_and_register_allocator(
                    info, ort.OrtArenaCfg(0, _SAME_AS_REQUESTED, -1, -1)
                )
                _ARENA.append(True)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises untyped errors
                log.info("onnxruntime keeps per-session CPU arenas: %s", exc)
                _ARENA.append(False)
        return _ARENA[0]


_PRELOAD_LOCK = threading.Lock()
_PRELOADED: list[bool] = []


def _preload_cuda_libraries(ort) -> None:
    """``onnxruntime.preload_dlls()`` once per process, before the first GPU session.

    onnxruntime-gpu >= 1.21 has it: it loads the CUDA and cuDNN libraries of the
    nvidia-* wheels (the ``[cuda,cudnn]`` extras of onnxruntime-gpu) that are not on the
    loader's path otherwise; without them the CUDA provider fails to load and onnxruntime
    falls back to the CPU. Older versions lack it: the libraries must then be on
    LD_LIBRARY_PATH."""
    with _PRELOAD_LOCK:
        if _PRELOADED:
            return
        _PRELOADED.append(True)
        fn = getattr(ort, "preload_dlls", None)
        if fn is None:
            log.info("onnxruntime %s has no preload_dlls (< 1.21)", ort.__version__)
            return
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - a failed preload shows as the provider check
            log.warning("onnxruntime.preload_dlls() failed: %s", exc)


def provider_options(
    provider: str, device: int = 0, precision: str = "fp32", cache_dir: Path | None = None
) -> dict[str, str]:
    """Options of one execution provider ("cpu", "cuda", "tensorrt") as onnxruntime
    takes them (strings)."""
    if provider == "cuda":
        return {"device_id": str(device), "use_tf32": "0"}
    if provider == "tensorrt":
        if cache_dir is None:
            raise ValueError("the TensorRT provider needs an engine cache dir")
        # The Python binding parses these flags as "True"/"False" only.
        return {
            "device_id": str(device),
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(cache_dir),
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(cache_dir),
            "trt_fp16_enable": "True" if precision == "fp16" else "False",
        }
    return {}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "unknown"


def _tensorrt_libs_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("tensorrt-cu13-libs", "tensorrt-cu12-libs", "tensorrt-libs", "tensorrt"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    trt, _why = probe.probe_tensorrt()
    return trt or "unknown"


def ort_tensorrt_cache_dir(ort_version: str, precision: str, device: int = 0) -> Path:
    """Where the TensorRT provider keeps engines: ``<model dir>/engines/ort-tensorrt/<key>``.

    onnxruntime names its engine files by model and compute capability only and reloads
    them even after onnxruntime, TensorRT or the GPU model changed (its docs say to clear
    the cache then); a directory per (onnxruntime, TensorRT, GPU, precision) does that."""
    gpu, _why = probe.probe_gpu(device)
    gpu_part = f"{gpu.name}-cc{gpu.compute_capability}" if gpu else "nogpu"
    key = f"ort{ort_version}-trt{_tensorrt_libs_version()}-{gpu_part}-{precision}"
    d = model_dir() / "engines" / "ort-tensorrt" / _slug(key)
    d.mkdir(parents=True, exist_ok=True)
    return d

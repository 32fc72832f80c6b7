"""Backend selection: which runtime can run a model here, and opening it there.

``auto`` prefers native TensorRT, then onnxruntime's CUDA provider, then onnxruntime on
the CPU. Each candidate is judged by cheap probes (an import, a device query) so that
``available_backends()`` and ``lipleak-fast doctor`` can say why something is missing
without building anything. The probes are plain module functions so that tests can
replace them.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import LipleakError, ModelError
from .base import BACKENDS

log = logging.getLogger(__name__)

# "ort-tensorrt" (onnxruntime's TensorRT execution provider) can be asked for by name;
# auto never picks it because native TensorRT does the same job with a cache we control.
SELECTABLE = BACKENDS
AUTO_ORDER = ("tensorrt", "ort-cuda", "cpu")
PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device as the engine cache and the doctor need it."""

    index: int
    name: str
    compute_capability: str  # "9.0"
    memory_mb: int | None = None
    driver: str | None = None
    cuda_runtime: str | None = None  # version of the CUDA runtime the query used
    source: str = ""  # which probe answered: "cuda-python" or "nvidia-smi"


# --------------------------------------------------------------------------- probes


def import_cudart():
    """The cuda-python runtime module: ``cuda.bindings.runtime`` (≥ 12.6) or the older
    ``cuda.cudart``. Raises ImportError when neither is installed."""
    try:
        return importlib.import_module("cuda.bindings.runtime")
    except ImportError:
        return importlib.import_module("cuda.cudart")


def _cuda_version_str(v: int) -> str:
    # CUDA encodes versions as 1000 * major + 10 * minor.
    return f"{v // 1000}.{(v % 1000) // 10}"


def _gpus_from_cudart() -> list[GpuInfo]:
    cudart = import_cudart()
    ok = cudart.cudaError_t.cudaSuccess
    err, count = cudart.cudaGetDeviceCount()
    if err != ok:
        raise RuntimeError(f"cudaGetDeviceCount failed: {err}")
    err, drv = cudart.cudaDriverGetVersion()
    driver = _cuda_version_str(drv) if err == ok else None
    err, rt = cudart.cudaRuntimeGetVersion()
    runtime = _cuda_version_str(rt) if err == ok else None
    out = []
    for i in range(count):
        err, prop = cudart.cudaGetDeviceProperties(i)
        if err != ok:
            raise RuntimeError(f"cudaGetDeviceProperties({i}) failed: {err}")
        name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
        out.append(GpuInfo(i, name.strip("\x00 "), f"{prop.major}.{prop.minor}",
                           int(prop.totalGlobalMem) // (1 << 20), None, runtime, "cuda-python"))
    # cudaDriverGetVersion gives the CUDA version the driver supports, not the driver's own
    # version number; nvidia-smi knows the latter, so ask it when it is there.
    smi = _gpus_from_nvidia_smi_or_empty()
    return [
        GpuInfo(g.index, g.name, g.compute_capability, g.memory_mb,
                smi[g.index].driver if g.index < len(smi) else (f"cuda {driver}" if driver else None),
                g.cuda_runtime, g.source)
        for g in out
    ]


def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """Parse ``nvidia-smi --query-gpu=index,name,compute_cap,memory.total,driver_version
    --format=csv,noheader,nounits``."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5:
            continue
        idx, name, cc, mem, driver = parts
        try:
            mem_mb = int(float(mem))
        except ValueError:
            mem_mb = None
        gpus.append(GpuInfo(int(idx), name, cc, mem_mb, driver, None, "nvidia-smi"))
    return gpus


def _gpus_from_nvidia_smi() -> list[GpuInfo]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        raise FileNotFoundError("nvidia-smi not found on PATH")
    res = subprocess.run(
        [exe, "--query-gpu=index,name,compute_cap,memory.total,driver_version",
         "--format=csv,noheader,nounits"],
        capture_output=True, text=True, timeout=20, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"nvidia-smi failed: {(res.stderr or res.stdout).strip()[:200]}")
    return parse_nvidia_smi(res.stdout)


def _gpus_from_nvidia_smi_or_empty() -> list[GpuInfo]:
    try:
        return _gpus_from_nvidia_smi()
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return []


def probe_gpus() -> tuple[list[GpuInfo], str]:
    """All visible CUDA devices and, when there are none, why.

    cuda-python is asked first (it sees CUDA_VISIBLE_DEVICES the way TensorRT will);
    nvidia-smi is the fallback for machines without it.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return [], "CUDA_VISIBLE_DEVICES hides every GPU"
    reasons = []
    try:
        gpus = _gpus_from_cudart()
        if gpus:
            return gpus, ""
        reasons.append("cuda-python sees no CUDA device")
    except ImportError:
        reasons.append("cuda-python not installed")
    except RuntimeError as exc:
        reasons.append(f"cuda-python: {exc}")
    try:
        gpus = _gpus_from_nvidia_smi()
        if gpus:
            return gpus, ""
        reasons.append("nvidia-smi lists no GPU")
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        reasons.append(str(exc))
    return [], "no CUDA GPU: " + "; ".join(reasons)


def probe_gpu(index: int = 0) -> tuple[GpuInfo | None, str]:
    gpus, why = probe_gpus()
    if not gpus:
        return None, why
    for g in gpus:
        if g.index == index:
            return g, ""
    return None, f"no CUDA device {index} (found {len(gpus)})"


def probe_tensorrt() -> tuple[str | None, str]:
    """TensorRT's version, or None and why it cannot be imported."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError as exc:
        return None, f"tensorrt not importable ({exc}); install the 'gpu' extra"
    except Exception as exc:  # noqa: BLE001 - a broken CUDA install fails inside the import
        return None, f"tensorrt import failed: {type(exc).__name__}: {exc}"
    return str(getattr(trt, "__version__", "unknown")), ""


def probe_cuda_python() -> tuple[str | None, str]:
    """cuda-python (device memory and streams for the TensorRT backend)."""
    try:
        import_cudart()
    except ImportError:
        return None, "cuda-python not installed (pip install cuda-python)"
    try:
        from importlib.metadata import version

        for dist in ("cuda-python", "cuda-bindings"):
            try:
                return version(dist), ""
            except Exception:  # noqa: BLE001 - PackageNotFoundError, try the next name
                continue
    except ImportError:  # pragma: no cover
        pass
    return "unknown", ""


def probe_ort() -> tuple[list[str] | None, str, str | None]:
    """onnxruntime's available providers, why not, and its version."""
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError as exc:
        return None, f"onnxruntime not importable ({exc}); install the 'cpu' or 'gpu' extra", None
    return list(ort.get_available_providers()), "", str(ort.__version__)


# ----------------------------------------------------------------------- selection


def available_backends() -> dict[str, tuple[bool, str]]:
    """{backend: (usable here, reason)} for every selectable backend.

    The reason says what was found when usable and what is missing when not.
    """
    gpu, gpu_why = probe_gpu()
    trt_ver, trt_why = probe_tensorrt()
    cuda_ver, cuda_why = probe_cuda_python()
    providers, ort_why, ort_ver = probe_ort()
    out: dict[str, tuple[bool, str]] = {}

    missing = [w for w, bad in ((gpu_why, gpu is None), (trt_why, trt_ver is None),
                                (cuda_why, cuda_ver is None)) if bad]
    out["tensorrt"] = ((False, "; ".join(missing)) if missing else
                       (True, f"TensorRT {trt_ver} on {gpu.name} (cc {gpu.compute_capability})"))

    for name, provider in (("ort-cuda", "CUDAExecutionProvider"),
                           ("ort-tensorrt", "TensorrtExecutionProvider")):
        if providers is None:
            out[name] = (False, ort_why)
        elif provider not in providers:
            out[name] = (False, f"onnxruntime {ort_ver} has no {provider} "
                                f"(has {', '.join(providers)}); install onnxruntime-gpu")
        elif gpu is None:
            out[name] = (False, gpu_why)
        else:
            out[name] = (True, f"onnxruntime {ort_ver} {provider} on {gpu.name}")

    if providers is None:
        out["cpu"] = (False, ort_why)
    elif "CPUExecutionProvider" not in providers:
        out["cpu"] = (False, f"onnxruntime {ort_ver} has no CPUExecutionProvider")
    else:
        out["cpu"] = (True, f"onnxruntime {ort_ver} CPUExecutionProvider")
    return out


def resolve_backend(backend: str = "auto", available: dict | None = None) -> tuple[str, str]:
    """The concrete backend that ``backend`` means here and why.

    Raises LipleakError for an unknown name or an explicit backend that is unavailable.
    """
    if backend not in SELECTABLE:
        raise LipleakError(f"unknown backend {backend!r}; choose one of {', '.join(SELECTABLE)}")
    available = available_backends() if available is None else available
    if backend != "auto":
        ok, why = available[backend]
        if not ok:
            raise LipleakError(f"backend {backend!r} is not available here: {why}")
        return backend, why
    skipped = []
    for name in AUTO_ORDER:
        ok, why = available[name]
        if ok:
            return name, why if not skipped else f"{why} ({'; '.join(skipped)})"
        skipped.append(f"{name}: {why}")
    raise LipleakError("no backend can run models here: " + "; ".join(skipped))


_ORT_OPTIONS = ("threads",)
_TRT_OPTIONS = ("min_batch", "opt_batch", "device", "cache_root", "workspace_gb")


def _open_one(name: str, onnx_path: Path, precision: str, max_batch: int, opts: dict):
    if name in ("cpu", "ort-cuda", "ort-tensorrt"):
        if precision != "fp32":
            raise LipleakError(f"precision {precision!r} needs the tensorrt backend; "
                               f"{name} runs the ONNX graph as it is (fp32)")
        unknown = set(opts) - set(_ORT_OPTIONS)
        if unknown:
            raise LipleakError(f"options {sorted(unknown)} do not apply to backend {name!r}")
        from .onnxrt import OrtRuntime

        providers = {"cpu": ("cpu",), "ort-cuda": ("cuda", "cpu"),
                     "ort-tensorrt": ("tensorrt", "cuda", "cpu")}[name]
        return OrtRuntime(onnx_path, providers=providers, threads=opts.get("threads"))
    unknown = set(opts) - set(_TRT_OPTIONS)
    if unknown:
        raise LipleakError(f"options {sorted(unknown)} do not apply to backend 'tensorrt'")
    from .tensorrt import TensorRTRuntime

    return TensorRTRuntime(onnx_path, precision=precision, max_batch=max_batch, **opts)


def open_model(onnx_path: str | Path, backend: str = "auto", precision: str = "fp32",
               max_batch: int = 64, **opts):
    """Open ``onnx_path`` on ``backend`` ("auto", "tensorrt", "ort-cuda", "ort-tensorrt", "cpu").

    ``precision`` is "fp32" or "fp16" (fp16: tensorrt only). ``max_batch`` bounds the
    TensorRT optimisation profile (larger batches are split). Backend options:
    ``threads`` (onnxruntime), ``min_batch``, ``opt_batch``, ``device``, ``cache_root``,
    ``workspace_gb`` (tensorrt). With "auto", a backend that fails to open (e.g. an engine
    build error) is logged and the next one in the order is tried; an explicit backend
    fails with its own error.
    """
    if precision not in PRECISIONS:
        raise LipleakError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if int(max_batch) < 1:
        raise LipleakError(f"max_batch must be >= 1, got {max_batch}")
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ModelError(f"{onnx_path}: ONNX model file not found")
    available = available_backends()
    chosen, _why = resolve_backend(backend, available)
    if backend != "auto":
        return _open_one(chosen, onnx_path, precision, int(max_batch), opts)
    candidates = [n for n in AUTO_ORDER if available[n][0]]
    candidates = candidates[candidates.index(chosen):]
    if precision != "fp32":
        candidates = candidates[:1]  # only tensorrt does fp16; resolve put it first if usable
    for i, name in enumerate(candidates):
        # Options that belong to the other family of backends are dropped here, so that a
        # caller can pass TensorRT settings and still run on the CPU fallback.
        allowed = _TRT_OPTIONS if name == "tensorrt" else _ORT_OPTIONS
        try:
            return _open_one(name, onnx_path, precision, int(max_batch),
                             {k: v for k, v in opts.items() if k in allowed})
        except LipleakError as exc:
            if i == len(candidates) - 1:
                raise
            log.warning("backend %s failed to open %s (%s); trying %s", name, onnx_path, exc,
                        candidates[i + 1])
    raise AssertionError("unreachable: resolve_backend returned an available backend")

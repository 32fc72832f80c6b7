"""What this machine has: CUDA devices, TensorRT, cuda-python, onnxruntime, torch.

Each probe is an import or a device query, so that ``available_backends()`` and
``lipleak-fast doctor`` can say why something is missing without building anything.
The answers do not change while a process runs, and some are slow (nvidia-smi takes
tens to hundreds of ms), so every real probe runs at most once per process and the
answer is kept; ``clear_cache()`` forgets them (tests that fake hardware, or a caller
that wants a fresh look). ``PROBES`` counts the real probes that ran, by name
("nvidia-smi", "cudart", "tensorrt", "cuda-python", "onnxruntime", "torch"). The probes are
plain module functions so that tests can replace them.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass

# Real probes run in this process since it started; clear_cache() does not reset it, so
# that a test can see every probe that ever ran.
PROBES: Counter[str] = Counter()

# functools.cache alone lets two threads that ask at the same moment both probe. Reentrant:
# the GPU probe asks nvidia-smi, itself cached, while holding it.
_LOCK = threading.RLock()


def _once(fn):
    """``fn`` cached (per argument tuple) and run by one thread at a time."""
    cached = functools.cache(fn)

    @functools.wraps(fn)
    def call(*args):
        with _LOCK:
            return cached(*args)

    call.cache_clear = cached.cache_clear
    return call


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


def import_cudart():
    """The cuda-python runtime module: ``cuda.bindings.runtime`` (≥ 12.6) or the older
    ``cuda.cudart``. Raises ImportError when neither is installed."""
    try:
        return importlib.import_module("cuda.bindings.runtime")
    except ImportError:
        return importlib.import_module("cuda.cudart")


# ------------------------------------------------------------------------- GPUs


def _cuda_version_str(v: int) -> str:
    # CUDA encodes versions as 1000 * major + 10 * minor.
    return f"{v // 1000}.{(v % 1000) // 10}"


def _gpus_from_cudart() -> list[GpuInfo]:
    PROBES["cudart"] += 1
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
        name = prop.name
        name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        out.append(
            GpuInfo(
                i,
                name.strip("\x00 "),
                f"{prop.major}.{prop.minor}",
                int(prop.totalGlobalMem) // (1 << 20),
                None,
                runtime,
                "cuda-python",
            )
        )
    # cudaDriverGetVersion gives the CUDA version the driver supports, not the driver's own
    # version number; nvidia-smi knows the latter, so ask it when it is there.
    smi = _gpus_from_nvidia_smi_or_empty()
    fallback = f"cuda {driver}" if driver else None
    return [
        GpuInfo(
            g.index,
            g.name,
            g.compute_capability,
            g.memory_mb,
            smi[g.index].driver if g.index < len(smi) else fallback,
            g.cuda_runtime,
            g.source,
        )
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


@_once
def _nvidia_smi() -> tuple[tuple[GpuInfo, ...], str]:
    """(GPUs, "") or ((), why not). A failure is kept too: both the cuda-python path (for
    the driver version) and the fallback path ask, and neither should spawn it again."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return (), "nvidia-smi not found on PATH"
    PROBES["nvidia-smi"] += 1
    try:
        res = subprocess.run(
            [
                exe,
                "--query-gpu=index,name,compute_cap,memory.total,driver_version",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return (), str(exc)
    if res.returncode != 0:
        return (), f"nvidia-smi failed: {(res.stderr or res.stdout).strip()[:200]}"
    return tuple(parse_nvidia_smi(res.stdout)), ""


def _gpus_from_nvidia_smi() -> list[GpuInfo]:
    gpus, why = _nvidia_smi()
    if why:
        raise RuntimeError(why)
    return list(gpus)


def _gpus_from_nvidia_smi_or_empty() -> list[GpuInfo]:
    try:
        return _gpus_from_nvidia_smi()
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return []


@_once
def _probe_gpus(visible: str | None) -> tuple[tuple[GpuInfo, ...], str]:
    # Keyed by CUDA_VISIBLE_DEVICES so that hiding the GPUs later in the process is seen.
    if visible in ("", "-1"):
        return (), "CUDA_VISIBLE_DEVICES hides every GPU"
    reasons = []
    try:
        gpus = _gpus_from_cudart()
        if gpus:
            return tuple(gpus), ""
        reasons.append("cuda-python sees no CUDA device")
    except ImportError:
        reasons.append("cuda-python not installed")
    except RuntimeError as exc:
        reasons.append(f"cuda-python: {exc}")
    try:
        gpus = _gpus_from_nvidia_smi()
        if gpus:
            return tuple(gpus), ""
        reasons.append("nvidia-smi lists no GPU")
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        reasons.append(str(exc))
    return (), "no CUDA GPU: " + "; ".join(reasons)


def probe_gpus() -> tuple[list[GpuInfo], str]:
    """All visible CUDA devices and, when there are none, why.

    cuda-python is asked first (it sees CUDA_VISIBLE_DEVICES the way TensorRT will);
    nvidia-smi is the fallback for machines without it.
    """
    gpus, why = _probe_gpus(os.environ.get("CUDA_VISIBLE_DEVICES", None))
    return list(gpus), why


def probe_gpu(index: int = 0) -> tuple[GpuInfo | None, str]:
    gpus, why = probe_gpus()
    if not gpus:
        return None, why
    for g in gpus:
        if g.index == index:
            return g, ""
    return None, f"no CUDA device {index} (found {len(gpus)})"


# -------------------------------------------------------------------- libraries


@_once
def probe_tensorrt() -> tuple[str | None, str]:
    """TensorRT's version, or None and why it cannot be imported."""
    PROBES["tensorrt"] += 1
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError as exc:
        return None, f"tensorrt not importable ({exc}); install the 'gpu' extra"
    except Exception as exc:  # noqa: BLE001 - a broken CUDA install fails inside the import
        return None, f"tensorrt import failed: {type(exc).__name__}: {exc}"
    return str(getattr(trt, "__version__", "unknown")), ""


@_once
def probe_cuda_python() -> tuple[str | None, str]:
    """cuda-python (device memory and streams for the TensorRT backend)."""
    PROBES["cuda-python"] += 1
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


@_once
def _probe_ort() -> tuple[tuple[str, ...] | None, str, str | None]:
    PROBES["onnxruntime"] += 1
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError as exc:
        return None, f"onnxruntime not importable ({exc}); install the 'cpu' or 'gpu' extra", None
    return tuple(ort.get_available_providers()), "", str(ort.__version__)


def probe_ort() -> tuple[list[str] | None, str, str | None]:
    """onnxruntime's available providers, why not, and its version."""
    providers, why, version = _probe_ort()
    return (list(providers) if providers is not None else None), why, version


@dataclass(frozen=True)
class TorchInfo:
    """PyTorch and onnx2torch for the torch backend, and the CUDA device torch sees."""

    torch: str
    onnx2torch: str
    cuda_device: str | None  # torch's CUDA device 0, None when torch cannot use CUDA
    cuda_why: str = ""  # why not, when cuda_device is None


TORCH_INSTALL_HINT = (
    "install the 'torch' extra (pip install 'lipleak-fast[torch]'), or beside an installed "
    "torch: pip install --no-deps onnx2torch==1.5.15"
)


@_once
def probe_torch() -> tuple[TorchInfo | None, str]:
    """torch and onnx2torch for the torch backend, or None and why not.

    A CPU build of torch (version ``+cpu``) is known to have no CUDA without importing it,
    which takes seconds; other builds are imported only when onnx2torch is there too.
    """
    from importlib.metadata import PackageNotFoundError, version
    from importlib.util import find_spec

    PROBES["torch"] += 1
    missing = [m for m in ("torch", "onnx2torch") if find_spec(m) is None]
    if missing:
        return None, f"{' and '.join(missing)} not installed; {TORCH_INSTALL_HINT}"
    try:
        torch_ver, o2t_ver = version("torch"), version("onnx2torch")
    except PackageNotFoundError as exc:
        return None, f"{exc.name} has no package metadata; {TORCH_INSTALL_HINT}"
    if torch_ver.endswith("+cpu"):
        return TorchInfo(torch_ver, o2t_ver, None, f"torch {torch_ver} is a CPU build"), ""
    try:
        torch = importlib.import_module("torch")
    except Exception as exc:  # noqa: BLE001 - a broken CUDA install fails inside the import
        return None, f"torch import failed: {type(exc).__name__}: {exc}"
    try:
        if not torch.cuda.is_available():
            return TorchInfo(torch_ver, o2t_ver, None, "torch sees no CUDA device"), ""
        return TorchInfo(torch_ver, o2t_ver, torch.cuda.get_device_name(0)), ""
    except Exception as exc:  # noqa: BLE001 - driver/runtime mismatch surfaces here
        return TorchInfo(torch_ver, o2t_ver, None, f"torch CUDA: {type(exc).__name__}: {exc}"), ""


# ------------------------------------------------------------------------ cache

_CACHED = (_nvidia_smi, _probe_gpus, probe_tensorrt, probe_cuda_python, _probe_ort, probe_torch)


def clear_cache() -> None:
    """Forget every probe answer: the next call of each probe runs it again."""
    for fn in _CACHED:
        fn.cache_clear()

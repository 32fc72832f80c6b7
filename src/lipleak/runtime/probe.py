"""What this machine has: CUDA devices, TensorRT, cuda-python, onnxruntime, torch.

Each probe is an import or a device query, so that ``available_backends()`` and
``lipleak-fast doctor`` can say why something is missing without building anything.
A GPU counts as usable only when the CUDA runtime itself answers (cuda-python's
``cudaGetDeviceCount``): nvidia-smi talks to the kernel driver through NVML and lists GPUs
that CUDA cannot use (a driver too old for the runtime, a container without libcuda), so
its answer only goes into the reason that doctor prints.
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
import logging
import os
import shutil
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Real probes run in this process since it started; clear_cache() does not reset it, so
# that a test can see every probe that ever ran.
PROBES: Counter[str] = Counter()

# functools.cache alone lets two threads that ask at the same moment both probe. Reentrant:
# the GPU probe asks nvidia-smi, itself cached, while holding it.
_LOCK = threading.RLock()


def cpu_threads() -> int:
    """The cores CPU inference may use: LIPLEAK_ORT_THREADS (Ray workers set their share),
    else the machine's. Read at each call: a worker sets it after import."""
    return int(os.environ.get("LIPLEAK_ORT_THREADS", "0")) or (os.cpu_count() or 1)


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


def _nvidia_smi_note() -> str:
    """What nvidia-smi sees, for a reason that says why no GPU is usable."""
    try:
        gpus = _gpus_from_nvidia_smi()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return str(exc)
    if not gpus:
        return "nvidia-smi lists no GPU"
    names = ", ".join(sorted({g.name for g in gpus}))
    driver = gpus[0].driver or "unknown"
    return (
        f"nvidia-smi lists {len(gpus)} GPU(s) ({names}, driver {driver}) that CUDA cannot use "
        "here (CUDA 12 wheels need driver >= 525, CUDA 13 wheels >= 580)"
    )


@_once
def _probe_gpus(visible: str | None) -> tuple[tuple[GpuInfo, ...], str]:
    # Keyed by CUDA_VISIBLE_DEVICES so that hiding the GPUs later in the process is seen.
    if visible in ("", "-1"):
        return (), "no CUDA GPU: CUDA_VISIBLE_DEVICES hides every GPU"
    try:
        gpus = _gpus_from_cudart()
        if gpus:
            return tuple(gpus), ""
        why = "the CUDA runtime sees no device"
    except ImportError:
        why = "cuda-python not installed, so the CUDA runtime cannot be checked (gpu-cu1x extra)"
    except RuntimeError as exc:
        why = f"the CUDA runtime fails: {exc}"
    # No fallback to nvidia-smi's list: TensorRT, DALI and onnxruntime's CUDA provider all
    # need the runtime that just failed. nvidia-smi only explains the failure.
    return (), f"no CUDA GPU: {why}; {_nvidia_smi_note()}"


def probe_gpus() -> tuple[list[GpuInfo], str]:
    """All CUDA devices the CUDA runtime can use and, when there are none, why.

    Only cuda-python's runtime query makes a device usable (it sees CUDA_VISIBLE_DEVICES
    and the driver the way TensorRT, DALI and onnxruntime will); nvidia-smi adds the driver
    version, and when the runtime fails, what the driver sees.
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
        return None, f"tensorrt not importable ({exc}); install the 'gpu-cu12' or 'gpu-cu13' extra"
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
        why = (
            f"onnxruntime not importable ({exc}); install the 'cpu', 'gpu-cu12' or 'gpu-cu13' extra"
        )
        return None, why, None
    return tuple(ort.get_available_providers()), "", str(ort.__version__)


def probe_ort() -> tuple[list[str] | None, str, str | None]:
    """onnxruntime's available providers, why not, and its version."""
    providers, why, version = _probe_ort()
    return (list(providers) if providers is not None else None), why, version


# Distributions that all install the same ``onnxruntime`` package directory.
ORT_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-rocm",
    "onnxruntime-migraphx",
    "onnxruntime-training",
)


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
def probe_ort_conflict() -> str:
    """ "" or why the installed onnxruntime is unreliable: two builds installed at once.

    pip treats onnxruntime and onnxruntime-gpu as unrelated projects, so installing both
    (e.g. the ``cpu`` and a ``gpu-cu1x`` extra) unpacks one over the other: which providers
    the module has depends on install order, and uninstalling either deletes files the
    other needs."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for dist in ORT_DISTRIBUTIONS:
        try:
            found.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            continue
    if len(found) < 2:
        return ""
    msg = (
        f"{' and '.join(found)} are installed together; they overwrite each other's "
        "'onnxruntime' files, so the providers depend on install order. Keep one: "
        f"pip uninstall -y {' '.join(f.split()[0] for f in found)}, then install one "
        "extra (cpu, gpu-cu12 or gpu-cu13)"
    )
    log.warning("%s", msg)
    return msg


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

_CACHED = (
    _nvidia_smi,
    _probe_gpus,
    probe_tensorrt,
    probe_cuda_python,
    _probe_ort,
    probe_ort_conflict,
    probe_torch,
)


def clear_cache() -> None:
    """Forget every probe answer: the next call of each probe runs it again."""
    for fn in _CACHED:
        fn.cache_clear()

"""Backend selection: which runtime can run a model here, and opening it there.

``auto`` prefers native TensorRT, then onnxruntime's CUDA provider, then PyTorch on a
CUDA device (``torch``: the ONNX graph converted by onnx2torch), then onnxruntime on the
CPU. ``torch`` also runs on the CPU, but only when asked for by name. Each candidate is
judged by the probes in ``probe.py`` (an import, a device query, each run once per
process), so that ``available_backends()`` and ``lipleak-fast doctor`` can say why
something is missing without building anything.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import LipleakError, ModelError
from . import probe

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "ort-cuda", "ort-tensorrt", "torch", "cpu")
# "ort-tensorrt" (onnxruntime's TensorRT execution provider) can be asked for by name;
# auto never picks it because native TensorRT does the same job with a cache we control.
SELECTABLE = BACKENDS
AUTO_ORDER = ("tensorrt", "ort-cuda", "torch", "cpu")
PRECISIONS = ("fp32", "fp16", "bf16")
# Which backends run which precision; fp32 runs everywhere. Never chosen silently: a
# precision a backend lacks is an error, also under auto.
PRECISION_BACKENDS = {"fp16": ("tensorrt", "torch"), "bf16": ("torch",)}


# ----------------------------------------------------------------------- selection


def available_backends() -> dict[str, tuple[bool, str]]:
    """{backend: (usable here, reason)} for every selectable backend.

    The reason says what was found when usable and what is missing when not.
    """
    gpu, gpu_why = probe.probe_gpu()
    trt_ver, trt_why = probe.probe_tensorrt()
    cuda_ver, cuda_why = probe.probe_cuda_python()
    providers, ort_why, ort_ver = probe.probe_ort()
    # Two onnxruntime builds installed over each other: said in every onnxruntime reason.
    conflict = probe.probe_ort_conflict()
    if conflict:
        ort_why = f"{ort_why}; {conflict}" if ort_why else conflict
    torch_info, torch_why = probe.probe_torch()
    out: dict[str, tuple[bool, str]] = {}

    missing = [
        w
        for w, bad in (
            (gpu_why, gpu is None),
            (trt_why, trt_ver is None),
            (cuda_why, cuda_ver is None),
        )
        if bad
    ]
    out["tensorrt"] = (
        (False, "; ".join(missing))
        if missing
        else (True, f"TensorRT {trt_ver} on {gpu.name} (cc {gpu.compute_capability})")
    )

    for name, provider in (
        ("ort-cuda", "CUDAExecutionProvider"),
        ("ort-tensorrt", "TensorrtExecutionProvider"),
    ):
        if providers is None:
            out[name] = (False, ort_why)
        elif provider not in providers:
            out[name] = (
                False,
                f"onnxruntime {ort_ver} has no {provider} "
                f"(has {', '.join(providers)}); install onnxruntime-gpu"
                + (f"; {conflict}" if conflict else ""),
            )
        elif gpu is None:
            out[name] = (False, gpu_why)
        else:
            out[name] = (
                True,
                f"onnxruntime {ort_ver} {provider} on {gpu.name}"
                + (f" (warning: {conflict})" if conflict else ""),
            )

    if torch_info is None:
        out["torch"] = (False, torch_why)
    else:
        where = (
            f"CUDA on {torch_info.cuda_device}"
            if torch_info.cuda_device
            else f"CPU only ({torch_info.cuda_why})"
        )
        out["torch"] = (
            True,
            f"torch {torch_info.torch} + onnx2torch {torch_info.onnx2torch}, {where}",
        )

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
        ok, why = auto_usable(name, available)
        if ok:
            return name, why if not skipped else f"{why} ({'; '.join(skipped)})"
        skipped.append(f"{name}: {why}")
    raise LipleakError("no backend can run models here: " + "; ".join(skipped))


def auto_usable(name: str, available: dict) -> tuple[bool, str]:
    """Whether auto may take ``name``: usable, and for torch, on a CUDA device (on the CPU
    onnxruntime is the reference and faster)."""
    ok, why = available[name]
    if ok and name == "torch":
        info, _ = probe.probe_torch()
        if info is None or info.cuda_device is None:
            return False, f"{why}; auto takes torch only on a GPU (--backend torch runs it here)"
    return ok, why


def check_precision(name: str, precision: str) -> None:
    """LipleakError unless backend ``name`` runs ``precision``."""
    if precision == "fp32" or name in PRECISION_BACKENDS.get(precision, ()):
        return
    if precision == "fp16" and name == "ort-tensorrt":
        return  # TensorRT's builder flag through onnxruntime; asked for by name only
    if precision not in PRECISIONS:
        raise LipleakError(
            f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
        )
    raise LipleakError(
        f"precision {precision!r} needs the {' or '.join(PRECISION_BACKENDS[precision])} "
        f"backend; {name} runs the ONNX graph as it is (fp32)"
    )


_ORT_OPTIONS = ("threads",)
_TRT_OPTIONS = ("min_batch", "opt_batch", "device", "cache_root", "workspace_gb")
_TORCH_OPTIONS = ("threads", "device")


def _allowed_options(name: str) -> tuple[str, ...]:
    if name == "tensorrt":
        return _TRT_OPTIONS
    return _TORCH_OPTIONS if name == "torch" else _ORT_OPTIONS


def _open_one(
    name: str, onnx_path: Path, precision: str, max_batch: int, opts: dict, concurrent: bool
):
    check_precision(name, precision)
    unknown = set(opts) - set(_allowed_options(name))
    if unknown:
        raise LipleakError(f"options {sorted(unknown)} do not apply to backend {name!r}")
    if concurrent and name == "cpu" and opts.get("threads") is None:
        # Callers on several threads at once: each call on its caller's core, instead of
        # every call sharing one session's pool, whose threads spin between ops on the
        # cores the other callers need (score: 1.4x with two busy workers,
        # bench/README.md). onnxruntime's CPU kernels give the same bits for any count.
        opts = {**opts, "threads": 1}
    if name == "torch":
        from .torch_backend import TorchRuntime

        return TorchRuntime(onnx_path, precision=precision, max_batch=max_batch, **opts)
    if name in ("cpu", "ort-cuda", "ort-tensorrt"):
        from .onnxrt import OrtRuntime

        providers = {
            "cpu": ("cpu",),
            "ort-cuda": ("cuda", "cpu"),
            "ort-tensorrt": ("tensorrt", "cuda", "cpu"),
        }[name]
        return OrtRuntime(
            onnx_path, providers=providers, threads=opts.get("threads"), precision=precision
        )
    from .tensorrt import TensorRTRuntime

    return TensorRTRuntime(onnx_path, precision=precision, max_batch=max_batch, **opts)


def open_model(
    onnx_path: str | Path,
    backend: str = "auto",
    precision: str = "fp32",
    max_batch: int = 64,
    concurrent: bool = False,
    **opts,
):
    """Open ``onnx_path`` on ``backend`` (one of ``BACKENDS``).

    ``concurrent``: the model will be called from several threads at once (score's
    workers). On onnxruntime's CPU backend each call then runs on its caller's thread
    (``threads`` 1 unless given); elsewhere it changes nothing (torch's CPU thread count is
    the process's, a GPU's work is not split over host threads).

    ``precision`` is "fp32", "fp16" (tensorrt, torch) or "bf16" (torch). ``max_batch``
    bounds the TensorRT optimisation profile and torch's batches (larger batches are
    split). Backend options: ``threads`` (onnxruntime, torch on the CPU), ``min_batch``,
    ``opt_batch``, ``device``, ``cache_root``, ``workspace_gb`` (tensorrt; ``device`` also
    torch). With "auto", a backend that fails to open (e.g. an engine
    build error) is logged and the next one in the order is tried; an explicit backend
    fails with its own error.
    """
    if precision not in PRECISIONS:
        raise LipleakError(
            f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
        )
    if int(max_batch) < 1:
        raise LipleakError(f"max_batch must be >= 1, got {max_batch}")
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ModelError(f"{onnx_path}: ONNX model file not found")
    available = available_backends()
    chosen, _why = resolve_backend(backend, available)
    if backend != "auto":
        return _open_one(chosen, onnx_path, precision, int(max_batch), opts, concurrent)
    candidates = [n for n in AUTO_ORDER if auto_usable(n, available)[0]]
    candidates = candidates[candidates.index(chosen) :]
    if precision != "fp32":
        low = [n for n in candidates if n in PRECISION_BACKENDS[precision]]
        if not low:
            check_precision(chosen, precision)  # raises, naming the backends that could
        candidates = low
    for i, name in enumerate(candidates):
        # Options that belong to another family of backends are dropped here, so that a
        # caller can pass TensorRT settings and still run on the CPU fallback.
        allowed = _allowed_options(name)
        try:
            return _open_one(
                name,
                onnx_path,
                precision,
                int(max_batch),
                {k: v for k, v in opts.items() if k in allowed},
                concurrent,
            )
        except LipleakError as exc:
            if i == len(candidates) - 1:
                raise
            log.warning(
                "backend %s failed to open %s (%s); trying %s",
                name,
                onnx_path,
                exc,
                candidates[i + 1],
            )
    raise AssertionError("unreachable: resolve_backend returned an available backend")

"""``lipleak-fast doctor``: what this machine can run, and why not where it cannot.

Lists the Python stack, the GPU (cuda-python or nvidia-smi), the driver, CUDA, TensorRT,
DALI and onnxruntime's providers, then each backend's availability and what ``auto``
picks. Nothing is built or downloaded; every probe is an import or a device query.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
from dataclasses import asdict, dataclass

from .. import __version__
from ..paths import model_dir


@dataclass
class Component:
    name: str
    ok: bool
    version: str | None
    detail: str  # what was found, or why it is missing
    required: bool = False  # the CPU path needs it


def _dist(name: str, dist: str) -> Component:
    """An optional package by its installed metadata (importing torch takes seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return Component(name, True, version(dist), "")
    except PackageNotFoundError:
        return Component(name, False, None, f"not installed (pip install {dist})")


def _module(name: str, import_name: str, required: bool, attr: str = "__version__") -> Component:
    try:
        mod = importlib.import_module(import_name)
    except ImportError as exc:
        return Component(name, False, None, f"not installed ({exc})", required)
    except Exception as exc:  # noqa: BLE001 - a broken binary wheel fails inside the import
        return Component(name, False, None, f"import failed: {type(exc).__name__}: {exc}", required)
    return Component(name, True, str(getattr(mod, attr, "unknown")), "", required)


def collect() -> dict:
    """Everything doctor reports, as plain data (the --json output)."""
    from ..io.dali import dali_available
    from ..runtime import probe, select

    # Doctor reports the machine as it is now (e.g. after a pip install in this session),
    # not what an earlier call in the same process found.
    probe.clear_cache()
    comps = [
        Component("python", True, platform.python_version(), sys.executable, True),
        Component("lipleak-fast", True, __version__, "", True),
        _module("numpy", "numpy", True),
        _module("opencv", "cv2", True),
        _module("av (PyAV)", "av", True),
    ]
    providers, ort_why, ort_ver = probe.probe_ort()
    comps.append(
        Component(
            "onnxruntime",
            providers is not None,
            ort_ver,
            f"providers: {', '.join(providers)}" if providers else ort_why,
            True,
        )
    )
    comps.append(_dist("torch (export, torch backend)", "torch"))
    comps.append(_dist("onnx (export, torch backend)", "onnx"))
    comps.append(_dist("onnx2torch (torch backend)", "onnx2torch"))

    gpus, gpu_why = probe.probe_gpus()
    if gpus:
        for g in gpus:
            mem = f", {g.memory_mb} MiB" if g.memory_mb else ""
            comps.append(
                Component(
                    f"gpu {g.index}",
                    True,
                    None,
                    f"{g.name}, compute capability {g.compute_capability}{mem} (via {g.source})",
                )
            )
        g0 = gpus[0]
        comps.append(
            Component(
                "nvidia driver",
                g0.driver is not None,
                g0.driver,
                "" if g0.driver else "nvidia-smi did not report it",
            )
        )
        comps.append(
            Component(
                "cuda runtime",
                g0.cuda_runtime is not None,
                g0.cuda_runtime,
                "" if g0.cuda_runtime else "cuda-python not installed",
            )
        )
    else:
        comps.append(Component("gpu", False, None, gpu_why))
        comps.append(Component("nvidia driver", False, None, gpu_why))
        comps.append(Component("cuda runtime", False, None, gpu_why))
    cp_ver, cp_why = probe.probe_cuda_python()
    comps.append(Component("cuda-python", cp_ver is not None, cp_ver, cp_why))
    trt_ver, trt_why = probe.probe_tensorrt()
    comps.append(Component("tensorrt", trt_ver is not None, trt_ver, trt_why))
    d_ok, d_why = dali_available(*probe.probe_gpu())
    d_ver = None
    if d_ok or "installed but" in d_why:
        d_ver = _module("dali", "nvidia.dali", False).version
    comps.append(Component("dali", d_ok, d_ver, d_why))

    backends = select.available_backends()
    try:
        auto, auto_why = select.resolve_backend("auto", backends)
    except Exception as exc:  # noqa: BLE001 - LipleakError: nothing can run
        auto, auto_why = None, str(exc)
    return {
        "components": [asdict(c) for c in comps],
        "backends": {k: {"ok": ok, "detail": why} for k, (ok, why) in backends.items()},
        "auto": {"backend": auto, "detail": auto_why},
        "model_dir": str(model_dir()),
    }


def format_text(report: dict) -> str:
    lines = ["component              status   version        detail"]
    for c in report["components"]:
        status = "ok" if c["ok"] else ("MISSING" if c["required"] else "absent")
        lines.append(f"{c['name']:<22} {status:<8} {c['version'] or '-':<14} {c['detail']}")
    lines.append("")
    lines.append("backend                status   detail")
    for name, b in report["backends"].items():
        lines.append(f"{name:<22} {'ok' if b['ok'] else 'no':<8} {b['detail']}")
    lines.append("")
    auto = report["auto"]
    lines.append(f"auto -> {auto['backend'] or 'nothing'}: {auto['detail']}")
    lines.append(f"model dir: {report['model_dir']}")
    return "\n".join(lines)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "doctor",
        help="show what this machine can run (GPU, TensorRT, DALI, providers) and why not",
        description=(
            "List the Python stack, GPU, driver, CUDA, TensorRT, DALI and onnxruntime "
            "providers, each backend's availability with the reason when it is "
            "missing, and which backend --backend auto picks."
        ),
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    """Print the report; exit 1 when no backend can run models (a required part missing)."""
    report = collect()
    print(json.dumps(report, indent=1) if args.json else format_text(report))
    required_ok = all(c["ok"] for c in report["components"] if c["required"])
    return 0 if report["auto"]["backend"] and required_ok else 1

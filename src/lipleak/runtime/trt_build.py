"""ONNX -> serialised TensorRT engine (explicit batch, one optimisation profile).

The TensorRT backend builds through here on a cache miss; ``python -m
lipleak.export.tensorrt_build`` is the command line over ``build_engine``.

Needs the ``gpu`` extra (tensorrt) and an NVIDIA GPU: TensorRT measures kernels on the
GPU it builds for, so an engine is specific to that GPU model and TensorRT version (the
engine cache keys on both; see engine_cache.py).

Precision:
- fp32 builds with TF32 switched off. TF32 keeps 10 mantissa bits and TensorRT enables it
  by default on Ampere and later; the FP32 engine must match the CPU scores to 1e-3.
- fp16 on TensorRT 10 sets the FP16 builder flag (TensorRT picks fp16 kernels where it
  measures them faster). TensorRT 11 removed that flag (networks are strongly typed), so
  there the ONNX graph is converted to fp16 first with onnxconverter-common, inputs and
  outputs kept fp32; without that package an fp16 build on TensorRT 11 is an error that
  says what to install.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LipleakError, ModelError
from ..files import atomic_write
from .engine_cache import Profile, profile_shapes


def _trt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise LipleakError(
            "TensorRT is not installed; install the 'gpu-cu12' or 'gpu-cu13' extra "
            "(pip install 'lipleak-fast[gpu-cu13]', docs/gpu.md)"
        ) from exc
    return trt


_LOGGER = None


def trt_logger():
    """One process-wide TensorRT logger that keeps the last errors for our messages
    (TensorRT expects a single logger object for the life of the process)."""
    global _LOGGER
    if _LOGGER is None:
        trt = _trt()

        class _Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.errors: list[str] = []
                self.warnings: list[str] = []

            def log(self, severity, msg):
                if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                    self.errors = (self.errors + [str(msg)])[-20:]
                elif severity == trt.ILogger.Severity.WARNING:
                    self.warnings = (self.warnings + [str(msg)])[-50:]

        _LOGGER = _Logger()
    return _LOGGER


@dataclass
class BuildReport:
    engine_path: Path
    seconds: float
    trt_version: str
    precision: str
    profile: Profile
    tf32: bool | None  # the TF32 builder flag as read back from the config; None: no flag
    fp16_method: str | None  # "builder-flag", "onnx-fp16-conversion" or None
    warnings: list[str] = field(default_factory=list)
    workspace_bytes: int | None = None


def fp16_method(trt, precision: str) -> str | None:
    """How this TensorRT makes an fp16 engine: the FP16 builder flag (TensorRT 10), or an
    ONNX graph converted to fp16 and built strongly typed (TensorRT 11 has no such flag).
    Known before building, so the engine cache can key on it."""
    if precision != "fp16":
        return None
    return "builder-flag" if hasattr(trt.BuilderFlag, "FP16") else "onnx-fp16-conversion"


def workspace_bytes(workspace_gb: float | None) -> int | None:
    """The workspace limit in bytes, None (TensorRT's default) when not given."""
    return int(workspace_gb * (1 << 30)) if workspace_gb else None


def _fp16_onnx_bytes(onnx_path: Path) -> bytes:
    try:
        import onnx
        from onnxconverter_common import float16
    except ImportError as exc:
        raise LipleakError(
            "fp16 on TensorRT >= 11 needs an fp16 ONNX graph (the FP16 builder flag is gone): "
            "pip install onnxconverter-common, or convert with "
            "`python -m modelopt.onnx.autocast` and build from that file"
        ) from exc
    model = onnx.load(str(onnx_path))
    return float16.convert_float_to_float16(model, keep_io_types=True).SerializeToString()


def _parse(trt, network, logger, onnx_path: Path, data: bytes | None) -> None:
    parser = trt.OnnxParser(network, logger)
    ok = (
        parser.parse(data, str(onnx_path))
        if data is not None
        else parser.parse_from_file(str(onnx_path))
    )
    if not ok:
        errs = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ModelError(
            f"{onnx_path}: TensorRT's ONNX parser failed: "
            + (" | ".join(errs) or "no error reported")
        )


def _load_timing_cache(trt, config, path: Path | None):
    blob = b""
    if path is not None and path.is_file():
        blob = path.read_bytes()
    try:
        cache = config.create_timing_cache(blob)
    except Exception:  # noqa: BLE001 - a corrupt or foreign cache: start an empty one
        cache = config.create_timing_cache(b"")
    # ignore_mismatch=False: a cache from another GPU is refused rather than mixed in.
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    precision: str = "fp32",
    min_batch: int = 1,
    opt_batch: int | None = None,
    max_batch: int = 64,
    timing_cache_path: str | Path | None = None,
    workspace_gb: float | None = None,
    profile: Profile | None = None,
) -> BuildReport:
    """Build ``onnx_path`` into a serialised engine at ``engine_path`` (written atomically).

    The optimisation profile covers batch sizes min..max on axis 0 of every input (see
    ``profile_shapes``) unless ``profile`` gives the shapes. ``timing_cache_path`` is read
    when present and rewritten after the build, so rebuilding on the same GPU is fast.
    Raises ModelError with the parser's / builder's messages when TensorRT refuses.
    """
    if precision not in ("fp32", "fp16"):
        raise LipleakError(f"unknown precision {precision!r}; choose fp32 or fp16")
    trt = _trt()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise ModelError(f"{onnx_path}: ONNX model file not found")
    profile = profile or profile_shapes(onnx_path, min_batch, opt_batch, max_batch)
    timing = Path(timing_cache_path) if timing_cache_path is not None else None
    logger = trt_logger()
    logger.errors, logger.warnings = [], []
    t0 = time.perf_counter()

    method = fp16_method(trt, precision)
    flags = 0
    data = None
    if method == "onnx-fp16-conversion":
        data = _fp16_onnx_bytes(onnx_path)
        strong = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if strong is not None:
            flags |= 1 << int(strong)

    builder = trt.Builder(logger)
    # TensorRT 10+: explicit batch is the only mode, so 0 flags means explicit batch.
    network = builder.create_network(flags)
    _parse(trt, network, logger, onnx_path, data)

    net_inputs = {network.get_input(i).name for i in range(network.num_inputs)}
    if net_inputs != set(profile):
        raise ModelError(
            f"{onnx_path}: profile inputs {sorted(profile)} differ from the "
            f"network's {sorted(net_inputs)}"
        )

    config = builder.create_builder_config()
    ws = workspace_bytes(workspace_gb)
    if ws is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, ws)
    # What is reported is read back from the config, not assumed: TensorRT turns TF32 on
    # by default, and a flag that did not clear must not be reported as off.
    tf32 = None
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
        tf32 = bool(config.get_flag(trt.BuilderFlag.TF32))
        if tf32:
            raise ModelError(
                f"{onnx_path}: TensorRT kept the TF32 builder flag set after clearing it; "
                "an fp32 engine would not hold the CPU numbers"
            )
    if method == "builder-flag":
        config.set_flag(trt.BuilderFlag.FP16)
    opt_profile = builder.create_optimization_profile()
    for name, (mn, op, mx) in profile.items():
        opt_profile.set_shape(name, tuple(mn), tuple(op), tuple(mx))
    config.add_optimization_profile(opt_profile)
    _load_timing_cache(trt, config, timing)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(
            f"{onnx_path}: TensorRT could not build an engine: "
            + (" | ".join(logger.errors[-5:]) or "no error logged")
        )
    atomic_write(engine_path, bytes(serialized))
    if timing is not None:
        tc = config.get_timing_cache()
        if tc is not None:
            atomic_write(timing, bytes(tc.serialize()))
    return BuildReport(
        engine_path,
        time.perf_counter() - t0,
        str(trt.__version__),
        precision,
        profile,
        tf32,
        method,
        list(logger.warnings),
        ws,
    )

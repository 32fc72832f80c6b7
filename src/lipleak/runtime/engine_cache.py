"""TensorRT engine cache: build once per (model, TensorRT, GPU, precision, profile, build
options).

A serialised engine only runs correctly on the TensorRT version and GPU model that built
it, with the precision and optimisation profile it was built for; the builder options
that change its kernels or numbers (workspace size, TF32 policy, how fp16 was obtained)
are part of it too. The cache key is the sha256 over all of these; a JSON sidecar next to
each engine repeats the key fields and the engine's own sha256, plus what the build
reported (e.g. whether TF32 was actually off). An engine is loaded only when its sidecar
matches the wanted key field for field and its bytes hash to the recorded value; anything
else (stale, foreign, truncated, hand-edited) is rebuilt, never loaded.

Layout under ``lipleak.paths.model_dir()/engines/``::

    <key>.engine          serialised engine
    <key>.json            sidecar: key fields + engine_sha256 + build time
    timing/<gpu>-cc<cc>-trt<version>.cache   TensorRT timing cache, shared by all models
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import LipleakError, ModelError
from ..files import atomic_path, atomic_write, file_sha256
from ..paths import model_dir

# bump when the meaning of a key field changes. 2: workspace_bytes, tf32 and fp16_method
# joined the key; engines cached under version 1 have other digests, so they are simply
# not found and get rebuilt (the old files stay in the folder until deleted).
KEY_VERSION = 2

Shape = tuple[int, ...]
# {input name: (min shape, opt shape, max shape)}
Profile = dict[str, tuple[Shape, Shape, Shape]]


# ---------------------------------------------------------------- profile shapes


def onnx_inputs(onnx_path: str | Path) -> list[tuple[str, list[int | str | None]]]:
    """Graph inputs of an ONNX file as (name, dims); a dynamic dim is its symbolic name or
    None. Initializers listed as inputs (old exporters) are left out.

    Reads the protobuf with ``onnx`` when installed (no weights are loaded); otherwise asks
    onnxruntime, which is always present where models run.
    """
    path = Path(onnx_path)
    if not path.is_file():
        raise ModelError(f"{path}: ONNX model file not found")
    try:
        import onnx
    except ImportError:
        return _onnx_inputs_ort(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise ModelError(f"{path}: not a readable ONNX file ({type(exc).__name__})") from exc
    inits = {i.name for i in model.graph.initializer}
    out = []
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims: list[int | str | None] = []
        for d in inp.type.tensor_type.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                dims.append(None)
        out.append((inp.name, dims))
    return out


def _onnx_inputs_ort(path: Path) -> list[tuple[str, list[int | str | None]]]:
    try:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises untyped errors
        raise ModelError(f"{path}: cannot read ONNX inputs: {exc}") from exc
    return [(i.name, list(i.shape)) for i in sess.get_inputs()]


# (min, opt, max) side of the square images fed to models whose NCHW input has dynamic H
# and W. The one such model here is SCRFD (insightface det_500m: input [1, 3, ?, ?]):
# ``faces.scrfd.SCRFD`` feeds a square canvas whose side is a multiple of 32 from 32 (a
# tiny frame) up to its ``input_size``, 640 by default (every full frame, and always with
# upscale=True); opt is 640 for that reason. A detector opened with a larger input_size
# needs an engine opened with ``spatial=(32, 640, input_size)``.
SPATIAL_RANGE = (32, 640, 640)


def _is_dim(d) -> bool:
    return isinstance(d, int) and d > 0


def profile_shapes(
    onnx_path: str | Path,
    min_batch: int = 1,
    opt_batch: int | None = None,
    max_batch: int = 64,
    spatial: tuple[int, int, int] | None = None,
) -> Profile:
    """The optimisation profile for ``onnx_path``: axis 0 of every input is the batch.

    A dynamic batch axis gets (min_batch, opt_batch, max_batch) — opt defaults to
    max_batch because scoring runs full batches except for each video's last one. A fixed
    batch axis gets that size for all three. An image input (4-D, NCHW with a fixed
    channel count) whose H and W are dynamic gets ``spatial`` = (min, opt, max) for both
    (default ``SPATIAL_RANGE``, what SCRFD feeds). Any other dynamic axis is an error:
    guessing a range would silently build a slow or wrong engine.
    """
    opt_batch = max_batch if opt_batch is None else opt_batch
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise LipleakError(
            f"batch profile needs 1 <= min <= opt <= max, got {min_batch}/{opt_batch}/{max_batch}"
        )
    smin, sopt, smax = SPATIAL_RANGE if spatial is None else spatial
    if not 1 <= smin <= sopt <= smax:
        raise LipleakError(f"spatial profile needs 1 <= min <= opt <= max, got {spatial}")
    profile: Profile = {}
    for name, dims in onnx_inputs(onnx_path):
        if not dims:
            raise ModelError(f"{onnx_path}: input {name!r} is a scalar; no batch axis")
        rest = list(dims[1:])
        image = len(dims) == 4 and _is_dim(dims[1]) and not any(_is_dim(d) for d in dims[2:])
        bad = [i + 1 for i, d in enumerate(rest) if not _is_dim(d)]
        if bad and not image:
            raise ModelError(
                f"{onnx_path}: input {name!r} has dynamic non-batch axes {bad} "
                f"(shape {dims}); export it with fixed sizes"
            )
        lo, op, hi = (
            (
                [rest[0], smin, smin],
                [rest[0], sopt, sopt],
                [rest[0], smax, smax],
            )
            if image
            else (rest, rest, rest)
        )
        b = dims[0]
        if _is_dim(b):
            shapes = ((b, *lo), (b, *op), (b, *hi))
        else:
            shapes = ((min_batch, *lo), (opt_batch, *op), (max_batch, *hi))
        profile[name] = tuple(tuple(int(d) for d in s) for s in shapes)
    if not profile:
        raise ModelError(f"{onnx_path}: the graph has no inputs")
    return profile


# ------------------------------------------------------------------------- key


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    trt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    profile: tuple  # ((name, min, opt, max), ...) sorted by name, shapes as tuples
    # Builder options that change the engine: the workspace limit in bytes (None:
    # TensorRT's default, the GPU's memory) bounds which tactics can be chosen; ``tf32``
    # is the policy asked for (False: the TF32 flag cleared), and ``fp16_method`` how fp16
    # was obtained ("builder-flag", "onnx-fp16-conversion"; None for fp32).
    workspace_bytes: int | None = None
    tf32: bool = False
    fp16_method: str | None = None

    def fields(self) -> dict:
        d = asdict(self)
        d["profile"] = [[n, list(a), list(b), list(c)] for n, a, b, c in self.profile]
        d["key_version"] = KEY_VERSION
        return d

    def digest(self) -> str:
        blob = json.dumps(self.fields(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


def make_key(
    onnx_path: str | Path,
    trt_version: str,
    gpu_name: str,
    compute_capability: str,
    precision: str,
    profile: Profile,
    onnx_sha256: str | None = None,
    workspace_bytes: int | None = None,
    tf32: bool = False,
    fp16_method: str | None = None,
) -> EngineKey:
    prof = tuple((n, tuple(a), tuple(b), tuple(c)) for n, (a, b, c) in sorted(profile.items()))
    return EngineKey(
        onnx_sha256 or file_sha256(onnx_path),
        str(trt_version),
        str(gpu_name),
        str(compute_capability),
        str(precision),
        prof,
        None if workspace_bytes is None else int(workspace_bytes),
        bool(tf32),
        fp16_method,
    )


# ---------------------------------------------------------------------- layout


def cache_dir(root: str | Path | None = None) -> Path:
    return Path(root) if root is not None else model_dir() / "engines"


def engine_path(key: EngineKey, root: str | Path | None = None) -> Path:
    return cache_dir(root) / f"{key.digest()}.engine"


def sidecar_path(key: EngineKey, root: str | Path | None = None) -> Path:
    return cache_dir(root) / f"{key.digest()}.json"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_") or "unknown"


def timing_cache_path(
    gpu_name: str, compute_capability: str, trt_version: str, root: str | Path | None = None
) -> Path:
    """One timing cache per GPU model and TensorRT version: timings measured on one GPU
    are meaningless on another, and TensorRT rejects caches from other versions."""
    name = f"{_slug(gpu_name)}-cc{_slug(compute_capability)}-trt{_slug(trt_version)}.cache"
    return cache_dir(root) / "timing" / name


# ------------------------------------------------------------------------ lock


@contextlib.contextmanager
def _build_lock(path: Path):
    """An exclusive lock file so that two processes do not build the same engine at once;
    a no-op where fcntl does not exist (the atomic writes still keep the cache sound)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# ------------------------------------------------------------------ load / build


@dataclass
class CachedEngine:
    data: bytes  # the serialised engine
    path: Path
    built: bool  # True when this call built it
    build_seconds: float | None  # when built
    reason: str  # why it was (re)built, or "cache hit"
    meta: dict = field(default_factory=dict)  # the sidecar: key fields + what the build said


def _sidecar(key: EngineKey, root) -> dict:
    try:
        return json.loads(sidecar_path(key, root).read_text())
    except (OSError, ValueError):
        return {}


def check_cached(key: EngineKey, root: str | Path | None = None) -> tuple[bytes | None, str]:
    """The cached engine bytes for ``key`` if sidecar and bytes verify, else None and why."""
    eng, side = engine_path(key, root), sidecar_path(key, root)
    if not eng.is_file():
        return None, "no cached engine"
    if not side.is_file():
        return None, "engine without sidecar"
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        return None, f"unreadable sidecar ({type(exc).__name__})"
    want = key.fields()
    stale = sorted(k for k in want if meta.get(k) != want[k])
    if stale:
        return None, "sidecar mismatch in " + ", ".join(stale)
    data = eng.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("engine_sha256"):
        return None, "engine bytes do not match the sidecar sha256 (corrupt or replaced)"
    return data, "cache hit"


# (onnx_path, out_engine_path, timing_cache_path) -> facts of the build for the sidecar
# (e.g. {"tf32_set": False}) or None
BuildFn = Callable[[Path, Path, Path], "dict | None"]


def load_or_build(
    key: EngineKey,
    onnx_path: str | Path,
    build: BuildFn,
    root: str | Path | None = None,
    validate: Callable[[bytes], bool] | None = None,
) -> CachedEngine:
    """The engine for ``key``: from the cache when it verifies, else built by ``build``.

    ``build(onnx_path, out_path, timing_cache_path)`` must write a serialised engine to
    ``out_path`` (a temporary name in the cache folder) or raise; a dict it returns is
    stored in the sidecar (``CachedEngine.meta`` gives it back on later hits). The engine
    is moved into place only after the build returned, then its sidecar is written; an
    exception leaves no engine and no sidecar behind. ``validate(bytes)`` (e.g. TensorRT
    deserialisation) lets a cache hit that TensorRT refuses be rebuilt instead of failing.
    """
    eng, side = engine_path(key, root), sidecar_path(key, root)
    data, why = check_cached(key, root)
    if data is not None and (validate is None or validate(data)):
        return CachedEngine(data, eng, False, None, why, _sidecar(key, root))
    if data is not None:
        why = "cached engine failed to deserialise"
    with _build_lock(eng.with_suffix(".lock")):
        # Another process may have built it while this one waited for the lock.
        data2, _ = check_cached(key, root)
        if data2 is not None and (validate is None or validate(data2)):
            return CachedEngine(
                data2, eng, False, None, "cache hit (built concurrently)", _sidecar(key, root)
            )
        eng.parent.mkdir(parents=True, exist_ok=True)
        # The stale pair goes first, so a crash mid-build cannot leave an old engine next
        # to a sidecar that no longer describes it.
        side.unlink(missing_ok=True)
        eng.unlink(missing_ok=True)
        timing = timing_cache_path(key.gpu_name, key.compute_capability, key.trt_version, root)
        t0 = time.perf_counter()
        with atomic_path(eng) as tmp:
            facts = build(Path(onnx_path), tmp, timing) or {}
            seconds = time.perf_counter() - t0
            data = tmp.read_bytes()
            if not data:
                raise ModelError(f"{onnx_path}: the engine builder wrote an empty engine")
        meta = dict(
            facts,
            **key.fields(),
            engine_sha256=hashlib.sha256(data).hexdigest(),
            onnx_path=str(onnx_path),
            built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            build_seconds=round(seconds, 3),
        )
        atomic_write(side, (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode())
    return CachedEngine(data, eng, True, seconds, why, meta)

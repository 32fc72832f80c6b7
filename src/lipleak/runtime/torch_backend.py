"""PyTorch backend: an ONNX model converted by onnx2torch and run as a torch module.

The one accelerated path that runs wherever PyTorch does: on CUDA when torch sees a GPU,
else on the CPU (so CI checks it against onnxruntime). The ONNX file stays the source of
truth, so every backend runs the same graph.

Exact by default: fp32 with TF32 off for cuBLAS and cuDNN, matmul precision "highest",
cuDNN deterministic with autotuning off. These are process-wide torch flags; opening a
model here sets them, and ``describe()`` reads them back from torch. ``precision="fp16"``
or ``"bf16"`` converts the module's weights and the float inputs to that type (outputs
come back as float32); those numbers move, so the precision is in the settings hash.

onnx2torch imports torchvision for its NMS and RoiAlign converters only. None of this
project's models has those nodes, and torchvision wheels are built for one torch build
(PyPI's Linux wheels need CUDA torch), so when torchvision is missing or does not import,
onnx2torch is imported against a placeholder that fails if such a node is ever converted.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..files import file_sha256
from .base import RuntimeInfo, TensorSpec
from .probe import TORCH_INSTALL_HINT, cpu_threads

TORCH_PRECISIONS = ("fp32", "fp16", "bf16")
_IMPORT_LOCK = threading.Lock()
_ONNX2TORCH = None


def _torchvision_placeholder() -> dict[str, types.ModuleType]:
    def missing(*_a, **_k):
        raise ModelError(
            "this ONNX graph has an NMS or RoiAlign node, which onnx2torch runs with "
            "torchvision; install the torchvision built for your torch"
        )

    tv = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    ops.nms = ops.roi_align = ops.box_convert = missing
    tv.ops = ops
    return {"torchvision": tv, "torchvision.ops": ops}


def import_onnx2torch():
    """The onnx2torch module (imported once), with torchvision or without it."""
    global _ONNX2TORCH
    with _IMPORT_LOCK:
        if _ONNX2TORCH is not None:
            return _ONNX2TORCH
        try:
            importlib.import_module("torch")
        except ImportError as exc:
            raise ModelError(
                f"backend 'torch' needs PyTorch ({exc}); {TORCH_INSTALL_HINT}"
            ) from exc
        before = set(sys.modules)
        try:
            # torchvision.ops, not just torchvision: what onnx2torch imports; a module
            # named torchvision without it (a stand-in some other code registered) counts
            # as absent
            importlib.import_module("torchvision.ops")
            stub = {}
        except Exception:  # noqa: BLE001 - absent, or a wheel built for another torch
            # a half-imported torchvision must not be found by the next import
            for name in set(sys.modules) - before:
                if name == "torchvision" or name.startswith("torchvision."):
                    del sys.modules[name]
            stub = _torchvision_placeholder()
        saved = {name: sys.modules[name] for name in stub if name in sys.modules}
        sys.modules.update(stub)
        try:
            _ONNX2TORCH = importlib.import_module("onnx2torch")
        except ImportError as exc:
            raise ModelError(
                f"backend 'torch' needs onnx2torch ({exc}); {TORCH_INSTALL_HINT}"
            ) from exc
        finally:
            # onnx2torch keeps its reference; nobody else may mistake it for torchvision,
            # and what was registered before is back
            for name in stub:
                sys.modules.pop(name, None)
            sys.modules.update(saved)
        return _ONNX2TORCH


def _has_precision_api(torch) -> bool:
    """torch >= 2.9's per-backend ``fp32_precision`` settings (the TF32 switches that
    replace ``allow_tf32``). Once they are used, torch refuses the legacy cuDNN getter
    (``torch.backends.cudnn.allow_tf32`` raises), so this module uses one API or the
    other, never both."""
    return hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(
        getattr(torch.backends.cudnn, "conv", None), "fp32_precision"
    )


def exact_mode(torch) -> None:
    """Make fp32 mean fp32 on every device: no TF32, no autotuned (non-deterministic) cuDNN
    algorithms. Process-wide flags; the torch backend sets them whenever it opens a model."""
    torch.set_float32_matmul_precision("highest")
    if _has_precision_api(torch):
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cudnn.rnn.fp32_precision = "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def tf32_state(torch) -> tuple[bool | None, dict]:
    """Whether TF32 may run in fp32 matmuls or cuDNN convolutions/RNNs, read back from
    torch, and what each setting says; never raises (``None`` when torch will not tell).

    With the ``fp32_precision`` API a setting of ``"none"`` inherits its parent's
    (``cudnn.conv`` → ``cudnn`` → ``torch.backends``); ``"none"`` all the way up is IEEE
    fp32, as torch runs it. Legacy setters called later are seen too: torch maps them
    onto the same settings."""
    b = torch.backends
    try:
        if _has_precision_api(torch):
            chains = {
                "matmul": [b.cuda.matmul, b.cuda, b],
                "cudnn_conv": [b.cudnn.conv, b.cudnn, b],
                "cudnn_rnn": [b.cudnn.rnn, b.cudnn, b],
            }
            eff = {}
            for name, chain in chains.items():
                vals = [getattr(n, "fp32_precision", "none") for n in chain]
                eff[name] = next((v for v in vals if v not in (None, "none")), "ieee")
            return any(v == "tf32" for v in eff.values()), eff
        flags = {
            "matmul_allow_tf32": bool(b.cuda.matmul.allow_tf32),
            "cudnn_allow_tf32": bool(b.cudnn.allow_tf32),
        }
        return any(flags.values()), flags
    except Exception as exc:  # noqa: BLE001 - a provenance field must not fail a run
        return None, {"error": repr(exc)[:200]}


def _dims(value_info) -> tuple:
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims)


def _spec(value_info) -> TensorSpec:
    from onnx import helper

    dtype = helper.tensor_dtype_to_np_dtype(value_info.type.tensor_type.elem_type)
    return TensorSpec(value_info.name, _dims(value_info), np.dtype(dtype).name)


class TorchRuntime:
    """An ONNX model as a torch module on CUDA (when torch sees a GPU) or the CPU.

    ``device``: "cpu", "cuda", "cuda:N" or a CUDA index; default CUDA when available.
    ``threads`` (CPU only): torch's intra-op threads, default LIPLEAK_ORT_THREADS or the
    cores, as for onnxruntime; torch's thread count is process-wide, so it is set only
    when it differs. ``max_batch``: larger dynamic batches run in chunks of this size.
    A graph with a fixed batch runs in chunks of exactly that size, the last one
    zero-padded and its padding rows dropped.
    """

    def __init__(
        self,
        onnx_path: str | Path,
        precision: str = "fp32",
        device: str | int | None = None,
        threads: int | None = None,
        max_batch: int = 64,
    ):
        if precision not in TORCH_PRECISIONS:
            raise ModelError(
                f"precision {precision!r} is not one of the torch backend's "
                f"{', '.join(TORCH_PRECISIONS)}"
            )
        onnx2torch = import_onnx2torch()
        import onnx
        import torch

        self._torch = torch
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: ONNX model file not found")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif isinstance(device, int):
            device = f"cuda:{device}"
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ModelError(f"device {device!r} asked for, but torch sees no CUDA device")
        self.precision = precision
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[
            precision
        ]
        exact_mode(torch)
        self.threads = None
        if self.device.type == "cpu":
            n = threads or cpu_threads()
            if torch.get_num_threads() != n:
                torch.set_num_threads(n)
            self.threads = n
        try:
            model = onnx.load(str(self.path))
            module = onnx2torch.convert(model)
        except ModelError:
            raise
        except Exception as exc:  # onnx and onnx2torch raise their own untyped errors
            raise ModelError(f"{self.path}: onnx2torch cannot convert it: {exc}") from exc
        # eval(): a converted module starts in training mode, where BatchNormalization
        # would normalise with the batch's statistics instead of the stored ones
        self.module = module.eval().to(device=self.device, dtype=self.dtype)
        init = {t.name for t in model.graph.initializer}
        self.inputs = [_spec(v) for v in model.graph.input if v.name not in init]
        self.outputs = [_spec(v) for v in model.graph.output]
        first = self.inputs[0].shape[0] if self.inputs and self.inputs[0].shape else None
        self.fixed_batch = first if isinstance(first, int) and first > 0 else None
        self.max_batch = self.fixed_batch or max(1, int(max_batch))
        self._lock = threading.Lock()
        self._busy: BusyClock | None = None
        self._sha256: str | None = None
        # Each model runs on a CUDA stream of its own: a call waits only for its own work,
        # so the audio tower's results (wanted by the worker threads) do not queue behind
        # the lip tower's batches. The weights were copied on the default stream: wait
        # for them once.
        self._stream = None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._stream = torch.cuda.Stream(device=self.device)

    def _on_stream(self):
        if self._stream is None:
            return contextlib.nullcontext()
        return self._torch.cuda.stream(self._stream)

    # -------------------------------------------------------------------- running

    def _upload(self, value: np.ndarray):
        """A host array on the device as it is (no dtype change). On CUDA through pinned
        memory, so the copy is a DMA queued on this model's stream: the kernels that read
        it are queued behind it, and the caller's thread goes on (a pageable copy would
        wait, spinning, for everything queued on the stream before it)."""
        t = self._torch.from_numpy(np.ascontiguousarray(value))
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t

    def _input(self, value: np.ndarray):
        """A feed on the device in this runtime's precision (floats cast there: the same
        IEEE round-to-nearest-even as on the host)."""
        t = self._upload(value)
        return t.to(self.dtype) if t.is_floating_point() else t

    def _outputs(self, args: list) -> list:
        """The module's outputs for one batch, still on the device, floats as float32."""
        out = self.module(*args)
        out = list(out) if isinstance(out, (tuple, list)) else [out]
        if len(out) != len(self.outputs):
            raise ModelError(
                f"{self.path}: the converted module gave {len(out)} outputs, "
                f"the graph declares {len(self.outputs)}"
            )
        return [o.float() if o.is_floating_point() else o for o in out]

    def _event(self, timing: bool):
        """An event on this model's stream (recorded by the caller). On CUDA a blocking
        one: waiting for it puts the thread to sleep instead of spinning a core that the
        decode workers need (``cudaEventBlockingSync``). On the CPU every call has finished
        when it returns: a host clock stands in, so the same code times both."""
        if self._stream is None:
            return _HostEvent()
        return self._torch.cuda.Event(enable_timing=timing, blocking=True)

    def _to_host(self, parts: list[list], start) -> tuple[list[list], object]:
        """Queue the copies of ``parts`` (device outputs) back to pinned host memory and an
        event behind them; the caller waits for it after releasing the lock."""
        if self._stream is not None:
            parts = [[o.to("cpu", non_blocking=True) for o in p] for p in parts]
        done = None
        if self._stream is not None or start is not None:
            done = self._event(timing=start is not None)
            done.record(self._stream)
        return parts, done

    def _finish(self, parts: list[list], start, done) -> list[list[np.ndarray]]:
        """Wait (sleeping) for the queued work, add its GPU time to the busy clock, and
        hand the outputs over as numpy arrays of their own."""
        if done is not None:
            done.synchronize()
            clock = self._busy
            if start is not None and clock is not None:
                clock.add(start.elapsed_time(done) / 1000.0)
        if self._stream is None:
            return [[np.ascontiguousarray(o.detach().numpy()) for o in p] for p in parts]
        # copies: the pinned buffers go back to torch's host cache, not to the caller
        return [[np.array(o.numpy(), copy=True) for o in p] for p in parts]

    def _mark(self):
        """The busy clock's start event for one call (None while no clock runs)."""
        if self._busy is None:
            return None
        start = self._event(timing=True)
        start.record(self._stream)
        return start

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on host arrays. On CUDA the lock is held while the work is queued
        (pinned uploads, the model, the copies back behind an event) and the thread waits
        for the event, sleeping, after releasing it (the audio tower, called from every
        worker thread, neither spins a core nor holds the others back meanwhile)."""
        missing = [s.name for s in self.inputs if s.name not in feeds]
        if missing:
            raise ModelError(f"{self.path}: missing inputs {missing}")
        names = [o.name for o in self.outputs]
        n = int(next(iter(feeds[s.name] for s in self.inputs)).shape[0])
        whole = bool(n) and (
            n == self.fixed_batch or (self.fixed_batch is None and n <= self.max_batch)
        )
        with self._lock, self._torch.inference_mode(), self._on_stream():
            start = self._mark()
            if whole:
                parts = [self._outputs([self._input(feeds[s.name]) for s in self.inputs])]
            else:
                parts = []
                # max(n, 1): an empty batch runs one zero row, for the outputs' shapes
                for s in range(0, max(n, 1), self.max_batch):
                    chunk = {k: v[s : s + self.max_batch] for k, v in feeds.items()}
                    m = min(self.max_batch, n - s) if n else 0
                    rows = self.fixed_batch or max(m, 1)
                    if m < rows:
                        chunk = {k: _pad_rows(v, rows) for k, v in chunk.items()}
                    res = self._outputs([self._input(chunk[i.name]) for i in self.inputs])
                    if any(tuple(r.shape[:1]) != (rows,) for r in res):
                        raise ModelError(
                            f"{self.path}: cannot split or pad a batch of {n}: an output has "
                            f"no batch axis; feed {rows} rows at a time"
                        )
                    parts.append([r[:m] for r in res])
            parts, done = self._to_host(parts, start)
        host = self._finish(parts, start, done)
        if whole:
            return dict(zip(names, host[0], strict=True))
        return {k: np.concatenate([p[i] for p in host]) for i, k in enumerate(names)}

    def run_prepared(self, host: list[np.ndarray], prepare) -> dict[str, np.ndarray]:
        """Run the model on inputs made on the device from ``host`` arrays.

        The arrays go to the device as they are (e.g. uint8 frames: SyncNet's five-frame
        float windows are 20 times their bytes, and on a GPU the host-to-device copy is
        what limits a small model), then ``prepare(tensors, dtype)`` makes the feeds there:
        ``{input name: tensor}`` in this runtime's precision, batch axis first. The batch is
        run in chunks of ``max_batch`` like ``run``; only for a graph with a dynamic batch.

        On CUDA the lock is held only while the work is queued: the copies back go to
        pinned memory behind a blocking event, and waiting for it (asleep, not spinning)
        happens outside the lock, so a second thread calling meanwhile queues its batch
        (its uploads and window making) while this one's runs, and the GPU does not wait
        for the host between batches. One stream, so the batches still run one after the
        other, each with the kernels its shape gets alone. (On CUDA the kernels depend on
        the batch's shape: a window in a batch of another size may differ in its last
        bits, so equality across batch shapes is a CPU claim; docs/gpu.md.)
        """
        if self.fixed_batch is not None:
            raise ModelError(f"{self.path}: run_prepared needs a dynamic batch axis")
        names = [o.name for o in self.outputs]
        with self._lock, self._torch.inference_mode(), self._on_stream():
            start = self._mark()
            feeds = prepare([self._upload(a) for a in host], self.dtype)
            missing = [s.name for s in self.inputs if s.name not in feeds]
            if missing:
                raise ModelError(f"{self.path}: prepare() gave no {missing}")
            n = int(feeds[self.inputs[0].name].shape[0])
            parts = [
                self._outputs([feeds[s.name][i : i + self.max_batch] for s in self.inputs])
                for i in range(0, n, self.max_batch)
            ]
            parts, done = self._to_host(parts, start)
        out = self._finish(parts, start, done)
        if not out:
            raise ModelError(f"{self.path}: run_prepared got an empty batch")
        return {k: np.concatenate([p[i] for p in out]) for i, k in enumerate(names)}

    # ----------------------------------------------------------------- busy clock

    def start_busy_clock(self) -> BusyClock:
        """Time, from now on, how long this model's device is busy with its calls: each
        call's work between two events on the model's stream (CUDA timing events: GPU
        time, uploads, kernels and copies back, never the host's waits for the lock or
        for the events). The calls on one stream run one after the other, so the sum is
        the stream's busy time however many threads call (``busy / wall`` ≤ 1). On the CPU
        the host clock between the same two points (every call is done when it returns,
        under the lock). Returns the clock; ``stop_busy_clock`` ends the timing."""
        self._busy = BusyClock(str(self.device))
        return self._busy

    def stop_busy_clock(self) -> BusyClock | None:
        clock, self._busy = self._busy, None
        return clock

    # ------------------------------------------------------------------- describe

    def describe(self) -> RuntimeInfo:
        torch = self._torch
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        tf32, tf32_settings = tf32_state(torch)
        details = {
            "torch": str(torch.__version__),
            "onnx2torch": _version("onnx2torch"),
            "device": str(self.device),
            "precision": self.precision,
            # read back, not assumed: another library in the process may have changed them
            "tf32": tf32,
            "fp32_precision": tf32_settings,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        }
        if self.device.type == "cuda":
            details["gpu"] = torch.cuda.get_device_name(self.device)
            details["cuda"] = torch.version.cuda
        else:
            details["threads"] = torch.get_num_threads()
        return RuntimeInfo("torch", str(self.path), self._sha256, details)


class BusyClock:
    """Device-busy seconds of one runtime's calls (``TorchRuntime.start_busy_clock``).

    ``add`` takes one call's busy seconds (measured on the device between two events on
    the model's stream) when the call is done; ``seconds`` is their sum, ``calls`` their
    count, ``seconds_between(t0, t1)`` the sum over the calls done between two
    ``time.perf_counter`` readings. On one stream the calls do not overlap, so the busy
    seconds of a wall time stay under it; the clock reports what it measured and leaves
    that check to the reader (``bench/gpu_check.py`` flags a share above 1)."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.seconds = 0.0
        self.calls = 0
        self._done: list[tuple[float, float]] = []  # (perf_counter when done, busy s)
        self._lock = threading.Lock()

    def add(self, seconds: float, at: float | None = None) -> None:
        at = time.perf_counter() if at is None else at
        with self._lock:
            self.seconds += float(seconds)
            self.calls += 1
            self._done.append((at, float(seconds)))

    def seconds_between(self, t0: float, t1: float) -> float:
        with self._lock:
            return sum(s for at, s in self._done if t0 < at <= t1)


class _HostEvent:
    """``torch.cuda.Event``'s interface on the host clock, for the CPU device."""

    __slots__ = ("t",)

    def __init__(self):
        self.t: float | None = None

    def record(self, stream=None) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: _HostEvent) -> float:
        """Milliseconds from this event to ``end``, as CUDA events give them."""
        return (end.t - self.t) * 1000.0


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    return np.concatenate([x, np.zeros((rows - len(x),) + x.shape[1:], x.dtype)])


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"

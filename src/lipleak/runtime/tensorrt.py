"""Native TensorRT backend: a cached engine, named tensors, execution on a CUDA stream.

Device memory and streams come from cuda-python (NVIDIA's thin CUDA bindings, the same
ones TensorRT's own Python samples use): a few MB, no framework, no second CUDA context
manager. Buffers for the profile's maximum batch are allocated once, so memory is bounded
by ``max_batch``, not by video length; larger batches are split into chunks.

Inputs may be numpy arrays (copied through pinned host memory) or device arrays that
expose ``__cuda_array_interface__`` (DALI, CuPy, PyTorch CUDA tensors), which are copied
device-to-device without touching the host — the hook that keeps decoded frames on the GPU.
A device array is read on this runtime's own stream, so that stream first waits for the
stream that produced it (an event recorded there, ``cudaStreamWaitEvent``): the producer's
stream is the ``stream=`` argument of ``run``, else the array interface's ``stream``
(version 3: CuPy, PyTorch), else the object's ``stream`` attribute (DALI's TensorGPU, whose
interface is version 2). When none says, the device is synchronised before the copy.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import LipleakError, ModelError
from ..files import file_sha256
from . import engine_cache, probe
from .base import RuntimeInfo, TensorSpec


class _Cuda:
    """The handful of CUDA runtime calls the backend needs, with errors as exceptions."""

    def __init__(self):
        try:
            self.rt = probe.import_cudart()
        except ImportError as exc:
            raise LipleakError(
                "the tensorrt backend needs cuda-python (pip install cuda-python)"
            ) from exc
        self.ok = self.rt.cudaError_t.cudaSuccess
        kinds = self.rt.cudaMemcpyKind
        self.H2D, self.D2H, self.D2D = (
            kinds.cudaMemcpyHostToDevice,
            kinds.cudaMemcpyDeviceToHost,
            kinds.cudaMemcpyDeviceToDevice,
        )

    def call(self, what: str, result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if err != self.ok:
            _, name = self.rt.cudaGetErrorName(err)
            raise LipleakError(
                f"CUDA {what} failed: {name.decode() if isinstance(name, bytes) else name}"
            )
        return rest[0] if len(rest) == 1 else (rest or None)

    def set_device(self, index: int) -> None:
        self.call("cudaSetDevice", self.rt.cudaSetDevice(index))

    def malloc(self, nbytes: int) -> int:
        return int(self.call("cudaMalloc", self.rt.cudaMalloc(max(int(nbytes), 1))))

    def free(self, ptr: int) -> None:
        self.rt.cudaFree(ptr)

    def host_array(self, nbytes: int) -> tuple[int, np.ndarray]:
        """Pinned (page-locked) host memory as a uint8 numpy view: async copies need it."""
        ptr = int(self.call("cudaMallocHost", self.rt.cudaMallocHost(max(int(nbytes), 1))))
        buf = (ctypes.c_uint8 * max(int(nbytes), 1)).from_address(ptr)
        return ptr, np.frombuffer(buf, dtype=np.uint8)

    def free_host(self, ptr: int) -> None:
        self.rt.cudaFreeHost(ptr)

    def stream(self):
        return self.call("cudaStreamCreate", self.rt.cudaStreamCreate())

    def sync(self, stream) -> None:
        self.call("cudaStreamSynchronize", self.rt.cudaStreamSynchronize(stream))

    def copy(self, dst: int, src: int, nbytes: int, kind, stream) -> None:
        self.call("cudaMemcpyAsync", self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream))

    def event(self):
        flags = getattr(self.rt, "cudaEventDisableTiming", 2)  # no timing: cheaper to record
        return self.call("cudaEventCreateWithFlags", self.rt.cudaEventCreateWithFlags(flags))

    def wait_for(self, stream, producer: int, event) -> None:
        """Make ``stream`` wait (on the GPU, not the host) for the work queued so far on
        ``producer``. 1 and 2 are the CUDA array interface's legacy and per-thread default
        streams, which are also the runtime's own handles for them."""
        self.call("cudaEventRecord", self.rt.cudaEventRecord(event, producer))
        self.call("cudaStreamWaitEvent", self.rt.cudaStreamWaitEvent(stream, event, 0))

    def device_sync(self) -> None:
        self.call("cudaDeviceSynchronize", self.rt.cudaDeviceSynchronize())


def stream_handle(stream) -> int | None:
    """A CUDA stream as an int handle: an int, a PyTorch stream (``cuda_stream``), a CuPy
    stream (``ptr``), or None."""
    if stream is None:
        return None
    for attr in ("cuda_stream", "ptr"):
        if hasattr(stream, attr):
            return int(getattr(stream, attr))
    return int(stream)


_UNKNOWN = object()  # a device array that does not say which stream produced it


@dataclass(frozen=True)
class DeviceView:
    """A C-contiguous device array seen through ``__cuda_array_interface__``: pointer,
    shape, dtype and the producing stream (None: ready, no wait needed; ``_UNKNOWN``: not
    said). Slicing rows keeps the producer, so split batches wait too. ``owner`` keeps the
    producer's object (and its memory) alive while the view is used."""

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype
    stream: object
    owner: object = None

    def __getitem__(self, rows: slice) -> DeviceView:
        start, stop, step = rows.indices(self.shape[0])
        if step != 1:
            raise LipleakError("device inputs can only be cut into runs of rows")
        row = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        n = max(0, stop - start)
        return replace(self, ptr=self.ptr + start * row, shape=(n, *self.shape[1:]))


def device_view(arr, stream=None) -> DeviceView | None:
    """The device array ``arr`` as a DeviceView, or None for host arrays.

    ``stream`` (the caller's word on the producing stream) wins over what the array says.
    Shapes are taken from the array interface only: DALI's ``TensorGPU.shape`` is a method
    and CuPy's/PyTorch's are attributes, so ``arr.shape`` means different things.
    """
    if isinstance(arr, DeviceView):
        return arr if stream is None else replace(arr, stream=stream_handle(stream))
    cai = getattr(arr, "__cuda_array_interface__", None)
    if cai is None:
        return None
    shape = tuple(int(d) for d in cai["shape"])
    dtype = np.dtype(cai["typestr"])
    strides = cai.get("strides")
    if strides is not None:
        expect = tuple(int(np.prod(shape[i + 1 :])) * dtype.itemsize for i in range(len(shape)))
        if tuple(strides) != expect:
            raise LipleakError("device inputs must be C-contiguous")
    if stream is not None:
        producer = stream_handle(stream)
    elif int(cai.get("version", 0)) >= 3:
        # v3: the key names the stream to wait for; absent or None means the data is ready
        producer = cai.get("stream")
        if producer == 0:
            raise LipleakError("device input: stream 0 is ambiguous in the array interface")
    elif getattr(arr, "stream", None) is not None and not callable(arr.stream):
        producer = stream_handle(arr.stream)  # DALI TensorGPU: a property, the int handle
    else:
        producer = _UNKNOWN
    return DeviceView(int(cai["data"][0]), shape, dtype, producer, arr)


def _pad_rows(v, rows: int) -> np.ndarray:
    if isinstance(v, DeviceView):
        raise LipleakError(
            f"a device batch of {v.shape[0]} is below the engine's minimum "
            f"batch {rows}; pad it before the call"
        )
    v = np.asarray(v)
    pad = np.zeros((rows - v.shape[0], *v.shape[1:]), dtype=v.dtype)
    return np.concatenate([v, pad])


class TensorRTRuntime:
    """A model as a TensorRT engine, built (or taken from the engine cache) on open.

    ``run(feeds)`` is ``run_async(feeds)`` followed by ``wait()``; callers that overlap
    host work with the GPU call the two halves themselves. One runtime owns one execution
    context and one stream: use one runtime per thread.
    """

    def __init__(
        self,
        onnx_path: str | Path,
        precision: str = "fp32",
        max_batch: int = 64,
        min_batch: int = 1,
        opt_batch: int | None = None,
        device: int = 0,
        cache_root: str | Path | None = None,
        workspace_gb: float | None = None,
        spatial: tuple[int, int, int] | None = None,
    ):
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise LipleakError(
                "TensorRT is not installed; install the 'gpu-cu12' or 'gpu-cu13' extra "
                "(docs/gpu.md)"
            ) from exc
        from .trt_build import build_engine, fp16_method, trt_logger, workspace_bytes

        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: ONNX model file not found")
        gpu, why = probe.probe_gpu(device)
        if gpu is None:
            raise LipleakError(f"tensorrt backend: {why}")
        self.gpu = gpu
        self.precision = precision
        self._trt = trt
        self._cuda = _Cuda()
        self._cuda.set_device(device)

        profile = engine_cache.profile_shapes(
            self.path, min_batch, opt_batch, max_batch, spatial=spatial
        )
        self._sha256 = file_sha256(self.path)
        key = engine_cache.make_key(
            self.path,
            trt.__version__,
            gpu.name,
            gpu.compute_capability,
            precision,
            profile,
            self._sha256,
            workspace_bytes=workspace_bytes(workspace_gb),
            tf32=False,
            fp16_method=fp16_method(trt, precision),
        )
        logger = trt_logger()
        self._runtime = trt.Runtime(logger)

        def build(onnx: Path, out: Path, timing: Path) -> dict:
            report = build_engine(
                onnx,
                out,
                precision,
                profile=profile,
                timing_cache_path=timing,
                workspace_gb=workspace_gb,
            )
            # what the builder config said after the build was set up, kept in the
            # sidecar so that a cache hit reports it too
            return {"tf32_set": report.tf32, "fp16_method_used": report.fp16_method}

        loaded = {}

        def validate(blob: bytes) -> bool:
            # Keep the engine that passed, so a cache hit is deserialised only once.
            loaded["engine"] = self._runtime.deserialize_cuda_engine(blob)
            return loaded["engine"] is not None

        cached = engine_cache.load_or_build(key, self.path, build, cache_root, validate)
        self.engine_path = cached.path
        self.build_seconds = cached.build_seconds
        self.cache_status = cached.reason
        self.tf32 = cached.meta.get("tf32_set")  # None: an engine whose sidecar does not say
        self.engine = (
            loaded.get("engine")
            if not cached.built
            else self._runtime.deserialize_cuda_engine(cached.data)
        )
        if self.engine is None:
            raise ModelError(
                f"{cached.path}: TensorRT cannot deserialise the engine it just "
                f"built: {' | '.join(logger.errors[-3:])}"
            )
        self.context = self.engine.create_execution_context()
        self.stream = self._cuda.stream()

        self._names_in, self._names_out = [], []
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            shape = tuple(d if d >= 0 else None for d in self.engine.get_tensor_shape(name))
            spec = TensorSpec(name, shape, dtype.name)
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._names_in.append(name)
                self.inputs.append(spec)
            else:
                self._names_out.append(name)
                self.outputs.append(spec)
        self.profile = profile
        self.min_batch = max(p[0][0] for p in profile.values())
        self.max_batch = min(p[2][0] for p in profile.values())
        self._alloc()
        self._pending: list | None = None
        self._event = None  # created on the first device input that needs a wait
        # one execution context and one set of buffers: callers from several threads (the
        # sync pipeline's workers share the detector) take turns
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ buffers

    def _alloc(self) -> None:
        """Device and pinned host buffers for the largest batch of the profile."""
        for name in self._names_in:
            self.context.set_input_shape(name, self.profile[name][2])
        self._dev: dict[str, int] = {}
        self._host: dict[str, tuple[int, np.ndarray]] = {}
        self._dtype: dict[str, np.dtype] = {}
        for name in self._names_in + self._names_out:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise ModelError(f"{self.path}: TensorRT cannot infer the shape of {name!r}")
            dtype = np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name)))
            nbytes = int(np.prod(shape)) * dtype.itemsize
            self._dtype[name] = dtype
            self._dev[name] = self._cuda.malloc(nbytes)
            self._host[name] = self._cuda.host_array(nbytes)
            self.context.set_tensor_address(name, self._dev[name])

    def close(self) -> None:
        if getattr(self, "_dev", None) is None:
            return
        try:
            self._cuda.sync(self.stream)
        except LipleakError:
            pass
        for ptr in self._dev.values():
            self._cuda.free(ptr)
        for ptr, _ in self._host.values():
            self._cuda.free_host(ptr)
        if self._event is not None:
            self._cuda.rt.cudaEventDestroy(self._event)
        self._cuda.rt.cudaStreamDestroy(self.stream)
        self._dev = None

    def __del__(self):  # buffers are per runtime; give them back with it
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have torn CUDA down
            pass

    # ---------------------------------------------------------------------- run

    def _check(self, feeds: dict) -> int:
        if set(feeds) != set(self._names_in):
            raise LipleakError(
                f"inputs {sorted(feeds)} do not match the model's {sorted(self._names_in)}"
            )
        batches = {int(v.shape[0]) for v in feeds.values()}
        if len(batches) != 1:
            raise LipleakError(f"inputs disagree on the batch size: {sorted(batches)}")
        for name, v in feeds.items():
            lo, _, hi = self.profile[name]
            got = tuple(int(d) for d in v.shape)
            if len(got) != len(lo) or not all(
                a <= d <= b for a, d, b in zip(lo[1:], got[1:], hi[1:], strict=True)
            ):
                want = ", ".join(
                    str(a) if a == b else f"{a}..{b}" for a, b in zip(lo[1:], hi[1:], strict=True)
                )
                raise LipleakError(
                    f"input {name!r} has shape {got}, expected (batch, {want}) "
                    "(the engine's optimisation profile)"
                )
        return batches.pop()

    def _device_feeds(self, feeds: dict, stream) -> dict:
        """Device arrays as DeviceViews (which know their producer's stream)."""
        out = {}
        for name, v in feeds.items():
            view = device_view(v, stream)
            out[name] = view if view is not None else v
        return out

    def _wait_for_producers(self, feeds: dict) -> None:
        """This runtime's stream waits for the streams that made the device inputs."""
        producers = {v.stream for v in feeds.values() if isinstance(v, DeviceView)}
        producers.discard(None)
        if _UNKNOWN in producers:
            self._cuda.device_sync()  # nothing says which stream wrote it: wait for all
            producers.discard(_UNKNOWN)
        for producer in sorted(producers):
            if self._event is None:
                self._event = self._cuda.event()
            self._cuda.wait_for(self.stream, int(producer), self._event)

    def run_async(self, feeds: dict, stream=None) -> None:
        """Queue one batch (≤ the profile's max batch) on the stream; ``wait()`` returns it.

        ``stream``: the CUDA stream (int handle, PyTorch or CuPy stream) that produced the
        device inputs, when their array interface does not say.
        """
        if self._pending is not None:
            raise LipleakError("run_async called twice without wait()")
        feeds = self._device_feeds(feeds, stream)
        n = self._check(feeds)
        if not self.min_batch <= n <= self.max_batch:
            raise LipleakError(
                f"batch {n} is outside the engine's profile {self.min_batch}..{self.max_batch}"
            )
        cuda = self._cuda
        self._wait_for_producers(feeds)
        for name, v in feeds.items():
            dtype = self._dtype[name]
            shape = tuple(int(d) for d in v.shape)
            if isinstance(v, DeviceView):
                if v.dtype != dtype:
                    raise LipleakError(
                        f"device input {name!r} is {v.dtype}, the engine wants {dtype}"
                    )
                nbytes = int(np.prod(shape)) * dtype.itemsize
                cuda.copy(self._dev[name], v.ptr, nbytes, cuda.D2D, self.stream)
            else:
                arr = np.ascontiguousarray(v, dtype=dtype)
                hptr, hbuf = self._host[name]
                hbuf[: arr.nbytes] = arr.reshape(-1).view(np.uint8)
                cuda.copy(self._dev[name], hptr, arr.nbytes, cuda.H2D, self.stream)
            if not self.context.set_input_shape(name, shape):
                raise LipleakError(f"TensorRT refused input shape {shape} for {name!r}")
        if not self.context.execute_async_v3(int(self.stream)):
            raise LipleakError(f"{self.path}: TensorRT execution failed to enqueue")
        outs = []
        for name in self._names_out:
            shape = tuple(self.context.get_tensor_shape(name))
            nbytes = int(np.prod(shape)) * self._dtype[name].itemsize
            hptr, _ = self._host[name]
            cuda.copy(hptr, self._dev[name], nbytes, cuda.D2H, self.stream)
            outs.append((name, shape, nbytes))
        self._pending = outs

    def wait(self) -> dict[str, np.ndarray]:
        """Block until the queued batch is done; its outputs as new numpy arrays."""
        if self._pending is None:
            raise LipleakError("wait() without run_async()")
        self._cuda.sync(self.stream)
        out = {}
        for name, shape, nbytes in self._pending:
            _, hbuf = self._host[name]
            out[name] = hbuf[:nbytes].view(self._dtype[name]).reshape(shape).copy()
        self._pending = None
        return out

    def run(self, feeds: dict, stream=None) -> dict[str, np.ndarray]:
        """One batch of any size (split / padded to the profile); ``stream`` as in
        ``run_async``."""
        with self._lock:
            return self._run(self._device_feeds(feeds, stream))

    def _run(self, feeds: dict) -> dict[str, np.ndarray]:
        n = self._check(feeds)
        # Split oversized batches (the buffers are sized for the profile's maximum) and pad
        # a short tail up to the profile's minimum (fixed-batch models); padded rows are
        # dropped from the outputs, and rows never mix, so padding changes no number.
        parts = []
        for s in range(0, n, self.max_batch):
            chunk = {k: v[s : s + self.max_batch] for k, v in feeds.items()}
            m = int(next(iter(chunk.values())).shape[0])
            if m < self.min_batch:
                chunk = {k: _pad_rows(v, self.min_batch) for k, v in chunk.items()}
            self.run_async(chunk)
            parts.append({k: v[:m] for k, v in self.wait().items()})
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in self._names_out}

    def describe(self) -> RuntimeInfo:
        return RuntimeInfo(
            "tensorrt",
            str(self.path),
            self._sha256,
            {
                "tensorrt": str(self._trt.__version__),
                "gpu": self.gpu.name,
                "compute_capability": self.gpu.compute_capability,
                "driver": self.gpu.driver,
                "precision": self.precision,
                "tf32": self.tf32,
                "engine_path": str(self.engine_path),
                "engine_cache": self.cache_status,
                "build_seconds": self.build_seconds,
                "profile": {k: [list(s) for s in v] for k, v in self.profile.items()},
            },
        )

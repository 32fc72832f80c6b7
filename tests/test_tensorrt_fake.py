"""The native TensorRT backend against fakes of ``tensorrt`` and cuda-python (issue 14).

No GPU, TensorRT or DALI here: the fakes follow the real Python APIs that the backend
calls (TensorRT 10 ``Builder``/``IBuilderConfig``/``ICudaEngine``/``IExecutionContext``,
cuda-python's ``cuda.bindings.runtime`` returning ``(err, value)`` tuples, DALI 2.x's
``TensorGPU`` whose ``shape`` and ``data_ptr`` are methods and whose ``stream`` is a
property, CUDA array interface v3's ``stream`` key). "Device" memory is host memory, so the
copies and the fake engine's arithmetic are real and the outputs can be checked.

What is checked, each a defect of the first version:
- SCRFD's input [1, 3, ?, ?] gets an optimisation profile (it was refused), and the
  runtime runs the square sizes the detector feeds;
- ``describe()["tf32"]`` is what the builder config said (it was a constant False), and a
  TF32 flag that does not clear is an error;
- device inputs wait for the producer's stream before the copy (they did not), and a
  DALI-like tensor (``shape()`` a method, no slicing) is accepted (it crashed).
"""

from __future__ import annotations

import ctypes
import json
import sys
import types

import numpy as np
import pytest

from lipleak.errors import LipleakError, ModelError
from lipleak.runtime import engine_cache, probe, trt_build
from lipleak.runtime.probe import GpuInfo

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

# ------------------------------------------------------------------ fake cuda-python


class FakeCudart:
    """cuda.bindings.runtime as the backend uses it; every call goes into ``log``."""

    class cudaError_t:  # noqa: N801 - the real name
        cudaSuccess = 0

    class cudaMemcpyKind:  # noqa: N801
        cudaMemcpyHostToDevice = "H2D"
        cudaMemcpyDeviceToHost = "D2H"
        cudaMemcpyDeviceToDevice = "D2D"

    cudaEventDisableTiming = 2

    def __init__(self):
        self.log: list[tuple] = []
        self.buffers: dict[int, ctypes.Array] = {}
        self._next_stream = 100

    def _alloc(self, n):
        buf = (ctypes.c_uint8 * n)()
        ptr = ctypes.addressof(buf)
        self.buffers[ptr] = buf
        return 0, ptr

    def cudaGetErrorName(self, err):
        return 0, b"cudaErrorFake"

    def cudaSetDevice(self, i):
        return (0,)

    def cudaMalloc(self, n):
        return self._alloc(n)

    def cudaMallocHost(self, n):
        return self._alloc(n)

    def cudaFree(self, ptr):
        return (0,)

    cudaFreeHost = cudaFree

    def cudaStreamCreate(self):
        self._next_stream += 1
        return 0, self._next_stream

    def cudaStreamDestroy(self, s):
        return (0,)

    def cudaStreamSynchronize(self, s):
        self.log.append(("sync", s))
        return (0,)

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        ctypes.memmove(dst, src, n)
        self.log.append(("copy", kind, stream))
        return (0,)

    def cudaEventCreateWithFlags(self, flags):
        self.log.append(("event_create", flags))
        return 0, 77

    def cudaEventDestroy(self, ev):
        return (0,)

    def cudaEventRecord(self, ev, stream):
        self.log.append(("record", ev, stream))
        return (0,)

    def cudaStreamWaitEvent(self, stream, ev, flags):
        self.log.append(("wait", stream, ev))
        return (0,)

    def cudaDeviceSynchronize(self):
        self.log.append(("device_sync",))
        return (0,)


# ------------------------------------------------------------------- fake tensorrt
# The fake network is SCRFD-shaped: input "img" (1, 3, H, W) -> output "y" (1, 3), the mean
# over H and W; the engine blob is the JSON of the optimisation profile it was built with.


def make_fake_trt(tf32_sticks: bool = False, has_tf32: bool = True):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.99.0"
    flags = {"FP16": "FP16"}
    if has_tf32:
        flags["TF32"] = "TF32"
    trt.BuilderFlag = types.SimpleNamespace(**flags)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    trt.built_configs = []

    class ILogger:
        class Severity:
            INTERNAL_ERROR, ERROR, WARNING, INFO = range(4)

        def __init__(self):
            pass

    trt.ILogger = ILogger
    trt.nptype = lambda dt: np.float32

    class Network:
        num_inputs = 1

        def get_input(self, i):
            return types.SimpleNamespace(name="img")

    class OnnxParser:
        def __init__(self, network, logger):
            self.num_errors = 0

        def parse_from_file(self, path):
            return True

        def parse(self, data, path):
            return True

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, mn, op, mx):
            self.shapes[name] = [list(mn), list(op), list(mx)]

    class Config:
        def __init__(self):
            # TensorRT enables TF32 by default on Ampere and later
            self.flags = {"TF32"} if has_tf32 else set()
            self.profiles = []
            self.pool = {}

        def set_flag(self, f):
            self.flags.add(f)

        def clear_flag(self, f):
            if not tf32_sticks:
                self.flags.discard(f)

        def get_flag(self, f):
            return f in self.flags

        def set_memory_pool_limit(self, pool, n):
            self.pool[pool] = n

        def add_optimization_profile(self, p):
            self.profiles.append(p)

        def create_timing_cache(self, blob):
            return types.SimpleNamespace(serialize=lambda: b"timing")

        def set_timing_cache(self, cache, ignore_mismatch):
            self.timing = cache
            return True

        def get_timing_cache(self):
            return self.timing

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            trt.built_configs.append(config)
            return json.dumps(config.profiles[0].shapes).encode()

    trt.OnnxParser, trt.Builder = OnnxParser, Builder

    class Context:
        def __init__(self, engine):
            self.engine, self.shapes, self.addr = engine, {}, {}

        def set_input_shape(self, name, shape):
            mn, _, mx = self.engine.profile[name]
            ok = all(a <= d <= b for a, d, b in zip(mn, shape, mx, strict=True))
            if ok:
                self.shapes[name] = tuple(shape)
            return ok

        def get_tensor_shape(self, name):
            return self.shapes["img"][:2] if name == "y" else self.shapes[name]

        def set_tensor_address(self, name, ptr):
            self.addr[name] = ptr

        def execute_async_v3(self, stream):
            shape = self.shapes["img"]
            n = int(np.prod(shape))
            x = np.frombuffer((ctypes.c_float * n).from_address(self.addr["img"]), np.float32)
            y = x.reshape(shape).mean(axis=(2, 3)).astype(np.float32)
            ctypes.memmove(self.addr["y"], y.ctypes.data, y.nbytes)
            self.engine.runtime.cudart.log.append(("execute", stream))
            return True

    class Engine:
        num_io_tensors = 2

        def __init__(self, profile, runtime):
            self.profile, self.runtime = profile, runtime

        def get_tensor_name(self, i):
            return ("img", "y")[i]

        def get_tensor_dtype(self, name):
            return "float"

        def get_tensor_shape(self, name):
            return (1, 3, -1, -1) if name == "img" else (1, 3)

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name == "img" else trt.TensorIOMode.OUTPUT

        def create_execution_context(self):
            return Context(self)

    class Runtime:
        cudart = None

        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, blob):
            return Engine(json.loads(bytes(blob)), self)

    trt.Runtime = Runtime
    return trt


def scrfd_like_onnx(path, hw=("?", "?")):
    """An ONNX file with SCRFD's input signature: [1, 3, '?', '?'] (or a fixed size)."""
    x = helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, *hw])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 1, 1])
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["img"], ["y"], axes=[2, 3], keepdims=1)], "g", [x], [y]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """Installs a fake tensorrt and cuda-python and a fake GPU; returns a factory of
    (runtime class args) -> TensorRTRuntime plus the fakes."""
    monkeypatch.setenv("LIPLEAK_MODEL_DIR", str(tmp_path / "models"))
    cudart = FakeCudart()
    gpu = GpuInfo(0, "NVIDIA Fake H200", "9.0", 141000, "580.0", "13.0", "cuda-python")
    monkeypatch.setattr(probe, "probe_gpu", lambda index=0: (gpu, "fake GPU"))
    monkeypatch.setattr(probe, "import_cudart", lambda: cudart)
    monkeypatch.setattr(trt_build, "_LOGGER", None)
    ns = types.SimpleNamespace(
        cudart=cudart,
        onnx=scrfd_like_onnx(tmp_path / "scrfd.onnx"),
        # fixed 64x64: the TF32 and device-input checks do not depend on the profile fix
        fixed=scrfd_like_onnx(tmp_path / "fixed.onnx", (64, 64)),
    )

    def install(**kw):
        trt = make_fake_trt(**kw)
        trt.Runtime.cudart = cudart
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setattr(trt_build, "_LOGGER", None)
        ns.trt = trt
        return trt

    install()

    def open_rt(path=None, **kw):
        from lipleak.runtime.tensorrt import TensorRTRuntime

        return TensorRTRuntime(path or ns.onnx, cache_root=tmp_path / "engines", **kw)

    ns.install, ns.open = install, open_rt
    return ns


def _frame(side, seed=0):
    return np.random.default_rng(seed).standard_normal((1, 3, side, side)).astype(np.float32)


# -------------------------------------------------------------- dynamic H x W (SCRFD)


def test_scrfd_dynamic_hw_gets_a_profile_and_runs(fakes):
    rt = fakes.open()
    assert rt.profile == {"img": ((1, 3, 32, 32), (1, 3, 640, 640), (1, 3, 640, 640))}
    # the engine was built with that profile
    assert json.loads(rt.engine_path.read_bytes()) == {
        "img": [[1, 3, 32, 32], [1, 3, 640, 640], [1, 3, 640, 640]]
    }
    for side in (32, 256, 640):  # what SCRFD feeds: multiples of 32 up to input_size
        x = _frame(side, side)
        np.testing.assert_allclose(rt.run({"img": x})["y"], x.mean(axis=(2, 3)), rtol=1e-6)
    with pytest.raises(LipleakError, match=r"expected \(batch, 3, 32\.\.640, 32\.\.640\)"):
        rt.run({"img": _frame(672)})


def test_spatial_range_is_an_option_and_in_the_key(fakes):
    a = fakes.open()
    b = fakes.open(spatial=(32, 640, 1280))
    assert b.profile["img"][2] == (1, 3, 1280, 1280) and a.engine_path != b.engine_path
    x = _frame(1024)
    np.testing.assert_allclose(b.run({"img": x})["y"], x.mean(axis=(2, 3)), rtol=1e-6)


def test_detector_on_explicit_tensorrt_opens(fakes, monkeypatch):
    """``--backend tensorrt --mode detect`` opened SCRFD through open_model and failed."""
    from lipleak.runtime import select

    monkeypatch.setattr(
        select,
        "available_backends",
        lambda: {
            "tensorrt": (True, "fake"),
            "ort-cuda": (False, "no"),
            "ort-tensorrt": (False, "no"),
            "cpu": (True, "cpu"),
        },
    )
    rt = select.open_model(fakes.onnx, "tensorrt")
    assert rt.describe().backend == "tensorrt"


# ----------------------------------------------------------------------------- TF32


def test_tf32_is_read_back_from_the_builder_config(fakes):
    rt = fakes.open(fakes.fixed)
    assert fakes.trt.built_configs[-1].get_flag("TF32") is False
    assert rt.describe().details["tf32"] is False
    # a cache hit reports what the build recorded in the sidecar
    again = fakes.open(fakes.fixed)
    assert again.cache_status == "cache hit" and again.describe().details["tf32"] is False
    side = json.loads(again.engine_path.with_suffix(".json").read_text())
    assert side["tf32_set"] is False and side["tf32"] is False


def test_tf32_flag_that_stays_set_is_an_error(fakes):
    fakes.install(tf32_sticks=True)
    with pytest.raises(ModelError, match="kept the TF32 builder flag set"):
        fakes.open(fakes.fixed)


def test_tensorrt_without_a_tf32_flag_reports_none(fakes):
    fakes.install(has_tf32=False)
    assert fakes.open(fakes.fixed).describe().details["tf32"] is None


def test_workspace_is_set_and_keyed(fakes):
    a = fakes.open(fakes.fixed)
    b = fakes.open(fakes.fixed, workspace_gb=2)
    assert fakes.trt.built_configs[-1].pool == {"WORKSPACE": 2 << 30}
    assert a.engine_path != b.engine_path
    side = json.loads(b.engine_path.with_suffix(".json").read_text())
    assert side["workspace_bytes"] == 2 << 30 and side["key_version"] == 2


# ------------------------------------------------------------------- device inputs


class FakeTensorGPU:
    """What DALI 2.x's TensorGPU offers: ``shape()`` and ``data_ptr()`` are methods,
    ``stream`` a property (the producing stream's handle), ``__cuda_array_interface__``
    version 2 (no stream key), no slicing."""

    def __init__(self, arr: np.ndarray, stream: int | None = 555):
        self._arr = np.ascontiguousarray(arr)
        self._stream = stream

    def shape(self):
        return list(self._arr.shape)

    def data_ptr(self):
        return self._arr.ctypes.data

    @property
    def stream(self):
        return self._stream

    @property
    def __cuda_array_interface__(self):
        return {
            "typestr": self._arr.dtype.str,
            "shape": tuple(self._arr.shape),
            "data": (self._arr.ctypes.data, False),
            "version": 2,
            "strides": None,
        }


class FakeCupy:
    """A CuPy/PyTorch-like device array: interface v3 with the producer's stream."""

    def __init__(self, arr, stream):
        self._arr, self._stream = np.ascontiguousarray(arr), stream
        self.shape = self._arr.shape

    @property
    def __cuda_array_interface__(self):
        return {
            "typestr": self._arr.dtype.str,
            "shape": self._arr.shape,
            "data": (self._arr.ctypes.data, False),
            "version": 3,
            "strides": None,
            "stream": self._stream,
        }


def _before_copy(log):
    """The CUDA calls before the first device-to-device copy."""
    i = next(i for i, e in enumerate(log) if e[:2] == ("copy", "D2D"))
    return log[:i]


def test_dali_tensor_is_accepted_and_waited_for(fakes):
    rt = fakes.open(fakes.fixed)
    x = _frame(64, 1)
    fakes.cudart.log.clear()
    got = rt.run({"img": FakeTensorGPU(x, stream=555)})["y"]
    np.testing.assert_allclose(got, x.mean(axis=(2, 3)), rtol=1e-6)
    before = _before_copy(fakes.cudart.log)
    # the engine's stream waits on an event recorded on DALI's stream, before the copy
    assert ("record", 77, 555) in before and ("wait", rt.stream, 77) in before
    assert ("device_sync",) not in fakes.cudart.log


def test_cuda_array_interface_v3_stream_is_waited_for(fakes):
    rt = fakes.open(fakes.fixed)
    x = _frame(64, 2)
    fakes.cudart.log.clear()
    rt.run({"img": FakeCupy(x, stream=444)})
    assert ("record", 77, 444) in _before_copy(fakes.cudart.log)
    # stream None in v3: the producer says the data is ready; nothing to wait for
    fakes.cudart.log.clear()
    rt.run({"img": FakeCupy(x, stream=None)})
    assert not any(e[0] in ("record", "wait", "device_sync") for e in fakes.cudart.log)


def test_explicit_stream_wins_and_unknown_producer_synchronises(fakes):
    rt = fakes.open(fakes.fixed)
    x = _frame(64, 3)
    fakes.cudart.log.clear()
    torch_like = types.SimpleNamespace(cuda_stream=999)
    rt.run({"img": FakeTensorGPU(x, stream=555)}, stream=torch_like)
    before = _before_copy(fakes.cudart.log)
    assert ("record", 77, 999) in before and not any(e[:3] == ("record", 77, 555) for e in before)
    # interface v2 and no stream attribute: nothing says which stream wrote it
    fakes.cudart.log.clear()
    rt.run({"img": FakeTensorGPU(x, stream=None)})
    assert ("device_sync",) in _before_copy(fakes.cudart.log)


def test_device_batch_larger_than_the_profile_is_split(fakes):
    """The engine's batch is fixed at 1; two device rows run as two views of the one
    tensor, each waiting for its producer."""
    rt = fakes.open(fakes.fixed)
    x = np.concatenate([_frame(64, 4), _frame(64, 5)])
    fakes.cudart.log.clear()
    got = rt.run({"img": FakeTensorGPU(x)})["y"]
    np.testing.assert_allclose(got, x.mean(axis=(2, 3)), rtol=1e-6)
    assert sum(e[0] == "wait" for e in fakes.cudart.log) == 2


def test_device_input_of_the_wrong_dtype(fakes):
    rt = fakes.open(fakes.fixed)
    with pytest.raises(LipleakError, match="float64, the engine wants float32"):
        rt.run({"img": FakeTensorGPU(_frame(64).astype(np.float64))})


def test_profile_shapes_of_the_shared_scrfd(shared_models):
    path = shared_models / "scrfd_500m.onnx"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    (name,) = engine_cache.profile_shapes(path)
    assert engine_cache.profile_shapes(path)[name] == (
        (1, 3, 32, 32),
        (1, 3, 640, 640),
        (1, 3, 640, 640),
    )

"""Backend selection: probes replaced by fakes, so every GPU situation can be checked on
a CPU-only machine; the CPU backend is opened for real on a tiny ONNX model."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from lipleak.errors import LipleakError, ModelError
from lipleak.runtime import open_model as pkg_open_model
from lipleak.runtime import probe, select

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RNG = np.random.default_rng(7)
W = RNG.standard_normal((3, 2)).astype(np.float32)
B = RNG.standard_normal(2).astype(np.float32)


def tiny_onnx(path, batch="batch"):
    """y = x @ W + b with x: (batch, 3); ``batch`` an int makes the batch axis fixed."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 2])
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "tiny",
        [x],
        [y],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(autouse=True)
def private_model_dir(tmp_path, monkeypatch):
    """Hashing a model remembers the digest in the model dir: keep it out of the user's."""
    monkeypatch.setenv("LIPLEAK_MODEL_DIR", str(tmp_path / "models"))


@pytest.fixture(autouse=True)
def fresh_probes():
    """Tests here fake different hardware: no probe answer may leak between them."""
    probe.clear_cache()
    yield
    probe.clear_cache()


GPU = probe.GpuInfo(0, "NVIDIA H100 80GB HBM3", "9.0", 81559, "550.54", "12.4", "fake")


TORCH_CUDA = probe.TorchInfo("2.13.0", "1.5.15", "NVIDIA H100 80GB HBM3")
TORCH_CPU = probe.TorchInfo("2.13.0+cpu", "1.5.15", None, "torch 2.13.0+cpu is a CPU build")


def fake_env(
    monkeypatch,
    gpu=True,
    trt=True,
    cuda_py=True,
    providers=("CPUExecutionProvider",),
    torch=None,
):
    """``torch``: a TorchInfo, or None for no torch backend."""
    monkeypatch.setattr(
        probe,
        "probe_torch",
        lambda: (torch, "") if torch is not None else (None, "torch not installed (fake)"),
    )
    monkeypatch.setattr(
        probe, "probe_gpu", lambda index=0: (GPU, "") if gpu else (None, "no CUDA GPU: fake probe")
    )
    monkeypatch.setattr(
        probe,
        "probe_tensorrt",
        lambda: ("10.9.0", "") if trt else (None, "tensorrt not importable (fake)"),
    )
    monkeypatch.setattr(
        probe,
        "probe_cuda_python",
        lambda: ("12.8", "") if cuda_py else (None, "cuda-python not installed (fake)"),
    )
    monkeypatch.setattr(
        probe,
        "probe_ort",
        lambda: (
            (list(providers), "", "1.99")
            if providers is not None
            else (None, "onnxruntime not importable", None)
        ),
    )
    monkeypatch.setattr(probe, "probe_ort_conflict", lambda: "", raising=False)


@pytest.mark.parametrize(
    "gpu,trt,cuda_py,providers,expect",
    [
        (True, True, True, ("CUDAExecutionProvider", "CPUExecutionProvider"), "tensorrt"),
        (True, False, True, ("CUDAExecutionProvider", "CPUExecutionProvider"), "ort-cuda"),
        (True, True, False, ("CUDAExecutionProvider", "CPUExecutionProvider"), "ort-cuda"),
        (True, False, True, ("CPUExecutionProvider",), "cpu"),
        # TensorRT and the CUDA provider installed but no GPU: everything GPU is out.
        (False, True, True, ("CUDAExecutionProvider", "CPUExecutionProvider"), "cpu"),
    ],
)
def test_auto_order(monkeypatch, gpu, trt, cuda_py, providers, expect):
    fake_env(monkeypatch, gpu, trt, cuda_py, providers)
    name, why = select.resolve_backend("auto")
    assert name == expect
    if expect != "tensorrt":
        assert "tensorrt:" in why  # says why the better backend was skipped


def test_available_backends_reasons(monkeypatch):
    fake_env(monkeypatch, gpu=False, trt=False, providers=("CPUExecutionProvider",))
    av = select.available_backends()
    assert set(av) == {"tensorrt", "ort-cuda", "ort-tensorrt", "torch", "cpu"}
    ok, why = av["tensorrt"]
    assert not ok and "no CUDA GPU" in why and "tensorrt not importable" in why
    ok, why = av["ort-cuda"]
    assert not ok and "CUDAExecutionProvider" in why and "onnxruntime-gpu" in why
    assert av["cpu"] == (True, "onnxruntime 1.99 CPUExecutionProvider")

    fake_env(monkeypatch, gpu=True, trt=True)
    ok, why = select.available_backends()["tensorrt"]
    assert ok and "10.9.0" in why and "H100" in why and "9.0" in why


def test_provider_present_but_no_gpu(monkeypatch):
    fake_env(monkeypatch, gpu=False, providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    ok, why = select.available_backends()["ort-cuda"]
    assert not ok and "no CUDA GPU" in why


@pytest.mark.parametrize("backend", ["tensorrt", "ort-cuda", "ort-tensorrt"])
def test_explicit_unavailable_backend_errors(monkeypatch, tmp_path, backend):
    fake_env(monkeypatch, gpu=False)
    model = tiny_onnx(tmp_path / "m.onnx")
    with pytest.raises(LipleakError, match=f"backend '{backend}' is not available here: .+"):
        select.open_model(model, backend)


def test_unknown_backend_and_precision(monkeypatch, tmp_path):
    fake_env(monkeypatch)
    model = tiny_onnx(tmp_path / "m.onnx")
    with pytest.raises(LipleakError, match="unknown backend 'cuda'"):
        select.open_model(model, "cuda")
    with pytest.raises(LipleakError, match="unknown precision 'int8'"):
        select.open_model(model, "cpu", precision="int8")
    with pytest.raises(LipleakError, match="max_batch"):
        select.open_model(model, "cpu", max_batch=0)


def test_fp16_needs_tensorrt(monkeypatch, tmp_path):
    fake_env(monkeypatch, gpu=False)
    model = tiny_onnx(tmp_path / "m.onnx")
    with pytest.raises(LipleakError, match="fp16.*needs the tensorrt or torch backend"):
        select.open_model(model, "cpu", precision="fp16")
    with pytest.raises(LipleakError, match="fp16.*needs the tensorrt or torch backend"):
        select.open_model(model, "auto", precision="fp16")


def test_no_backend_at_all(monkeypatch):
    fake_env(monkeypatch, gpu=False, providers=None)
    with pytest.raises(LipleakError, match="no backend can run models here"):
        select.resolve_backend("auto")


def test_missing_model_is_model_error(monkeypatch, tmp_path):
    fake_env(monkeypatch)
    with pytest.raises(ModelError, match="not found"):
        select.open_model(tmp_path / "missing.onnx", "auto")


def test_cpu_backend_runs_a_real_model(tmp_path):
    """No fakes: the real probes on this machine, the real onnxruntime session."""
    model = tiny_onnx(tmp_path / "m.onnx")
    rt = pkg_open_model(model, "cpu")
    x = RNG.standard_normal((5, 3)).astype(np.float32)
    y = rt.run({"x": x})["y"]
    np.testing.assert_allclose(y, x @ W + B, rtol=1e-6, atol=1e-6)
    info = rt.describe()
    assert info.backend == "cpu" and info.details["providers"] == ["CPUExecutionProvider"]
    assert [s.name for s in rt.inputs] == ["x"] and rt.inputs[0].shape[1] == 3


def test_auto_falls_back_when_tensorrt_fails_to_open(monkeypatch, tmp_path, caplog):
    """auto: an engine that cannot be built is logged and the next backend is used;
    TensorRT-only options are dropped for the onnxruntime fallback."""
    fake_env(monkeypatch, gpu=True, trt=True, providers=("CPUExecutionProvider",))
    opened = []
    real_open_one = select._open_one

    def open_one(name, path, precision, max_batch, opts, concurrent):
        opened.append((name, dict(opts)))
        if name == "tensorrt":
            raise ModelError("TensorRT's ONNX parser failed: fake")
        return real_open_one(name, path, precision, max_batch, opts, concurrent)

    monkeypatch.setattr(select, "_open_one", open_one)
    model = tiny_onnx(tmp_path / "m.onnx")
    with caplog.at_level(logging.WARNING, logger="lipleak.runtime.select"):
        rt = select.open_model(model, "auto", opt_batch=16, threads=1)
    assert [n for n, _ in opened] == ["tensorrt", "cpu"]
    assert opened[0][1] == {"opt_batch": 16} and opened[1][1] == {"threads": 1}
    assert rt.describe().backend == "cpu"
    assert "backend tensorrt failed" in caplog.text and "trying cpu" in caplog.text


def test_explicit_backend_does_not_fall_back(monkeypatch, tmp_path):
    fake_env(monkeypatch, gpu=True, trt=True)

    def open_one(name, *a):
        raise ModelError(f"{name} broke")

    monkeypatch.setattr(select, "_open_one", open_one)
    with pytest.raises(ModelError, match="tensorrt broke"):
        select.open_model(tiny_onnx(tmp_path / "m.onnx"), "tensorrt")


def test_options_for_the_wrong_backend(tmp_path):
    model = tiny_onnx(tmp_path / "m.onnx")
    with pytest.raises(LipleakError, match=r"\['opt_batch'\] do not apply to backend 'cpu'"):
        select.open_model(model, "cpu", opt_batch=8)


def test_parse_nvidia_smi():
    text = (
        "0, NVIDIA H100 80GB HBM3, 9.0, 81559, 550.54.15\n1, NVIDIA A10G, 8.6, 23028, 550.54.15\n"
    )
    gpus = probe.parse_nvidia_smi(text)
    assert [(g.index, g.name, g.compute_capability, g.memory_mb, g.driver) for g in gpus] == [
        (0, "NVIDIA H100 80GB HBM3", "9.0", 81559, "550.54.15"),
        (1, "NVIDIA A10G", "8.6", 23028, "550.54.15"),
    ]
    assert probe.parse_nvidia_smi("") == []


def test_probe_gpus_respects_hidden_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    gpus, why = probe.probe_gpus()
    assert gpus == [] and "CUDA_VISIBLE_DEVICES" in why


def test_probe_gpus_without_any_probe(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def no_cudart():
        raise ImportError("no cuda")

    def no_smi():
        raise FileNotFoundError("nvidia-smi not found on PATH")

    monkeypatch.setattr(probe, "_gpus_from_cudart", no_cudart)
    monkeypatch.setattr(probe, "_gpus_from_nvidia_smi", no_smi)
    gpus, why = probe.probe_gpus()
    assert gpus == [] and "cuda-python not installed" in why and "nvidia-smi not found" in why
    # nvidia-smi seeing a GPU does not make it usable without a CUDA runtime that answers
    # (issue 14: it used to, and TensorRT/DALI were then reported usable).
    monkeypatch.setattr(
        probe,
        "_gpus_from_nvidia_smi",
        lambda: probe.parse_nvidia_smi("0, NVIDIA L4, 8.9, 23034, 560.1\n"),
    )
    probe.clear_cache()
    gpus, why = probe.probe_gpus()
    assert gpus == [] and "cuda-python not installed" in why
    assert "NVIDIA L4" in why and "560.1" in why
    assert probe.probe_gpu(0) == (None, why)


# ------------------------------------------------------------ real probes, fake CUDA


class FakeCudart:
    """What ``cuda.bindings.runtime`` answers: (error, value) tuples and an error enum."""

    class cudaError_t:  # noqa: N801 - cuda-python's names
        cudaSuccess = 0
        cudaErrorInsufficientDriver = 35
        cudaErrorNoDevice = 100

    def __init__(self, count_error=0, count=1):
        self.count_error, self.count = count_error, count

    def cudaGetDeviceCount(self):  # noqa: N802
        return self.count_error, self.count

    def cudaDriverGetVersion(self):  # noqa: N802
        return 0, 13000

    def cudaRuntimeGetVersion(self):  # noqa: N802
        return 0, 13000

    def cudaGetDeviceProperties(self, i):  # noqa: N802
        prop = type("Prop", (), {})()
        prop.name, prop.major, prop.minor = b"NVIDIA H200", 9, 0
        prop.totalGlobalMem = 143771 << 20
        return 0, prop


def fake_cuda_python(monkeypatch, cudart):
    import sys
    import types

    cuda = types.ModuleType("cuda")
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    cuda.bindings = bindings
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart)


def fake_nvidia_smi(monkeypatch, tmp_path, line="0, NVIDIA H200, 9.0, 143771, 550.54.15"):
    """A fake nvidia-smi first on PATH (as in test_probe_once)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f'#!/bin/sh\necho "{line}"\n')
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ.get('PATH', '')}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_nvidia_smi_alone_makes_no_gpu_usable(monkeypatch, tmp_path):
    """The CUDA runtime fails (a driver too old for cuda-python 13) while nvidia-smi lists
    the GPU: no GPU, so neither TensorRT, the CUDA provider nor DALI is usable; the reason
    carries what nvidia-smi saw. Issue 14: the nvidia-smi fallback reported them usable."""
    from lipleak.io import dali

    fake_nvidia_smi(monkeypatch, tmp_path)
    fake_cuda_python(monkeypatch, FakeCudart(count_error=35))
    monkeypatch.setattr(probe, "probe_tensorrt", lambda: ("10.16.1", ""))
    monkeypatch.setattr(
        probe, "probe_ort", lambda: (["CUDAExecutionProvider", "CPUExecutionProvider"], "", "1.31")
    )
    gpu, why = probe.probe_gpu()
    assert gpu is None
    assert "CUDA runtime fails" in why and "cudaGetDeviceCount" in why
    assert "NVIDIA H200" in why and "550.54.15" in why
    av = select.available_backends()
    assert not av["tensorrt"][0] and not av["ort-cuda"][0] and not av["ort-tensorrt"][0]
    assert select.resolve_backend("auto", av)[0] == "cpu"
    ok, dali_why = dali.dali_available(*probe.probe_gpu())
    assert not ok


def test_working_cuda_runtime_makes_the_gpu_usable(monkeypatch, tmp_path):
    fake_nvidia_smi(monkeypatch, tmp_path)
    fake_cuda_python(monkeypatch, FakeCudart())
    gpu, why = probe.probe_gpu()
    assert why == "" and gpu.name == "NVIDIA H200" and gpu.compute_capability == "9.0"
    assert gpu.source == "cuda-python" and gpu.driver == "550.54.15"
    assert gpu.cuda_runtime == "13.0"


def test_cuda_runtime_without_devices(monkeypatch, tmp_path):
    fake_nvidia_smi(monkeypatch, tmp_path)
    fake_cuda_python(monkeypatch, FakeCudart(count=0))
    gpu, why = probe.probe_gpu()
    assert gpu is None and "sees no device" in why


def test_two_onnxruntime_builds_are_reported(monkeypatch, caplog):
    """onnxruntime and onnxruntime-gpu installed together overwrite each other: a warning,
    and the reason of every onnxruntime backend says so."""
    from importlib import metadata

    real = metadata.version
    versions = {"onnxruntime": "1.31.1", "onnxruntime-gpu": "1.31.1"}

    def version(name):
        if name in versions:
            return versions[name]
        if name in probe.ORT_DISTRIBUTIONS:
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", version)
    with caplog.at_level(logging.WARNING, logger="lipleak.runtime.probe"):
        msg = probe.probe_ort_conflict()
    assert "onnxruntime 1.31.1 and onnxruntime-gpu 1.31.1" in msg
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in msg
    assert "installed together" in caplog.text
    monkeypatch.setattr(probe, "probe_gpu", lambda index=0: (None, "no CUDA GPU: fake"))
    monkeypatch.setattr(probe, "probe_ort", lambda: (["CPUExecutionProvider"], "", "1.31.1"))
    ok, why = select.available_backends()["ort-cuda"]
    assert not ok and "installed together" in why

    versions.pop("onnxruntime-gpu")
    probe.clear_cache()
    assert probe.probe_ort_conflict() == ""


# ------------------------------------------------- onnxruntime sessions, faked providers


class FakeSession:
    """Stands in for onnxruntime.InferenceSession: records what it was given and comes up
    on ``FakeSession.gets`` (what onnxruntime does when a provider fails to load)."""

    gets: list = ["CPUExecutionProvider"]
    made: list = []

    def __init__(self, path, opts=None, providers=None, **kw):
        self.path, self.opts, self.asked = path, opts, providers
        FakeSession.made.append(self)

    def get_providers(self):
        return list(FakeSession.gets)

    def get_inputs(self):
        return [type("I", (), {"name": "x", "shape": ["batch", 3], "type": "tensor(float)"})()]

    def get_outputs(self):
        return [type("O", (), {"name": "y", "shape": ["batch", 2], "type": "tensor(float)"})()]


@pytest.fixture
def fake_ort(monkeypatch):
    import onnxruntime as ort

    from lipleak.runtime import onnxrt

    FakeSession.made = []
    preloads = []
    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    monkeypatch.setattr(
        ort,
        "get_available_providers",
        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    monkeypatch.setattr(ort, "preload_dlls", lambda *a, **k: preloads.append((a, k)), raising=False)
    monkeypatch.setattr(onnxrt, "_PRELOADED", [], raising=False)
    fake_env(
        monkeypatch,
        gpu=True,
        trt=False,
        providers=("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
    )
    return preloads


def _asked(session):
    return {name: dict(opts) for name, opts in session.asked}


@pytest.mark.parametrize("backend", ["ort-cuda", "ort-tensorrt"])
def test_explicit_gpu_session_on_the_cpu_is_an_error(fake_ort, tmp_path, backend):
    """onnxruntime quietly runs on the CPU when the CUDA provider fails to load; an explicit
    GPU backend must then fail. Issue 14: the providers were never checked."""
    FakeSession.gets = ["CPUExecutionProvider"]
    with pytest.raises(ModelError, match="asked for .*ExecutionProvider but the session runs on"):
        select.open_model(tiny_onnx(tmp_path / "m.onnx"), backend)


def test_auto_logs_the_provider_fallback(fake_ort, tmp_path, caplog):
    """With auto the same session is not an error but never silent: a warning names the
    failed provider and the CPU backend is opened instead."""
    FakeSession.gets = ["CPUExecutionProvider"]
    with caplog.at_level(logging.WARNING, logger="lipleak.runtime.select"):
        rt = select.open_model(tiny_onnx(tmp_path / "m.onnx"), "auto")
    assert rt.describe().backend == "cpu"
    assert "backend ort-cuda failed" in caplog.text and "CUDAExecutionProvider" in caplog.text
    assert "trying cpu" in caplog.text


def test_cuda_provider_runs_without_tf32(fake_ort, tmp_path):
    """fp32 means fp32: the CUDA provider's TF32 default is switched off; CUDA libraries
    are preloaded once before the first GPU session. Issue 14: neither was done."""
    FakeSession.gets = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    model = tiny_onnx(tmp_path / "m.onnx")
    rt = select.open_model(model, "ort-cuda")
    select.open_model(model, "ort-cuda")
    asked = _asked(FakeSession.made[0])
    assert list(asked) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert asked["CUDAExecutionProvider"]["use_tf32"] == "0"
    assert asked["CUDAExecutionProvider"]["device_id"] == "0"
    assert FakeSession.made[0].opts.use_deterministic_compute is True
    assert len(fake_ort) == 1  # preload_dlls, once per process
    info = rt.describe()
    assert info.backend == "ort-cuda" and info.details["tf32"] is False


def test_cpu_session_does_not_preload_cuda(fake_ort, tmp_path):
    FakeSession.gets = ["CPUExecutionProvider"]
    select.open_model(tiny_onnx(tmp_path / "m.onnx"), "cpu")
    assert fake_ort == [] and _asked(FakeSession.made[0]) == {"CPUExecutionProvider": {}}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_provider_caches_engines(fake_ort, tmp_path, monkeypatch, precision):
    """The TensorRT provider keeps engines and its timing cache under the model dir's
    engines/ (one dir per onnxruntime/TensorRT/GPU/precision); fp16 only when asked.
    Issue 14: no cache options, so every session rebuilt every engine."""
    FakeSession.gets = ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    rt = select.open_model(tiny_onnx(tmp_path / "m.onnx"), "ort-tensorrt", precision=precision)
    asked = _asked(FakeSession.made[0])
    assert list(asked) == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    trt = asked["TensorrtExecutionProvider"]
    engines = tmp_path / "models" / "engines" / "ort-tensorrt"
    cache = Path(trt["trt_engine_cache_path"])
    assert trt["trt_engine_cache_enable"] == "True" and cache.parent == engines
    assert cache.is_dir() and "H100" in cache.name and precision in cache.name
    assert trt["trt_timing_cache_enable"] == "True" and trt["trt_timing_cache_path"] == str(cache)
    assert trt["trt_fp16_enable"] == ("True" if precision == "fp16" else "False")
    assert asked["CUDAExecutionProvider"]["use_tf32"] == "0"
    assert rt.describe().details["engine_cache"] == str(cache)

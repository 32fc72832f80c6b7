"""Lip crops travel, windows are made by the model's side (issue 14, "normalise on the GPU").

``SyncNet.embed_lip_frames`` takes runs of consecutive uint8 crops: on the CPU backend it
builds the float windows into a reused host buffer, on the torch backend it hands the uint8
frames to ``TorchRuntime.run_prepared``, which builds them on its device (1/20 of the
bytes to copy to a GPU). Both must give exactly the embeddings of the host-made windows
that ``embed_lips`` takes; on the CPU here the torch side runs on the CPU device, with the
same code it runs on CUDA.
"""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest

from conftest import CLIPS_DIR
from lipleak.metrics import sync as syncm
from lipleak.models.syncnet import lip_windows
from media import read_frames

# 36 frames: a full batch of 32 windows (where a layout other than NCDHW changes the CPU
# convolution's bits), 5 frames: one window
RUNS = ((CLIPS_DIR / "real03_aoc.mp4", 10, 36), (CLIPS_DIR / "real07_reagan.mp4", 3, 5))


def crops(path, start, n):
    return np.stack([cv2.resize(f, (224, 224)) for f in read_frames(path, range(start, start + n))])


@pytest.fixture(scope="module")
def runs():
    return [crops(*r) for r in RUNS]


def host_windows(runs):
    out = []
    for r in runs:
        w = np.empty((len(r) - 4, 3, 5, 224, 224), np.float32)
        for k in range(len(w)):
            syncm.lip_window(list(r[k : k + 5]), w[k])  # the per-window reference
        out.append(w)
    return np.concatenate(out)


def test_lip_windows_equal_the_per_window_reference(runs):
    for r in runs:
        np.testing.assert_array_equal(lip_windows(r), host_windows([r]))
        out = np.full((len(r) - 4, 3, 5, 224, 224), -1, np.float32)
        assert lip_windows(r, out) is out
        np.testing.assert_array_equal(out, host_windows([r]))
    assert lip_windows(runs[0][:4]).shape == (0, 3, 5, 224, 224)


def test_cpu_backend_from_frames_equals_host_windows(model_dir, runs):
    from lipleak.models.syncnet import SyncNet

    net = SyncNet.load("syncnet_v2_random", backend="cpu")
    want = net.embed_lips(host_windows(runs))
    got = net.embed_lip_frames(runs)
    np.testing.assert_array_equal(got, want)
    # the reused buffer: a smaller call after a larger one, then a larger one again
    np.testing.assert_array_equal(net.embed_lip_frames(runs[1:]), want[len(runs[0]) - 4 :])
    np.testing.assert_array_equal(net.embed_lip_frames(runs), want)
    assert net.embed_lip_frames([]).shape == (0, 1024)


def test_runs_are_checked(model_dir, runs):
    from lipleak.models.syncnet import SyncNet

    net = SyncNet.load("syncnet_v2_random", backend="cpu")
    for bad, what in (
        (runs[0].astype(np.float32), "uint8"),
        (runs[0][:, :100], "uint8"),
        (runs[0][:4], "needs 5 frames"),
    ):
        with pytest.raises(ValueError, match=what):
            net.embed_lip_frames([bad])


class RecordingRuntime:
    """A backend that makes windows itself: records what crossed to it."""

    def __init__(self, inner):
        self.inner = inner
        self.got = []

    def run_prepared(self, host, prepare):
        import torch

        self.got.extend(host)
        feeds = prepare([torch.from_numpy(a) for a in host], torch.float32)
        return self.inner.run({k: v.numpy() for k, v in feeds.items()})


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
def test_a_backend_that_makes_windows_gets_the_uint8_crops(model_dir, runs):
    from lipleak.models.syncnet import SyncNet

    net = SyncNet.load("syncnet_v2_random", backend="cpu")
    rec = RecordingRuntime(net.lips)
    got = net.embed_lip_frames(runs, rec)
    assert [(a.dtype, a.shape) for a in rec.got] == [(np.uint8, r.shape) for r in runs]
    np.testing.assert_array_equal(got, net.embed_lips(host_windows(runs)))


torch_backend = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnx2torch") is None,
    reason="the torch backend needs torch and onnx2torch (README install)",
)


@torch_backend
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_torch_backend_from_frames_equals_its_host_windows(model_dir, runs, precision):
    """The windows made from uint8 on the device are the host windows converted to the
    runtime's precision, so the embeddings are the same bits; batches larger than
    ``max_batch`` run in chunks as ``run`` does."""
    from lipleak.models.syncnet import SyncNet
    from lipleak.runtime.torch_backend import TorchRuntime

    cpu = SyncNet.load("syncnet_v2_random", backend="cpu")
    path = cpu.lips.describe().model_path
    batches = (64, 3)
    if precision == "fp16":  # torch's CPU fp16 convolutions are emulated: 0.7 s a window
        runs, batches = [runs[0][:8], runs[1]], (3,)  # still chunked: 4 + 1 windows
    x = host_windows(runs)
    import torch

    from lipleak.models.syncnet import device_lip_windows

    for group in ([runs[0]], [runs[1]], runs):  # one run (the scorer's call) and several
        w = device_lip_windows([torch.from_numpy(r) for r in group], torch.float32)
        assert w.is_contiguous()  # NCDHW, as the host windows: the same convolution kernels
    for max_batch in batches:
        rt = TorchRuntime(path, precision=precision, device="cpu", max_batch=max_batch)
        net = SyncNet(cpu.checkpoint, cpu.sha256, cpu.name, rt, cpu.audio)
        got = net.embed_lip_frames(runs)
        np.testing.assert_array_equal(got, rt.run({"lips": x})["embedding"])
        first = len(runs[0]) - 4
        np.testing.assert_array_equal(net.embed_lip_frames(runs[:1]), got[:first])
        if precision == "fp32":
            ref = cpu.embed_lips(x)
            assert np.abs(got - ref).max() / np.abs(ref).max() <= 1e-4


@torch_backend
def test_run_prepared_needs_a_dynamic_batch(tmp_path):
    from test_backend_select import tiny_onnx

    from lipleak.errors import ModelError
    from lipleak.runtime.torch_backend import TorchRuntime

    fixed = TorchRuntime(tiny_onnx(tmp_path / "fixed.onnx", batch=1), device="cpu")
    with pytest.raises(ModelError, match="dynamic batch"):
        fixed.run_prepared([np.zeros((1, 3), np.float32)], lambda t, d: {"x": t[0]})
    dyn = TorchRuntime(tiny_onnx(tmp_path / "dyn.onnx"), device="cpu", max_batch=2)
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    got = dyn.run_prepared([x.astype(np.uint8)], lambda t, d: {"x": t[0].to(d)})
    np.testing.assert_array_equal(got["y"], dyn.run({"x": x})["y"])
    with pytest.raises(ModelError, match="gave no"):
        dyn.run_prepared([x], lambda t, d: {})


class DescribedRuntime:
    """A runtime that only says what it is (for ``lip_replicas``)."""

    def __init__(self, backend, device):
        from lipleak.runtime.base import RuntimeInfo

        self.info = RuntimeInfo(backend, "lips.onnx", "0" * 64, {"device": device})

    def describe(self):
        return self.info


@pytest.mark.parametrize(
    "backend,device,n,shared",
    [("torch", "cuda:0", 2, 2), ("torch", "cuda", 3, 3), ("torch", "cuda:0", 1, 1),
     ("torch", "cpu", 2, 1), ("tensorrt", "cuda:0", 2, 1), ("ort-cuda", "cuda:0", 2, 1)],
)  # fmt: skip
def test_torch_on_cuda_is_served_by_several_threads(backend, device, n, shared):
    """One torch runtime on CUDA, ``n`` serving threads (its lock covers only queuing);
    TensorRT and onnxruntime on a GPU keep one thread (their runs hold the device)."""
    from lipleak.models.syncnet import SyncNet

    rt = DescribedRuntime(backend, device)
    net = SyncNet("ckpt", "0" * 64, None, rt, rt)
    replicas = net.lip_replicas(n)
    assert len(replicas) == shared and all(r is rt for r in replicas)


@torch_backend
def test_threads_sharing_one_torch_runtime_get_their_own_embeddings(model_dir, runs):
    """Several threads through one ``run_prepared`` at once (what the shared lip tower's
    serving threads do on CUDA): each gets exactly what it gets alone."""
    import concurrent.futures as cf

    from lipleak.models.syncnet import SyncNet
    from lipleak.runtime.torch_backend import TorchRuntime

    cpu = SyncNet.load("syncnet_v2_random", backend="cpu")
    rt = TorchRuntime(cpu.lips.describe().model_path, device="cpu", max_batch=4)
    net = SyncNet(cpu.checkpoint, cpu.sha256, cpu.name, rt, cpu.audio)
    jobs = [runs[0], runs[1], runs[0][2:], runs[1][:5]] * 2
    alone = [net.embed_lip_frames([r]) for r in jobs]
    with cf.ThreadPoolExecutor(4) as ex:
        together = list(ex.map(lambda r: net.embed_lip_frames([r]), jobs))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)

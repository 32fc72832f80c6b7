"""The torch backend (issue 14): every model's ONNX file run as a PyTorch module through
onnx2torch equals onnxruntime on real inputs; sync and score rows equal the CPU rows; the
exactness flags are read back from torch; fp16/bf16 are opt-in, hashed and measured; auto
never picks torch without a GPU; a missing torch or onnx2torch is a one-line error.

"Equal" for model outputs is max |torch - onnxruntime| / max |onnxruntime| <= 1e-4 over
each output tensor (max-norm relative error), on this machine's CPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time

import cv2
import numpy as np
import pytest

from conftest import CLIPS_DIR, SHARED_MODELS
from lipleak.errors import LipleakError, ModelError
from lipleak.runtime import open_model, probe, select
from media import read_frames

torch = pytest.importorskip("torch")
if importlib.util.find_spec("onnx2torch") is None:  # not imported: it may lack torchvision
    pytest.skip("the torch backend needs onnx2torch (README install)", allow_module_level=True)

REL_TOL = 1e-4


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| / max |ref|: the norm every equality here is stated in."""
    return float(np.abs(a - ref).max() / max(float(np.abs(ref).max()), 1e-30))


def both(path, **opts):
    return open_model(path, "torch", **opts), open_model(path, "cpu")


def assert_equal_to_ort(path, feeds_list, **opts):
    """Torch outputs equal onnxruntime's for every feed; the outputs differ between feeds
    (the graph reacts to its input). Returns the worst relative error."""
    rt, ort = both(path, **opts)
    assert [(s.name, s.shape) for s in rt.inputs] == [(s.name, s.shape) for s in ort.inputs]
    assert [s.name for s in rt.outputs] == [s.name for s in ort.outputs]
    worst, results = 0.0, []
    for feeds in feeds_list:
        got, ref = rt.run(feeds), ort.run(feeds)
        for name, r in ref.items():
            assert got[name].dtype == np.float32 and got[name].shape == r.shape, name
            worst = max(worst, rel_err(got[name], r))
        results.append(ref)
    assert worst <= REL_TOL, worst
    first, second = results[0], results[1]
    name = rt.outputs[0].name
    a, b = first[name], second[name]
    if a.shape == b.shape:
        assert rel_err(a, b) > 1e-2, "the output does not react to the input"
    return worst


# ------------------------------------------------------------------- every model


@pytest.fixture(scope="module")
def frames():
    """Real frames of two clips with different sizes (SCRFD's H x W is dynamic)."""
    return {
        "aoc": read_frames(CLIPS_DIR / "real03_aoc.mp4", [0, 40]),
        "reagan": read_frames(CLIPS_DIR / "real07_reagan.mp4", [0, 60]),
    }


@pytest.fixture(scope="module")
def faces(frames):
    """(frame, box, 5 keypoints) of the best face in each real frame, found on the CPU."""
    from lipleak.faces.scrfd import SCRFD

    det = SCRFD(SHARED_MODELS / "scrfd_500m.onnx", backend="cpu")
    out = []
    for f in frames["aoc"] + frames["reagan"]:
        boxes, scores, kps = det.detect(f)
        i = int(np.argmax(scores))
        out.append((f, boxes[i], kps[i]))
    return out


def test_scrfd_on_real_frames_of_two_sizes(frames):
    from lipleak.faces.scrfd import SCRFD

    det = SCRFD(SHARED_MODELS / "scrfd_500m.onnx", backend="cpu")
    blobs = [det.preprocess(f)[0] for f in frames["aoc"] + frames["reagan"]]
    assert len({b.shape for b in blobs}) == 2  # two input sizes through one module
    name = det.input_name
    assert_equal_to_ort(SHARED_MODELS / "scrfd_500m.onnx", [{name: b} for b in blobs])
    # and what the detector makes of them: the same faces
    tdet = SCRFD(SHARED_MODELS / "scrfd_500m.onnx", backend="torch")
    for f in frames["aoc"] + frames["reagan"]:
        (b0, s0, k0), (b1, s1, k1) = det.detect(f), tdet.detect(f)
        assert len(b0) == len(b1) >= 1
        np.testing.assert_allclose(s1, s0, rtol=0, atol=1e-4)
        np.testing.assert_allclose(b1, b0, rtol=0, atol=1e-2)
        np.testing.assert_allclose(k1, k0, rtol=0, atol=1e-2)


def test_pfld_on_real_face_crops(faces):
    from lipleak.faces.landmarks import crop_square, preprocess, square_box

    crops = [cv2.resize(crop_square(f, *square_box(box)), (112, 112)) for f, box, _ in faces]
    x = preprocess(crops)
    assert_equal_to_ort(
        SHARED_MODELS / "pfld_68.onnx", [{"input": x[:2]}, {"input": x[2:]}, {"input": x}]
    )


def test_arcface_random_iresnet_on_real_faces(faces, tmp_path):
    from lipleak.export.arcface import export_random
    from lipleak.faces.align import norm_crop
    from lipleak.models.arcface import preprocess

    x = preprocess([norm_crop(f, k) for f, _, k in faces])
    small = (1, 1, 1, 1)  # a small random IResNet: the op set of IResNet-50, seconds to run
    dyn = export_random(tmp_path / "d.onnx", seed=3, layers=small)
    name = open_model(dyn, "cpu").inputs[0].name
    assert_equal_to_ort(dyn, [{name: x[:2]}, {name: x[2:]}])
    # a fixed-batch graph (batch 1) takes any number of rows, as onnxruntime does in chunks
    fixed = export_random(tmp_path / "f.onnx", seed=3, layers=small, dynamic_batch=False)
    rt = open_model(fixed, "torch")
    assert rt.fixed_batch == 1
    ref = open_model(dyn, "cpu").run({name: x})
    got = rt.run({rt.inputs[0].name: x})
    assert rel_err(got[rt.outputs[0].name], ref[rt.outputs[0].name]) <= REL_TOL


@pytest.mark.slow
def test_arcface_full_iresnet50(faces, tmp_path):
    from lipleak.export.arcface import export_random
    from lipleak.faces.align import norm_crop
    from lipleak.models.arcface import preprocess

    x = preprocess([norm_crop(f, k) for f, _, k in faces])
    path = export_random(tmp_path / "r50.onnx", seed=0)
    name = open_model(path, "cpu").inputs[0].name
    assert_equal_to_ort(path, [{name: x[:2]}, {name: x[2:]}])


def test_fid_inception_on_real_crops(model_dir, frames):
    from lipleak.models import onnx_files
    from lipleak.models.inception import preprocess

    onnx, _ = onnx_files.inception_onnx("fid_inception")
    crops = [f[40:-40, 40:-40] for f in frames["aoc"] + frames["reagan"]]
    x = preprocess(crops)
    assert_equal_to_ort(onnx, [{"images": x[:2]}, {"images": x[2:]}])


def lip_windows(path, start, n):
    """n SyncNet lip windows (B x 3 x 5 x 224 x 224, BGR 0..255) of real frames, prealigned."""
    from lipleak.metrics.sync import lip_window

    fr = [cv2.resize(f, (224, 224)) for f in read_frames(path, range(start, start + n + 4))]
    out = np.empty((n, 3, 5, 224, 224), np.float32)
    for k in range(n):
        lip_window(fr[k : k + 5], out[k])
    return out


def test_syncnet_towers_on_real_windows(model_dir):
    from lipleak.io.audio import load_audio
    from lipleak.metrics.sync import mfcc_windows
    from lipleak.models.syncnet import LIPS_INPUT, MFCC_INPUT, SyncNet

    net = SyncNet.load("syncnet_v2_random", backend="cpu")
    lips_path, audio_path = net.lips.describe().model_path, net.audio.describe().model_path
    lips = [lip_windows(CLIPS_DIR / "real03_aoc.mp4", 10, 3)]
    lips.append(lip_windows(CLIPS_DIR / "real07_reagan.mp4", 10, 3))
    assert_equal_to_ort(lips_path, [{LIPS_INPUT: x} for x in lips])
    mfcc = mfcc_windows(load_audio(CLIPS_DIR / "real03_aoc.wav"), 40)
    assert_equal_to_ort(audio_path, [{MFCC_INPUT: mfcc[:20]}, {MFCC_INPUT: mfcc[20:]}])
    # SyncNet opened on torch: the same embeddings through the wrapper
    tnet = SyncNet.load("syncnet_v2_random", backend="torch")
    assert tnet.describe()["backend"] == "torch"
    assert rel_err(tnet.embed_audio(mfcc), net.embed_audio(mfcc)) <= REL_TOL


# ---------------------------------------------------------------- runtime behaviour


def tiny(tmp_path, batch="batch"):
    from test_backend_select import tiny_onnx

    return tiny_onnx(tmp_path / "tiny.onnx", batch=batch)


def test_describe_reads_exactness_flags_back_from_torch(tmp_path):
    rt = open_model(tiny(tmp_path), "torch")
    d = rt.describe()
    assert d.backend == "torch"
    assert d.details["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert d.details["precision"] == "fp32" and d.details["tf32"] is False
    assert d.details["float32_matmul_precision"] == "highest"
    assert d.details["cudnn_deterministic"] is True and d.details["cudnn_benchmark"] is False
    assert d.details["torch"] == torch.__version__ and d.details["onnx2torch"] == "1.5.15"
    # read back, not written down: a flag turned on after opening shows up, through the
    # legacy setter as through torch >= 2.9's fp32_precision, and describe() never raises
    # (torch refuses the legacy cuDNN getter once the new API was used: issue 25)
    from lipleak.runtime.torch_backend import _has_precision_api

    torch.backends.cudnn.allow_tf32 = True
    assert rt.describe().details["tf32"] is True
    open_model(tiny(tmp_path), "torch")  # opening again restores the exact mode
    assert rt.describe().details["tf32"] is False
    if _has_precision_api(torch):
        assert d.details["fp32_precision"] == {
            "matmul": "ieee",
            "cudnn_conv": "ieee",
            "cudnn_rnn": "ieee",
        }
        torch.backends.cudnn.rnn.fp32_precision = "tf32"  # conv and rnn now disagree
        with pytest.raises(RuntimeError):
            torch.backends.cudnn.allow_tf32  # noqa: B018 - what torch refuses
        d = rt.describe().details
        assert d["tf32"] is True and d["fp32_precision"]["cudnn_rnn"] == "tf32"
        open_model(tiny(tmp_path), "torch")
        assert torch.backends.cudnn.rnn.fp32_precision == "ieee"
    assert rt.describe().details["tf32"] is False


def test_tf32_state_reads_either_api_and_never_raises():
    """``tf32_state`` on stand-ins of torch's two APIs: "none" inherits its parent's
    setting, "none" all the way up is IEEE; the legacy flags; a getter that raises."""
    from types import SimpleNamespace as NS

    from lipleak.runtime.torch_backend import tf32_state

    def new_api(top="none", cudnn="none", conv="none", rnn="none", mm="none"):
        b = NS(
            fp32_precision=top,
            cuda=NS(matmul=NS(fp32_precision=mm, allow_tf32=None)),
            cudnn=NS(
                fp32_precision=cudnn, conv=NS(fp32_precision=conv), rnn=NS(fp32_precision=rnn)
            ),
        )
        return NS(backends=b)

    assert tf32_state(new_api()) == (
        False,
        {"matmul": "ieee", "cudnn_conv": "ieee", "cudnn_rnn": "ieee"},
    )
    assert tf32_state(new_api(cudnn="tf32", rnn="ieee"))[1]["cudnn_conv"] == "tf32"
    assert tf32_state(new_api(top="tf32", mm="ieee", conv="ieee", rnn="ieee"))[0] is False
    assert tf32_state(new_api(top="tf32", mm="ieee", conv="ieee"))[0] is True
    legacy = NS(backends=NS(cuda=NS(matmul=NS(allow_tf32=False)), cudnn=NS(allow_tf32=True)))
    assert tf32_state(legacy) == (True, {"matmul_allow_tf32": False, "cudnn_allow_tf32": True})

    class Refuses:
        @property
        def allow_tf32(self):
            raise RuntimeError("mixed legacy and new APIs")

    broken = NS(backends=NS(cuda=NS(matmul=NS(allow_tf32=False)), cudnn=Refuses()))
    state, why = tf32_state(broken)
    assert state is None and "mixed" in why["error"]


def test_any_batch_size_and_fixed_batch_graphs(tmp_path):
    from test_backend_select import B, W

    x = np.random.default_rng(1).standard_normal((150, 3)).astype(np.float32)
    dyn = open_model(tiny(tmp_path), "torch", max_batch=64)  # 150 rows: 3 chunks
    np.testing.assert_allclose(dyn.run({"x": x})["y"], x @ W + B, rtol=1e-6, atol=1e-6)
    assert dyn.run({"x": x[:0]})["y"].shape == (0, 2)
    (tmp_path / "f").mkdir()
    fixed = open_model(tiny(tmp_path / "f", batch=4), "torch")
    assert fixed.fixed_batch == 4 and fixed.inputs[0].shape == (4, 3)
    for n in (1, 4, 7, 9):
        np.testing.assert_allclose(
            fixed.run({"x": x[:n]})["y"], x[:n] @ W + B, rtol=1e-6, atol=1e-6
        )


def test_run_is_thread_safe(tmp_path):
    rt = open_model(SHARED_MODELS / "pfld_68.onnx", "torch")
    xs = [
        np.random.default_rng(i).uniform(-1, 1, (3, 3, 112, 112)).astype(np.float32)
        for i in range(6)
    ]
    serial = [rt.run({"input": x})["output"] for x in xs]
    got = [None] * len(xs)

    def work(i):
        got[i] = rt.run({"input": xs[i]})["output"]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(got, serial, strict=True):
        np.testing.assert_array_equal(a, b)


def test_busy_clock_times_each_call_once(tmp_path):
    """``start_busy_clock``: one interval per call, from the same two events on CUDA and
    on the CPU (the host clock there), threads or not; calls on one runtime never
    overlap, so the busy time of a wall time stays under it (issue 25's busy figure)."""
    pfld = open_model(SHARED_MODELS / "pfld_68.onnx", "torch")
    x = np.random.default_rng(0).uniform(-1, 1, (4, 3, 112, 112)).astype(np.float32)
    want = pfld.run({"input": x})["output"]
    clock = pfld.start_busy_clock()
    t0 = time.perf_counter()

    def work():
        for _ in range(3):
            np.testing.assert_array_equal(pfld.run({"input": x})["output"], want)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    assert pfld.stop_busy_clock() is clock and clock.calls == 6
    assert 0 < clock.seconds <= wall
    assert clock.seconds_between(t0, t0 + wall) == pytest.approx(clock.seconds)
    pfld.run({"input": x})  # stopped: no longer counted
    assert clock.calls == 6
    # run_prepared (the lip tower's path) and the chunked path of run are timed too
    dyn = open_model(tiny(tmp_path), "torch", max_batch=2)
    c2 = dyn.start_busy_clock()
    dyn.run({"x": np.ones((5, 3), np.float32)})
    dyn.run_prepared([np.ones((3, 3), np.float32)], lambda t, dtype: {"x": t[0].to(dtype)})
    assert c2.calls == 2 and c2.seconds > 0
    assert dyn.stop_busy_clock() is c2


def test_cpu_threads_follow_lipleak_ort_threads(tmp_path, monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("LIPLEAK_ORT_THREADS", "1")
        rt = open_model(tiny(tmp_path), "torch", device="cpu")
        assert torch.get_num_threads() == 1 and rt.describe().details["threads"] == 1
        open_model(tiny(tmp_path), "torch", device="cpu", threads=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------ precision


def test_fp16_bf16_change_the_settings_hash_and_need_torch(tmp_path):
    from lipleak.sync import SyncSettings

    hashes = {p: SyncSettings(precision=p).hash() for p in ("fp32", "fp16", "bf16")}
    assert len(set(hashes.values())) == 3
    # the backend is not hashed: torch and cpu rows are the same numbers within 1e-3
    assert SyncSettings(backend="torch").hash() == SyncSettings(backend="cpu").hash()
    model = tiny(tmp_path)
    with pytest.raises(LipleakError, match="'bf16' needs the torch backend"):
        open_model(model, "cpu", precision="bf16")
    for p in ("fp16", "bf16"):
        rt = open_model(model, "torch", precision=p)
        assert rt.describe().details["precision"] == p


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_on_cpu_drifts_a_little(precision):
    """bf16 and fp16 run on the CPU too (torch 2.13 has CPU kernels for both convs); the
    outputs are float32 and near fp32. docs/gpu.md has the measured drift of every model."""
    x = np.random.default_rng(0).uniform(-1, 1, (4, 3, 112, 112)).astype(np.float32)
    ref = open_model(SHARED_MODELS / "pfld_68.onnx", "cpu").run({"input": x})["output"]
    rt = open_model(SHARED_MODELS / "pfld_68.onnx", "torch", precision=precision, device="cpu")
    got = rt.run({"input": x})["output"]
    assert got.dtype == np.float32
    err = rel_err(got, ref)
    assert 0 < err < {"bf16": 0.1, "fp16": 0.01}[precision], err


# ------------------------------------------------------------------------ selection


@pytest.fixture
def fresh_probes():
    probe.clear_cache()
    yield
    probe.clear_cache()


def test_auto_on_this_machine_stays_on_the_cpu(fresh_probes):
    """Real probes: torch is usable by name here, but has no CUDA, so auto takes cpu."""
    av = select.available_backends()
    info, _ = probe.probe_torch()
    assert info is not None and av["torch"][0]
    if info.cuda_device is None:
        name, why = select.resolve_backend("auto", av)
        assert name == "cpu" and "auto takes torch only on a GPU" in why


def fake(monkeypatch, *, trt=False, ort_cuda=False, torch_cuda=True):
    gpu = probe.GpuInfo(0, "NVIDIA H200", "9.0", 1, "580", "13.0", "fake")
    monkeypatch.setattr(probe, "probe_gpu", lambda index=0: (gpu, ""))
    monkeypatch.setattr(
        probe, "probe_tensorrt", lambda: ("10.9", "") if trt else (None, "no tensorrt (fake)")
    )
    monkeypatch.setattr(probe, "probe_cuda_python", lambda: ("13.0", ""))
    providers = ["CUDAExecutionProvider"] if ort_cuda else []
    monkeypatch.setattr(
        probe, "probe_ort", lambda: (providers + ["CPUExecutionProvider"], "", "1.99")
    )
    info = probe.TorchInfo("2.11.0", "1.5.15", "NVIDIA H200" if torch_cuda else None, "fake")
    monkeypatch.setattr(probe, "probe_torch", lambda: (info, ""))


@pytest.mark.parametrize(
    "trt,ort_cuda,torch_cuda,expect",
    [
        (False, False, True, "torch"),  # the lent GPU machine: torch + CUDA, nothing else
        (True, False, True, "tensorrt"),
        (False, True, True, "ort-cuda"),
        (False, False, False, "cpu"),
    ],
)
def test_auto_order_with_torch(monkeypatch, trt, ort_cuda, torch_cuda, expect):
    fake(monkeypatch, trt=trt, ort_cuda=ort_cuda, torch_cuda=torch_cuda)
    assert select.resolve_backend("auto")[0] == expect


def test_auto_with_low_precision_takes_a_backend_that_runs_it(monkeypatch, tmp_path):
    opened = []
    monkeypatch.setattr(select, "_open_one", lambda name, *a: opened.append(name) or name)
    model = tiny(tmp_path)
    fake(monkeypatch, ort_cuda=True)
    assert select.open_model(model, "auto", precision="bf16") == "torch"
    assert select.open_model(model, "auto", precision="fp32") == "ort-cuda"
    fake(monkeypatch, ort_cuda=True, torch_cuda=False)
    with pytest.raises(LipleakError, match="'bf16' needs the torch backend"):
        select.open_model(model, "auto", precision="bf16")


def test_missing_torch_or_onnx2torch_is_one_line_saying_what_to_install(
    monkeypatch, fresh_probes, capsys
):
    from lipleak.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "onnx2torch" else real(n, *a)
    )
    rc = main(
        [
            "sync",
            str(CLIPS_DIR / "real07_reagan.mp4"),
            "--backend",
            "torch",
            "--syncnet",
            "syncnet_v2_random",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1, err
    assert "backend 'torch' is not available" in err and "onnx2torch not installed" in err
    assert "pip install 'lipleak-fast[torch]'" in err and "--no-deps onnx2torch" in err


def test_import_failure_inside_the_runtime_says_what_to_install(monkeypatch, tmp_path):
    from lipleak.runtime import torch_backend

    monkeypatch.setattr(torch_backend, "_ONNX2TORCH", None)
    monkeypatch.setitem(sys.modules, "onnx2torch", None)  # makes `import onnx2torch` fail
    with pytest.raises(ModelError, match=r"needs onnx2torch .*pip install --no-deps onnx2torch"):
        torch_backend.TorchRuntime(tiny(tmp_path))


def test_onnx2torch_imports_beside_a_broken_torchvision(tmp_path):
    """PyPI's Linux torchvision needs a CUDA torch and raises inside its import beside a
    CPU torch; the backend imports onnx2torch without it and leaves no placeholder behind."""
    model = tiny(tmp_path)
    code = textwrap.dedent(f"""
        import sys, importlib.abc, numpy as np

        class Broken(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "torchvision" or name.startswith("torchvision."):
                    raise RuntimeError("operator torchvision::nms does not exist")

        sys.meta_path.insert(0, Broken())
        from lipleak.runtime import open_model
        rt = open_model({str(model)!r}, "torch")
        y = rt.run({{"x": np.ones((2, 3), np.float32)}})["y"]
        print(y.shape, "torchvision" in sys.modules)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split("\n")[0] == "(2, 2) False"


# --------------------------------------------------------------- sync and score rows


def cli(*args, cwd=None):
    proc = subprocess.run(
        [sys.executable, "-m", "lipleak", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["prealigned", "detect"])
def test_sync_rows_torch_equal_cpu(model_dir, tmp_path, mode):
    # one ~5-s real clip per mode, a different person in each (two clips per mode added
    # 23 s to the suite for the same check)
    name = "real03_aoc" if mode == "prealigned" else "real04_woman_glasses"
    clips = [CLIPS_DIR / f"{name}.mp4"]
    rows = {}
    for backend in ("cpu", "torch"):
        out = tmp_path / f"{backend}.jsonl"
        cli(
            "sync",
            *clips,
            "--mode",
            mode,
            "--backend",
            backend,
            "--syncnet",
            "syncnet_v2_random",
            "--jsonl",
            out,
            "--db",
            tmp_path / f"{backend}.sqlite",
            "--quiet",
        )
        rows[backend] = {r["video"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert len(rows["cpu"]) == 1 and rows["cpu"].keys() == rows["torch"].keys()
    for video, c in rows["cpu"].items():
        t = rows["torch"][video]
        assert t["offset"] == c["offset"], video
        assert abs(t["lse_c"] - c["lse_c"]) <= 1e-3 and abs(t["lse_d"] - c["lse_d"]) <= 1e-3


@pytest.mark.slow
def test_score_rows_torch_equal_cpu(model_dir, tmp_path):
    """A small protocol run with every visual metric (CSIM on a small random IResNet)."""
    from test_protocol import _trimmed, gen_cmd

    from lipleak.export.arcface import export_random

    gt = tmp_path / "gt"
    gt.mkdir()
    for name in ("real03_aoc", "real07_reagan"):
        _trimmed(CLIPS_DIR / f"{name}.mp4", gt / f"{name}.mp4", 12)  # 7 SyncNet windows
    arc = export_random(tmp_path / "arc.onnx", seed=1, layers=(1, 1, 1, 1))
    # freeze: CR re-encodes the GT frames, AR repeats one frame, so no visual metric is
    # trivially equal (a remux would give the GT frames: SSIM 1, PSNR inf, CSIM 1)
    cli("plan", gt, tmp_path / "cpu", "--seed", "1", "--ar", "random")
    cli("generate", tmp_path / "cpu", "--cmd", gen_cmd("freeze"), "--quiet")
    shutil.copytree(tmp_path / "cpu", tmp_path / "torch")
    data = {}
    for backend in ("cpu", "torch"):
        run = tmp_path / backend
        cli(
            "score",
            run,
            "--gt",
            gt,
            "--syncnet",
            "syncnet_v2_random",
            "--arcface",
            arc,
            "--backend",
            backend,
            "--no-fid",
            "--quiet",
        )
        d = json.loads((run / "results.json").read_text())
        data[backend] = {(v["stem"], v["setup"], v["reference"]): v for v in d["videos"]}
    assert data["cpu"].keys() == data["torch"].keys() and len(data["cpu"]) >= 10
    psnr = [v["psnr"] for v in data["cpu"].values() if v.get("psnr") is not None]
    assert psnr and all(np.isfinite(psnr)), psnr  # the frames differ from the GT
    # stated tolerances of the visual metrics: crops follow SCRFD's boxes (<= 1e-2 px apart)
    tol = {"ssim": 1e-3, "psnr": 1e-2, "lmd": 1e-2, "csim": 1e-3}
    tol |= {"lse_c": 1e-3, "lse_d": 1e-3, "mouth_open_fraction": 1e-3, "mouth_aperture_std": 1e-3}
    worst = dict.fromkeys(tol, 0.0)
    for key, c in data["cpu"].items():
        t = data["torch"][key]
        assert t["offset"] == c["offset"], key
        for m in tol:
            assert (m in t) == (m in c), (key, m)
            if c.get(m) is not None and t[m] != c[m]:  # equal covers PSNR's inf
                worst[m] = max(worst[m], abs(t[m] - c[m]))
    print("largest |torch - cpu| per metric:", worst)
    assert all(worst[m] <= tol[m] for m in tol), worst


def test_a_torchvision_stand_in_without_ops_is_treated_as_absent(monkeypatch):
    # e.g. tests/test_lpips.py registers a torchvision with only .models: onnx2torch, which
    # imports torchvision.ops, must still import, and the stand-in must stay registered
    import types

    from lipleak.runtime import torch_backend

    fake = types.ModuleType("torchvision")
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    monkeypatch.delitem(sys.modules, "torchvision.ops", raising=False)
    for name in [n for n in sys.modules if n == "onnx2torch" or n.startswith("onnx2torch.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(torch_backend, "_ONNX2TORCH", None)
    mod = torch_backend.import_onnx2torch()
    assert mod.__name__ == "onnx2torch"
    assert sys.modules["torchvision"] is fake and "torchvision.ops" not in sys.modules

"""Models called from several threads at once (score's workers) are opened ``concurrent``:
on onnxruntime's CPU backend one intra-op thread per session, so each call runs on its
caller's core; the same bits as the default pool, solo and from two threads at once."""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pytest

from conftest import CLIPS_DIR, SHARED_MODELS
from lipleak.runtime import open_model
from lipleak.runtime.probe import cpu_threads
from media import read_frames


def _intra(rt) -> int:
    return rt.session.get_session_options().intra_op_num_threads


def test_concurrent_cpu_sessions_get_one_thread():
    path = SHARED_MODELS / "pfld_68.onnx"
    assert _intra(open_model(path, "cpu")) == cpu_threads()
    for backend in ("cpu", "auto"):  # no GPU here: auto is onnxruntime's CPU backend
        rt = open_model(path, backend, concurrent=True)
        assert rt.threads == 1 and _intra(rt) == 1
    assert _intra(open_model(path, "cpu", concurrent=True, threads=2)) == 2  # said: kept


def test_concurrent_leaves_torch_threads_alone(tmp_path):
    """torch's CPU thread count is the process's: a concurrent model must not set it."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnx2torch") is None:
        pytest.skip("the torch backend needs torch and onnx2torch (README install)")
    import torch
    from test_backend_select import tiny_onnx

    before = torch.get_num_threads()
    open_model(tiny_onnx(tmp_path / "t.onnx"), "torch", concurrent=True, device="cpu")
    assert torch.get_num_threads() == before


@pytest.fixture(scope="module")
def frames():
    return read_frames(CLIPS_DIR / "real03_aoc.mp4", range(0, 24, 3))


def _twice(fn, args):
    """``fn(*args)`` from two threads at once: both results."""
    out = [None, None]

    def go(k):
        out[k] = fn(*args)

    threads = [threading.Thread(target=go, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _same(a, b):
    if isinstance(a, tuple):
        return all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a.dtype == b.dtype and np.array_equal(a, b)


def test_visual_models_give_the_same_bits_concurrent(model_dir, frames, tmp_path):
    from lipleak.export.arcface import export_random
    from lipleak.faces.align import norm_crop
    from lipleak.faces.landmarks import PFLD
    from lipleak.faces.scrfd import SCRFD
    from lipleak.models import onnx_files
    from lipleak.models.arcface import ArcFace
    from lipleak.models.inception import FIDInception

    det = SCRFD(SHARED_MODELS / "scrfd_500m.onnx", backend="cpu")
    found = [det.detect(f) for f in frames]
    boxes = [b[int(np.argmax(s))] for b, s, _ in found]
    faces = [norm_crop(f, k[int(np.argmax(s))]) for f, (_, s, k) in zip(frames, found)]
    crops = [f[int(b[1]) : int(b[3]), int(b[0]) : int(b[2])] for f, b in zip(frames, boxes)]
    inception, _ = onnx_files.inception_onnx("fid_inception")
    arcface = export_random(tmp_path / "iresnet50_random.onnx", seed=0)
    cases = {
        "scrfd": (
            lambda c: SCRFD(SHARED_MODELS / "scrfd_500m.onnx", backend="cpu", concurrent=c),
            "detect",
            (frames[0],),
        ),
        "pfld": (
            lambda c: PFLD(SHARED_MODELS / "pfld_68.onnx", backend="cpu", concurrent=c),
            "landmarks",
            (frames, boxes),
        ),
        "inception": (
            lambda c: FIDInception(inception, backend="cpu", concurrent=c),
            "features",
            (crops,),
        ),
        "arcface": (lambda c: ArcFace(arcface, backend="cpu", concurrent=c), "embed", (faces,)),
    }
    for name, (make, method, args) in cases.items():
        pooled, one = make(False), make(True)
        runtime = getattr(one, "runtime", None) or one.model
        assert runtime.threads == 1, name
        want = getattr(pooled, method)(*args)
        assert _same(getattr(one, method)(*args), want), name
        for got in _twice(getattr(one, method), args):
            assert _same(got, want), name


def test_score_opens_the_visual_models_concurrent_with_two_workers(model_dir):
    from lipleak.protocol.scoring import LocalExecutor
    from lipleak.sync import SyncSettings
    from lipleak.visual import VisualSettings

    for workers, threads in ((2, 1), (1, cpu_threads())):
        ex = LocalExecutor(SyncSettings(syncnet="syncnet_v2_random"), VisualSettings(), workers)
        m = ex.worker.visual.models
        for rt in (m.detector.model, m.pfld.runtime, m.inception.runtime):
            assert rt.threads == threads, (workers, rt.path)


def test_detectors_opened_concurrent_where_workers_share_them(model_dir, tmp_path, monkeypatch):
    """SyncScorer(concurrent) opens its face detector so; `score` and `sync DIR` ask for
    it with two workers or more, not with one."""
    import synth
    from lipleak.cli import main
    from lipleak.protocol.scoring import LocalExecutor
    from lipleak.sync import SyncScorer, SyncSettings

    detect = SyncSettings(syncnet="syncnet_v2_random", mode="detect")
    assert SyncScorer(detect, concurrent=True).detector.model.threads == 1
    assert SyncScorer(detect).detector.model.threads == cpu_threads()
    for workers, threads in ((2, 1), (1, cpu_threads())):
        ex = LocalExecutor(detect, None, workers)
        assert ex.worker.sync.detector.model.threads == threads

    asked = []
    init = SyncScorer.__init__

    def spy(self, settings=None, concurrent=False):
        asked.append(concurrent)
        init(self, settings, concurrent)

    monkeypatch.setattr(SyncScorer, "__init__", spy)
    synth.make_set(tmp_path / "clips", 2, seconds=0.48)
    for workers in ("2", "1"):
        db = tmp_path / f"w{workers}.sqlite"
        args = ["sync", str(tmp_path / "clips"), "--syncnet", "syncnet_v2_random", "--quiet"]
        assert main([*args, "--workers", workers, "--db", str(db)]) == 0
    assert asked == [True, False]

"""Checkpoints of long videos (``lipleak.sync.checkpoint``): a run stopped after any save
resumes from it and ends with the numbers of an uninterrupted run, bit for bit.

The scorer runs here with a cheap deterministic stand-in for SyncNet (and for the face
detector in detect mode) so that multi-minute videos take seconds: what is under test is
the streaming state (crops in flight, pending embeddings, the audio reader, distance
rows, detections, shots), not the model. ``tests/test_sync_volume.py`` kills a real
``sync`` run with SIGKILL.
"""

from __future__ import annotations

import json
import sqlite3

import cv2
import numpy as np
import pytest

from lipleak.sync import SyncScorer, SyncSettings
from lipleak.sync.checkpoint import Checkpoint
from media import speech_like, write_video


def _rows(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    # one product per row: a matrix product's kernels (and bits) may depend on the batch
    return np.stack([r @ w for r in x]).astype(np.float32) if len(x) else np.zeros((0, 1024))


class FakeSyncNet:
    """Embeddings from the windows' mean colours and MFCCs through fixed projections;
    like SyncNet, a window's embedding does not depend on its batch."""

    def __init__(self):
        rng = np.random.default_rng(5)
        self.w_lip = rng.standard_normal((15, 1024)).astype(np.float32)
        self.w_audio = rng.standard_normal((260, 1024)).astype(np.float32) / 50

    def embed_lip_frames(self, runs):
        out = []
        for run in runs:
            means = run.reshape(len(run), -1, 3).mean(axis=1, dtype=np.float64) / 255
            win = np.lib.stride_tricks.sliding_window_view(means, (5, 3))[:, 0]
            out.append(_rows(win.reshape(len(win), 15), self.w_lip))
        return np.concatenate(out)

    def embed_audio(self, x):
        return _rows(x.reshape(len(x), -1), self.w_audio)

    def describe(self):
        return {"fake": True}


class FakeDetector:
    """One face box per frame, moving with the frame's content; none on dark frames."""

    def detect(self, frame):
        m = float(frame.mean())
        if m < 20:
            return (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2)))
        x = 10 + (m % 7)
        box = np.array([[x, 8, x + 40, 48]], np.float32)
        kps = np.repeat(((box[:, :2] + box[:, 2:]) / 2)[:, None], 5, axis=1).astype(np.float32)
        return box, np.array([0.9], np.float32), kps


class Stop(Exception):
    pass


class StoppingCheckpoint(Checkpoint):
    """Raises after its ``stop_after``-th save, as if the process were killed right then."""

    stop_after = 10**9

    def save(self, *a, **kw):
        super().save(*a, **kw)
        self.stop_after -= 1
        if self.stop_after == 0:
            raise Stop


def _video(path, seconds: float, shots: int = 1, dark_gap: bool = False):
    """A synthetic clip: smooth textures moving a little, ``shots`` scenes of other
    colours (hard cuts), speech-like audio."""
    rng = np.random.default_rng(1)
    n = int(seconds * 25)
    frames = []
    bases = []
    for k in range(shots):
        smooth = cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (0, 0), 6)
        smooth = cv2.normalize(smooth, None, 0, 255, cv2.NORM_MINMAX)
        bases.append(np.roll(smooth if k % 2 == 0 else 255 - smooth, k, axis=2))
    for i in range(n):
        shot = i * shots // n
        f = np.roll(bases[shot], round(6 * np.sin(i / 10)), axis=1)
        if dark_gap and n // 6 <= i < n // 6 + 40:
            f = np.zeros_like(f)
        frames.append(f)
    return write_video(path, frames, audio=speech_like(seconds, seed=3))


@pytest.fixture(scope="module")
def scorers(model_dir):
    out = {}
    for mode in ("prealigned", "detect"):
        settings = SyncSettings(
            syncnet="syncnet_v2_random", mode=mode, min_track=25, min_face_size=30, batch_size=16
        )
        scorer = SyncScorer(settings).sharing(FakeSyncNet())
        scorer._detector = FakeDetector()
        out[mode] = scorer
    return out


def last_frame(db) -> int:
    with sqlite3.connect(db) as con:
        return json.loads(con.execute("SELECT meta FROM checkpoints").fetchone()[0])["frame"]


def _numbers(result) -> dict:
    d = result.to_dict(verbose=True)
    d.pop("video")
    return d


@pytest.mark.parametrize(
    "mode,seconds,shots,stops",
    [
        ("prealigned", 120, 1, [1, 3, 4]),  # a 2-minute video stopped three times
        # stopped in pass 1 (frames 250, 750, 1500), at its last frame (2000), then in
        # pass 2 (at its frame 500)
        ("detect", 80, 3, [1, 2, 3, 2, 3]),
    ],
)
def test_stopped_runs_resume_to_the_uninterrupted_numbers(
    scorers, tmp_path, mode, seconds, shots, stops
):
    scorer = scorers[mode]
    video = _video(tmp_path / "long.mp4", seconds, shots, dark_gap=mode == "detect")
    whole = scorer.score(video)
    if mode == "detect":
        # the cuts between scenes and into and out of the faceless dark stretch
        assert len(whole.shots) == shots + 2 and len(whole.tracks) >= shots

    db = tmp_path / "store.sqlite"
    resumed = []
    for stop_after in stops:
        ck = StoppingCheckpoint(db, (str(video), ""), "run", "inputs", every_seconds=10)
        ck.stop_after = stop_after
        with pytest.raises(Stop):
            scorer.score(video, checkpoint=ck)
        resumed.append(ck.resumed_from)
    if mode == "detect":
        assert resumed == [None, 250, 750, 1500, 2000] and last_frame(db) == 500
    last = Checkpoint(db, (str(video), ""), "run", "inputs", every_seconds=10)
    result = scorer.score(video, checkpoint=last)
    # every rerun went on from the previous one's last save, none from frame 0
    assert resumed[0] is None and all(r for r in resumed[1:]) and last.resumed_from
    assert _numbers(result) == _numbers(whole)


def test_changed_setting_or_file_restarts_from_zero(scorers, tmp_path):
    scorer = scorers["prealigned"]
    video = _video(tmp_path / "v.mp4", 30)
    db = tmp_path / "store.sqlite"
    ck = StoppingCheckpoint(db, (str(video), ""), "run-a", "in-a", every_seconds=4)
    ck.stop_after = 2
    with pytest.raises(Stop):
        scorer.score(video, checkpoint=ck)
    for run, inputs in (("run-b", "in-a"), ("run-a", "in-b")):
        other = Checkpoint(db, (str(video), ""), run, inputs, every_seconds=4)
        assert other.load() is None and other.resumed_from is None
        # the stale checkpoint is gone: the one of the first hashes cannot load it either
        assert Checkpoint(db, (str(video), ""), "run-a", "in-a").load() is None
        ck = StoppingCheckpoint(db, (str(video), ""), "run-a", "in-a", every_seconds=4)
        ck.stop_after = 2
        with pytest.raises(Stop):
            scorer.score(video, checkpoint=ck)


def test_checkpoint_arrays_append_and_never_unpickle(tmp_path):
    db = tmp_path / "s.sqlite"
    ck = Checkpoint(db, ("/v", ""), "h", "i")
    ck.save({"frame": 5}, {"x": np.arange(3)}, {"rows": np.ones((2, 3))})
    ck.save({"frame": 9}, {"x": np.arange(4)}, {"rows": np.zeros((1, 3)), "empty": np.ones(0)})
    meta, arrays, parts = Checkpoint(db, ("/v", ""), "h", "i").load()
    assert meta == {"frame": 9} and arrays["x"].tolist() == [0, 1, 2, 3]
    assert [p.tolist() for p in parts["rows"]] == [[[1.0] * 3] * 2, [[0.0] * 3]]
    assert [len(p) for p in parts["empty"]] == [0]  # kept: parts of one save stay aligned
    # a pickled object array planted in the store is refused, not loaded
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE checkpoint_arrays SET data = ? WHERE name = 'x'", (buf.getvalue(),))
    with pytest.raises(ValueError, match="pickle"):
        Checkpoint(db, ("/v", ""), "h", "i").load()


def test_final_row_commit_deletes_the_checkpoint(tmp_path):
    from lipleak.sync.results import SyncStore

    db = tmp_path / "s.sqlite"
    Checkpoint(db, ("/v", ""), "h", "i").save({"frame": 5}, {"x": np.arange(3)}, {})
    store = SyncStore(db)
    store.start_run("t", [], {})
    store.commit(
        {
            "video": "/v",
            "audio": "",
            "settings_hash": "h",
            "inputs_hash": "i",
            "status": "ok",
            "reason": "",
            "offset": 0,
            "lse_c": 1.0,
            "lse_d": 2.0,
            "n_frames": 10,
            "n_tracks": 1,
            "tracks": [],
            "detail": None,
        }
    )
    store.close()
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM checkpoints").fetchone() == (0,)
        assert con.execute("SELECT COUNT(*) FROM checkpoint_arrays").fetchone() == (0,)


def test_detection_log_gives_back_what_the_detector_gave():
    from lipleak.faces.detections import DetectionLog

    rng = np.random.default_rng(2)
    frames = []
    for i in range(3000):
        n = int(rng.integers(0, 4)) if i % 7 else 0
        frames.append(
            (
                rng.random((n, 4), dtype=np.float32) * 500,
                rng.random(n, dtype=np.float32),
                rng.random((n, 5, 2), dtype=np.float32) * 500,
            )
        )
    log = DetectionLog()
    for f in frames[:1700]:
        log.append(f)
    saved = log.arrays(1000)
    again = DetectionLog()
    again.extend(log.arrays())
    for f in frames[1700:]:
        log.append(f)
        again.append(f)
    assert len(log) == len(again) == 3000 and len(saved["count"]) == 700
    for got in (log[0:3000], again[0:3000]):
        for (b, s, k), (b0, s0, k0) in zip(got, frames, strict=True):
            assert b.dtype == b0.dtype and s.dtype == s0.dtype and k.dtype == k0.dtype
            assert np.array_equal(b, b0) and np.array_equal(s, s0) and np.array_equal(k, k0)
    assert [len(d[0]) for d in log[10:20]] == [len(f[0]) for f in frames[10:20]]


def test_progress_counts_frames_up_to_the_total(scorers, tmp_path):
    """What the one-video progress bar shows: frames done of the expected total (detect
    mode's two passes count the video twice), never past it, never backwards."""
    video = _video(tmp_path / "p.mp4", 12, 2)
    for mode, passes in (("prealigned", 1), ("detect", 2)):
        seen: list[tuple[int, int]] = []
        result = scorers[mode].score(video, progress=lambda d, t, seen=seen: seen.append((d, t)))
        dones = [d for d, _ in seen]
        assert seen[0] == (0, passes * 300) and dones == sorted(dones)
        assert all(d <= t for d, t in seen)
        assert dones[-1] >= passes * result.n_frames - 2 * 5  # the last windows end early


@pytest.mark.parametrize("every_seconds", [None, 10])
def test_detect_tracks_free_their_rows_as_they_end(scorers, tmp_path, monkeypatch, every_seconds):
    """An hour of detect-mode video has ~500 tracks: each one's distance rows (248 B per
    frame) are freed once its result and segments are made (with a checkpoint: once a
    save holds them), not at the end of the video; the numbers do not change."""
    import copy
    import gc
    import weakref

    from lipleak.sync.search import WindowStream

    scorer = scorers["detect"]
    keeping = copy.copy(scorer)
    keeping.keep_rows = True
    video = _video(tmp_path / "v.mp4", 24, 3, dark_gap=True)
    kept = keeping.score(video)
    assert all(t.distances is not None for t in kept.tracks)

    progress, freed = [0], []
    release = WindowStream.release_rows

    def spy(self):
        rows = weakref.ref(self.search.rows._buf)
        release(self)
        gc.collect()
        freed.append((progress[0], rows() is None))

    monkeypatch.setattr(WindowStream, "release_rows", spy)
    ck = None
    if every_seconds:
        ck = Checkpoint(tmp_path / "s.sqlite", (str(video), ""), "r", "i", every_seconds=10)
    r = scorer.score(
        video, checkpoint=ck, progress=lambda done, total: progress.__setitem__(0, done)
    )
    assert _numbers(r) == _numbers(kept)
    assert all(t.distances is None and t.frame_energy is None and t.segments for t in r.tracks)
    # every track's rows were freed as it ended (no checkpoint) or at the next save; the
    # last track ends with the video, after the last save: its rows go when score returns
    assert len(r.tracks) >= 3 and all(gone for _, gone in freed)
    assert len(freed) == len(r.tracks) - (1 if every_seconds else 0)
    lag = 1 if every_seconds is None else 10 * 25
    for (at, _), t in zip(freed, r.tracks):
        assert r.n_frames + t.end_frame <= at + 1 <= r.n_frames + t.end_frame + lag + 1

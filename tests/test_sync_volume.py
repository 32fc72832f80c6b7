"""Issue 13: ``sync`` over many videos in one resumable run (acceptance 1 and 2).

The videos are short cuts of the shared real clips (``media.cut_clip``), plus the three
kinds of bad input a folder of real files holds: a truncated file, a text file named
.mp4 and a video without audio.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import CLIPS
from media import cut_clip, noise_frames, write_video

N_GOOD = 20
CUT = 30  # frames per cut: 25 SyncNet windows


def _make_set(folder: Path) -> dict[str, list[Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    good = []
    sources = [c for c in CLIPS if "vfr" not in c.stem]
    for i in range(N_GOOD):
        src = sources[i % len(sources)]
        start = (i // len(sources)) * CUT
        good.append(cut_clip(src, folder / f"{src.stem}_{start:03d}.mp4", start, CUT))
    # the index first (faststart), so that the cut file opens and is found truncated
    whole = cut_clip(
        sources[0],
        folder.parent / "whole_faststart.mp4",
        0,
        CUT,
        container_options={"movflags": "+faststart"},
    )
    data = whole.read_bytes()
    whole.unlink()
    bad = [folder / "zz_truncated.mp4", folder / "zz_text.mp4", folder / "zz_silent.mp4"]
    bad[0].write_bytes(data[: len(data) * 40 // 100])
    bad[1].write_text("this is not a video\n")
    write_video(bad[2], noise_frames(CUT, 64, 64))  # no audio stream
    return {"good": good, "bad": bad}


@pytest.fixture(scope="module")
def media(tmp_path_factory, model_dir):
    folder = tmp_path_factory.mktemp("volume") / "videos"
    return folder, _make_set(folder)


@pytest.fixture(scope="module")
def env(model_dir):
    return {**os.environ, "LIPLEAK_MODEL_DIR": str(model_dir)}


def sync_cmd(*args) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lipleak",
        "sync",
        *map(str, args),
        "--syncnet",
        "syncnet_v2_random",
    ]


def run(env, *args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(sync_cmd(*args), env=env, capture_output=True, text=True, timeout=timeout)


ROW_FIELDS = (
    "video, audio, settings_hash, inputs_hash, status, reason, offset, lse_c, lse_d, "
    "n_frames, n_tracks, tracks, detail"
)


def db_rows(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return sorted(con.execute(f"SELECT {ROW_FIELDS} FROM videos").fetchall())
    finally:
        con.close()


def db_count(db: Path) -> int:
    try:
        con = sqlite3.connect(db, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM videos").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


# -- acceptance 1 ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def uninterrupted(media, env, tmp_path_factory):
    folder, _ = media
    out = tmp_path_factory.mktemp("whole")
    proc = run(env, folder, "--db", out / "db.sqlite", "--csv", out / "rows.csv", "--workers", "2")
    return out, proc


@pytest.mark.slow
def test_folder_with_bad_files_gives_rows_and_exit_4(media, uninterrupted):
    folder, files = media
    out, proc = uninterrupted
    assert proc.returncode == 4, proc.stderr
    rows = list(csv.DictReader((out / "rows.csv").open()))
    videos = [r for r in rows if r["track"] == "video"]
    assert len(videos) == N_GOOD + 3
    ok = [r for r in videos if r["status"] == "ok"]
    failed = {Path(r["video"]).name: r for r in videos if r["status"] != "ok"}
    assert len(ok) == N_GOOD
    assert set(failed) == {p.name for p in files["bad"]}
    assert "truncated" in failed["zz_truncated.mp4"]["reason"]
    for r in failed.values():
        assert r["reason"] and "\n" not in r["reason"] and r["lse_c"] == ""
    # every failure is a printed row as well, and the summary counts it
    for name in failed:
        assert name in proc.stdout
    assert f"{N_GOOD + 3} videos" in proc.stdout and "3 failed" in proc.stdout


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_rows(media, uninterrupted, env, tmp_path):
    folder, _ = media
    whole, _ = uninterrupted
    db = tmp_path / "db.sqlite"
    proc = subprocess.Popen(
        sync_cmd(folder, "--db", db, "--workers", "2", "--quiet"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while db_count(db) < 6:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    killed_at = db_count(db)
    assert 6 <= killed_at < N_GOOD + 3, "killed midway"
    again = run(env, folder, "--db", db, "--csv", tmp_path / "rows.csv")
    assert again.returncode == 4, again.stderr
    assert f"skipped {killed_at} already done" in again.stdout
    assert db_rows(db) == db_rows(whole / "db.sqlite")  # each row once, equal to one run
    assert (tmp_path / "rows.csv").read_text() == (whole / "rows.csv").read_text()
    third = run(env, folder, "--db", db)
    assert third.returncode == 4
    assert "scored 0, skipped 23 already done, failed 0" in third.stdout
    assert db_rows(db) == db_rows(whole / "db.sqlite")


# -- acceptance 2 ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def few(media):
    _, files = media
    return files["good"][:5] + files["bad"][:1]


def _alone(scorer, videos) -> dict:
    from lipleak.errors import InputError

    out = {}
    for v in videos:
        try:
            out[str(v)] = scorer.score(v).to_dict(verbose=True)
        except InputError as exc:
            out[str(v)] = (exc.status, str(exc))
    return out


def _piped(scorer, videos, workers, replicas=None) -> dict:
    from lipleak.errors import InputError
    from lipleak.sync.pipeline import SyncPipeline

    jobs = [SimpleNamespace(video=v, audio=None) for v in videos]
    with SyncPipeline(scorer, workers=workers, replicas=replicas) as pipe:
        got = list(pipe.run(jobs))
        stats = pipe.tower.stats
        if replicas and scorer.syncnet.lips.describe().backend == "cpu":
            assert len(pipe.tower.replicas) == replicas
    assert len(got) == len(videos)
    out = {}
    for job, o in got:
        out[str(job.video)] = (
            (o.status, str(o)) if isinstance(o, InputError) else o.to_dict(verbose=True)
        )
    return out, stats


@pytest.mark.parametrize(
    "mode, workers, batch_size, replicas",
    [
        ("prealigned", 1, 64, 1),
        ("prealigned", 3, 7, 2),  # two single-threaded tower sessions at once
        ("prealigned", 4, 64, None),
        ("detect", 2, 16, 1),
    ],
)
def test_pipeline_rows_equal_single_video_scoring(
    model_dir, few, mode, workers, batch_size, replicas
):
    from lipleak.sync import SyncScorer, SyncSettings

    kw = {"min_track": 10, "min_face_size": 20.0} if mode == "detect" else {}
    single = SyncScorer(SyncSettings(syncnet="syncnet_v2_random", mode=mode, batch_size=32, **kw))
    want = _alone(single, few)
    scorer = SyncScorer(
        SyncSettings(syncnet="syncnet_v2_random", mode=mode, batch_size=batch_size, **kw)
    )
    got, stats = _piped(scorer, few, workers, replicas)
    assert got == want  # bit for bit: every float of every track, mdist and fconf included
    assert sum(isinstance(v, dict) for v in got.values()) >= 4
    assert stats.windows > 0 and stats.batches > 0


def test_batches_mix_videos_when_they_are_short(model_dir, few):
    """Four short videos at once and a batch larger than each: the tower's batches hold
    windows of several videos (requests), and the numbers still equal scoring alone."""
    from lipleak.sync import SyncScorer, SyncSettings

    scorer = SyncScorer(SyncSettings(syncnet="syncnet_v2_random", batch_size=128))
    want = _alone(scorer, few[:4])
    got, stats = _piped(scorer, few[:4], workers=4)
    assert got == want
    assert stats.mixed_batches >= 1
    assert stats.batches < 4


def test_pipeline_passes_on_errors_and_stops_on_bugs(model_dir, few):
    from lipleak.sync import SyncScorer, SyncSettings
    from lipleak.sync.pipeline import SyncPipeline

    scorer = SyncScorer(SyncSettings(syncnet="syncnet_v2_random"))
    jobs = [SimpleNamespace(video=v, audio=None) for v in few[:2]]
    jobs.append(SimpleNamespace(video=None, audio=None))  # a bug, not a bad input
    with SyncPipeline(scorer, workers=2) as pipe, pytest.raises(TypeError):
        list(pipe.run(jobs))


@pytest.mark.slow
def test_cli_rows_equal_single_video_sync(media, env, tmp_path):
    _, files = media
    videos = files["good"][:3]
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"{v}\n" for v in videos))
    proc = run(env, f"@{lst}", "--jsonl", tmp_path / "rows.jsonl", "--batch-size", "7")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert [Path(r["video"]).name for r in rows] == [v.name for v in videos]
    for v, row in zip(videos, rows, strict=True):
        one = run(env, v, "--json")
        assert one.returncode == 0, one.stderr
        want = json.loads(one.stdout)["result"]
        assert (row["offset"], row["lse_c"], row["lse_d"], row["n_frames"]) == (
            want["offset"],
            want["lse_c"],
            want["lse_d"],
            want["n_frames"],
        )
        assert [(t["offset"], t["lse_c"], t["lse_d"]) for t in row["tracks"]] == [
            (t["offset"], t["lse_c"], t["lse_d"]) for t in want["tracks"]
        ]


@pytest.mark.slow
def test_audio_dir_pairs_by_stem_and_a_missing_audio_is_a_row(media, env, tmp_path):
    from lipleak.io.audio import load_audio, write_wav

    _, files = media
    videos = tmp_path / "videos"
    videos.mkdir()
    a, b = files["good"][:2]
    for v in (a, b):
        os.link(v, videos / v.name)
    audio = tmp_path / "audio"
    audio.mkdir()
    write_wav(audio / f"{a.stem}.wav", load_audio(b))  # a's video, b's audio
    proc = run(env, videos, "--audio-dir", audio, "--jsonl", tmp_path / "rows.jsonl")
    assert proc.returncode == 4, proc.stderr
    rows = {Path(r["video"]).name: r for r in map(json.loads, (tmp_path / "rows.jsonl").open())}
    assert rows[a.name]["status"] == "ok"
    assert Path(rows[a.name]["audio"]) == (audio / f"{a.stem}.wav").resolve()
    assert rows[b.name]["status"] == "missing" and "no such audio file" in rows[b.name]["reason"]
    # the paired audio is what was scored: the same numbers as --audio on the one video
    one = run(env, videos / a.name, "--audio", audio / f"{a.stem}.wav", "--json")
    want = json.loads(one.stdout)["result"]
    assert (rows[a.name]["lse_c"], rows[a.name]["lse_d"]) == (want["lse_c"], want["lse_d"])


@pytest.mark.slow
def test_keep_list_thresholds(media, uninterrupted, env, tmp_path):
    folder, _ = media
    whole, _ = uninterrupted
    rows = [
        r for r in csv.DictReader((whole / "rows.csv").open())
        if r["track"] == "video" and r["status"] == "ok"
    ]  # fmt: skip
    cut = sorted(float(r["lse_c"]) for r in rows)[len(rows) // 2]
    keep = tmp_path / "keep.txt"
    proc = run(
        env, folder, "--db", whole / "db.sqlite", "--keep-list", keep, "--min-lse-c", cut,
        "--max-abs-offset", "15",
    )  # fmt: skip
    assert proc.returncode == 4 and "scored 0," in proc.stdout  # all done: nothing rescored
    want = sorted(
        r["video"] for r in rows if float(r["lse_c"]) >= cut and abs(int(r["offset"])) <= 15
    )
    assert sorted(keep.read_text().splitlines()) == want and want


def test_pipeline_audio_tower_is_single_threaded_with_the_same_bits(model_dir):
    """The workers' audio tower on the CPU: a one-thread session of its own (no spinning
    pool beside the lip tower's sessions), giving the tower's own bits; on any other
    backend the tower itself."""
    import numpy as np

    from lipleak.io.audio import load_audio
    from lipleak.metrics.sync import mfcc_windows
    from lipleak.models.syncnet import SyncNet
    from lipleak.runtime.base import RuntimeInfo
    from lipleak.sync.pipeline import SharedLipTower

    net = SyncNet.load("syncnet_v2_random", backend="cpu")
    mfcc = mfcc_windows(load_audio(CLIPS[0]), 40)
    tower = SharedLipTower(net, batch_size=8, replicas=1)
    try:
        audio = tower._audio
        assert audio is not net.audio
        assert audio.session.get_session_options().intra_op_num_threads == 1
        np.testing.assert_array_equal(tower.embed_audio(mfcc), net.embed_audio(mfcc))
    finally:
        tower.close()

    class Gpu:
        def describe(self):
            return RuntimeInfo("tensorrt", "audio.onnx", "0" * 64, {})

    gpu = SyncNet("ckpt", "0" * 64, None, net.lips, Gpu())
    assert gpu.audio_for_threads() is gpu.audio

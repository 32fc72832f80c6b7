"""A long video killed part-way (SIGKILL) and rerun goes on from its checkpoint and ends
with the numbers of an uninterrupted run, bit for bit; another setting starts from zero.

The video is two minutes of the shared real clips at a small size (the cost is SyncNet's
per window, not the frame size), scored with the random-weight SyncNet through the CLI.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from conftest import CLIPS_DIR
from lipleak.io.audio import load_audio
from lipleak.io.frames import iter_frames
from media import write_video

pytestmark = pytest.mark.slow
SECONDS = 120
EVERY = 10  # --checkpoint-every, seconds of video


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    frames, audio = [], []
    names = ["real05_cnn_anchor", "real07_reagan", "real08_feifeili", "real09_vox_rdj"]
    while len(frames) < SECONDS * 25:
        name = names[len(audio) % len(names)]
        clip = [
            cv2.resize(f, (96, 96), interpolation=cv2.INTER_AREA)
            for f in iter_frames(CLIPS_DIR / f"{name}.mp4", fps=25.0)
        ]
        frames += clip
        audio.append(load_audio(CLIPS_DIR / f"{name}.mp4")[: len(clip) * 640])
    n = SECONDS * 25
    path = tmp_path_factory.mktemp("long") / "episode.mp4"
    return write_video(path, frames[:n], audio=np.concatenate(audio)[: n * 640])


def _cmd(video, db, *more) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lipleak",
        "sync",
        str(video),
        "--db",
        str(db),
        "--syncnet",
        "syncnet_v2_random",
        "--checkpoint-every",
        str(EVERY),
        "--quiet",
        *more,
    ]


def _checkpoint_frame(db) -> int:
    try:
        con = sqlite3.connect(db, timeout=1)
        try:
            row = con.execute("SELECT meta FROM checkpoints").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return 0
    return 0 if row is None else json.loads(row[0])["frame"]


def _row(db) -> tuple:
    con = sqlite3.connect(db)
    try:
        return con.execute(
            'SELECT status, "offset", lse_c, lse_d, n_frames, tracks FROM videos'
        ).fetchone()
    finally:
        con.close()


def test_killed_long_video_resumes_from_its_checkpoint(long_video, model_dir, tmp_path):
    env = {**os.environ, "LIPLEAK_MODEL_DIR": str(model_dir)}
    whole = subprocess.run(
        _cmd(long_video, tmp_path / "whole.sqlite"),
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert whole.returncode == 0, whole.stderr
    assert "resuming" not in whole.stderr

    db = tmp_path / "killed.sqlite"
    proc = subprocess.Popen(
        _cmd(long_video, db), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 600
        while _checkpoint_frame(db) < SECONDS * 25 // 2:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    killed_at = _checkpoint_frame(db)
    assert SECONDS * 25 // 2 <= killed_at < SECONDS * 25

    # another setting (vshift) is another run hash: a copy of the killed store is not
    # resumed; the run's first checkpoint is at the first interval again, from frame 0
    db2 = tmp_path / "other.sqlite"
    with sqlite3.connect(db) as src, sqlite3.connect(db2) as dst:
        src.backup(dst)
    other = subprocess.Popen(
        _cmd(long_video, db2, "--vshift", "7"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while _checkpoint_frame(db2) != EVERY * 25:
            assert other.poll() is None
            time.sleep(0.05)
    finally:
        other.kill()
        _, err = other.communicate()
    assert "resuming" not in err

    again = subprocess.run(
        _cmd(long_video, db), env=env, capture_output=True, text=True, timeout=900
    )
    assert again.returncode == 0, again.stderr
    assert f"resuming from its checkpoint at frame {killed_at} " in again.stderr
    assert _row(db) == _row(tmp_path / "whole.sqlite")  # the same numbers, bit for bit
    assert _checkpoint_frame(db) == 0  # the row's commit removed the checkpoint

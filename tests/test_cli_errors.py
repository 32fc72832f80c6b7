"""Issue 2, acceptance 6: bad input gives one line naming the file and the cause, a
non-zero exit, and never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import SHARED_MODELS
from media import noise_frames, speech_like, write_video


@pytest.fixture(scope="module")
def model_env(model_dir):
    return {**os.environ, "LIPLEAK_MODEL_DIR": str(model_dir)}


def run_sync(env, *args):
    cmd = [
        sys.executable,
        "-m",
        "lipleak",
        "sync",
        *map(str, args),
        "--syncnet",
        "syncnet_v2_random",
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def assert_one_line_error(proc, path, *words):
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    assert str(path) in err, err
    for w in words:
        assert w in err.lower(), err


def test_missing_file(model_env, tmp_path):
    p = tmp_path / "nope.mp4"
    assert_one_line_error(run_sync(model_env, p), p, "no such file")


def test_not_a_video(model_env, tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video\n")
    assert_one_line_error(run_sync(model_env, p), p)


def test_zero_byte_file(model_env, tmp_path):
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    assert_one_line_error(run_sync(model_env, p), p)


def test_no_audio_stream(model_env, tmp_path):
    p = write_video(tmp_path / "silent_container.mp4", noise_frames(30))
    assert_one_line_error(run_sync(model_env, p), p, "audio")


def test_too_few_frames(model_env, tmp_path):
    p = write_video(tmp_path / "four.mp4", noise_frames(4), audio=speech_like(1.0))
    assert_one_line_error(run_sync(model_env, p), p, "too short")


def test_too_little_audio(model_env, tmp_path):
    p = write_video(tmp_path / "shortaudio.mp4", noise_frames(50), audio=speech_like(0.15))
    assert_one_line_error(run_sync(model_env, p), p, "too short")


def test_no_face_in_detect_mode(model_env, tmp_path):
    frames = np.full((130, 128, 128, 3), 90, np.uint8)
    p = write_video(tmp_path / "wall.mp4", frames, audio=speech_like(5.2))
    assert_one_line_error(run_sync(model_env, p, "--mode", "detect"), p, "face")


def test_missing_model_is_one_line(tmp_path):
    env = {**os.environ, "LIPLEAK_MODEL_DIR": str(tmp_path / "empty")}
    clip = sorted((SHARED_MODELS.parent / "data" / "clips").glob("*.mp4"))[0]
    proc = run_sync(env, clip)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "models fetch" in proc.stderr

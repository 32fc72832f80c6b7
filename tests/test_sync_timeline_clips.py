"""SPEC §11 on real clips (slow tier): the sign of av_offset_ms when the audio is delayed on
purpose, and detect mode's no_face segments."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import CLIPS_DIR
from lipleak.io.audio import load_audio
from media import cut_clip, write_video

pytestmark = pytest.mark.slow

CLIP = CLIPS_DIR / "real09_vox_rdj.mp4"  # an aligned face crop: prealigned mode fits it


@pytest.fixture(scope="module")
def scorer(model_dir):
    from lipleak.sync import SyncScorer, SyncSettings

    return SyncScorer(SyncSettings(syncnet="syncnet_v2_random", segment=1.0, hop=0.5))


def test_delayed_audio_moves_every_segment_towards_lag(scorer):
    """The audio delayed by 3 frames (silence put in front): audio window j is the
    original's j - 3, so a segment's distances at shift s are the original's at s - 3, and
    its best shift moves by 3: av_offset_ms changes by -120 ms, the audio lags, negative as
    stated. The random-weight SyncNet's own offsets mean nothing, so the test compares with
    the undelayed clip, on the segments whose rows never meet the silence put in front
    (first window >= 15 + 3) and whose best shift stays in range (a best shift at the
    edge of ±15 may move to a shift the original search did not have)."""
    delay, vshift = 3, 15
    audio = load_audio(CLIP)[: 125 * 640]  # scoring stops where the audio ends
    delayed = np.concatenate([np.zeros(delay * 640, np.int16), audio[: -delay * 640]])
    base, late = scorer.score(CLIP, audio), scorer.score(CLIP, delayed)
    pairs = [
        (a, b)
        for a, b in zip(base.tracks[0].segments, late.tracks[0].segments, strict=True)
        if a.first_window >= vshift + delay and -vshift + delay <= a.offset < vshift
    ]
    assert len(pairs) >= 3
    for a, b in pairs:
        assert b.offset == a.offset - delay
        assert b.av_offset_ms - a.av_offset_ms == -40.0 * delay
    assert "audio leads" in late.timeline["sign"]


def test_detect_mode_reports_the_stretch_without_a_face(model_dir, tmp_path):
    """A real face for 60 frames, then 40 frames of grey: one no_face segment over them."""
    import json
    import subprocess
    import sys

    from lipleak.io.frames import iter_frames

    part = cut_clip(CLIPS_DIR / "real03_aoc.mp4", tmp_path / "face.mp4", 0, 60, width=320)
    frames = list(iter_frames(part, fps=25.0))
    frames += [np.full_like(frames[0], 128) for _ in range(40)]
    audio = load_audio(part)
    audio = np.concatenate([audio, (audio[: 40 * 640] // 2)])
    video = write_video(tmp_path / "half.mp4", frames, audio=audio)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lipleak",
            "sync",
            str(video),
            "--syncnet",
            "syncnet_v2_random",
            "--mode",
            "detect",
            "--min-track",
            "25",
            "--min-face-size",
            "20",
            "--segment",
            "1.0",
            "--hop",
            "0.5",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)["result"]
    (track,) = r["tracks"]
    assert track["segments"] and track["end_frame"] < 60
    (gap,) = r["no_face"]
    assert (gap["start_frame"], gap["end_frame"]) == (track["end_frame"] + 1, 99)
    assert gap["status"] == "no_face" and gap["offset"] is None
    assert r["timeline"]["segments"]["no_face"] == 1

"""Issue 24, item 1: a video's own audio on its timeline, as the ffmpeg CLI puts it there.

Oracle: the ffmpeg binary (imageio-ffmpeg's, as ``test_io_audio``) with the reference
tool's ``-async 1`` (``aresample=async=1:first_pts=0``: a leading gap filled with silence
on the file's timeline), and the time of the first video frame on that timeline from its
``showinfo`` filter; the audio on the video's timeline is that output from there on. The
files are muxed by the same binary: an mp4 whose audio has an edit list (empty edit),
Matroska with the audio 0.5 s late and 0.3 s early, Opus in WebM (pre-skip).
"""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf

from conftest import CLIPS_DIR
from lipleak.io.audio import load_audio
from lipleak.io.timeline import audio_shift
from media import cut_clip, noise_frames, write_video

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()

# name: (ffmpeg input options for the video, for the audio, codecs, suffix, shift in s)
CASES = {
    "mp4_edit_list": ([], ["-itsoffset", "0.5"], ["-c:v", "copy", "-c:a", "aac"], ".mp4"),
    "mkv_late": ([], ["-itsoffset", "0.5"], ["-c:v", "copy", "-c:a", "aac"], ".mkv"),
    "mkv_early": (["-itsoffset", "0.3"], [], ["-c:v", "copy", "-c:a", "aac"], ".mkv"),
    "webm_opus": ([], [], ["-c:v", "libvpx", "-c:a", "libopus"], ".webm"),
}


def ffmpeg(*args) -> str:
    proc = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-y", *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stderr


def mux(video, audio, case: str, out_dir):
    v_opts, a_opts, codecs, suffix = CASES[case]
    out = out_dir / f"{case}{suffix}"
    ffmpeg(
        "-v",
        "error",
        *v_opts,
        "-i",
        video,
        *a_opts,
        "-i",
        audio,
        "-map",
        "0:v",
        "-map",
        "1:a",
        *codecs,
        out,
    )
    return out


def on_video_timeline(path, tmp_path) -> np.ndarray:
    """The ffmpeg CLI's ``-async 1`` audio, from the first video frame on."""
    wav = tmp_path / f"{path.stem}_async.wav"
    ffmpeg(
        *("-v", "error", "-i", path, "-vn", "-af", "aresample=async=1:first_pts=0"),
        *("-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", wav),
    )
    info = ffmpeg(
        "-i", path, "-map", "0:v:0", "-vf", "showinfo", "-frames:v", "1", "-f", "null", "-"
    )
    start = Fraction(re.search(r"pts_time:([0-9.]+)", info).group(1))
    data, rate = sf.read(str(wav), dtype="int16")
    assert rate == 16000
    return data[round(start * 16000) :]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("timeline")
    video = write_video(d / "v.mp4", noise_frames(50, 64, 64))
    rng = np.random.default_rng(1)
    t = np.arange(48000 * 2) / 48000
    stereo = 0.3 * np.sin(2 * np.pi * 300 * t)[:, None] * [1.0, 0.6]
    sf.write(str(d / "a.wav"), stereo + 0.05 * rng.standard_normal((t.size, 2)), 48000)
    return d, video, d / "a.wav"


@pytest.mark.parametrize("case", sorted(CASES))
def test_audio_on_the_video_timeline_equals_ffmpeg(case, sources, tmp_path):
    d, video, audio = sources
    path = mux(video, audio, case, tmp_path)
    shift = audio_shift(path)
    expected = {"mp4_edit_list": 0.45, "mkv_late": 0.45, "mkv_early": -0.35}.get(case)
    if expected is not None:  # the AAC encoder's priming moves it by < 1024 samples
        assert abs(float(shift) - expected) <= 0.05 + 1024 / 48000, shift
    ours = load_audio(path, shift=shift)
    ref = on_video_timeline(path, tmp_path)
    assert len(ours) == len(ref)
    np.testing.assert_array_equal(ours, ref)
    if case != "webm_opus":  # the samples without the shift are not on the timeline
        assert not np.array_equal(load_audio(path)[: len(ref)], ref[: len(load_audio(path))])


@pytest.mark.slow
def test_delayed_audio_scores_as_ffmpeg_places_it(tmp_path, model_dir):
    """A real clip muxed with its audio 0.5 s late (``-itsoffset``, as dubs are muxed):
    scored as if its audio were the CLI's ``-async 1`` WAV passed with ``--audio``, the
    shift in the result (before, it scored exactly like the in-sync original: the samples
    without the shift, ``test_audio_on_the_video_timeline_equals_ffmpeg``)."""
    from lipleak.sync import SyncScorer, SyncSettings

    clip = cut_clip(CLIPS_DIR / "real03_aoc.mp4", tmp_path / "cut.mp4", 0, 40, width=128)
    late = tmp_path / "late.mkv"
    ffmpeg(
        "-v",
        "error",
        "-i",
        clip,
        "-itsoffset",
        "0.5",
        "-i",
        clip,
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c",
        "copy",
        late,
    )
    wav = tmp_path / "late_async.wav"
    sf.write(str(wav), on_video_timeline(late, tmp_path), 16000, subtype="PCM_16")
    scorer = SyncScorer(SyncSettings(syncnet="syncnet_v2_random"))
    got = scorer.score(late)
    want = scorer.score(late, wav)
    assert got.audio_shift_s == pytest.approx(0.5, abs=1024 / 44100)
    assert (got.offset, got.lse_c, got.lse_d) == (want.offset, want.lse_c, want.lse_d)

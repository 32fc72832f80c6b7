"""Issue 12, acceptance 2: ``--reference-frames`` reads what the user's ffmpeg writes.

The reference tool runs ``ffmpeg -i V -threads 1 -f image2 %06d.jpg`` with the ffmpeg on
PATH and reads the files with ``cv2.imread``; our frames must be those, byte for byte, on
every shared clip. CI installs Debian's ffmpeg (.ci/run); without one on PATH these tests
skip, except the fallback's, which hides it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from itertools import islice

import av
import cv2
import numpy as np
import pytest

from conftest import CLIPS, CLIPS_DIR
from lipleak.errors import LipleakError
from lipleak.io import ffmpeg_jpeg
from lipleak.io.frames import iter_frames
from lipleak.io.video import iter_av_frames, probe
from lipleak.sync import SyncSettings
from media import noise_frames, speech_like, write_video

SYSTEM_FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(
    SYSTEM_FFMPEG is None,
    reason="no ffmpeg on PATH: install the system's (Debian: apt-get install ffmpeg; .ci/run "
    "does) to compare --reference-frames with the reference tool's extraction",
)
N = 25
VFR = CLIPS_DIR / "raw_vfr_suit_man.mp4"
CFR_CLIPS = [c for c in CLIPS if c != VFR]


def reference_jpegs(video, out_dir, n: int = N) -> list[bytes]:
    """syncnet_python's extraction (``-frames:v`` only shortens it: rate control is causal)."""
    out_dir.mkdir()
    subprocess.run(
        [SYSTEM_FFMPEG, "-v", "error", "-y", "-i", str(video), "-threads", "1"]
        + ["-frames:v", str(n), "-f", "image2", str(out_dir / "%06d.jpg")],
        check=True,
    )
    return [p.read_bytes() for p in sorted(out_dir.glob("*.jpg"))]


@needs_ffmpeg
@pytest.mark.parametrize("clip", CFR_CLIPS, ids=lambda p: p.stem)
def test_frames_identical_to_reference_extraction(clip, tmp_path):
    ref = reference_jpegs(clip, tmp_path / "ref")
    assert len(ref) == N
    ours = list(islice(iter_frames(clip, reference_frames=True, ffmpeg=SYSTEM_FFMPEG), N))
    for i, frame in enumerate(ours):
        assert np.array_equal(frame, cv2.imread(str(tmp_path / "ref" / f"{i + 1:06d}.jpg"))), i
    # and the JPEGs themselves: image2pipe writes the image2 files' bytes
    jpegs = list(islice(ffmpeg_jpeg._direct_jpegs(clip, SYSTEM_FFMPEG), N))
    assert jpegs == ref


@needs_ffmpeg
def test_vfr_clip_is_the_reference_extraction_of_its_25fps_frames(tmp_path):
    """Not 25 fps: lipleak's 25 fps frames, encoded by the binary as the reference would
    encode a 25 fps file holding them (here: a lossless FFV1 file)."""
    lossless = tmp_path / "vfr25.mkv"
    with av.open(str(lossless), "w") as out:
        s = out.add_stream("ffv1", rate=25)
        for i, frame in enumerate(iter_av_frames(VFR)):
            if i == 0:
                s.width, s.height, s.pix_fmt = frame.width, frame.height, frame.format.name
            if i == N:
                break
            f = av.VideoFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name)
            f.pts = i
            out.mux(s.encode(f))
        out.mux(s.encode())
    assert len(reference_jpegs(lossless, tmp_path / "ref")) == N
    ours = list(islice(iter_frames(VFR, reference_frames=True, ffmpeg=SYSTEM_FFMPEG), N))
    for i, frame in enumerate(ours):
        assert np.array_equal(frame, cv2.imread(str(tmp_path / "ref" / f"{i + 1:06d}.jpg"))), i


@needs_ffmpeg
def test_vfr_clip_keeps_the_25fps_frame_count():
    n = sum(1 for _ in iter_frames(VFR, reference_frames=True, ffmpeg=SYSTEM_FFMPEG))
    assert n == probe(VFR).n_frames == sum(1 for _ in iter_frames(VFR))


@needs_ffmpeg
def test_raw_video_path_equals_direct_path():
    """The raw-video pipe (other frame rates) encodes 25 fps input as the direct command."""
    clip = CLIPS_DIR / "real03_aoc.mp4"
    piped = ffmpeg_jpeg.iter_jpeg_frames(clip, SYSTEM_FFMPEG, resample=True)
    direct = iter_frames(clip, reference_frames=True, ffmpeg=SYSTEM_FFMPEG)
    for i, (a, b) in enumerate(zip(islice(piped, N), islice(direct, N), strict=True)):
        assert np.array_equal(a, b), i


@needs_ffmpeg
@pytest.mark.parametrize("resample", [False, True], ids=["direct", "raw-video"])
def test_stopping_early_ends_ffmpeg(resample):
    it = ffmpeg_jpeg.iter_jpeg_frames(CLIPS_DIR / "real05_cnn_anchor.mp4", SYSTEM_FFMPEG, resample)
    next(it)
    it.close()  # kills ffmpeg, joins the writer thread; must not hang or raise


@needs_ffmpeg
@pytest.mark.parametrize("resample", [False, True], ids=["direct", "raw-video"])
def test_streaming_bounded_memory(resample):
    import tracemalloc

    clip = CLIPS_DIR / "real05_cnn_anchor.mp4"  # 250 frames of 512x512x3 = 197 MB in total
    tracemalloc.start()
    try:
        n = 0
        for frame in ffmpeg_jpeg.iter_jpeg_frames(clip, SYSTEM_FFMPEG, resample):
            n += 1
            del frame
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 250
    assert peak < 16 * 512 * 512 * 3  # a handful of frames, not the video


@needs_ffmpeg
def test_ffmpeg_failure_is_an_input_error(tmp_path):
    from lipleak.errors import InputError

    clip = write_video(tmp_path / "a.mp4", noise_frames(10))
    not_ffmpeg = tmp_path / "ffmpeg"
    not_ffmpeg.write_text("#!/bin/sh\necho 'bad things' >&2\nexit 3\n")
    not_ffmpeg.chmod(0o755)
    with pytest.raises(InputError, match="exit 3.*bad things"):
        list(iter_frames(clip, reference_frames=True, ffmpeg=str(not_ffmpeg)))


@needs_ffmpeg
def test_mkv_with_audio_longer_than_video_is_not_truncated(tmp_path):
    """Issue 24, item 5: a Matroska duration is the longest stream's (here the audio's,
    3 s); the video's 30 frames are all there is, and they are the reference's JPEGs.
    Before: "file is truncated: ffmpeg decoded 30 of 75 frames"."""
    clip = write_video(
        tmp_path / "long_audio.mkv", noise_frames(30, 64, 64), audio=speech_like(3.0)
    )
    assert probe(clip).n_frames > 30 + 25 * 0.5  # the container states the audio's length
    ours = list(ffmpeg_jpeg.iter_jpeg_frames(clip, SYSTEM_FFMPEG))
    ref = reference_jpegs(clip, tmp_path / "ref", n=1000)
    assert len(ours) == len(ref) >= 30  # (ffmpeg may repeat a frame of ms timestamps)
    for a, b in zip(ours, ref, strict=True):
        assert np.array_equal(a, cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR))


def test_split_jpegs():
    """Markers inside header segments and stuffed or restart bytes in the scan are data."""
    import io

    def jpeg(payload: bytes) -> bytes:
        com = b"\xff\xfe\x00\x06\xff\xd9\xff\xd9"  # a comment holding end-of-image bytes
        sos = b"\xff\xda\x00\x03\x01"
        return b"\xff\xd8" + com + sos + payload + b"\xff\xd9"

    a, b = jpeg(b"\x01\xff\x00\x02\xff\xd3\x03"), jpeg(b"\xff\x00" * 3)
    stream = io.BytesIO(a + b + a)
    ffmpeg_jpeg.READ_SIZE, old = 5, ffmpeg_jpeg.READ_SIZE  # JPEGs cut across reads
    try:
        assert list(ffmpeg_jpeg.split_jpegs(stream)) == [a, b, a]
        with pytest.raises(RuntimeError, match="ends inside"):
            list(ffmpeg_jpeg.split_jpegs(io.BytesIO(a + b[:-1])))
    finally:
        ffmpeg_jpeg.READ_SIZE = old


# ----------------------------------------------------------------- settings, fallback


def test_lossless_settings_hash_unchanged():
    # the hashes of main before the ffmpeg field: stored lossless results stay valid
    assert SyncSettings().hash() == "5120ee5e8c87c7b8"
    # detect mode without shots (--shots none) tracks the whole video as before shots
    assert SyncSettings(mode="detect", vshift=7, shots="none").hash() == "324389c96fe4c7f2"
    assert "ffmpeg" not in SyncSettings().hashed_dict()
    with pytest.raises(LipleakError, match="reference_frames"):
        SyncSettings(ffmpeg_path="/usr/bin/ffmpeg")


def test_encoder_version_is_hashed_path_is_not():
    a = SyncSettings(reference_frames=True, ffmpeg="ffmpeg version 5.1", ffmpeg_path="/a")
    b = SyncSettings(reference_frames=True, ffmpeg="ffmpeg version 5.1", ffmpeg_path="/b")
    c = SyncSettings(reference_frames=True, ffmpeg="ffmpeg version 8.0", ffmpeg_path="/a")
    assert a.hash() == b.hash() != c.hash()


@needs_ffmpeg
def test_settings_find_the_binary_on_path():
    s = SyncSettings(reference_frames=True).with_ffmpeg()
    first = subprocess.run([SYSTEM_FFMPEG, "-version"], capture_output=True, text=True).stdout
    assert first.startswith(s.ffmpeg) and s.ffmpeg.startswith("ffmpeg version ")
    assert s.ffmpeg_path == os.path.abspath(SYSTEM_FFMPEG)
    # settings made where another encoder was found are refused, not silently rehashed
    with pytest.raises(LipleakError, match="this machine has"):
        SyncSettings(reference_frames=True, ffmpeg="ffmpeg version 0.1").with_ffmpeg()


def test_fallback_without_binary_warns_and_is_recorded(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="lipleak.io.ffmpeg_jpeg"):
        s = SyncSettings(reference_frames=True).with_ffmpeg()
    assert s.ffmpeg.startswith("bundled libavcodec ") and s.ffmpeg_path == ""
    assert "no ffmpeg on PATH" in caplog.text
    with pytest.raises(LipleakError, match="no such executable"):
        SyncSettings(reference_frames=True, ffmpeg_path=str(tmp_path / "ffmpeg")).with_ffmpeg()


# ------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def clip_with_audio(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    return write_video(d / "talk.mp4", noise_frames(40), audio=speech_like(1.6))


def run_sync(env, *args):
    cmd = [sys.executable, "-m", "lipleak", "sync", *map(str, args)]
    cmd += ["--syncnet", "syncnet_v2_random", "--json"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_cli_fallback_warns_and_records(model_dir, clip_with_audio, tmp_path):
    env = {**os.environ, "LIPLEAK_MODEL_DIR": str(model_dir), "PATH": str(tmp_path)}
    proc = run_sync(env, clip_with_audio, "--reference-frames")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("warning: no ffmpeg on PATH"), proc.stderr
    out = json.loads(proc.stdout)
    assert out["result"]["frame_path"] == "reference-jpeg-bundled"
    assert out["provenance"]["settings"]["ffmpeg"].startswith("bundled libavcodec ")


@needs_ffmpeg
def test_cli_records_the_ffmpeg_used(model_dir, clip_with_audio):
    env = {**os.environ, "LIPLEAK_MODEL_DIR": str(model_dir)}
    proc = run_sync(env, clip_with_audio, "--reference-frames", "--ffmpeg", SYSTEM_FFMPEG)
    # The only warning is that the checkpoint is the random-weight fixture: no fallback.
    assert proc.returncode == 0, proc.stderr
    assert all("is a test fixture" in line for line in proc.stderr.splitlines()), proc.stderr
    out = json.loads(proc.stdout)
    assert out["result"]["frame_path"] == "reference-jpeg"
    settings = out["provenance"]["settings"]
    assert settings["ffmpeg"] == ffmpeg_jpeg.ffmpeg_version(SYSTEM_FFMPEG)
    assert settings["ffmpeg_path"] == os.path.abspath(SYSTEM_FFMPEG)


def test_cli_ffmpeg_option_errors(model_dir, clip_with_audio, tmp_path):
    env = {**os.environ, "LIPLEAK_MODEL_DIR": str(model_dir)}
    missing = tmp_path / "no-ffmpeg"
    proc = run_sync(env, clip_with_audio, "--reference-frames", "--ffmpeg", missing)
    assert proc.returncode == 1 and str(missing) in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = run_sync(env, clip_with_audio, "--ffmpeg", "ffmpeg")
    assert proc.returncode == 2 and "needs --reference-frames" in proc.stderr, proc.stderr

"""Video decoding vs the ffmpeg binary (png frames, framemd5), VFR resampling, errors."""

from __future__ import annotations

import hashlib
import inspect
import subprocess
import tracemalloc
from fractions import Fraction
from itertools import islice

import av
import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from conftest import CLIPS, CLIPS_DIR
from lipleak.errors import InputError
from lipleak.io.video import iter_frames, probe

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
VFR = CLIPS_DIR / "raw_vfr_suit_man.mp4"
CFR_CLIPS = [c for c in CLIPS if c != VFR]


def ffmpeg(*args: str) -> bytes:
    return subprocess.run(
        [FFMPEG, "-v", "error", "-nostdin", "-y", *args], check=True, capture_output=True
    ).stdout


def ffmpeg_pngs(path, tmp_path, n: int) -> list[np.ndarray]:
    out = tmp_path / path.stem
    out.mkdir()
    ffmpeg("-i", str(path), "-frames:v", str(n), "-f", "image2", str(out / "%06d.png"))
    return [cv2.imread(str(p)) for p in sorted(out.glob("*.png"))]


def framemd5(path, *extra: str) -> list[str]:
    """Per-frame md5 of the CLI's bgr24 frames."""
    text = ffmpeg("-i", str(path), *extra, "-an", "-pix_fmt", "bgr24", "-f", "framemd5", "-")
    return [
        line.rsplit(",", 1)[1].strip()
        for line in text.decode().splitlines()
        if line and not line.startswith("#")
    ]


def md5(a: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.mark.parametrize("name", ["real03_aoc", "real09_vox_rdj", "gen03_suitman_sadtalker"])
def test_frames_equal_ffmpeg_png(name, tmp_path):
    path = CLIPS_DIR / f"{name}.mp4"
    ref = ffmpeg_pngs(path, tmp_path, 25)
    assert len(ref) == 25
    for i, (ours, theirs) in enumerate(zip(islice(iter_frames(path), 25), ref, strict=True)):
        assert ours.dtype == np.uint8 and ours.flags.c_contiguous and ours.shape == theirs.shape
        assert np.array_equal(ours, theirs), f"{name} frame {i}"


def test_all_cfr_clips_every_frame_and_count():
    """Every frame of every 25 fps clip, by md5 against the CLI's CFR output."""
    for path in CFR_CLIPS:
        ref = framemd5(path, "-fps_mode", "cfr")
        ours = [md5(f) for f in iter_frames(path)]
        assert ours == ref, path.name
        info = probe(path)
        assert not info.needs_resample and info.n_frames == len(ref) and info.src_fps == 25.0


def test_vfr_resampled_by_timestamps():
    """Output frame j = last source frame with t <= j/25; count = ceil(end * 25)."""
    src_md5, pts, durs = [], [], []
    with av.open(str(VFR)) as c:
        s = c.streams.video[0]
        tb = s.time_base
        for f in c.decode(s):
            src_md5.append(md5(f.to_ndarray(format="bgr24")))
            pts.append(f.pts)
            durs.append(f.duration)
    # the source frames themselves are the CLI's pixels
    assert src_md5 == framemd5(VFR, "-fps_mode", "passthrough")
    rel = [Fraction(p - pts[0]) * tb for p in pts]
    end = rel[-1] + Fraction(durs[-1]) * tb
    n = 0
    while Fraction(n, 25) < end:
        n += 1
    expect = [max(i for i, t in enumerate(rel) if t <= Fraction(j, 25)) for j in range(n)]
    ours = [md5(f) for f in iter_frames(VFR)]
    assert ours == [src_md5[i] for i in expect]
    assert len(set(expect)) < len(src_md5)  # some source frames were dropped ...
    assert len(expect) > len(src_md5)  # ... and others repeated (22.1 fps -> 25 fps)
    info = probe(VFR)
    assert info.needs_resample and info.n_frames == n == 153
    assert info.has_audio and info.codec == "h264"


@pytest.fixture(scope="module")
def nonsquare(tmp_path_factory):
    d = tmp_path_factory.mktemp("rot")
    base = d / "base.mp4"
    ffmpeg(
        "-i",
        str(CLIPS_DIR / "real07_reagan.mp4"),
        "-t",
        "0.2",
        "-vf",
        "crop=256:200",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-an",
        str(base),
    )
    return base


@pytest.mark.parametrize("deg", [90, -90, 180])
def test_rotation_applied_like_ffmpeg(nonsquare, tmp_path, deg):
    rotated = tmp_path / f"rot{deg}.mp4"
    ffmpeg("-display_rotation", str(deg), "-i", str(nonsquare), "-c", "copy", str(rotated))
    ref = ffmpeg_pngs(rotated, tmp_path, 3)
    info = probe(rotated)
    assert info.rotation == deg % 360
    assert (info.height, info.width) == ref[0].shape[:2]
    ours = list(islice(iter_frames(rotated), 3))
    assert all(np.array_equal(a, b) for a, b in zip(ours, ref, strict=True))
    # the JPEG path rotates too, before encoding, as the CLI does
    ref_jpg = tmp_path / "j"
    ref_jpg.mkdir()
    ffmpeg("-i", str(rotated), "-frames:v", "3", "-f", "image2", str(ref_jpg / "%06d.jpg"))
    jp = list(islice(iter_frames(rotated, reference_frames=True), 3))
    for i, a in enumerate(jp):
        assert np.array_equal(a, cv2.imread(str(ref_jpg / f"{i + 1:06d}.jpg")))


def test_streaming_bounded_memory():
    path = CLIPS_DIR / "real05_cnn_anchor.mp4"  # 250 frames of 512x512x3 = 197 MB in total
    it = iter_frames(path)
    assert inspect.isgenerator(it)
    tracemalloc.start()
    try:
        n = 0
        for frame in it:
            n += 1
            del frame
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 250
    assert peak < 16 * 512 * 512 * 3  # a handful of frames, not the video


def test_errors(tmp_path):
    with pytest.raises(InputError) as e:
        probe(tmp_path / "nope.mp4")
    assert e.value.status == "missing"
    fake = tmp_path / "text.mp4"
    fake.write_text("this is not a video\n" * 50)
    for fn in (probe, lambda p: next(iter_frames(p))):
        with pytest.raises(InputError) as e:
            fn(fake)
        assert e.value.status == "not_a_video"
    with pytest.raises(InputError) as e:
        next(iter_frames(CLIPS_DIR / "real03_aoc.wav"))
    assert e.value.status == "no_video_stream"


def test_truncated_and_corrupt(tmp_path):
    full = tmp_path / "full.mp4"
    ffmpeg(
        "-i",
        str(CLIPS_DIR / "real07_reagan.mp4"),
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-movflags",
        "+faststart",
        "-an",
        str(full),
    )
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    n = 0
    with pytest.raises(InputError) as e:
        for _ in iter_frames(cut):
            n += 1
    assert e.value.status == "decode_error" and 0 < n < 50 and "truncated" in e.value.cause
    bad = bytearray(data)
    rng = np.random.default_rng(0)
    bad[len(data) // 3 : len(data) // 3 + 3000] = rng.integers(
        0, 256, 3000, dtype=np.uint8
    ).tobytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(bad))
    with pytest.raises(InputError) as e:
        for _ in iter_frames(broken):
            pass
    assert e.value.status == "decode_error"

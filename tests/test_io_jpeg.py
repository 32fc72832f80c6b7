"""The in-process MJPEG round trip vs ``ffmpeg -i clip -f image2 %06d.jpg`` (the binary)."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from itertools import islice

import av
import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from conftest import CLIPS, CLIPS_DIR
from lipleak.io.jpeg import MjpegRoundTrip
from lipleak.io.video import iter_frames

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
N = 20
CFR_CLIPS = [c for c in CLIPS if c.stem != "raw_vfr_suit_man"]


def strip_comments(jpeg: bytes) -> bytes:
    """The JPEG without the COM (0xFFFE) segments before its image data: they hold the
    encoder's version string, which is all that may differ from the ffmpeg binary's files."""
    out, i = bytearray(jpeg[:2]), 2
    while i + 4 <= len(jpeg) and jpeg[i] == 0xFF:
        marker = jpeg[i + 1]
        if marker == 0xDA:  # start of scan: entropy-coded data follows, copy the rest
            break
        n = int.from_bytes(jpeg[i + 2 : i + 4], "big")
        if marker != 0xFE:
            out += jpeg[i : i + 2 + n]
        i += 2 + n
    out += jpeg[i:]
    return bytes(out)


def cli_jpegs(src, out_dir, n: int = N, pattern: str = "%06d.jpg", inputs=()) -> list[bytes]:
    out_dir.mkdir()
    subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-nostdin",
            *inputs,
            "-i",
            str(src),
            "-frames:v",
            str(n),
            "-f",
            "image2",
            str(out_dir / pattern),
        ],
        check=True,
    )
    return [p.read_bytes() for p in sorted(out_dir.glob("*.jpg"))]


@pytest.mark.parametrize("clip", CFR_CLIPS, ids=lambda p: p.stem)
def test_bytes_equal_cli(clip, tmp_path):
    """Same JPEG bytes as the CLI (COM segment aside) for the first 20 frames: this pins
    the rate control (q per frame), tables, sampling and the range conversion."""
    ref = cli_jpegs(clip, tmp_path / "ref")
    assert len(ref) == N
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        rt = MjpegRoundTrip(sample_aspect_ratio=s.sample_aspect_ratio)
        ours = [rt.encode(f) for f in islice(c.decode(s), N)]
    for i, (a, b) in enumerate(zip(ours, ref, strict=True)):
        assert strip_comments(a) == strip_comments(b), f"{clip.stem} frame {i}"
        assert a != strip_comments(a)  # there was a COM segment to drop


def test_iter_frames_reference_frames_equal_cv2_imread(tmp_path):
    clip = CLIPS_DIR / "real04_woman_glasses.mp4"
    ref_dir = tmp_path / "ref"
    cli_jpegs(clip, ref_dir)
    ours = list(islice(iter_frames(clip, reference_frames=True), N))
    plain = list(islice(iter_frames(clip), 3))
    for i, frame in enumerate(ours):
        assert np.array_equal(frame, cv2.imread(str(ref_dir / f"{i + 1:06d}.jpg"))), i
    # and the round trip does change pixels (it is lossy)
    assert np.abs(ours[0].astype(int) - plain[0]).mean() > 0.5


def test_bgr_array_input_equals_cli_from_png(tmp_path):
    """BGR arrays take the CLI's path for RGB input (png frames -> jpg)."""
    clip = CLIPS_DIR / "real09_vox_rdj.mp4"
    png_dir = tmp_path / "png"
    png_dir.mkdir()
    subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-i",
            str(clip),
            "-frames:v",
            "5",
            "-f",
            "image2",
            str(png_dir / "%06d.png"),
        ],
        check=True,
    )
    ref = cli_jpegs(png_dir / "%06d.png", tmp_path / "ref", n=5, inputs=("-framerate", "25"))
    rt = MjpegRoundTrip(sample_aspect_ratio=Fraction(1))  # ffmpeg's png carries pHYs 1:1
    for i, b in enumerate(ref):
        frame = cv2.imread(str(png_dir / f"{i + 1:06d}.png"))
        a = rt.encode(frame)
        assert strip_comments(a) == strip_comments(b), i


def test_qscale_equals_cli(tmp_path):
    """run_pipeline.py's detection frames: ``-qscale:v 2 -threads 1``."""
    clip = CLIPS_DIR / "real03_aoc.mp4"
    ref = cli_jpegs(clip, tmp_path / "ref", n=8, inputs=())
    ref_q = tmp_path / "q"
    ref_q.mkdir()
    subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-i",
            str(clip),
            "-qscale:v",
            "2",
            "-threads",
            "1",
            "-frames:v",
            "8",
            "-f",
            "image2",
            str(ref_q / "%06d.jpg"),
        ],
        check=True,
    )
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        rt = MjpegRoundTrip(sample_aspect_ratio=s.sample_aspect_ratio, qscale=2)
        ours = [rt.encode(f) for f in islice(c.decode(s), 8)]
    for i, a in enumerate(ours):
        assert strip_comments(a) == strip_comments((ref_q / f"{i + 1:06d}.jpg").read_bytes()), i
    # q=2 spends far more bits than the rate-controlled default
    assert sum(map(len, ours)) > 1.5 * sum(map(len, ref))


def test_strip_comments():
    body = b"\xff\xdb\x00\x04ab" + b"\xff\xda\x00\x03x\xff\xfe\x00"  # FFFE after SOS is data
    jpeg = b"\xff\xd8" + b"\xff\xfe\x00\x05abc" + body
    assert strip_comments(jpeg) == b"\xff\xd8" + body
    assert strip_comments(b"\xff\xd8" + body) == b"\xff\xd8" + body


def test_size_change_rejected():
    rt = MjpegRoundTrip()
    rt(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError):
        rt(np.zeros((32, 48, 3), np.uint8))

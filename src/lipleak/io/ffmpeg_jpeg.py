"""``--reference-frames`` made by the user's ffmpeg binary, as the reference tool makes them.

syncnet_python's SyncNetInstance.evaluate runs ``ffmpeg -y -i VIDEO -threads 1 -f image2
DIR/%06d.jpg`` with whichever ffmpeg is on PATH and reads the files with ``cv2.imread``.
The MJPEG encoder's output changes between FFmpeg releases (Debian 12's 5.1 and the
libavcodec that PyAV bundles differ by up to 11 levels on real03_aoc, which moves LSE-D by
0.05-0.15), so matching the reference means running the same binary; ``lipleak.io.jpeg``
(the bundled encoder, in process) is only the fallback when there is none.

25 fps input runs the reference's command with two changes that leave the bytes alone:
the JPEGs go to a pipe (``-f image2pipe -c:v mjpeg``, the same encoder and options as the
image2 files; a test compares them byte for byte) instead of numbered files, and ``-map
0:v:0`` picks the stream that the rest of lipleak reads. The pipe blocks ffmpeg while the
scorer is busy, so memory holds one JPEG and one frame whatever the video's length.

Other rates and variable frame rate: the reference extracts at the stream's nominal rate
(raw_vfr_suit_man: 184 frames at 30 fps) and then pairs frame i with the audio at i/25 s,
so its numbers drift with the clip's length; its own run_pipeline.py converts to 25 fps
first. lipleak keeps its 25 fps rule (``lipleak.io.video``): the resampled decoded frames
go to the binary as raw video at 25 fps, which it converts and encodes exactly as it would
a 25 fps file holding those frames (a test checks this path against the direct one).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, LipleakError

log = logging.getLogger(__name__)

READ_SIZE = 1 << 16  # a pipe's capacity on Linux: more is never there at once
_RST = range(0xD0, 0xD8)


@dataclass(frozen=True)
class Ffmpeg:
    path: str
    version: str  # ``ffmpeg -version``'s first line without the copyright notice


def ffmpeg_version(path: str) -> str:
    try:
        out = subprocess.run(
            [path, "-version"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise LipleakError(f"cannot run ffmpeg {path}: {exc}") from None
    first = out.splitlines()[0] if out else ""
    if not first.startswith("ffmpeg version "):
        raise LipleakError(f"{path} is not ffmpeg: `{path} -version` printed {first[:80]!r}")
    return first.split(" Copyright")[0]


def find_ffmpeg(path: str | None = None) -> Ffmpeg | None:
    """``path`` (a file or a name looked up on PATH), else ``ffmpeg`` on PATH, else None.

    A ``path`` that is given but does not run is an error, never a quiet fallback.
    """
    exe = shutil.which(path or "ffmpeg")
    if exe is None:
        if path:
            raise LipleakError(f"--ffmpeg {path}: no such executable")
        return None
    exe = os.path.abspath(exe)
    return Ffmpeg(exe, ffmpeg_version(exe))


def bundled_label() -> str:
    import av

    v = ".".join(map(str, av.library_versions["libavcodec"]))
    return f"bundled libavcodec {v} (PyAV {av.__version__})"


def reference_encoder(path: str | None = None) -> tuple[str, str]:
    """(label, binary) for ``--reference-frames``: the ffmpeg version and its path, or the
    bundled encoder's label and "" with a warning when no binary is found."""
    found = find_ffmpeg(path)
    if found is not None:
        return found.version, found.path
    label = bundled_label()
    log.warning(
        "no ffmpeg on PATH: --reference-frames falls back to the %s MJPEG encoder, whose "
        "JPEGs can differ from the reference tool's ffmpeg (LSE-D by ~0.1); install ffmpeg "
        "or pass --ffmpeg PATH",
        label,
    )
    return label, ""


# ----------------------------------------------------------------------- JPEG stream


def _jpeg_end(buf: bytearray, start: int) -> int | None:
    """End (exclusive) of the JPEG that starts at ``buf[start]``, or None if incomplete.

    Header segments carry their length; after start of scan, 0xFF is a marker only when
    followed by neither 0x00 (byte stuffing) nor a restart marker, and the next marker
    libavcodec writes there is end of image.
    """
    if len(buf) < start + 2:
        return None
    if buf[start : start + 2] != b"\xff\xd8":
        raise RuntimeError("ffmpeg's output is not a JPEG stream")
    i, n = start + 2, len(buf)
    while True:
        if i + 4 > n:
            return None
        if buf[i] != 0xFF:
            raise RuntimeError("malformed JPEG header in ffmpeg's output")
        marker = buf[i + 1]
        i += 2 + int.from_bytes(buf[i + 2 : i + 4], "big")
        if marker == 0xDA:
            break
    while True:
        i = buf.find(b"\xff", i)
        if i < 0 or i + 1 >= n:
            return None
        if buf[i + 1] != 0 and buf[i + 1] not in _RST:
            if buf[i + 1] != 0xD9:
                raise RuntimeError(f"unexpected JPEG marker {buf[i + 1]:#x} in ffmpeg's output")
            return i + 2
        i += 2


def split_jpegs(stream) -> Iterator[bytes]:
    """The JPEG files of an image2pipe stream, one by one, reading ``READ_SIZE`` at a time."""
    buf = bytearray()
    while True:
        chunk = stream.read(READ_SIZE)
        if chunk:
            buf += chunk
        while buf:
            end = _jpeg_end(buf, 0)
            if end is None:
                break
            yield bytes(buf[:end])
            del buf[:end]
        if not chunk:
            if buf:
                raise RuntimeError(f"ffmpeg's output ends inside a JPEG ({len(buf)} bytes)")
            return


# --------------------------------------------------------------------------- frames

_OUTPUT = ["-threads", "1", "-f", "image2pipe", "-c:v", "mjpeg", "pipe:1"]


def _command_direct(exe: str, path: Path) -> list[str]:
    return [exe, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", *_OUTPUT]


def iter_jpeg_frames(
    path: str | Path, ffmpeg: str, resample: bool | None = None
) -> Iterator[np.ndarray]:
    """BGR frames at 25 fps as ``cv2.imread`` reads the JPEGs that ``ffmpeg`` writes.

    ``resample`` None decides by the stream (``probe``); True forces the raw-video path.
    """
    from .container import TRUNCATION_SLACK_S
    from .video import TARGET_FPS, probe

    path = Path(path)
    info = probe(path)
    if resample is None:
        resample = info.needs_resample
    jpegs = _piped_jpegs(path, ffmpeg) if resample else _direct_jpegs(path, ffmpeg)
    n = 0
    for data in jpegs:
        n += 1
        yield cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if n == 0:
        raise InputError(path, "ffmpeg decoded no frame", "decode_error")
    # The CLI stops quietly at a cut-off file: compare with the count the container states
    # for the video stream (the piped path checks timestamps in io.video instead). Only
    # mp4/mov state it; a Matroska duration may be its audio's, longer than the video.
    stated = info.stated_n_frames
    if not resample and stated is not None and n < stated - TRUNCATION_SLACK_S * TARGET_FPS:
        raise InputError(
            path,
            f"file is truncated: ffmpeg decoded {n} of {stated} frames",
            "decode_error",
        )


def _run(cmd: list[str], path: Path, stdin=None, writer=None) -> Iterator[bytes]:
    """Start ``cmd``, yield its JPEGs, and turn a failure into an InputError for ``path``.

    ``writer(proc)`` feeds stdin from a thread; an exception it stores in ``proc.error``
    is raised once ffmpeg has finished. Stopping early kills ffmpeg.
    """
    with tempfile.TemporaryFile() as err:  # a file: a chatty stderr cannot block ffmpeg
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=err)
        proc.error = None
        thread = None
        if writer is not None:
            thread = threading.Thread(target=writer, args=(proc,), daemon=True)
            thread.start()
        finished = False
        try:
            try:
                yield from split_jpegs(proc.stdout)
            except RuntimeError as exc:
                raise InputError(path, f"ffmpeg: {exc}", "decode_error") from None
            rc = proc.wait()
            if thread is not None:
                thread.join()
            if proc.error is not None:
                raise proc.error
            if rc != 0:
                err.seek(0)
                tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
                raise InputError(
                    path, f"ffmpeg failed (exit {rc}): {' | '.join(tail)}", "decode_error"
                )
            finished = True
        finally:
            if not finished and proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
            if thread is not None:
                thread.join()


def _direct_jpegs(path: Path, ffmpeg: str) -> Iterator[bytes]:
    return _run(_command_direct(ffmpeg, path), path)


def _raw_frame(frame) -> tuple[str, bytes]:
    """(pix_fmt, bytes) of one decoded frame as rawvideo packs it (planes, no padding)."""
    from .video import _BgrRotated, to_bgr

    fmt = getattr(frame, "format", None)
    planar_yuv = (
        fmt is not None
        and fmt.is_planar
        and not fmt.is_rgb
        and fmt.name.startswith(("yuv", "gray"))
        and all(c.bits <= 16 for c in fmt.components)
    )
    if isinstance(frame, _BgrRotated) or not planar_yuv:
        return "bgr24", to_bgr(frame).tobytes()
    size = 2 if any(c.bits > 8 for c in fmt.components) else 1
    parts = []
    for p in frame.planes:
        rows = np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)
        parts.append(rows[:, : p.width * size].tobytes())
    return fmt.name, b"".join(parts)


def _piped_jpegs(path: Path, ffmpeg: str) -> Iterator[bytes]:
    from .video import TARGET_FPS, iter_av_frames

    frames = iter_av_frames(path, TARGET_FPS)
    first = next(frames)
    pix_fmt, data = _raw_frame(first)
    shape = w, h = _shape(first)
    range_opt = []
    if getattr(first, "color_range", 0) == 2 and not pix_fmt.startswith("yuvj"):
        range_opt = ["-color_range", "pc"]  # full-range video tagged as such, not yuvj
    cmd = [
        ffmpeg,
        "-v",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        pix_fmt,
        "-video_size",
        f"{w}x{h}",
        "-framerate",
        str(TARGET_FPS),
        *range_opt,
        "-i",
        "pipe:0",
        *_OUTPUT,
    ]

    def write(proc):
        try:
            proc.stdin.write(data)
            for frame in frames:
                fmt, raw = _raw_frame(frame)
                if fmt != pix_fmt or _shape(frame) != shape:
                    raise InputError(path, "frame size or format changes mid-video", "bad_frame")
                proc.stdin.write(raw)
        except BrokenPipeError:
            pass  # ffmpeg stopped reading: killed because the caller stopped, or it failed
        except Exception as exc:  # noqa: BLE001 - raised in the reading thread
            proc.error = exc
        finally:
            frames.close()
            try:
                proc.stdin.close()
            except OSError:
                pass

    return _run(cmd, path, stdin=subprocess.PIPE, writer=write)


def _shape(frame) -> tuple[int, int]:
    """(width, height) of a frame as displayed, rotation applied."""
    from .video import _BgrRotated

    if isinstance(frame, _BgrRotated):
        w, h = frame.frame.width, frame.frame.height
        return (h, w) if frame.k % 2 else (w, h)
    return frame.width, frame.height

"""Stream a video's frames as BGR uint8 arrays at 25 fps (SPEC §2), with bounded memory.

Pixels are what ``ffmpeg -i IN -f image2 %06d.png`` + ``cv2.imread`` give. For 8-bit
sources PyAV's ``to_ndarray(format="bgr24")`` is that exactly: without scaling, libswscale
takes its unscaled YUV->RGB path, which ignores the interpolation flags, so the CLI's
bicubic default and PyAV's bilinear default give identical bytes (tests check this
against the ffmpeg binary; cv2.VideoCapture agrees too). Sources deeper than 8 bits go
through rgb48 in the CLI and differ by a few levels; neither PyAV nor cv2 match there.

Frame-rate rule. A stream that declares 25 fps (average and base rate) passes through
untouched: every decoded frame once, in presentation order. Anything else (other rates,
variable frame rate) is resampled by timestamps: with t the frame time relative to the
first frame's pts, output frame j (time j/25) is the last source frame with t <= j/25,
and output frames run while j/25 < T, where T is the end of the last source frame
(its pts + duration). So the output count is ceil(T * 25) and ``probe`` predicts it
from the container's stream duration (which mp4 defines as exactly that end).

Rotation. Like ffmpeg's default autorotate, a display-matrix rotation (multiples of 90°)
is applied; the planes of the decoded YUV frame are rotated before colour conversion,
which is what ffmpeg's transpose filters do, so the reference-frames JPEG round trip sees
the same picture as the CLI. Other angles and flips are ignored.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import InputError
from .container import check_end, empty_stream, open_media, stated_end

TARGET_FPS = 25


@dataclass
class VideoInfo:
    path: str
    width: int  # as displayed, i.e. after rotation
    height: int
    src_fps: float  # average frame rate of the source
    duration_s: float
    n_frames: int  # frames ``iter_frames`` is expected to give at 25 fps
    needs_resample: bool  # source is not constant 25 fps
    has_audio: bool
    codec: str
    rotation: int  # degrees counter-clockwise, applied to the frames (0, 90, 180, 270)
    # ``n_frames`` when the container states the video stream's own length (mp4/mov), else
    # None: a Matroska duration is the longest stream's, e.g. audio that runs on, so it
    # cannot prove the video short (``io.container.stated_end``)
    stated_n_frames: int | None = None


def _open(path: str | Path):
    return open_media(path, "video")


def _is_25fps(stream) -> bool:
    return stream.average_rate == TARGET_FPS and stream.base_rate == TARGET_FPS


def _quarter_turns(frame) -> int:
    # PyAV's rotation is counter-clockwise degrees from the display matrix.
    rot = getattr(frame, "rotation", 0) or 0
    if rot % 90:
        return 0
    return (int(rot) // 90) % 4


def probe(path: str | Path) -> VideoInfo:
    """Describe a video without decoding more than its first frame."""
    import av

    container = _open(path)
    try:
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as exc:
            raise InputError(path, f"cannot decode video: {exc}", "decode_error") from None
        if first is None:
            raise empty_stream(path, "video")
        k = _quarter_turns(first)
        w, h = (first.width, first.height) if k % 2 == 0 else (first.height, first.width)
        if stream.duration is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        needs = not _is_25fps(stream)
        if not needs and stream.frames:
            n = int(stream.frames)
        else:
            n = math.ceil(round(duration * TARGET_FPS, 6))
        fps = float(stream.average_rate) if stream.average_rate else 0.0
        return VideoInfo(
            str(path),
            w,
            h,
            fps,
            duration,
            n,
            needs,
            bool(container.streams.audio),
            stream.codec_context.name,
            90 * k,
            n if stated_end(stream) is not None else None,
        )
    finally:
        container.close()


def _rotate_planar(frame, k: int):
    """Rotate an 8-bit planar YUV frame by k quarter turns counter-clockwise, plane by plane."""
    import av

    w, h = (frame.width, frame.height) if k % 2 == 0 else (frame.height, frame.width)
    out = av.VideoFrame(w, h, frame.format.name)
    for src, dst in zip(frame.planes, out.planes, strict=True):
        a = np.frombuffer(src, np.uint8).reshape(src.height, src.line_size)[:, : src.width]
        b = np.frombuffer(dst, np.uint8).reshape(dst.height, dst.line_size)
        b[:, : dst.width] = np.rot90(a, k)
    out.pts, out.time_base = frame.pts, frame.time_base
    out.colorspace, out.color_range = frame.colorspace, frame.color_range
    return out


def _planar_8bit(frame) -> bool:
    fmt = frame.format
    return (
        fmt.is_planar
        and not fmt.is_rgb
        and all(c.bits == 8 for c in fmt.components)
        and fmt.name.startswith(("yuv", "gray"))
    )


def iter_av_frames(path: str | Path, fps: float = TARGET_FPS) -> Iterator:
    """Yield decoded, rotated ``av.VideoFrame`` objects at ``fps`` (rule in the module doc).

    A resampled stream may yield the same frame object more than once (a repeated frame).
    """
    import av

    if fps != TARGET_FPS:
        raise ValueError("only 25 fps output is supported (SPEC §2)")
    container = _open(path)
    n_out = 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        passthrough = _is_25fps(stream)
        step = Fraction(1, TARGET_FPS)
        default_dur = (1 / Fraction(stream.average_rate)) if stream.average_rate else step
        t0 = None
        prev = prev_t = prev_dur = None
        last_pts = last_dur = None
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                raise InputError(
                    path, f"decode error after {n_out} frames: {exc}", "decode_error"
                ) from None
            if frame.pts is not None:
                last_pts, last_dur = frame.pts, frame.duration
            k = _quarter_turns(frame)
            if k:
                frame = _rotate_planar(frame, k) if _planar_8bit(frame) else _BgrRotated(frame, k)
            if passthrough:
                n_out += 1
                yield frame
                continue
            if frame.pts is None:
                t = (prev_t + prev_dur) if prev_t is not None else Fraction(0)
            else:
                ts = Fraction(frame.pts) * frame.time_base
                t0 = ts if t0 is None else t0
                t = ts - t0
            # every output slot whose time precedes this frame shows the previous frame
            while prev is not None and n_out * step < t:
                n_out += 1
                yield prev
            dur = Fraction(frame.duration) * frame.time_base if frame.duration else default_dur
            prev, prev_t, prev_dur = frame, t, dur
        if prev is not None:
            end = prev_t + prev_dur
            while n_out * step < end:
                n_out += 1
                yield prev
        _check_complete(path, stream, last_pts, last_dur, n_out)
    finally:
        container.close()


def _check_complete(path, stream, last_pts, last_dur, n_out: int) -> None:
    """A cut-off file decodes without error but stops early: compare with the stated end.

    For callers that read every frame without ``check_complete`` first (the visual
    metrics); it raises what ``check_complete`` would.
    """
    if n_out == 0:
        raise empty_stream(path, "video")
    if last_pts is not None:
        stopped = Fraction(last_pts + (last_dur or 0)) * stream.time_base
        check_end(path, "video", stopped, stated_end(stream))


class _BgrRotated:
    """Fallback for non-planar or deep formats: rotate after conversion to BGR."""

    def __init__(self, frame, k: int):
        self.frame, self.k = frame, k

    def to_ndarray(self, format: str = "bgr24"):  # noqa: A002 - mirrors av.VideoFrame
        return np.rot90(self.frame.to_ndarray(format=format), self.k)


_SWS = threading.local()  # one libswscale converter per thread (not thread-safe)


def to_bgr(frame) -> np.ndarray:
    """BGR uint8 H×W×3, C-contiguous, as the ffmpeg CLI's png output read by cv2.

    ``VideoFrame.to_ndarray(format=...)`` builds a new libswscale context for every frame,
    which costs as much as the conversion itself; one ``VideoReformatter`` per thread keeps
    its context while frames keep their size and format. Same conversion, same pixels
    (``tests/test_io_video.py`` compares with ffmpeg's png frames).
    """
    import av

    if not isinstance(frame, av.VideoFrame):  # a _BgrRotated
        return np.ascontiguousarray(frame.to_ndarray(format="bgr24"))
    reformatter = getattr(_SWS, "reformatter", None)
    if reformatter is None:
        from av.video.reformatter import VideoReformatter

        reformatter = _SWS.reformatter = VideoReformatter()
    return np.ascontiguousarray(reformatter.reformat(frame, format="bgr24").to_ndarray())


def iter_frames(
    path: str | Path, fps: float = TARGET_FPS, reference_frames: bool = False
) -> Iterator[np.ndarray]:
    """Yield BGR uint8 frames at 25 fps; one decoded frame in memory at a time.

    ``reference_frames=True`` gives the JPEG frames of syncnet_python's ``ffmpeg ...
    %06d.jpg`` extraction made by the libavcodec PyAV bundles, in process
    (``lipleak.io.jpeg``); ``lipleak.io.frames.iter_frames`` also takes the user's ffmpeg.
    """
    if not reference_frames:
        for frame in iter_av_frames(path, fps):
            yield to_bgr(frame)
        return
    from .jpeg import MjpegRoundTrip

    rt = MjpegRoundTrip()
    for frame in iter_av_frames(path, fps):
        yield rt(to_bgr(frame) if isinstance(frame, _BgrRotated) else frame)

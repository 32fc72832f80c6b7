"""Where a file's audio starts on its video's timeline (issue 24, item 1).

The reference tool reads a video's audio as the ffmpeg CLI places it (``-async 1``, i.e.
``aresample=async=1:first_pts=0``): every stream on one timeline, a gap before the first
audio sample filled with silence, audio before the start cut. A file whose audio starts
later than its picture (an mp4 edit list, Matroska block timestamps, ``-itsoffset`` when
a dub was muxed) is out of sync by that much, and must score so.

lipleak's 25 fps frames start at the first video frame (``io.video``: times relative to
its pts), so the audio is put on that timeline: ``shift`` = first decoded audio sample's
time − first decoded video frame's time (both after the demuxer's edit lists and the
decoder's pre-skip, e.g. Opus's). ``iter_audio(..., shift=...)`` pads a positive shift
with silence before the resampler (as libswresample's async mode injects it, so the
samples around the join equal the CLI's) and drops the first samples of a negative one.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from ..errors import InputError
from .container import open_media

__all__ = ["audio_shift"]


def _first_time(container, stream) -> Fraction | None:
    import av

    try:
        for frame in container.decode(stream):
            if frame.pts is not None and frame.time_base is not None:
                return Fraction(frame.pts) * frame.time_base
            return None
    except av.FFmpegError:
        return None  # the readers report a stream that does not decode, in their words
    return None


def audio_shift(path: str | Path, audio_index: int = 0) -> Fraction:
    """Seconds the first sample of audio stream ``audio_index`` (0: the first) starts
    after the first video frame of ``path`` (negative: before it); 0 when either has no
    timestamp. InputError as ``open_media`` for a file without both streams."""
    path = Path(path)
    container = open_media(path, "video")
    try:
        if len(container.streams.audio) <= audio_index:
            raise InputError(path, "no audio stream", "no_audio")
        v = _first_time(container, container.streams.video[0])
    finally:
        container.close()
    container = open_media(path, "audio")
    try:
        a = _first_time(container, container.streams.audio[audio_index])
    finally:
        container.close()
    if a is None or v is None:
        return Fraction(0)
    return a - v

"""Opening a media file with PyAV, with the failures every reader reports the same way."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from ..errors import InputError


def open_media(path: str | Path, kind: str):
    """An open PyAV container of ``path`` that has a ``kind`` ("video" or "audio") stream.

    InputError: "missing" (no such file), "not_a_video" (FFmpeg cannot read it),
    "no_video_stream" / "no_audio" (the stream is absent).
    """
    import av

    p = Path(path)
    if not p.is_file():
        raise InputError(p, "file not found", "missing")
    try:
        container = av.open(str(p))
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(
            p, f"not a readable media file ({exc.__class__.__name__})", "not_a_video"
        ) from None
    if not getattr(container.streams, kind):
        container.close()
        raise InputError(
            p, f"no {kind} stream", "no_audio" if kind == "audio" else "no_video_stream"
        )
    return container


# A stream whose data ends this much before the end its container states was cut off;
# whole files end within a frame or an audio packet of it.
TRUNCATION_SLACK_S = 0.5


def stated_end(stream) -> Fraction | None:
    """Where the container says ``stream`` ends, in seconds; None where it does not say.

    Only mov/mp4 count: their index states every stream's length. Elsewhere FFmpeg's
    duration may be an estimate from the bit rate, or (wav) clamped to the file's size,
    so it can neither prove a cut nor rule one out.
    """
    if "mov" not in stream.container.format.name:
        return None
    if stream.duration is None or stream.time_base is None:
        return None
    return Fraction((stream.start_time or 0) + stream.duration) * stream.time_base


def check_end(path: str | Path, kind: str, stopped: Fraction, stated: Fraction | None) -> None:
    """InputError "decode_error" when a ``kind`` stream's data stops short of ``stated``.

    Every completeness check ends here, so that a cut file gives the same one-line reason
    whichever reader meets the cut.
    """
    if stated is not None and stopped < stated - TRUNCATION_SLACK_S:
        raise InputError(
            path,
            f"file is truncated: its {kind} stops at {float(stopped):.2f} s "
            f"of the {float(stated):.2f} s its container states",
            "decode_error",
        )


def empty_stream(path: str | Path, kind: str) -> InputError:
    """The error for a ``kind`` stream that is declared but holds no data."""
    what = "frame" if kind == "video" else "samples"
    return InputError(path, f"{kind} stream has no decodable {what}", "decode_error")


def check_complete(path: str | Path, kinds: tuple[str, ...] = ("video", "audio")) -> None:
    """Refuse a file whose first ``kinds`` streams stop before their stated end.

    Reads packets only (no decoding), so it costs a pass over the bytes rather than a
    decode. A reader that stops early (SyncNet stops with the audio) never reaches the
    cut of a file that was cut off where the audio ends too, so its decoder cannot tell;
    this check does not depend on how far anyone reads. Packets flagged corrupt (the
    partial last packet of a file cut mid-packet) do not count as data; a stream without
    any is refused as the decoders refuse it (``empty_stream``), whatever the container.
    """
    import av

    container = open_media(path, kinds[0])
    try:
        streams = [s for k in kinds for s in getattr(container.streams, k)[:1]]
        ends: dict[int, int] = {}
        try:
            for pkt in container.demux(*streams):
                if pkt.pts is None or not pkt.size or pkt.is_corrupt:
                    continue
                end = pkt.pts + (pkt.duration or 0)
                ends[pkt.stream.index] = max(ends.get(pkt.stream.index, end), end)
        except av.FFmpegError as exc:
            raise InputError(path, f"cannot read the file: {exc}", "decode_error") from None
        for s in streams:
            if s.index not in ends:
                raise empty_stream(path, s.type)
            check_end(path, s.type, Fraction(ends[s.index]) * s.time_base, stated_end(s))
    finally:
        container.close()

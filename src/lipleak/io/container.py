"""Opening a media file with PyAV, with the failures every reader reports the same way."""

from __future__ import annotations

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

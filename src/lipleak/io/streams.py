"""Which audio stream of a file is scored (``sync --audio-stream``; issue 24, item 2).

A dubbing master carries one audio stream per language. Without a choice the ffmpeg CLI
(and so the reference tool's ``ffmpeg -i V ... audio.wav``) takes, among the audio streams,
the one with the highest score ``channels + 5,000,000 x (disposition default)`` (fftools'
``map_auto_audio``; ties: the lowest index), i.e. the stream marked default, else the one
with the most channels. ``choose`` does the same; ``N`` (the N-th audio stream, from 0, as
ffmpeg's ``-map 0:a:N``) and ``lang:CODE`` (the first stream whose language tag is CODE)
pick one; ``all`` every one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .container import open_media

__all__ = ["AudioStream", "audio_streams", "choose", "parse_spec"]

ALL = "all"


@dataclass(frozen=True)
class AudioStream:
    number: int  # among the audio streams, from 0 (ffmpeg's 0:a:N)
    index: int  # in the container
    language: str  # its language tag, "" without one
    codec: str
    channels: int
    default: bool  # disposition "default"

    def label(self) -> str:
        """``a:1 (deu, aac)``: how rows and messages name it."""
        return f"a:{self.number} ({self.language or 'und'}, {self.codec})"

    def as_dict(self) -> dict:
        return {"number": self.number, "index": self.index, "language": self.language,
                "codec": self.codec}  # fmt: skip


def parse_spec(text: str) -> int | str:
    """``--audio-stream``'s value: an int N, ``lang:CODE`` or ``all``; ValueError else."""
    if text == ALL:
        return ALL
    if text.startswith("lang:") and len(text) > 5 and text[5:].isalnum():
        return text
    if text.isdigit():
        return int(text)
    raise ValueError(f"expected N, lang:CODE or all, got {text!r}")


def audio_streams(path: str | Path) -> list[AudioStream]:
    """The audio streams of ``path`` in container order (InputError without any)."""
    container = open_media(path, "audio")
    try:
        out = []
        for n, s in enumerate(container.streams.audio):
            cc = s.codec_context
            layout = getattr(cc, "layout", None)
            lang = s.language or ""
            out.append(
                AudioStream(
                    number=n,
                    index=s.index,
                    language="" if lang == "und" else lang,
                    codec=cc.name if cc is not None else "",
                    channels=int(layout.nb_channels) if layout is not None else 0,
                    default=bool(int(s.disposition) & 1),
                )
            )
        return out
    finally:
        container.close()


def choose(path: str | Path, spec: int | str | None = None) -> AudioStream:
    """The stream ``spec`` names (None: ffmpeg's own choice); InputError "no_audio"
    naming the streams there are when none matches."""
    streams = audio_streams(path)
    if spec is None:
        # fftools: the first stream with the highest channels + 5e6 * default
        return max(streams, key=lambda s: (s.channels + 5_000_000 * s.default, -s.number))
    if isinstance(spec, int):
        found = [s for s in streams if s.number == spec]
    else:
        code = spec.removeprefix("lang:").lower()
        found = [s for s in streams if s.language.lower() == code]
    if not found:
        have = ", ".join(s.label() for s in streams)
        raise InputError(path, f"no audio stream {spec} (it has {have})", "no_audio")
    return found[0]

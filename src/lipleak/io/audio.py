"""Audio -> 16 kHz mono int16, sample for sample as the ffmpeg CLI writes it (SPEC §2).

Reference command: ``ffmpeg -i IN -vn -ac 1 -ar 16000 -acodec pcm_s16le out.wav``. The CLI
converts with libswresample at its defaults (downmix, resample and s16 conversion in one
aresample/aformat graph); PyAV's ``AudioResampler`` builds the same graph, so the samples
agree exactly (tests check every shared clip against the binary).

One difference between libavformat versions has to be bridged: the mp4 demuxer of recent
ffmpeg (the binary imageio-ffmpeg ships) trims the decoder's last AAC frame to the end
that the container states (its edit list / stream duration), while the libavformat inside
PyAV hands over the whole last frame. We trim to the stated end for mov/mp4 inputs, which
reproduces the binary exactly. Older ffmpeg builds do not trim, so their output has up to
one AAC frame (1024 source samples) more at the end and differs in the last few samples
through the resampler's filter tail; nothing before that moves.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import InputError
from .container import check_end, empty_stream, open_media, stated_end


def _open(path: str | Path):
    return open_media(path, "audio")


def _stated_end(container, stream) -> int | None:
    """End of the stream in samples as the container states it (mov/mp4 only), else None."""
    if "mov" not in container.format.name or stream.duration is None:
        return None
    start = stream.start_time or 0
    if start > 0:
        # audio delayed by an edit list's empty edit: the CLI decodes its last frame whole
        return None
    return round(Fraction(start + stream.duration) * stream.time_base * stream.rate)


def _trim(frame, keep: int):
    import av

    arr = frame.to_ndarray()
    arr = arr[:, :keep] if frame.format.is_planar else arr[:, : keep * frame.layout.nb_channels]
    out = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(arr), format=frame.format.name, layout=frame.layout.name
    )
    out.sample_rate, out.pts, out.time_base = frame.sample_rate, frame.pts, frame.time_base
    return out


def _silence(frame, n: int):
    """``n`` silent samples in ``frame``'s format, layout and rate, just before it."""
    import av

    shape = (
        (frame.layout.nb_channels, n)
        if frame.format.is_planar
        else (1, n * frame.layout.nb_channels)
    )
    out = av.AudioFrame.from_ndarray(
        np.zeros(shape, frame.to_ndarray().dtype),
        format=frame.format.name,
        layout=frame.layout.name,
    )
    out.sample_rate = frame.sample_rate
    return out


def iter_audio(
    path: str | Path, sr: int = 16000, shift: Fraction | None = None, stream: int = 0
) -> Iterator[np.ndarray]:
    """Audio stream ``stream`` of ``path`` (0: the first; ``io.streams``) as consecutive
    chunks of mono int16 at ``sr`` Hz.

    ``shift`` (seconds, ``io.timeline.audio_shift``) places the audio on the video's
    timeline: a positive one is that much silence first, fed to the resampler at the
    source rate as libswresample's async mode injects it (so the join is the ffmpeg
    CLI's sample for sample); a negative one drops that many output samples. None or 0:
    the samples as ``ffmpeg -i IN -vn`` writes them, whatever their timestamps.

    Decodes and resamples frame by frame, so a caller that keeps only what it still needs
    holds a few kilobytes whatever the length. The file is opened at the first ``next()``
    and closed when the generator ends or is closed. Before the last chunk, InputError
    "decode_error" for a stream without a sample or one that stops short of the end its
    mp4 states (``container.check_end``: the same words as the packet check).
    """
    import av

    container = _open(path)
    try:
        if stream >= len(container.streams.audio):
            raise InputError(path, f"no audio stream a:{stream}", "no_audio")
        stream = container.streams.audio[stream]
        end = _stated_end(container, stream)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=sr)
        frames = container.decode(stream)
        stopped = None  # where the decoded audio ends, in seconds
        pad = shift is not None and shift > 0
        drop = round(-shift * sr) if shift is not None and shift < 0 else 0
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                raise InputError(path, f"audio decode error: {exc}", "decode_error") from None
            dur = Fraction(frame.samples, frame.sample_rate)
            if frame.pts is not None:
                stopped = Fraction(frame.pts) * frame.time_base + dur
            else:
                stopped = (stopped or 0) + dur
            if end is not None and frame.pts is not None:
                first = round(Fraction(frame.pts) * frame.time_base * frame.sample_rate)
                if first >= end:
                    continue
                if first + frame.samples > end:
                    frame = _trim(frame, end - first)
            if pad:
                pad = False
                n = round(shift * frame.sample_rate)
                if n > 0:
                    for out in resampler.resample(_silence(frame, n)):
                        yield out.to_ndarray().reshape(-1).astype(np.int16)
            for out in resampler.resample(frame):
                chunk, drop = _dropped(out.to_ndarray().reshape(-1).astype(np.int16), drop)
                if len(chunk):
                    yield chunk
        if stopped is None:
            raise empty_stream(path, "audio")
        check_end(path, "audio", stopped, stated_end(stream))
        for out in resampler.resample(None):
            chunk, drop = _dropped(out.to_ndarray().reshape(-1).astype(np.int16), drop)
            if len(chunk):
                yield chunk
    finally:
        container.close()


def _dropped(chunk: np.ndarray, drop: int) -> tuple[np.ndarray, int]:
    """(``chunk`` less its first ``drop`` samples, what is still to drop after it)."""
    if not drop:
        return chunk, 0
    return chunk[drop:], max(0, drop - len(chunk))


def load_audio(
    path: str | Path, sr: int = 16000, shift: Fraction | None = None, stream: int = 0
) -> np.ndarray:
    """Audio stream ``stream`` (0: the first) of ``path`` as mono int16 at ``sr`` Hz (1-D
    array); ``shift`` as in ``iter_audio``."""
    chunks = list(iter_audio(path, sr, shift, stream))
    if not chunks:
        return np.zeros(0, np.int16)
    return np.concatenate(chunks)


def array_chunks(samples: np.ndarray, size: int = 1 << 16) -> Iterator[np.ndarray]:
    """An in-memory signal as consecutive views of ``size`` samples (no copy)."""
    for i in range(0, len(samples), size):
        yield samples[i : i + size]


def sample_range(chunks: Iterable[np.ndarray], start: int, stop: int) -> Iterator[np.ndarray]:
    """Samples [start, stop) of a chunked signal, still chunked."""
    pos = 0
    for c in chunks:
        lo, hi = max(start - pos, 0), min(stop - pos, len(c))
        if lo < hi:
            yield c[lo:hi]
        pos += len(c)
        if pos >= stop:
            break


def write_wav(path: str | Path, samples: np.ndarray, sr: int = 16000) -> None:
    """Write mono int16 samples as a PCM_16 WAV file."""
    import soundfile as sf

    samples = np.asarray(samples)
    if samples.dtype != np.int16 or samples.ndim != 1:
        raise ValueError("write_wav expects a 1-D int16 array")
    sf.write(str(path), samples, sr, subtype="PCM_16")

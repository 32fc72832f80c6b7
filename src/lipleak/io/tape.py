"""One pass over a chunked signal, read as many sample ranges (detect mode's face tracks).

Each face track of a video needs the audio of its own frames. Reading the audio afresh for
every track (``sample_range(chunks(), start, stop)``) decodes it from the start each time:
a long episode has hundreds of tracks, so that work grew with the square of the length
(a 60-minute video with ~550 tracks decoded ~275 hours of audio). ``ChunkTape`` decodes
it once and hands every range exactly the chunks ``sample_range`` would have cut from a
fresh pass, so nothing downstream can tell the difference.

Memory: chunks are kept from the earliest sample an open reader may still ask for (a
reader holds its range from the moment it is made until it is closed or has read to its
end), so a tape holds about as much audio as its readers are apart, not the whole signal.
A reader that asks for samples already dropped reads them from a fresh pass.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from .audio import sample_range


class ChunkTape:
    """Readers of ranges [start, stop) of the signal ``source()`` yields, from one pass."""

    def __init__(self, source: Callable[[], Iterable[np.ndarray]]):
        self._source = source
        self._src: Iterator[np.ndarray] | None = None  # opened at the first read
        self._kept: deque[tuple[int, np.ndarray]] = deque()  # (first sample, chunk)
        self._end = 0  # samples read from the source so far
        self._done = False
        self._error: BaseException | None = None
        self._needs: dict[int, int] = {}  # reader id -> first sample it may still ask for
        self.passes = 0  # fresh passes made (1 when every reader was served by the tape)

    def reader(self, start: int, stop: int) -> TapeReader:
        """Samples [start, stop) as chunks, equal to ``sample_range(source(), start, stop)``."""
        return TapeReader(self, start, stop)

    def close(self) -> None:
        """Close the source (its file) and drop every kept chunk."""
        if self._src is not None and hasattr(self._src, "close"):
            self._src.close()
        self._kept.clear()
        self._done = True

    # -- for TapeReader ------------------------------------------------------------------
    def _need(self, reader: int, sample: int | None) -> None:
        if sample is None:
            self._needs.pop(reader, None)
        else:
            self._needs[reader] = sample
        if len(self._kept) < 16 and sample is not None:
            return  # a few chunks: not worth the min() over every reader (hundreds)
        # the newest chunk stays: a reader made next may start inside it
        newest = self._kept[-1][0] if self._kept else self._end
        keep = min(min(self._needs.values(), default=newest), newest)
        while self._kept and self._kept[0][0] + len(self._kept[0][1]) <= keep:
            self._kept.popleft()

    def _chunk(self, pos: int) -> tuple[int, np.ndarray] | None | bool:
        """The kept chunk holding sample ``pos``; None past the signal's end; False when
        ``pos`` was dropped already."""
        while True:
            for base, c in self._kept:
                if base <= pos < base + len(c):
                    return base, c
            if pos < self._end:
                return False
            if self._error is not None:
                raise self._error
            if self._done:
                return None
            if self._src is None:
                self._src = iter(self._source())
                self.passes += 1
            try:
                c = np.asarray(next(self._src))
            except StopIteration:
                self._done = True
                continue
            except Exception as exc:  # a decode error reaches every reader that gets there
                self._error = exc
                raise
            if len(c):
                self._kept.append((self._end, c))
                self._end += len(c)


class TapeReader:
    """An iterator over one range of a ``ChunkTape``; ``close()`` lets the tape drop it."""

    def __init__(self, tape: ChunkTape, start: int, stop: int):
        self._tape = tape
        self._pos = start
        self._stop = stop
        self._fresh: Iterator[np.ndarray] | None = None
        self._closed = False
        tape._need(id(self), start)

    def __iter__(self) -> TapeReader:
        return self

    def __next__(self) -> np.ndarray:
        if self._fresh is not None:
            return next(self._fresh)
        if self._closed or self._pos >= self._stop:
            self.close()
            raise StopIteration
        got = self._tape._chunk(self._pos)
        if got is None:
            self.close()
            raise StopIteration
        if got is False:  # dropped: this reader came late; a pass of its own
            self._tape.passes += 1
            self._fresh = sample_range(self._tape._source(), self._pos, self._stop)
            self._tape._need(id(self), None)
            return next(self._fresh)
        base, c = got
        hi = min(self._stop - base, len(c))
        out = c[self._pos - base : hi]
        self._pos = base + hi
        self._tape._need(id(self), self._pos if self._pos < self._stop else None)
        return out

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._tape._need(id(self), None)
        if self._fresh is not None and hasattr(self._fresh, "close"):
            self._fresh.close()

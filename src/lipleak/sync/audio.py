"""MFCC windows of an audio stream, made as the offset search asks for them (SPEC §2)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .. import _core
from ..export.syncnet_shapes import (
    MFCC_COEFFS,
    MFCC_PER_FRAME,
    SAMPLES_PER_FRAME,
    WINDOW_FRAMES,
    WINDOW_MFCC,
)
from ..io.audio import array_chunks


class AudioWindows:
    """``metrics.sync.mfcc_windows`` of a signal arriving in chunks, made as they are asked for.

    Only the samples that windows not yet made can still need are kept (``release`` drops
    the rest), so memory does not grow with the length of the audio; the windows are bit
    for bit those of ``mfcc_windows`` over the whole signal (the core's ``mfcc`` computes
    any range of frames of a longer signal exactly).
    """

    def __init__(self, chunks: Iterable[np.ndarray]):
        self._chunks = iter(chunks)
        self._buf = np.empty(0, np.int16)  # samples [base, base + len(buf)) ...
        self._base = 0
        self._pending: list[np.ndarray] = []  # ... then these, not yet joined
        self._n = 0  # samples seen so far
        self.ended = False
        # sum of squared samples of every complete video frame (640 samples) seen so far,
        # for the segments' loudness (SPEC §11 ``silent``); 8 bytes per frame
        self._energy: list[np.ndarray] = []
        self._tail = np.empty(0, np.int64)  # squares of the samples of an unfinished frame

    @classmethod
    def from_array(cls, samples: np.ndarray) -> AudioWindows:
        return cls(array_chunks(np.ascontiguousarray(samples, dtype=np.int16)))

    @property
    def n_samples(self) -> int:
        """Samples seen so far: the signal's length once ``ended``."""
        return self._n

    def has_frames(self, m: int) -> bool:
        """Whether the signal holds at least ``m`` video frames of samples (reads on)."""
        need = m * SAMPLES_PER_FRAME
        while self._n < need and not self.ended:
            try:
                c = next(self._chunks)
            except StopIteration:
                self.ended = True
                break
            c = np.asarray(c)
            if c.dtype != np.int16 or c.ndim != 1:
                raise ValueError(f"audio chunks must be 1-D int16, got {c.dtype} {c.shape}")
            self._pending.append(c)
            self._n += len(c)
            self._add_energy(c)
        return self._n >= need

    def _add_energy(self, c: np.ndarray) -> None:
        sq = np.concatenate([self._tail, c.astype(np.int64) ** 2])
        whole = len(sq) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME
        # int64 sums are exact: 640 * 32768**2 < 2**40
        self._energy.append(sq[:whole].reshape(-1, SAMPLES_PER_FRAME).sum(axis=1))
        self._tail = sq[whole:]

    def frame_energy(self) -> np.ndarray:
        """int64[frames]: the sum of squared samples of each complete frame read so far."""
        self._energy = [np.concatenate([np.empty(0, np.int64), *self._energy])]
        return self._energy[0]

    def windows(self, lo: int, hi: int) -> np.ndarray:
        """float32[hi - lo, 1, 13, 20]: the MFCC windows of video windows lo .. hi - 1."""
        out = np.empty((max(hi - lo, 0), 1, MFCC_COEFFS, WINDOW_MFCC), dtype=np.float32)
        if hi <= lo:
            return out
        # Window k reads MFCC frames 4k .. 4k+19, i.e. samples up to 640k + 3440 < 640(k+6).
        if not self.has_frames(hi + WINDOW_FRAMES):
            raise ValueError(f"audio ends before window {hi - 1}")
        if self._pending:
            self._buf = np.concatenate([self._buf, *self._pending])
            self._pending = []
        first = MFCC_PER_FRAME * lo
        count = MFCC_PER_FRAME * (hi - 1 - lo) + WINDOW_MFCC
        cc = _core.mfcc(self._buf, first=first, count=count, base=self._base).T  # 13 x count
        for j in range(hi - lo):
            out[j, 0] = cc[:, MFCC_PER_FRAME * j : MFCC_PER_FRAME * j + WINDOW_MFCC]
        return out

    def release(self, lo: int) -> None:
        """Windows before ``lo`` will not be asked for again: drop their samples."""
        keep_from = max(lo * SAMPLES_PER_FRAME - 1, 0)  # pre-emphasis reads one back
        drop = min(keep_from - self._base, len(self._buf))
        if drop > 0:
            self._buf = self._buf[drop:].copy()
            self._base += drop

    @property
    def base(self) -> int:
        """The first sample still kept (what a checkpoint records)."""
        return self._base

    def skip_to(self, base: int) -> None:
        """Read on and drop every sample before ``base``: this reader in the state of one
        that made and released windows up to there (a resumed checkpoint). The samples
        from ``base`` on are the signal's own, so later windows are bit for bit the same."""
        self.has_frames(-(-base // SAMPLES_PER_FRAME))
        if self._pending:
            self._buf = np.concatenate([self._buf, *self._pending])
            self._pending = []
        drop = min(base - self._base, len(self._buf))
        if drop > 0:
            self._buf = self._buf[drop:].copy()
            self._base += drop

    def discard(self) -> None:
        """Close, and drop the samples kept for windows: no window will be asked for again
        (the count read and the per-frame energy stay)."""
        self.close()
        self._base += len(self._buf)
        self._buf = np.empty(0, np.int16)
        self._pending = []

    def restore_finished(self, n_samples: int, energy: np.ndarray) -> None:
        """This reader as one that read ``n_samples`` and was closed: its per-frame energy
        given, nothing read (a track a checkpoint saw finished needs no more audio)."""
        self.close()
        self._n = int(n_samples)
        self._energy = [np.asarray(energy, np.int64)]
        self.ended = True

    def close(self) -> None:
        """Stop reading (closes a file the chunks come from)."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

"""LSE-C / LSE-D from SyncNet embeddings (SPEC §2), a chain of small steps:

audio samples → MFCC (C++ core) → 20-column windows; face crops → 5-frame windows;
both towers → embeddings; embeddings → offset search (C++ core, streamed batch by batch
in ``lipleak.sync_video``) → LSE-C, LSE-D.

Window k pairs video frames [k, k+5) with MFCC columns [4k, 4k+20); the number of
windows is N = min(n_frames, floor(n_samples / 640)) - 5, as in syncnet_python.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from .. import _core

SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps
MFCC_PER_FRAME = 4  # 100 Hz MFCC / 25 fps
WINDOW_FRAMES = 5
WINDOW_MFCC = 20


def n_windows(n_frames: int, n_samples: int) -> int:
    """Number of SyncNet windows for a clip, as syncnet_python counts them (may be <= 0)."""
    return min(n_frames, n_samples // SAMPLES_PER_FRAME) - WINDOW_FRAMES


def mfcc_windows(audio: np.ndarray, count: int) -> np.ndarray:
    """MFCC windows for the first ``count`` video windows: float32[count, 1, 13, 20]."""
    cc = _core.mfcc(np.ascontiguousarray(audio, dtype=np.int16)).T  # 13 x T
    out = np.empty((count, 1, 13, WINDOW_MFCC), dtype=np.float32)
    for k in range(count):
        out[k, 0] = cc[:, MFCC_PER_FRAME * k : MFCC_PER_FRAME * k + WINDOW_MFCC]
    return out


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


class AudioWindows:
    """``mfcc_windows`` of a signal that arrives in chunks, computed as they are asked for.

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
        return self._n >= need

    def windows(self, lo: int, hi: int) -> np.ndarray:
        """float32[hi - lo, 1, 13, 20]: the MFCC windows of video windows lo .. hi - 1."""
        out = np.empty((max(hi - lo, 0), 1, 13, WINDOW_MFCC), dtype=np.float32)
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

    def close(self) -> None:
        """Stop reading (closes a file the chunks come from)."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def lip_window(crops: list[np.ndarray], out: np.ndarray) -> None:
    """Write five 224x224x3 BGR uint8 crops into ``out`` (float32[3, 5, 224, 224])."""
    for t, crop in enumerate(crops):
        out[:, t] = crop.transpose(2, 0, 1)


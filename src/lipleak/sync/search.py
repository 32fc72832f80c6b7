"""The offset search (SPEC §2) fed window by window, so memory does not grow with length."""

from __future__ import annotations

from collections import deque

import numpy as np

from .. import _core
from ..errors import InputError
from ..export.syncnet_shapes import EMBED_DIM, SAMPLES_PER_FRAME, WINDOW_FRAMES
from .audio import AudioWindows

# The most distances the core's sync_stats takes in one matrix (kMaxOutput in module.cpp).
MAX_DISTANCES = 1 << 28


class RowBuffer:
    """Distance rows appended batch by batch into one array.

    Rows kept as a list of per-batch pieces and joined at the end held every row twice
    at that moment (an hour of video: 22 MB of rows, 45 MB at the join; again at each
    checkpoint). Here they go into an array sized for the ``expected`` rows (the track's
    frame count, known before its first window): pages not yet written cost no memory,
    so an estimate too high costs nothing, and one too low grows the array by half.
    """

    def __init__(self, width: int, expected: int = 0, rows: np.ndarray | None = None):
        # made at the first rows, not here: detect mode makes every track's buffer when
        # its second pass starts, and freed buffers of ended tracks are reused by later
        # ones only if those are allocated after them (free heap pages stay resident)
        self._buf = np.empty((0, width))
        self.expected = expected
        self.n = 0
        if rows is not None and len(rows):
            self.append(rows)

    def __len__(self) -> int:
        return self.n

    def append(self, rows: np.ndarray) -> None:
        k = len(rows)
        if not len(self._buf):
            self._buf = np.empty((max(self.expected, k), self._buf.shape[1]))
        if self.n + k > len(self._buf):
            grown = np.empty((max(self.n + k, len(self._buf) * 3 // 2 + 64), self._buf.shape[1]))
            grown[: self.n] = self._buf[: self.n]
            self._buf = grown
        self._buf[self.n : self.n + k] = rows
        self.n += k

    def rows(self, start: int = 0) -> np.ndarray:
        """Rows ``start ..`` (a view: the buffer is only replaced, never written over)."""
        return self._buf[start : self.n]


class StreamingSearch:
    """Offset search fed batch by batch, so memory does not grow with video length.

    Row i of the distance matrix needs audio embeddings i-vshift .. i+vshift; it is final
    once video window i+vshift exists (then all those audio rows are real, not padding),
    or when the stream ends (rows past the last window are the zero padding). Rows are
    computed by the core's ``shift_distances`` with ``row0``, which gives bit for bit the
    rows of the one-shot search; only the N x (2*vshift+1) distances are kept.
    """

    def __init__(
        self, syncnet, audio: AudioWindows, vshift: int, batch_size: int, expected: int = 0
    ):
        """``expected``: about how many windows the stream will have (its frames less 5);
        only sizes the row buffer."""
        self.syncnet = syncnet
        self.vshift = vshift
        self.batch_size = batch_size
        self.audio = audio
        self.v = np.empty((0, EMBED_DIM), np.float32)  # pending video rows [v0, n_video)
        self.v0 = 0
        self.a = np.empty((0, EMBED_DIM), np.float32)  # audio rows [a0, a0 + len(a))
        self.a0 = 0
        self.n_video = 0
        self.expected = max(0, expected)
        self.rows = RowBuffer(2 * vshift + 1, self.expected)
        self.saved_rows = 0  # distance rows already in a checkpoint

    def state(self) -> tuple[dict, np.ndarray]:
        """(what resumes this search, the distance rows made since the last ``state``)."""
        fresh = self.rows.rows(self.saved_rows)
        self.saved_rows = len(self.rows)
        return {
            "v": self.v,
            "v0": self.v0,
            "a": self.a,
            "a0": self.a0,
            "n_video": self.n_video,
        }, fresh

    def restore(self, state: dict, rows: np.ndarray) -> None:
        self.v = np.asarray(state["v"], np.float32)
        self.v0 = int(state["v0"])
        self.a = np.asarray(state["a"], np.float32)
        self.a0 = int(state["a0"])
        self.n_video = int(state["n_video"])
        self.rows = RowBuffer(2 * self.vshift + 1, self.expected, rows)
        self.saved_rows = len(rows)

    def release_rows(self) -> None:
        """Drop the distance rows: the result was made from them and any checkpoint holds
        them; a ``state`` after this hands out none."""
        self.rows = RowBuffer(2 * self.vshift + 1)
        self.saved_rows = 0

    def _audio_rows(self, hi: int) -> None:
        """Make sure audio embeddings exist up to row ``hi`` (exclusive)."""
        while self.a0 + len(self.a) < hi:
            lo = self.a0 + len(self.a)
            n = min(self.batch_size, hi - lo)
            win = self.audio.windows(lo, lo + n)
            self.audio.release(lo + n)
            self.a = np.concatenate([self.a, self.syncnet.embed_audio(win)])

    def _finalize(self, upto: int, n_total: int | None) -> None:
        """Compute distance rows [v0, upto); ``n_total`` is the window count once known."""
        if upto <= self.v0:
            return
        hi = upto + self.vshift if n_total is None else min(n_total, upto + self.vshift)
        self._audio_rows(hi)
        lo = max(0, self.v0 - self.vshift)
        audio = self.a[lo - self.a0 : hi - self.a0]
        chunk = self.v[: upto - self.v0]
        self.rows.append(_core.shift_distances(chunk, audio, self.vshift, self.v0 - lo))
        self.v = self.v[upto - self.v0 :]
        self.v0 = upto
        keep = max(0, self.v0 - self.vshift) - self.a0  # audio rows no longer needed
        if keep > 0:
            self.a, self.a0 = self.a[keep:], self.a0 + keep

    def add(self, emb: np.ndarray) -> None:
        width = 2 * self.vshift + 1
        if (self.n_video + len(emb)) * width > MAX_DISTANCES:
            # refused as soon as it is known, not after the whole video was embedded
            raise InputError(
                None,
                f"too long for vshift {self.vshift}: more than {MAX_DISTANCES // width} "
                f"SyncNet windows x {width} shifts exceed the {MAX_DISTANCES} distances "
                "the offset search keeps; use a smaller --vshift",
                "too_long",
            )
        self.v = np.concatenate([self.v, emb])
        self.n_video += len(emb)
        self._finalize(self.n_video - self.vshift, None)

    def finish(self) -> dict:
        """``sync_stats`` of all rows, with the rows themselves as ``distances`` (N x S):
        the segments of SPEC §11 are computed from them (``lipleak.sync.segments``)."""
        self._finalize(self.n_video, self.n_video)
        d = self.rows.rows()
        return {**_core.sync_stats(d), "distances": d}


class _Done:
    """An embedding already computed, with the interface of a submitted one."""

    __slots__ = ("_value",)

    def __init__(self, value: np.ndarray):
        self._value = value

    def result(self) -> np.ndarray:
        return self._value


def submit_lip_frames(syncnet, runs: list[np.ndarray]):
    """``syncnet.embed_lip_frames(runs)`` started in the background where the model can
    (``submit_lip_frames``: a thread of its own, or the pipeline's shared tower), else run
    now; either way an object whose ``result()`` gives the embeddings."""
    submit = getattr(syncnet, "submit_lip_frames", None)
    if submit is None:
        return _Done(syncnet.embed_lip_frames(runs))
    return submit(runs)


class WindowStream:
    """Turns consecutive 224x224 crops of one track into SyncNet lip embeddings.

    Window k (frames k..k+4) is counted when frame k+5 arrives, which reproduces
    syncnet_python's count N = n_frames - 5; the audio caps it the same way (window k
    needs k + 6 frames of samples). Crops are kept as they come (uint8) and handed to the
    model as runs of consecutive frames, ``batch_size`` windows at a time; the model makes
    the float windows (``SyncNet.embed_lip_frames``), on its device where it can.

    A full batch is submitted and the caller goes on decoding: up to ``in_flight``
    batches (the model's ``lip_in_flight``, else 1) are embedded in the background while
    the next crops are made, and the audio tower and the offset search take each batch's
    embeddings in order as it comes back. Same numbers as one batch at a time (a
    window's embedding depends on that window only). Embeddings go straight into the
    streaming offset search; audio is read only as far as the windows reach. Memory: at
    most (``in_flight`` + 1) × (``batch_size`` + 4) + 1 crops.
    """

    def __init__(
        self,
        syncnet,
        audio: AudioWindows,
        vshift: int,
        batch_size: int,
        in_flight: int | None = None,
        expected_frames: int = 0,
    ):
        """``expected_frames``: about how many crops will come (sizes a buffer only)."""
        self.syncnet = syncnet
        self.audio = audio
        self.search = StreamingSearch(
            syncnet, audio, vshift, batch_size, expected_frames - WINDOW_FRAMES
        )
        self.batch_size = batch_size
        self.in_flight = getattr(syncnet, "lip_in_flight", 1) if in_flight is None else in_flight
        self._pending: deque = deque()  # submitted batches, oldest first
        self.frames: list[np.ndarray] = []  # crops from frame ``first`` on
        self.first = 0  # the first window not yet embedded (= its first frame)
        self.seen = 0
        self.windows = 0

    @property
    def done(self) -> bool:
        """No further window can be made: the audio ends before it."""
        return not self.audio.has_frames(self.windows + WINDOW_FRAMES + 1)

    def push(self, crop: np.ndarray) -> None:
        if self.done:
            return
        self.frames.append(crop)
        self.seen += 1
        if self.seen <= WINDOW_FRAMES:
            return
        self.windows += 1  # window seen - 6: frames seen - 6 .. seen - 2
        if self.windows - self.first == self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Submit the windows made so far (a partial batch too)."""
        n = self.windows - self.first
        if n:
            run = np.stack(self.frames[: n + WINDOW_FRAMES - 1])
            self._pending.append(submit_lip_frames(self.syncnet, [run]))
            del self.frames[:n]
            self.first = self.windows
            while len(self._pending) > self.in_flight:
                self.search.add(self._pending.popleft().result())

    def drain(self) -> None:
        """Submit what is left and wait until every window is in the offset search."""
        self.flush()
        while self._pending:
            self.search.add(self._pending.popleft().result())

    def state(self) -> tuple[dict, np.ndarray]:
        """Everything that resumes this stream, and the distance rows made since the last
        call (a checkpoint appends them). Drains first: nothing is in flight."""
        self.drain()
        search, rows = self.search.state()
        frames = np.stack(self.frames) if self.frames else np.empty((0, 224, 224, 3), np.uint8)
        meta = {
            "seen": self.seen,
            "windows": self.windows,
            "audio_base": self.audio.base,
            "audio_read": self.audio.n_samples,
        }
        arrays = {"frames": frames, "energy": self.audio.frame_energy()}
        return {**{f"search_{k}": v for k, v in search.items()}, **meta, **arrays}, rows

    def restore(self, state: dict, rows: np.ndarray, finished: bool = False) -> None:
        """This (new) stream in the state ``state`` recorded; its audio read on to match
        (as far as the stopped run had read, so that the per-frame audio energy, the
        segments' loudness, covers the same frames). ``finished``: the stream's track had
        ended by then: its audio is not opened again, the recorded energy stands."""
        self.search.restore({k[7:]: v for k, v in state.items() if k.startswith("search_")}, rows)
        self.seen = int(state["seen"])
        self.windows = self.first = int(state["windows"])
        self.frames = list(state["frames"])
        if finished:
            self.audio.restore_finished(int(state["audio_read"]), state["energy"])
            return
        self.audio.skip_to(int(state["audio_base"]))
        self.audio.has_frames(-(-int(state["audio_read"]) // SAMPLES_PER_FRAME))

    def finish(self) -> None:
        """Score the last windows, then drop what only later windows would have needed
        (the last crops, pending embeddings, audio samples): a long video's finished
        tracks keep only their distance rows. ``result()`` stays the same."""
        self.result()
        self.frames = []
        # copies: an empty slice is a view that would keep the whole embedding array alive
        self.search.v = self.search.v[:0].copy()
        self.search.a = self.search.a[:0].copy()
        self.audio.discard()

    def release_rows(self) -> None:
        """After ``finish``, once its result was taken and a checkpoint (if any) saved
        every row: a long video's ended tracks then keep nothing per frame."""
        self.search.release_rows()

    def result(self) -> dict | None:
        """The offset search over all windows, or None when there were none."""
        self.drain()
        return self.search.finish() if self.windows else None

"""The streaming offset search (bounded memory) gives bit for bit the one-shot search of
SPEC §2 on the same embeddings, for any batch size, length and vshift."""

from __future__ import annotations

import numpy as np
import pytest

from lipleak import _core
from lipleak.io.audio import array_chunks, sample_range
from lipleak.metrics import sync as syncm
from lipleak.models.syncnet import lip_windows
from lipleak.sync.audio import AudioWindows
from lipleak.sync.search import RowBuffer, WindowStream


class FakeSyncNet:
    """Deterministic stand-in for the towers: fixed random projections of the inputs."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.pl = rng.standard_normal((3 * 5 * 4 * 4, 1024)).astype(np.float32) / 50
        self.pa = rng.standard_normal((13 * 20, 1024)).astype(np.float32) / 50
        self.lip_calls = self.audio_calls = 0

    def embed_lips(self, x):
        self.lip_calls += 1
        small = x[:, :, :, ::56, ::56].reshape(len(x), -1)  # 3*5*4*4 features
        # row by row, so that (like the real onnxruntime towers) results do not depend on
        # how rows are grouped into batches
        return np.stack([r @ self.pl for r in small]).astype(np.float32)

    def embed_lip_frames(self, runs):
        # what SyncNet does on a backend without run_prepared: the host windows
        return self.embed_lips(np.concatenate([lip_windows(r) for r in runs]))

    def embed_audio(self, x):
        self.audio_calls += 1
        return np.stack([r @ self.pa for r in x.reshape(len(x), -1)]).astype(np.float32)


def one_shot(net, crops, samples, vshift):
    n = syncm.n_windows(len(crops), len(samples))
    win = np.empty((n, 3, 5, 224, 224), np.float32)
    for k in range(n):
        syncm.lip_window(crops[k : k + 5], win[k])
    v = net.embed_lips(win)
    a = net.embed_audio(syncm.mfcc_windows(samples, n))
    return _core.offset_search(v, a, vshift)


@pytest.mark.parametrize(
    "n_frames,audio_frames,vshift,batch,chunk",
    [
        (40, 40, 15, 1, 1 << 16),
        (40, 40, 15, 7, 1024),
        (40, 60, 15, 64, 333),
        (60, 30, 15, 7, 1),
        (12, 12, 15, 3, 640),
        (6, 50, 15, 1, 5000),
        (33, 33, 3, 5, 1023),
        (25, 25, 0, 4, 7),
        (80, 80, 20, 16, 2048),
        (50, 47, 15, 8, 641),
    ],
)
def test_streaming_equals_one_shot(n_frames, audio_frames, vshift, batch, chunk):
    """Video windows in batches and audio in chunks of any size: the one-shot numbers."""
    rng = np.random.default_rng(n_frames * 100 + batch)
    crops = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(n_frames)]
    # a partial last frame of audio (audio_frames=47 case: + 300 samples) must not count
    extra = 300 if audio_frames == 47 else 0
    samples = (rng.standard_normal(audio_frames * 640 + extra) * 3000).astype(np.int16)
    net = FakeSyncNet()
    ref = one_shot(net, crops, samples, vshift)
    # the frame count the stream is told sizes its row buffer only: none, exact, too few
    # (the buffer grows), too many
    for expected in (0, n_frames, n_frames // 2, 3 * n_frames):
        audio = AudioWindows(array_chunks(samples, chunk))
        stream = WindowStream(net, audio, vshift, batch, expected_frames=expected)
        for c in crops:
            stream.push(c)
            if stream.done:
                break
        got = stream.result()
        assert stream.windows == syncm.n_windows(n_frames, len(samples))
        for key in ("offset", "best"):
            assert got[key] == ref[key]
        for key in ("lse_c", "lse_d"):
            assert got[key] == ref[key]  # bit for bit
        np.testing.assert_array_equal(got["mdist"], ref["mdist"])
        np.testing.assert_array_equal(got["fconf"], ref["fconf"])
        assert got["distances"].shape == (stream.windows, 2 * vshift + 1)


@pytest.mark.parametrize("expected", [0, 1000, 999, 700, 5000])
def test_row_buffer_equals_the_joined_pieces(expected):
    rng = np.random.default_rng(expected)
    pieces = [rng.standard_normal((int(k), 31)) for k in rng.integers(0, 70, 30)]
    pieces.append(rng.standard_normal((1000 - sum(map(len, pieces)) % 1000, 31)))
    buf, saved = RowBuffer(31, expected), []
    for i, piece in enumerate(pieces):
        buf.append(piece)
        if i % 7 == 3:  # a checkpoint takes the rows since the last one
            saved.append(buf.rows(sum(map(len, saved))).copy())
    whole = np.concatenate(pieces)
    np.testing.assert_array_equal(buf.rows(), whole)
    np.testing.assert_array_equal(np.concatenate(saved), whole[: sum(map(len, saved))])
    again = RowBuffer(31, expected, whole[:500])  # restored from a checkpoint, then on
    again.append(whole[500:])
    np.testing.assert_array_equal(again.rows(), whole)


def test_an_hour_of_rows_is_held_once():
    """90,000 rows (an hour at 25 fps) appended batch by batch, then read: memory is the
    rows once (a list of pieces joined at the end held them twice: 45 MB)."""
    import tracemalloc

    piece = np.ones((64, 31))
    n = 90_000
    tracemalloc.start()
    try:
        buf = RowBuffer(31, n)  # the frame count a stream is told, less 5
        for _ in range(n // 64):
            buf.append(piece)
        buf.append(piece[: n % 64])
        rows = buf.rows()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rows.shape == (n, 31)
    assert peak < 1.02 * rows.nbytes, (peak, rows.nbytes)


def test_finished_stream_keeps_only_its_distance_rows():
    """A long video has hundreds of finished tracks: each keeps its distance rows and
    nothing that only later windows would have needed (no view pinning an embedding array)."""
    rng = np.random.default_rng(5)
    samples = (rng.standard_normal(60 * 640) * 3000).astype(np.int16)
    stream = WindowStream(FakeSyncNet(), AudioWindows.from_array(samples), 15, 8)
    for _ in range(60):
        stream.push(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
    want = stream.result()
    stream.finish()
    held = [stream.search.v, stream.search.a]
    assert all(a.size == 0 and a.base is None for a in held)
    assert stream.frames == []
    got = stream.result()  # the numbers stay
    assert got["lse_c"] == want["lse_c"] and got["offset"] == want["offset"]
    np.testing.assert_array_equal(got["distances"], want["distances"])
    assert np.shares_memory(got["distances"], want["distances"])  # not copied per call


def test_no_windows_gives_none():
    net = FakeSyncNet()
    stream = WindowStream(net, AudioWindows.from_array(np.zeros(640 * 20, np.int16)), 15, 4)
    for _ in range(5):
        stream.push(np.zeros((224, 224, 3), np.uint8))
    assert stream.result() is None


@pytest.mark.parametrize("chunk", [1, 159, 640, 4096, 1 << 20])
def test_audio_windows_equal_mfcc_windows_and_hold_little(chunk):
    """Windows asked for in order, in uneven groups, with samples released behind them:
    bit for bit ``mfcc_windows`` of the whole signal, holding only a bounded buffer."""
    rng = np.random.default_rng(chunk)
    samples = (rng.standard_normal(640 * 300 + 123) * 4000).astype(np.int16)
    n = syncm.n_windows(10**9, len(samples))
    ref = syncm.mfcc_windows(samples, n)
    aw = AudioWindows(array_chunks(samples, chunk))
    lo, held = 0, []
    for size in [1, 7, 32, 3, 64, 30] * 10:
        hi = min(n, lo + size)
        np.testing.assert_array_equal(aw.windows(lo, hi), ref[lo:hi])
        aw.release(hi)
        held.append(len(aw._buf))
        lo = hi
        if lo == n:
            break
    assert lo == n
    assert not aw.has_frames(n + syncm.WINDOW_FRAMES + 1)  # the signal ends there
    assert aw.ended and aw.n_samples == len(samples)
    # what is held is bounded by the largest request, not by the signal's length
    assert max(held) <= 64 * 640 + 4 * 640 + chunk, max(held)
    with pytest.raises(ValueError, match="ends before"):
        aw.windows(n, n + 1)


def test_sample_range_cuts_a_chunked_signal():
    x = np.arange(10_000, dtype=np.int16)
    for size in (1, 7, 640, 20_000):
        for start, stop in [(0, 10_000), (1, 2), (639, 6400), (9_000, 12_000), (5, 5)]:
            got = list(sample_range(array_chunks(x, size), start, stop))
            joined = np.concatenate(got) if got else np.zeros(0, np.int16)
            np.testing.assert_array_equal(joined, x[start:stop])


def test_audio_windows_refuse_bad_chunks():
    aw = AudioWindows(iter([np.zeros(4000, np.float32)]))
    with pytest.raises(ValueError, match="1-D int16"):
        aw.has_frames(6)


def test_row_buffers_take_memory_only_when_rows_come():
    """Detect mode makes all of a video's ~500 track streams when its second pass starts:
    their row buffers are made at each track's first rows, so that a track ending frees
    a buffer that the tracks after it reuse (made up front, each took heap pages that,
    freed in the middle of the heap, stayed resident: ~1 MB per minute of scoring)."""
    import tracemalloc

    tracemalloc.start()
    try:
        buffers = [RowBuffer(31, expected=170) for _ in range(500)]
        made = tracemalloc.get_traced_memory()[0]
        buffers[0].append(np.ones((3, 31)))
        one = tracemalloc.get_traced_memory()[0] - made
    finally:
        tracemalloc.stop()
    assert made < 500 * 1024  # 500 empty buffers: not 500 x 170 rows (21 MB)
    assert 170 * 31 * 8 <= one < 170 * 31 * 8 + 4096  # the first rows: the expected size
    assert buffers[0].rows().tolist() == np.ones((3, 31)).tolist()

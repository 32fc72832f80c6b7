"""``io.tape.ChunkTape``: every range read from one pass equals ``sample_range`` over a
fresh pass, whatever the order the readers run in; the source is read once; memory holds
what the open readers are apart, not the signal."""

from __future__ import annotations

import numpy as np
import pytest

from lipleak.io.audio import sample_range
from lipleak.io.tape import ChunkTape


def _source(n=50_000, seed=0):
    rng = np.random.default_rng(seed)
    signal = rng.integers(-(2**15), 2**15, n).astype(np.int16)
    cuts = np.sort(rng.choice(np.arange(1, n), 60, replace=False))
    sizes = np.diff(np.concatenate([[0], cuts, [n]]))
    opened = []

    def chunks():
        opened.append(1)
        pos = 0
        for s in sizes:  # chunks of uneven sizes, as decoded audio frames are
            yield signal[pos : pos + s]
            pos += s

    return signal, chunks, opened


def _chunks_equal(got, want):
    assert [len(c) for c in got] == [len(c) for c in want]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", range(6))
def test_interleaved_readers_equal_fresh_passes(seed):
    signal, chunks, opened = _source(seed=seed)
    rng = np.random.default_rng(100 + seed)
    starts = np.sort(rng.integers(0, 52_000, 25))  # tracks begin in order; some overlap,
    ranges = [(int(a), int(a + rng.integers(0, 9000))) for a in starts]  # some empty/past end
    tape = ChunkTape(chunks)
    readers = [tape.reader(a, b) for a, b in ranges]
    got = [[] for _ in ranges]
    live = set(range(len(ranges)))
    while live:  # a few chunks from a random open reader at a time, lagging ones included
        i = int(rng.choice(sorted(live)))
        for _ in range(int(rng.integers(1, 4))):
            try:
                got[i].append(next(readers[i]))
            except StopIteration:
                live.discard(i)
                break
    for (a, b), g in zip(ranges, got, strict=True):
        _chunks_equal(g, list(sample_range(chunks(), a, b)))
    assert tape.passes == 1 and opened.count(1) == 1 + len(ranges)  # + the oracle's passes


def test_memory_is_what_the_readers_are_apart():
    signal, chunks, _ = _source(n=400_000, seed=7)
    tape = ChunkTape(chunks)
    # consecutive tracks, each read to its end before the next begins (one face per shot)
    most = 0
    for a in range(0, 400_000, 20_000):
        r = tape.reader(a, a + 20_000)
        for _ in r:
            most = max(most, sum(len(c) for _, c in tape._kept))
    assert most < 40_000 + 3 * max(len(c) for c in chunks())  # a bounded window of the signal
    assert tape.passes == 1


def test_a_reader_made_after_its_samples_were_dropped_reads_a_fresh_pass():
    signal, chunks, _ = _source(seed=3)
    tape = ChunkTape(chunks)
    list(tape.reader(0, 45_000))  # read and closed: the tape drops what is behind
    late = list(tape.reader(100, 3000))
    _chunks_equal(late, list(sample_range(chunks(), 100, 3000)))
    assert tape.passes == 2


def test_closed_reader_releases_and_unread_reader_keeps_its_range():
    signal, chunks, _ = _source(seed=4)
    tape = ChunkTape(chunks)
    waiting = tape.reader(1000, 2000)  # made, not read yet: its samples must stay
    first = tape.reader(0, 40_000)
    list(first)
    _chunks_equal(list(waiting), list(sample_range(chunks(), 1000, 2000)))
    assert tape.passes == 1
    never = tape.reader(40_000, 41_000)
    never.close()  # closed unread: holds nothing back, stops at once
    assert list(never) == []


def test_a_source_error_reaches_the_readers_that_get_there():
    def chunks():
        yield np.zeros(100, np.int16)
        raise RuntimeError("decode error at 100")

    tape = ChunkTape(chunks)
    assert [len(c) for c in tape.reader(0, 50)] == [50]  # stops before the error
    with pytest.raises(RuntimeError, match="decode error"):
        list(tape.reader(50, 500))
    with pytest.raises(RuntimeError, match="decode error"):
        list(tape.reader(100, 500))

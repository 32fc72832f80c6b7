"""SPEC §11 segments on constructed distance matrices: which windows, §2's arithmetic per
segment against a numpy oracle (ties, short tracks, the tail rule), a whole-track segment
bit for bit the track's numbers, the sign of av_offset_ms, and the loudness rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lipleak import _core
from lipleak.io.audio import array_chunks
from lipleak.sync.audio import AudioWindows
from lipleak.sync.segments import (
    no_face_segments,
    rms_dbfs,
    segment_ranges,
    segment_status,
    track_segments,
    windows_for,
)


def oracle_ranges(n: int, length: int, hop: int) -> list[tuple[int, int]]:
    """SPEC §11 read literally: runs of L windows every H; the run from the last full
    run's start + H to the end when it has >= L/2 windows; a track under L is one."""
    if n < length:
        return [(0, n - 1)]
    starts = [k for k in range(0, n) if k % hop == 0 and k + length <= n]
    runs = [(k, k + length - 1) for k in starts]
    tail = starts[-1] + hop
    if n - tail >= length / 2:
        runs.append((tail, n - 1))
    return runs


@pytest.mark.parametrize(
    "n,length,hop,expected",
    [
        (250, 100, 50, [(0, 99), (50, 149), (100, 199), (150, 249), (200, 249)]),
        (249, 100, 50, [(0, 99), (50, 149), (100, 199), (150, 248)]),
        (100, 100, 50, [(0, 99), (50, 99)]),  # tail of exactly L/2
        (99, 100, 50, [(0, 98)]),  # short track: one segment
        (1, 100, 50, [(0, 0)]),
        (200, 100, 80, [(0, 99), (80, 179)]),  # tail 160..199 = 40 < 50: dropped
        (210, 100, 80, [(0, 99), (80, 179), (160, 209)]),  # tail of 50: kept
        (7, 5, 4, [(0, 4), (4, 6)]),  # odd L: 3 windows >= 2.5
        (6, 5, 4, [(0, 4)]),  # 2 windows < 2.5
        (10, 3, 5, [(0, 2), (5, 7)]),  # hop > length: gaps; tail 10..9 is empty
    ],
)
def test_segment_ranges(n, length, hop, expected):
    assert segment_ranges(n, length, hop) == expected == oracle_ranges(n, length, hop)


def test_segment_ranges_against_oracle_everywhere():
    for length in (1, 2, 5, 10, 11):
        for hop in (1, 3, 5, 7, 12):
            for n in range(1, 60):
                assert segment_ranges(n, length, hop) == oracle_ranges(n, length, hop)


def test_windows_for_seconds():
    assert (windows_for(4.0), windows_for(2.0), windows_for(0.04), windows_for(1.3)) == (
        100,
        50,
        1,
        32,
    )


def oracle_stats(d: np.ndarray) -> tuple[int, float, float]:
    """SPEC §2 on rows d: (offset, LSE-C, LSE-D); np.argmin takes the first of ties."""
    mdist = d.mean(axis=0)
    vshift = (d.shape[1] - 1) // 2
    return vshift - int(np.argmin(mdist)), float(np.median(mdist) - mdist.min()), mdist.min()


def loud_energy(n_frames: int) -> np.ndarray:
    return np.full(n_frames, 640 * 10000**2, np.int64)  # RMS 10000: about -10 dBFS


def test_segment_numbers_equal_the_oracle_and_whole_track_bit_for_bit():
    rng = np.random.default_rng(1)
    n, vshift = 237, 15
    d = rng.uniform(5, 15, (n, 2 * vshift + 1))
    segs = track_segments(d, loud_energy(n + 4), 10, 100, 50, 25.0, 0.0)
    assert [(s.first_window, s.last_window) for s in segs] == segment_ranges(n, 100, 50)
    for s in segs:
        off, c, dmin = oracle_stats(d[s.first_window : s.last_window + 1])
        assert s.offset == off
        assert s.lse_c == pytest.approx(c, rel=1e-12, abs=1e-12)
        assert s.lse_d == pytest.approx(dmin, rel=1e-12)
        assert s.av_offset_ms == 40.0 * off
        assert (s.start_frame, s.end_frame) == (10 + s.first_window, 10 + s.last_window + 4)
    # a track shorter than L: one segment, and it is the track's §2 result to the bit
    short = d[:80]
    whole = _core.sync_stats(short)
    (seg,) = track_segments(short, loud_energy(84), 0, 100, 50, 25.0, 0.0)
    assert (seg.offset, seg.lse_c, seg.lse_d) == (
        whole["offset"],
        whole["lse_c"],
        whole["lse_d"],
    )
    # L = N: the first segment covers the whole track
    first = track_segments(d, loud_energy(n + 4), 0, n, 50, 25.0, 0.0)[0]
    full = _core.sync_stats(d)
    assert (first.first_window, first.last_window) == (0, n - 1)
    assert (first.offset, first.lse_c, first.lse_d) == (
        full["offset"],
        full["lse_c"],
        full["lse_d"],
    )


def test_ties_take_the_first_shift():
    """Two shifts with the same mean distance: the lower index (larger offset) wins."""
    n = 20
    d = np.full((n, 31), 10.0)
    d[:, 12] = 2.0  # offset +3
    d[:, 20] = 2.0  # offset -5, same mean
    (seg,) = track_segments(d, loud_energy(n + 4), 0, 100, 50, 25.0, 0.0)
    assert seg.offset == 3 and seg.av_offset_ms == 120.0
    assert seg.lse_d == 2.0 and seg.lse_c == 8.0


def test_sign_audio_leading_is_positive_ms():
    """Embeddings where the sound of lip window i is audio window i - 3 (the audio comes
    3 frames early): the search, and every segment, says +3 frames = +120 ms."""
    rng = np.random.default_rng(7)
    n, k = 150, 3
    base = rng.standard_normal((n + k, 64)).astype(np.float32)
    video = base[:n]
    audio = base[k : n + k]  # A[j] = V[j + k]: audio window i - k carries lip window i
    assert np.array_equal(audio[10 - k], video[10])
    d = _core.shift_distances(video, audio, 15)
    assert _core.sync_stats(d)["offset"] == k
    segs = track_segments(d, loud_energy(n + 4), 0, 50, 25, 25.0, 0.0)
    assert len(segs) == 6 and all(s.offset == k and s.av_offset_ms == 120.0 for s in segs)
    # the other way round: the audio 2 frames late (A[i + 2] == V[i]) is negative
    d = _core.shift_distances(base[2 : n + 2], base[:n], 15)
    assert {s.av_offset_ms for s in track_segments(d, loud_energy(n + 4), 0, 50, 25, 25.0, 0)} == {
        -80.0
    }


@pytest.mark.parametrize("chunk", [1, 333, 640, 4096])
def test_frame_energy_gives_the_rms_of_the_segment_samples(chunk):
    rng = np.random.default_rng(chunk)
    samples = (rng.standard_normal(40 * 640 + 123) * 2000).astype(np.int16)
    aw = AudioWindows(array_chunks(samples, chunk))
    aw.has_frames(41)  # reads everything
    energy = aw.frame_energy()
    assert len(energy) == 40  # the partial last frame does not count
    for a, b in ((0, 0), (3, 17), (0, 39), (20, 24)):
        x = samples[a * 640 : (b + 1) * 640].astype(np.float64)
        expected = 20 * math.log10(math.sqrt(np.mean(x**2)) / 32768)
        assert rms_dbfs(energy, a, b) == pytest.approx(expected, abs=1e-9)
    with pytest.raises(ValueError):
        rms_dbfs(energy, 30, 40)


def test_silent_threshold_is_minus_45_dbfs():
    def energy_at(dbfs: float) -> np.ndarray:
        amp = 32768 * 10 ** (dbfs / 20)  # a square wave of this RMS
        x = np.where(np.arange(640 * 10) % 2, amp, -amp).round().astype(np.int16)
        aw = AudioWindows(array_chunks(x))
        aw.has_frames(10)
        return aw.frame_energy()

    loud, quiet = rms_dbfs(energy_at(-44.9), 0, 9), rms_dbfs(energy_at(-45.1), 0, 9)
    assert -45 < loud < -44.8 and -45.2 < quiet < -45
    assert segment_status(5.0, loud, 3.0) == "ok"
    assert segment_status(5.0, quiet, 3.0) == "silent"
    assert rms_dbfs(np.zeros(10, np.int64), 0, 9) is None
    assert segment_status(5.0, None, 3.0) == "silent"  # digital silence
    assert segment_status(2.9, loud, 3.0) == "low_confidence"
    assert segment_status(2.9, quiet, 3.0) == "silent"  # silence first
    assert segment_status(None, None, 3.0) == "no_face"


def test_status_of_quiet_segments_in_a_track():
    n = 150
    d = np.random.default_rng(3).uniform(5, 15, (n, 31))
    energy = loud_energy(n + 4)
    energy[50:] = 0  # digital silence from frame 50 on
    segs = track_segments(d, energy, 0, 50, 50, 25.0, 0.0)  # frames 0..53, 50..103, 100..153
    assert [s.status for s in segs] == ["ok", "silent", "silent"]
    rms = 10000 * math.sqrt(50 / 54)  # 4 of its 54 frames are silent
    assert segs[0].rms_dbfs == pytest.approx(20 * math.log10(rms / 32768), abs=1e-12)


def test_no_face_stretches():
    """Uncovered stretches of at least L/2 frames, each one segment; shorter ones dropped."""
    spans = [(10, 59), (100, 149), (120, 200)]
    segs = no_face_segments(300, spans, 40, 25.0)
    got = [(s.start_frame, s.end_frame) for s in segs]
    # 0..9 (10 < 20) dropped; 60..99 (40) kept; 201..299 (99) kept
    assert got == [(60, 99), (201, 299)]
    assert all(s.status == "no_face" and s.offset is None for s in segs)
    assert segs[0].start_s == 60 / 25 and segs[0].end_s == 100 / 25
    assert no_face_segments(30, [], 60, 25.0)[0].end_frame == 29  # 30 frames >= 30
    assert no_face_segments(29, [], 60, 25.0) == []

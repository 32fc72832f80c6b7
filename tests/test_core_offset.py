"""lipleak._core offset search against oracles written from SPEC §2.

Oracle: numpy float64 (pad, loop over shifts, mean, first-index argmin, median,
scipy.signal.medfilt), plus torch.nn.functional.pairwise_distance in float64 for a few
cases. Tolerance 1e-5 relative (the core accumulates in double like the oracle; the
difference is summation order, ~1e-15).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.signal

from lipleak import _core

RTOL = 1e-5


def oracle_distances(video, audio, vshift, row0=0):
    v = video.astype(np.float64)
    a = audio.astype(np.float64)
    n, d = v.shape
    S = 2 * vshift + 1
    # Zero rows past the end too, as many as any shift of any row can reach.
    apad = np.concatenate([np.zeros((vshift, d)), a, np.zeros((row0 + n + S, d))])
    out = np.empty((n, S))
    for s in range(S):
        out[:, s] = np.linalg.norm(v - apad[row0 + s : row0 + s + n] + 1e-6, axis=1)
    return out


def oracle_stats(dist):
    S = dist.shape[1]
    mdist = dist.mean(axis=0)
    best = int(np.argmin(mdist))  # numpy returns the first index on ties
    med = float(np.median(mdist))
    with warnings.catch_warnings():  # kernel larger than a short input: zero-padded
        warnings.simplefilter("ignore")
        fconf = scipy.signal.medfilt(med - dist[:, best], kernel_size=9)
    return {
        "mdist": mdist,
        "best": best,
        "offset": S // 2 - best,
        "lse_d": float(mdist.min()),
        "lse_c": med - float(mdist.min()),
        "fconf": fconf,
    }


def assert_stats_close(got, want):
    assert got["best"] == want["best"]
    assert got["offset"] == want["offset"]
    np.testing.assert_allclose(got["mdist"], want["mdist"], rtol=RTOL)
    np.testing.assert_allclose(got["lse_d"], want["lse_d"], rtol=RTOL)
    # lse_c is a difference; compare on the scale of mdist.
    np.testing.assert_allclose(got["lse_c"], want["lse_c"], rtol=0, atol=RTOL * want["lse_d"])
    np.testing.assert_allclose(got["fconf"], want["fconf"], rtol=0, atol=RTOL * want["lse_d"])


def embeddings(rng, n, d, scale=1.0):
    return (rng.standard_normal((n, d)) * scale).astype(np.float32)


@pytest.mark.parametrize(
    ("n", "d", "vshift"),
    [(50, 1024, 15), (1, 1024, 15), (7, 64, 15), (30, 33, 0), (30, 33, 3), (12, 100, 20)],
)
def test_offset_search_matches_numpy(n, d, vshift):
    rng = np.random.default_rng(n * 1000 + d + vshift)
    video, audio = embeddings(rng, n, d), embeddings(rng, n, d)
    want_d = oracle_distances(video, audio, vshift)
    got_d = _core.shift_distances(video, audio, vshift)
    assert got_d.shape == (n, 2 * vshift + 1) and got_d.dtype == np.float64
    np.testing.assert_allclose(got_d, want_d, rtol=RTOL)
    assert_stats_close(_core.offset_search(video, audio, vshift), oracle_stats(want_d))


def test_offset_found_for_shifted_audio():
    # Audio embedding = video embedding moved by 4 rows (plus noise): the search must find
    # that shift, with the sign of SPEC §2 (offset = vshift - argmin).
    rng = np.random.default_rng(3)
    base = embeddings(rng, 80, 256)
    video = base[4:64]
    audio = base[0:60] + embeddings(rng, 60, 256, 0.05)
    got = _core.offset_search(video, audio)
    want = oracle_stats(oracle_distances(video, audio, 15))
    assert_stats_close(got, want)
    assert got["offset"] == -4 and got["best"] == 19


def test_sync_stats_ties_pick_first_index():
    # Dyadic values: every sum is exact in any order, so columns 3 and 7 have exactly the
    # same mean and both are the minimum; the first (3) must win.
    rng = np.random.default_rng(5)
    d = rng.integers(40, 80, size=(10, 11)).astype(np.float64) / 8
    d[:, 3] = rng.integers(8, 16, size=10) / 8
    d[:, 7] = d[::-1, 3]  # same values, other order
    got = _core.sync_stats(d)
    assert got["mdist"][3] == got["mdist"][7]
    assert got["best"] == 3 and got["offset"] == 5 - 3
    assert_stats_close(got, oracle_stats(d))


def test_all_shifts_tie_on_zero_audio():
    # Zero audio: every shift compares video with zero rows, all columns are identical,
    # so best is the first shift and offset = +vshift.
    rng = np.random.default_rng(6)
    video = embeddings(rng, 20, 64)
    got = _core.offset_search(video, np.zeros_like(video), 15)
    assert np.all(got["mdist"] == got["mdist"][0])
    assert got["best"] == 0 and got["offset"] == 15 and got["lse_c"] == 0.0


def test_padding_enters_the_mean():
    # SPEC §2: shifts reaching past either end compare with zero rows and those distances
    # ||v + 1e-6|| count like any other. Small audio vs large video: the padded entries
    # are the largest, never skipped.
    rng = np.random.default_rng(7)
    video = embeddings(rng, 5, 16, 10.0)
    audio = embeddings(rng, 5, 16, 0.01)
    dist = _core.shift_distances(video, audio, 15)
    pad = np.linalg.norm(video.astype(np.float64) + 1e-6, axis=1)
    np.testing.assert_allclose(dist[:, 0], pad, rtol=1e-12)
    np.testing.assert_allclose(dist[:, 30], pad, rtol=1e-12)
    np.testing.assert_allclose(dist, oracle_distances(video, audio, 15), rtol=RTOL)


@pytest.mark.parametrize("chunk", [1, 7, 32, 33, 100])
def test_row0_chunks_equal_full_call(chunk):
    rng = np.random.default_rng(chunk)
    video, audio = embeddings(rng, 100, 96), embeddings(rng, 100, 96)
    full = _core.shift_distances(video, audio, 15)
    parts = [
        _core.shift_distances(video[a : a + chunk], audio, 15, row0=a)
        for a in range(0, len(video), chunk)
    ]
    assert np.array_equal(np.concatenate(parts), full)


def test_row0_and_unequal_lengths_match_numpy():
    rng = np.random.default_rng(8)
    video, audio = embeddings(rng, 9, 40), embeddings(rng, 25, 40)
    for row0 in (0, 5, 30):
        np.testing.assert_allclose(
            _core.shift_distances(video, audio, 4, row0=row0),
            oracle_distances(video, audio, 4, row0=row0),
            rtol=RTOL,
        )


def test_batch_equals_individual_calls_exactly():
    rng = np.random.default_rng(9)
    lengths = [1, 3, 40, 250, 17, 64]
    videos = [embeddings(rng, n, 1024) for n in lengths]
    audios = [embeddings(rng, n, 1024) for n in lengths]
    batch = _core.offset_search_batch(videos, audios, 15)
    assert len(batch) == len(lengths)
    for got, v, a in zip(batch, videos, audios, strict=True):
        one = _core.offset_search(v, a, 15)
        assert got.keys() == one.keys()
        for key in one:
            assert np.array_equal(got[key], one[key]), key
    assert _core.offset_search_batch([], [], 15) == []


def test_matches_torch_pairwise_distance():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(10)
    for n, d, vshift in [(40, 1024, 15), (6, 32, 10)]:
        video, audio = embeddings(rng, n, d), embeddings(rng, n, d)
        v = torch.from_numpy(video).double()
        apad = F.pad(torch.from_numpy(audio).double(), (0, 0, vshift, vshift))
        # syncnet_python's calc_pdist, in float64.
        want = torch.stack(
            [
                F.pairwise_distance(
                    v[[i], :].repeat(2 * vshift + 1, 1), apad[i : i + 2 * vshift + 1]
                )
                for i in range(n)
            ]
        ).numpy()
        np.testing.assert_allclose(_core.shift_distances(video, audio, vshift), want, rtol=RTOL)

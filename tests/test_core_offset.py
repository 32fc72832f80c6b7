"""lipleak._core offset search against oracles written from SPEC §2.

Oracle: numpy float64 (pad, loop over shifts, mean, first-index argmin, median,
scipy.signal.medfilt), plus torch.nn.functional.pairwise_distance in float64 for a few
cases. Tolerance 1e-5 relative (the core computes differences and squares in float32, as
torch's float32 pairwise_distance does, with float32 partial sums gathered in double; its
error bound is ~2e-6, measured ~2e-7; padding distances are computed in double).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
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


# ---------------------------------------------------------------- float32 kernel

ISAS = ("scalar", "avx2", "avx512")


def available_isas():
    v = np.ones((1, 1), np.float32)
    out = []
    for isa in ISAS:
        try:
            _core._shift_distances_isa(v, v, 0, 0, isa)
            out.append(isa)
        except ValueError:
            pass
    return out


@pytest.mark.parametrize(
    ("n", "m", "d", "vshift", "row0"),
    [(40, 40, 1024, 15, 0), (13, 30, 1000, 4, 6), (9, 9, 15, 3, 0), (20, 25, 1600, 2, 3)],
)
def test_simd_copies_agree_bitwise(n, m, d, vshift, row0):
    # The AVX-512, AVX2 and portable scalar kernels do the same per-lane float32 operations
    # (d not a multiple of 16 exercises the tail, d > 512 the float -> double flush).
    isas = available_isas()
    assert "scalar" in isas
    rng = np.random.default_rng(n + d)
    video, audio = embeddings(rng, n, d, 3.0), embeddings(rng, m, d, 3.0)
    audio[m // 2] = 0.0  # an all-zero row takes the padding path
    want = _core._shift_distances_isa(video, audio, vshift, row0, "scalar")
    for isa in isas:
        assert np.array_equal(_core._shift_distances_isa(video, audio, vshift, row0, isa), want)
    assert np.array_equal(_core.shift_distances(video, audio, vshift, row0), want)
    np.testing.assert_allclose(want, oracle_distances(video, audio, vshift, row0), rtol=RTOL)
    with pytest.raises(ValueError, match="isa"):
        _core._shift_distances_isa(video, audio, vshift, row0, "sse9")


def test_zero_audio_row_equals_padding_exactly():
    # A real all-zero audio row and the zero padding give the same bits, so the mean over
    # frames cannot tell them apart (SPEC §2: padding is zero rows).
    rng = np.random.default_rng(11)
    video, audio = embeddings(rng, 30, 100), embeddings(rng, 30, 100)
    audio[10] = 0.0
    dist = _core.shift_distances(video, audio, 15)
    pad = np.linalg.norm(video.astype(np.float64) + 1e-6, axis=1)
    for i in range(30):
        # Shift 0 of rows 0..14 and shift 30 of rows 15..29 reach the padding.
        padded = dist[i, 0] if i < 15 else dist[i, 30]
        np.testing.assert_allclose(padded, pad[i], rtol=1e-12)
        s = 10 - i + 15  # the shift at which row i meets audio row 10
        if 0 <= s < 31:
            assert dist[i, s] == padded


@pytest.mark.parametrize("scale", [1e-30, 1e-7, 1.0, 1e12, 1e18, 1e19, 1e30, 1e38])
@pytest.mark.parametrize("kind", ["independent", "near_equal", "minus_eps"])
def test_float32_kernel_accuracy_extremes(scale, kind):
    # Worst cases for float32: overflow of the squares (|v - a| > ~1.8e19), underflow, and
    # cancellation (v - a close to 0 or to -1e-6). The kernel detects these pairs and
    # recomputes them in double; every distance stays within 1e-6 of the float64 oracle and
    # positive. Normal inputs are within ~2e-7.
    rng = np.random.default_rng(12)
    d = 200
    v64 = rng.standard_normal((12, d)) * scale
    if kind == "independent":
        a64 = rng.standard_normal((12, d)) * scale
    elif kind == "near_equal":
        a64 = v64 * (1 + 1e-6 * rng.standard_normal((12, d)))
    else:
        a64 = v64 + 1e-6
    video = np.clip(v64, -3e38, 3e38).astype(np.float32)
    audio = np.clip(a64, -3e38, 3e38).astype(np.float32)
    got = _core.shift_distances(video, audio, 4)
    want = oracle_distances(video, audio, 4)
    assert np.all(got > 0)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_worst_relative_error_on_embedding_like_input():
    # Many random pairs of embedding-like vectors (d = 1024, unnormalised, heavy-tailed):
    # the float32 kernel's worst relative error stays well under the 1e-5 tolerance.
    rng = np.random.default_rng(13)
    video = (rng.standard_t(3, (60, 1024)) * 40).astype(np.float32)
    audio = (rng.standard_t(3, (60, 1024)) * 40).astype(np.float32)
    audio[::2] = video[::2] + (rng.standard_normal((30, 1024)) * 0.5).astype(np.float32)
    got = _core.shift_distances(video, audio, 15)
    want = oracle_distances(video, audio, 15)
    assert np.max(np.abs(got - want) / want) < 1e-6


_THREADS_SCRIPT = """
import hashlib, sys
import numpy as np
from lipleak import _core
rng = np.random.default_rng(14)
# n * 31 * 1024 above the core's threading threshold (2**22), so threads do start.
v = rng.standard_normal((600, 1024)).astype(np.float32)
a = rng.standard_normal((600, 1024)).astype(np.float32)
d = _core.shift_distances(v, a, 15)
r = _core.offset_search(v, a, 15)
h = hashlib.sha256(d.tobytes())
for key in ("mdist", "fconf"):
    h.update(r[key].tobytes())
print(h.hexdigest())
"""


def test_thread_count_does_not_change_numbers():
    digests = {}
    for threads in ("1", "2", "3"):
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        out = subprocess.run(
            [sys.executable, "-c", _THREADS_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        digests[threads] = out.stdout.strip()
    assert len(set(digests.values())) == 1, digests
    assert len(digests["1"]) == len(hashlib.sha256().hexdigest())

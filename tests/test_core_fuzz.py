"""Property tests of every lipleak._core entry point.

Arbitrary input (any shape incl. 0-d and empty, any dtype, NaN/inf, strided views, huge or
negative integers, non-arrays, mismatched lists) must end in a Python exception
(ValueError/TypeError) or a well-formed result, never a crash of the interpreter; valid
random input must give finite results, and a strided view the same result as its
contiguous copy.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lipleak import _core

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BAD = (ValueError, TypeError)

DTYPES = [
    np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
    np.uint8, np.uint16, np.bool_, np.complex64,
]  # fmt: skip


@st.composite
def any_array(draw, max_dims=4, max_side=6):
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=max_side))
    arr = draw(hnp.arrays(dtype, shape))
    if arr.ndim >= 1 and arr.shape[0] > 1 and draw(st.booleans()):
        arr = arr[::2]  # strided view
    if draw(st.booleans()) and arr.ndim >= 2:
        arr = arr.T  # Fortran order
    return arr


non_arrays = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=3),
    st.lists(st.floats(allow_nan=True), max_size=4),
    st.just(np.array([object(), 1], dtype=object)),
)
anything = st.one_of(any_array(), any_array(), any_array(), non_arrays)
ints = st.one_of(st.integers(-3, 40), st.integers(99_990, 100_010), st.integers(-(2**70), 2**70))


def call(fn, *args):
    """Result of fn(*args), or None when it raised one of the allowed exceptions."""
    try:
        return fn(*args)
    except BAD:
        return None


def check_stats(r, n, S):
    assert r["mdist"].shape == (S,) and r["fconf"].shape == (n,)
    assert 0 <= r["best"] < S and r["offset"] == S // 2 - r["best"]
    assert np.all(np.isfinite(r["mdist"])) and np.all(np.isfinite(r["fconf"]))
    assert np.isfinite(r["lse_c"]) and r["lse_c"] >= 0 and r["lse_d"] == r["mdist"].min()


# ---------------------------------------------------------------- arbitrary input


@FUZZ
@given(anything, anything, ints, ints)
def test_shift_distances_arbitrary(video, audio, vshift, row0):
    out = call(_core.shift_distances, video, audio, vshift, row0)
    if out is not None:
        assert out.shape == (video.shape[0], 2 * vshift + 1)
        assert np.all(np.isfinite(out))


@FUZZ
@given(anything)
def test_sync_stats_arbitrary(d):
    r = call(_core.sync_stats, d)
    if r is not None:
        assert np.all(np.isfinite(d)) and d.dtype == np.float64
        assert r["mdist"].shape == (d.shape[1],)


@FUZZ
@given(anything, anything, ints)
def test_offset_search_arbitrary(video, audio, vshift):
    r = call(_core.offset_search, video, audio, vshift)
    if r is not None:
        check_stats(r, video.shape[0], 2 * vshift + 1)


@FUZZ
@given(st.lists(anything, max_size=3), st.lists(anything, max_size=3), ints)
def test_offset_search_batch_arbitrary(videos, audios, vshift):
    r = call(_core.offset_search_batch, videos, audios, vshift)
    if r is not None:
        assert len(r) == len(videos) == len(audios)


@FUZZ
@given(anything, ints)
def test_mfcc_arbitrary(signal, samplerate):
    out = call(_core.mfcc, signal, samplerate)
    if out is not None:
        assert signal.dtype == np.int16 and out.shape[1] == 13
        assert np.all(np.isfinite(out))


@FUZZ
@given(anything, ints, ints, st.one_of(st.none(), ints, st.text(max_size=2)), ints)
def test_mfcc_range_arbitrary(signal, samplerate, first, count, base):
    try:
        out = _core.mfcc(signal, samplerate, first=first, count=count, base=base)
    except (*BAD, OverflowError, RuntimeError):  # an int past int64, a str count
        return
    assert signal.dtype == np.int16 and out.shape[1] == 13
    assert np.all(np.isfinite(out))


@FUZZ
@given(
    hnp.arrays(np.int16, st.integers(1, 3000)),
    st.integers(0, 40),
    st.integers(0, 400),
    st.one_of(st.none(), st.integers(0, 40)),
)
def test_mfcc_range_valid(signal, first, slack, count):
    base = max(first * 160 - 1 - slack, 0)
    if base >= len(signal):
        return
    out = _core.mfcc(signal[base:], first=first, count=count, base=base)
    full = _core.mfcc(np.concatenate([np.zeros(base, np.int16), signal[base:]]))
    want = full[first:] if count is None else full[first : first + count]
    if count is not None and first + count > len(full):  # past the end: zero padding frames
        assert out.shape == (count, 13) and np.all(np.isfinite(out))
        np.testing.assert_array_equal(out[: len(want)], want)
    else:
        np.testing.assert_array_equal(out, want)


@FUZZ
@given(anything, anything)
def test_ssim_psnr_arbitrary(a, b):
    for fn in (_core.ssim, _core.psnr):
        out = call(fn, a, b)
        if out is not None:
            assert a.dtype == np.uint8 and out.shape == (a.shape[0],)
            assert not np.any(np.isnan(out))


@FUZZ
@given(any_array(max_dims=5, max_side=14), any_array(max_dims=5, max_side=14))
def test_ssim_psnr_arbitrary_larger(a, b):
    for fn in (_core.ssim, _core.psnr):
        out = call(fn, a, b)
        if out is not None:
            assert not np.any(np.isnan(out))


# ---------------------------------------------------------------- valid input

finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def embedding_pair(draw, same_rows=True):
    n = draw(st.integers(1, 12))
    m = n if same_rows else draw(st.integers(1, 12))
    d = draw(st.integers(1, 40))
    v = draw(hnp.arrays(np.float32, (n, d), elements=finite32))
    a = draw(hnp.arrays(np.float32, (m, d), elements=finite32))
    return v, a


@FUZZ
@given(embedding_pair(same_rows=False), st.integers(0, 40), st.integers(0, 30))
def test_shift_distances_valid(pair, vshift, row0):
    v, a = pair
    out = _core.shift_distances(v, a, vshift, row0)
    assert out.shape == (len(v), 2 * vshift + 1) and np.all(np.isfinite(out))
    assert np.all(out > 0)  # the 1e-6 never cancels entirely in double
    # Strided copies give the same numbers.
    v2 = np.repeat(v, 2, axis=0)[::2]
    assert np.array_equal(_core.shift_distances(v2, a, vshift, row0), out)


@FUZZ
@given(embedding_pair(), st.integers(0, 20))
def test_offset_search_valid(pair, vshift):
    v, a = pair
    r = _core.offset_search(v, a, vshift)
    check_stats(r, len(v), 2 * vshift + 1)
    (rb,) = _core.offset_search_batch([v], [a], vshift)
    for key in r:
        assert np.array_equal(r[key], rb[key])


@FUZZ
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 30), st.sampled_from([1, 3, 31])),
                  elements=st.floats(0, 1e6)))  # fmt: skip
def test_sync_stats_valid(d):
    check_stats(_core.sync_stats(d), d.shape[0], d.shape[1])


@FUZZ
@given(hnp.arrays(np.int16, st.integers(1, 3000)))
def test_mfcc_valid(signal):
    out = _core.mfcc(signal)
    assert out.shape == (1 if len(signal) <= 400 else 1 + -(-(len(signal) - 400) // 160), 13)
    assert np.all(np.isfinite(out))


@FUZZ
@given(
    hnp.arrays(
        np.uint8,
        st.tuples(st.integers(1, 3), st.integers(11, 20), st.integers(11, 20), st.integers(1, 4)),
    ),
    st.data(),
)
def test_ssim_psnr_valid(a, data):
    b = data.draw(hnp.arrays(np.uint8, a.shape))
    s = _core.ssim(a, b)
    assert s.shape == (len(a),) and np.all(np.isfinite(s)) and np.all(np.abs(s) <= 1 + 1e-12)
    p = _core.psnr(a, b)
    assert np.all(p >= 0) and not np.any(np.isnan(p))
    assert np.all(np.isposinf(_core.psnr(a, a)))


# ---------------------------------------------------------------- specific bad input


def test_specific_rejections():
    v = np.ones((4, 8), np.float32)
    with pytest.raises(ValueError, match="float32"):
        _core.offset_search(v.astype(np.float64), v)
    with pytest.raises(ValueError, match="NaN"):
        _core.offset_search(np.where(np.eye(4, 8) > 0, np.nan, v).astype(np.float32), v)
    with pytest.raises(ValueError, match="same number of rows"):
        _core.offset_search(v, v[:3])
    with pytest.raises(ValueError, match="width"):
        _core.shift_distances(v, v[:, :7])
    with pytest.raises(ValueError, match="vshift"):
        _core.offset_search(v, v, -1)
    with pytest.raises(ValueError, match="vshift"):
        _core.offset_search(v, v, 10**9)
    far = _core.shift_distances(v, v, 100_000, 5)  # the largest vshift: all but padding
    np.testing.assert_allclose(
        far[:, 0], np.linalg.norm(v.astype(np.float64) + 1e-6, axis=1), rtol=1e-12
    )
    with pytest.raises(ValueError, match="row0"):
        _core.shift_distances(v, v, 15, -1)
    with pytest.raises(ValueError, match="same length"):
        _core.offset_search_batch([v, v], [v])
    with pytest.raises(ValueError, match="item 1"):
        _core.offset_search_batch([v, v], [v, v[:2]])
    with pytest.raises(ValueError, match="odd"):
        _core.sync_stats(np.ones((3, 4)))
    with pytest.raises(TypeError, match="numpy array"):
        _core.offset_search([[1.0]], [[1.0]])
    with pytest.raises(ValueError, match="samplerate"):
        _core.mfcc(np.ones(100, np.int16), 0)


# ------------------------------------------- well-shaped input with bad values or dtypes
# The arbitrary-input tests above rarely draw an array that passes the shape checks, so
# NaN/inf, dtypes and empty inputs are also tried on otherwise valid shapes.

nonfinite = st.sampled_from([np.nan, np.inf, -np.inf])


@st.composite
def poisoned_pair(draw):
    """float32 N×D embeddings (N may be 0) with NaN/±inf at drawn positions of either."""
    n, d = draw(st.integers(0, 8)), draw(st.integers(1, 16))
    v = draw(hnp.arrays(np.float32, (n, d), elements=finite32))
    a = draw(hnp.arrays(np.float32, (n, d), elements=finite32))
    target = draw(st.sampled_from([v, a]))
    if n:
        for _ in range(draw(st.integers(1, 3))):
            target[draw(st.integers(0, n - 1)), draw(st.integers(0, d - 1))] = draw(nonfinite)
    return v, a


@FUZZ
@given(poisoned_pair(), st.integers(0, 10))
def test_embedding_entry_points_nonfinite_or_empty(pair, vshift):
    v, a = pair
    bad = not (np.isfinite(v).all() and np.isfinite(a).all())
    for fn, args in (
        (_core.shift_distances, (v, a, vshift, 0)),
        (_core.offset_search, (v, a, vshift)),
        (_core.offset_search_batch, ([v], [a], vshift)),
    ):
        out = call(fn, *args)
        if bad:
            assert out is None, fn.__name__  # NaN/inf must be refused, never propagated
        elif out is not None and fn is _core.shift_distances:
            assert out.shape == (len(v), 2 * vshift + 1) and np.all(np.isfinite(out))


@FUZZ
@given(st.integers(0, 8), st.sampled_from([1, 3, 31]), nonfinite, st.data())
def test_sync_stats_nonfinite_or_empty(n, s, x, data):
    d = np.ones((n, s))
    if n:
        d[data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, s - 1))] = x
    r = call(_core.sync_stats, d)
    if n:
        assert r is None  # a NaN/inf distance is refused
    elif r is not None:
        assert r["mdist"].shape == (s,) and r["fconf"].shape == (0,)


@FUZZ
@given(st.sampled_from(DTYPES), st.integers(0, 6), st.integers(1, 8))
def test_embedding_entry_points_any_dtype(dtype, n, d):
    v = np.ones((n, d), dtype)
    for fn, args in (
        (_core.shift_distances, (v, v, 2, 0)),
        (_core.offset_search, (v, v, 2)),
        (_core.offset_search_batch, ([v], [v], 2)),
    ):
        out = call(fn, *args)
        if dtype != np.float32:
            assert out is None, (fn.__name__, dtype)
    s = call(_core.sync_stats, np.ones((n, 5), dtype))
    if dtype != np.float64:
        assert s is None, dtype


@FUZZ
@given(st.sampled_from(DTYPES), st.integers(0, 900))
def test_mfcc_any_dtype_or_empty(dtype, n):
    out = call(_core.mfcc, np.ones(n, dtype))
    if dtype != np.int16:
        assert out is None, dtype
    elif out is not None:
        assert out.shape[1] == 13 and np.all(np.isfinite(out))


@FUZZ
@given(st.sampled_from(DTYPES), st.integers(0, 3), st.integers(0, 14), st.integers(0, 3))
def test_ssim_psnr_any_dtype_or_empty(dtype, f, side, c):
    a = np.zeros((f, side, side, c), dtype)
    for fn in (_core.ssim, _core.psnr):
        out = call(fn, a, a)
        if dtype != np.uint8:
            assert out is None, (fn.__name__, dtype)
        elif out is not None:
            assert out.shape == (f,) and not np.any(np.isnan(out))

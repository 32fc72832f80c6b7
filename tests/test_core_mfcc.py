"""lipleak._core.mfcc against the published python_speech_features 0.6 (SPEC §2).

Tolerance: |core - psf| <= 1e-6 * max(|psf|, 1e-3), i.e. 1e-6 relative, and 1e-9 absolute
for coefficients near zero (cepstra cross zero, where a relative error means nothing; the
values are logs of energies, O(1..100), so 1e-9 absolute is far below any effect). The
core's FFT differs from numpy's pocketfft only in rounding (~1e-13 observed).
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import WAVS
from lipleak import _core

psf = pytest.importorskip("python_speech_features")


def assert_mfcc_close(signal, samplerate=16000):
    want = psf.mfcc(signal, samplerate)
    got = _core.mfcc(signal, samplerate)
    assert got.shape == want.shape and got.dtype == np.float64
    err = np.abs(got - want) / np.maximum(np.abs(want), 1e-3)
    assert err.max() <= 1e-6, f"max relative error {err.max():.3g}"


@pytest.mark.parametrize("wav", WAVS, ids=[w.name for w in WAVS])
def test_real_clips(wav):
    signal, sr = sf.read(wav, dtype="int16")
    assert sr == 16000 and signal.ndim == 1
    assert_mfcc_close(signal, sr)


def test_frame_count_formula():
    # SPEC §2: 1 + ceil((n - 400) / 160), one frame for n <= 400.
    for n in (1, 399, 400, 401, 560, 561, 16000, 16001):
        want = 1 if n <= 400 else 1 + int(np.ceil((n - 400) / 160))
        assert _core.mfcc(np.ones(n, np.int16)).shape == (want, 13)


def test_silence_takes_the_eps_path():
    # Digital silence: every energy is exactly zero and psf replaces it by float64 eps.
    signal = np.zeros(4000, np.int16)
    got = _core.mfcc(signal)
    assert np.all(got[:, 0] == np.log(np.finfo(np.float64).eps))
    assert_mfcc_close(signal)
    # Silence after speech: the zero frames at the end take the same path.
    rng = np.random.default_rng(0)
    signal[:1000] = rng.integers(-3000, 3000, 1000)
    assert_mfcc_close(signal)


@pytest.mark.parametrize("n", [1, 2, 150, 399, 400, 401, 561, 1234, 16000 + 77])
def test_lengths_single_window_and_ragged_tails(n):
    rng = np.random.default_rng(n)
    assert_mfcc_close(rng.integers(-8000, 8000, n).astype(np.int16))


def test_full_scale_clipping():
    t = np.arange(8000) / 16000
    tone = np.clip(60000 * np.sin(2 * np.pi * 440 * t), -32768, 32767).astype(np.int16)
    assert tone.max() == 32767 and tone.min() == -32768
    assert_mfcc_close(tone)
    square = np.where(np.arange(8000) % 64 < 32, 32767, -32768).astype(np.int16)
    assert_mfcc_close(square)


def test_impulse_and_dc():
    impulse = np.zeros(3000, np.int16)
    impulse[1234] = -32768
    assert_mfcc_close(impulse)
    assert_mfcc_close(np.full(3000, 1000, np.int16))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # psf's logging.warn at 44.1 kHz
@pytest.mark.parametrize("samplerate", [8000, 44100])
def test_other_sample_rates(samplerate):
    # 44.1 kHz makes 1103-sample frames that psf (numpy.fft.rfft(x, 512)) truncates to 512.
    rng = np.random.default_rng(samplerate)
    signal = rng.integers(-5000, 5000, samplerate // 2).astype(np.int16)
    assert_mfcc_close(signal, samplerate)


def test_noncontiguous_signal():
    rng = np.random.default_rng(1)
    stereo = rng.integers(-5000, 5000, (6000, 2)).astype(np.int16)
    left = stereo[:, 0]
    assert not left.flags.c_contiguous
    assert np.array_equal(_core.mfcc(left), _core.mfcc(np.ascontiguousarray(left)))
    assert_mfcc_close(left)


def test_requires_int16():
    with pytest.raises(ValueError, match="int16"):
        _core.mfcc(np.zeros(1000, np.float64))
    with pytest.raises(ValueError, match="int16"):
        _core.mfcc(np.zeros(1000, np.int32))
    with pytest.raises(ValueError, match="empty"):
        _core.mfcc(np.zeros(0, np.int16))


@pytest.mark.parametrize("samplerate", [16000, 44100])
def test_frame_ranges_of_a_longer_signal_are_bit_exact(samplerate):
    """Streaming: frames first .. first+count-1 from a slice that starts at ``base`` are the
    same bits as those rows of the MFCC of the whole signal (the slice's end is the signal's
    end, so the zero-padded tail frames match too)."""
    rng = np.random.default_rng(samplerate)
    x = (rng.standard_normal(samplerate * 3 + 77) * 3000).astype(np.int16)
    full = _core.mfcc(x, samplerate)
    step = round(0.01 * samplerate)
    for first in (0, 1, 2, 17, len(full) - 3, len(full) - 1):
        for slack in (0, 1, 500):
            base = max(first * step - 1 - slack, 0)
            got = _core.mfcc(x[base:], samplerate, first=first, base=base)
            np.testing.assert_array_equal(got, full[first:])
            n = min(2, len(full) - first)
            got = _core.mfcc(x[base:], samplerate, first=first, count=n, base=base)
            np.testing.assert_array_equal(got, full[first : first + n])


def test_frame_range_errors():
    x = np.ones(2000, np.int16)
    with pytest.raises(ValueError, match="after sample 159"):
        _core.mfcc(x[160:], first=1, base=160)  # the pre-emphasis sample is missing
    with pytest.raises(ValueError, match="count"):
        _core.mfcc(x, count=-1)
    with pytest.raises(ValueError, match="first"):
        _core.mfcc(x, first=-1)
    with pytest.raises(ValueError, match="base"):
        _core.mfcc(x, base=-5)
    assert _core.mfcc(x, first=10**6).shape == (0, 13)  # past the end: nothing, no error
    assert _core.mfcc(x[1:], first=10**6, base=1).shape == (0, 13)

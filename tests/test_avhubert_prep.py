"""AV-HuBERT preprocessing (SPEC §9): the audio filterbank input and the mouth ROIs.

References: ``python_speech_features.logfbank`` (the package av_hubert calls), small
oracles written from av_hubert's ``hubert_dataset.py`` (stacker, length alignment,
``F.layer_norm`` run by torch itself), and scikit-image's similarity transform and warp
(the calls of av_hubert's ``preparation/align_mouth.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
from python_speech_features import logfbank as psf_logfbank

from conftest import WAVS
from lipleak.io.audio import array_chunks, load_audio
from lipleak.metrics import fbank

# The filterbank agrees with psf to float64 rounding (about 4e-15 on log energies of
# order 1..30; only the filterbank product is summed in another order, row by row).
FBANK_ATOL = 1e-6
# layer_norm: torch computes in float32, lipleak in float64 rounded once to float32.
LN_ATOL = 2e-5


def _synthetic() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    return {
        "silence": np.zeros(16000, np.int16),
        "tone": (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16),
        "full_scale_noise": rng.integers(-32768, 32768, 12345).astype(np.int16),
        "one_sample": np.array([1234], np.int16),
        "two_samples": np.array([-5, 7], np.int16),
        "one_frame": rng.integers(-2000, 2000, 400).astype(np.int16),
        "one_frame_plus_one": rng.integers(-2000, 2000, 401).astype(np.int16),
        "odd_length": rng.integers(-2000, 2000, 16000 + 77).astype(np.int16),
        "dc_then_silence": np.r_[np.full(500, 300), np.zeros(1200)].astype(np.int16),
    }


SYNTH = _synthetic()


@pytest.mark.parametrize("name", sorted(SYNTH))
def test_logfbank_equals_psf_synthetic(name):
    sig = SYNTH[name]
    ref = psf_logfbank(sig, 16000)
    got = fbank.logfbank(sig)
    assert got.shape == ref.shape == (fbank.n_fbank_frames(len(sig)), 26)
    np.testing.assert_allclose(got, ref, rtol=0, atol=FBANK_ATOL)


@pytest.mark.parametrize("wav", WAVS[:3], ids=lambda p: p.name)
def test_logfbank_equals_psf_real(wav):
    sig = load_audio(wav)
    ref = psf_logfbank(sig, 16000)
    got = fbank.logfbank(sig)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=FBANK_ATOL)


def test_filterbank_equals_psf():
    from python_speech_features.base import get_filterbanks

    np.testing.assert_array_equal(fbank.mel_filterbank(), get_filterbanks(26, 512, 16000))


@pytest.mark.parametrize("size", [1, 3, 159, 160, 161, 400, 1000, 4096, 1 << 16])
def test_streamed_equals_one_shot(size):
    sig = load_audio(WAVS[0])
    if size < 100:
        sig = sig[:9001]  # one push per sample is slow; 9001 samples still span 55 frames
    s = fbank.LogFbankStream()
    parts = [s.push(c) for c in array_chunks(sig, size)]
    parts.append(s.finish())
    np.testing.assert_array_equal(np.concatenate(parts), fbank.logfbank(sig))


def test_stream_holds_less_than_a_frame():
    s = fbank.LogFbankStream()
    for c in array_chunks(SYNTH["odd_length"], 1000):
        s.push(c)
        assert len(s._buf) < fbank.FRAME_LEN


def test_empty_audio_is_an_input_error():
    from lipleak.errors import InputError

    with pytest.raises(InputError, match="no audio"):
        fbank.logfbank(np.zeros(0, np.int16))


def _oracle(sig: np.ndarray, n_video: int | None) -> np.ndarray:
    """av_hubert's load_feature + __getitem__ (audio part), psf and torch doing the work."""
    import torch
    import torch.nn.functional as F

    feats = psf_logfbank(sig, samplerate=16000).astype(np.float32)
    dim = feats.shape[1]
    if len(feats) % 4 != 0:
        res = np.zeros([4 - len(feats) % 4, dim]).astype(feats.dtype)
        feats = np.concatenate([feats, res], axis=0)
    feats = feats.reshape((-1, 4, dim)).reshape(-1, 4 * dim)
    if n_video is not None:
        diff = len(feats) - n_video
        if diff < 0:
            feats = np.concatenate([feats, np.zeros([-diff, feats.shape[-1]], feats.dtype)])
        elif diff > 0:
            feats = feats[:-diff]
    t = torch.from_numpy(feats.astype(np.float32))
    with torch.no_grad():
        return F.layer_norm(t, t.shape[1:]).numpy()


def _video_lengths(sig):
    natural = -(-fbank.n_fbank_frames(len(sig)) // 4)
    return [None, natural, max(natural - 3, 1), natural + 5, 1]


@pytest.mark.parametrize("name", ["tone", "odd_length", "one_frame_plus_one", "silence"])
def test_avhubert_audio_matches_oracle_synthetic(name):
    sig = SYNTH[name]
    for n_video in _video_lengths(sig):
        ref = _oracle(sig, n_video)
        for size in (97, 1 << 16):
            got = fbank.avhubert_audio(array_chunks(sig, size), n_video)
            assert got.dtype == np.float32 and got.shape == ref.shape, (n_video, size)
            np.testing.assert_allclose(got, ref, rtol=0, atol=LN_ATOL)


def test_avhubert_audio_matches_oracle_real():
    sig = load_audio(WAVS[0])
    n_video = len(sig) // 640  # 25 fps
    ref = _oracle(sig, n_video)
    got = fbank.avhubert_audio(array_chunks(sig, 4000), n_video)
    assert got.shape == (n_video, 104)
    np.testing.assert_allclose(got, ref, rtol=0, atol=LN_ATOL)
    # chunking changes nothing, bit for bit
    np.testing.assert_array_equal(got, fbank.avhubert_audio(array_chunks(sig, 1 << 20), n_video))


def test_layer_norm_is_per_row_not_per_feature():
    # av_hubert's F.layer_norm(x, x.shape[1:]) normalises each row over its features
    x = np.random.default_rng(1).normal(3, 2, (50, 104)).astype(np.float32)
    y = fbank.layer_norm_rows(x)
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(y.std(axis=1), 1, atol=1e-4)
    assert np.abs(y.mean(axis=0)).max() > 0.05  # columns are not centred


def test_stacking_and_alignment_oracle():
    x = np.arange(7 * 26, dtype=np.float32).reshape(7, 26)
    s = fbank.stack_frames(x)
    assert s.shape == (2, 104)
    np.testing.assert_array_equal(s[0], x[:4].reshape(-1))
    np.testing.assert_array_equal(s[1, :78], x[4:].reshape(-1))
    assert not s[1, 78:].any()
    assert fbank.align_to_video(s, 1).shape == (1, 104)
    padded = fbank.align_to_video(s, 5)
    assert padded.shape == (5, 104) and not padded[2:].any()

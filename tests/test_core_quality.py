"""lipleak._core.ssim / psnr against skimage and numpy float64 (SPEC §4).

SSIM oracle: skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255, channel_axis=-1), per frame; tolerance
|diff| <= 1e-6 (SPEC §4; observed ~1e-15). PSNR oracle: 10*log10(255**2 / mean((a-b)**2))
in float64; tolerance 1e-12 relative (the core sums squares exactly in integers).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import CLIPS
from lipleak import _core

skm = pytest.importorskip("skimage.metrics")


def ssim_ref(a, b):
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    if a.ndim == 3:  # grayscale frames
        return np.array([skm.structural_similarity(x, y, **kw) for x, y in zip(a, b, strict=True)])
    return np.array(
        [skm.structural_similarity(x, y, channel_axis=-1, **kw) for x, y in zip(a, b, strict=True)]
    )


def psnr_ref(a, b):
    axes = tuple(range(1, a.ndim))
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=axes)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(255.0**2 / mse)


def read_frames(path, count, size=224):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        side = min(h, w)
        crop = frame[
            (h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side
        ]
        frames.append(cv2.resize(crop, (size, size)))
    cap.release()
    return np.stack(frames)


@pytest.fixture(scope="module")
def real_frames():
    if not CLIPS:
        pytest.fail("no shared clips found (set LIPLEAK_SHARED_DIR)")
    return np.concatenate([read_frames(CLIPS[0], 3), read_frames(CLIPS[-1], 3)])


def test_ssim_psnr_real_frames(real_frames):
    rng = np.random.default_rng(0)
    shifted = np.roll(real_frames, (2, -3), axis=(1, 2))
    noisy = np.clip(real_frames + rng.normal(0, 8, real_frames.shape), 0, 255).astype(np.uint8)
    blurred = np.stack([cv2.GaussianBlur(f, (5, 5), 1.2) for f in real_frames])
    for other in (shifted, noisy, blurred):
        got = _core.ssim(real_frames, other)
        assert got.shape == (len(real_frames),) and got.dtype == np.float64
        np.testing.assert_allclose(got, ssim_ref(real_frames, other), rtol=0, atol=1e-6)
        np.testing.assert_allclose(
            _core.psnr(real_frames, other), psnr_ref(real_frames, other), rtol=1e-12
        )


@pytest.mark.parametrize("shape", [(3, 23, 31, 3), (2, 11, 11, 3), (2, 40, 17, 1), (1, 64, 48, 4)])
def test_ssim_random_images(shape):
    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, shape), 0, 255).astype(np.uint8)
    np.testing.assert_allclose(_core.ssim(a, b), ssim_ref(a, b), rtol=0, atol=1e-6)
    c = rng.integers(0, 256, shape, dtype=np.uint8)  # unrelated: SSIM near 0, may be < 0
    np.testing.assert_allclose(_core.ssim(a, c), ssim_ref(a, c), rtol=0, atol=1e-6)
    np.testing.assert_allclose(_core.psnr(a, b), psnr_ref(a, b), rtol=1e-12)


def test_grayscale_frames():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (4, 30, 26), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    np.testing.assert_allclose(_core.ssim(a, b), ssim_ref(a, b), rtol=0, atol=1e-6)
    # [F,H,W] is the same as [F,H,W,1].
    assert np.array_equal(_core.ssim(a, b), _core.ssim(a[..., None], b[..., None]))
    np.testing.assert_allclose(_core.psnr(a, b), psnr_ref(a, b), rtol=1e-12)


def test_identical_frames(real_frames):
    got = _core.ssim(real_frames, real_frames)
    np.testing.assert_allclose(got, 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got, ssim_ref(real_frames, real_frames), rtol=0, atol=1e-6)
    assert np.all(np.isposinf(_core.psnr(real_frames, real_frames)))
    # One identical frame among differing ones: inf only there.
    other = real_frames.copy()
    other[1:] ^= 1
    p = _core.psnr(real_frames, other)
    assert np.isposinf(p[0]) and np.all(np.isfinite(p[1:]))
    np.testing.assert_allclose(p[1:], psnr_ref(real_frames[1:], other[1:]), rtol=1e-12)


def test_psnr_no_uint8_wraparound():
    a = np.zeros((1, 8, 8, 3), np.uint8)
    b = np.full((1, 8, 8, 3), 255, np.uint8)  # b - a in uint8 would wrap to 1 for a - b
    np.testing.assert_allclose(_core.psnr(a, b), [0.0], atol=1e-12)
    np.testing.assert_allclose(_core.psnr(b, a), [0.0], atol=1e-12)


def test_noncontiguous_frames(real_frames):
    a = real_frames[:, ::2, ::2]  # strided view
    b = np.ascontiguousarray(np.roll(a, 1, axis=2))
    assert not a.flags.c_contiguous
    np.testing.assert_allclose(_core.ssim(a, b), ssim_ref(a, b), rtol=0, atol=1e-6)


def test_bad_frames_raise():
    a = np.zeros((2, 10, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 11x11"):
        _core.ssim(a, a)
    with pytest.raises(ValueError, match="shape"):
        _core.ssim(np.zeros((2, 20, 20, 3), np.uint8), np.zeros((2, 20, 21, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        _core.psnr(np.zeros((2, 20, 20), np.float32), np.zeros((2, 20, 20), np.float32))
    with pytest.raises(ValueError, match="no frames"):
        _core.psnr(np.zeros((0, 20, 20), np.uint8), np.zeros((0, 20, 20), np.uint8))

"""SSIM / PSNR wrappers vs skimage and float64 numpy, on real frames and edge cases (SPEC §4)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from conftest import CLIPS_DIR
from lipleak.errors import InputError
from lipleak.metrics.quality import (
    QualityAccumulator,
    cell_quality,
    finite_mean,
    frame_psnr,
    frame_ssim,
    video_quality,
)


def read_frames(path, n):
    cap = cv2.VideoCapture(str(path))
    out = []
    while len(out) < n:
        ok, frame = cap.read()
        assert ok
        out.append(frame)
    cap.release()
    return np.stack(out)


def sk_ssim(a, b):
    return structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=-1,
    )


def np_psnr(a, b):
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean()
    return np.inf if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def pair():
    """Wav2Lip's output vs its input video: real generated/GT frames (same geometry)."""
    gen = read_frames(CLIPS_DIR / "gen01_suitman_wav2lip.mp4", 3)
    gt = read_frames(CLIPS_DIR / "real11_suit_man.mp4", 3)
    assert gen.shape == gt.shape
    return gen, gt


def test_full_frames_match_skimage_and_numpy(pair):
    gen, gt = pair
    s, p = frame_ssim(gen, gt), frame_psnr(gen, gt)
    for k in range(len(gen)):
        assert abs(s[k] - sk_ssim(gen[k], gt[k])) < 1e-6
        assert p[k] == pytest.approx(np_psnr(gen[k], gt[k]), rel=1e-12)
    assert 0.3 < s.min() and s.max() < 0.999  # really different frames


@pytest.mark.parametrize("box", [(300, 220, 180, 180), (288, 104, 203, 273), (0, 0, 11, 11)])
def test_face_crops_match_skimage(pair, box):
    x, y, w, h = box  # includes an odd-sized crop and the smallest legal one
    gen, gt = (np.ascontiguousarray(v[:, y : y + h, x : x + w]) for v in pair)
    r = video_quality(list(gen), list(gt))  # lists of frames work too
    ref_s = [sk_ssim(a, b) for a, b in zip(gen, gt, strict=True)]
    ref_p = [np_psnr(a, b) for a, b in zip(gen, gt, strict=True)]
    np.testing.assert_allclose(r.ssim_per_frame, ref_s, rtol=0, atol=1e-6)
    np.testing.assert_allclose(r.psnr_per_frame, ref_p, rtol=1e-12)
    assert r.ssim == pytest.approx(np.mean(ref_s), abs=1e-6)
    assert r.psnr == pytest.approx(np.mean(ref_p), rel=1e-12)
    assert r.n_frames == 3 and r.n_identical == 0


def test_identical_frames(pair):
    gt = pair[1]
    r = video_quality(gt, gt.copy())
    np.testing.assert_array_equal(r.ssim_per_frame, 1.0)
    assert np.isposinf(r.psnr_per_frame).all()
    assert r.ssim == 1.0 and np.isposinf(r.psnr) and r.n_identical == 3


def test_identical_frames_are_left_out_of_the_psnr_mean(pair):
    gen, gt = pair
    mixed = gen.copy()
    mixed[1] = gt[1]  # one frame equal to its GT
    r = video_quality(mixed, gt)
    assert r.n_identical == 1 and np.isposinf(r.psnr_per_frame[1])
    assert r.psnr == pytest.approx(
        np.mean([np_psnr(gen[0], gt[0]), np_psnr(gen[2], gt[2])]), rel=1e-12
    )
    assert r.ssim == pytest.approx(
        np.mean([sk_ssim(gen[0], gt[0]), 1.0, sk_ssim(gen[2], gt[2])]), abs=1e-6
    )


def test_analytic_psnr_one_pixel_off():
    a = np.full((1, 16, 20, 3), 100, np.uint8)
    b = a.copy()
    b[0, 3, 4, 1] = 105  # MSE = 25 / (16·20·3)
    assert frame_psnr(a, b)[0] == pytest.approx(10 * np.log10(255.0**2 * 960 / 25), rel=1e-12)
    # never on wrapping uint8: 0 vs 255 is the largest error, PSNR 0 dB
    assert (
        frame_psnr(np.zeros((1, 12, 12, 3), np.uint8), np.full((1, 12, 12, 3), 255, np.uint8))[0]
        == 0.0
    )


@pytest.mark.parametrize("case", ["black_white", "constant_vs_noise", "noise"])
def test_synthetic_ssim_matches_skimage(case):
    rng = np.random.default_rng(7)
    shape = (2, 23, 31, 3)
    if case == "black_white":
        a, b = np.zeros(shape, np.uint8), np.full(shape, 255, np.uint8)
    elif case == "constant_vs_noise":
        a, b = np.full(shape, 128, np.uint8), rng.integers(0, 256, shape, dtype=np.uint8)
    else:
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        b = np.clip(a.astype(int) + rng.integers(-20, 21, shape), 0, 255).astype(np.uint8)
    s = frame_ssim(a, b)
    for k in range(2):
        assert abs(s[k] - sk_ssim(a[k], b[k])) < 1e-6


def test_accumulator_and_cell_aggregation(pair):
    gen, gt = pair
    acc = QualityAccumulator()
    acc.update(gen[:2], gt[:2])  # streamed in two batches
    acc.update(gen[2:], gt[2:])
    streamed = acc.result()
    whole = video_quality(gen, gt)
    np.testing.assert_array_equal(streamed.ssim_per_frame, whole.ssim_per_frame)
    same = video_quality(gt[:1], gt[:1])  # an all-identical video: PSNR inf
    short = video_quality(gen[:1], gt[:1])
    cell = cell_quality([whole, same, short])
    assert cell.n_videos == 3 and cell.n_identical_videos == 1
    assert cell.ssim == pytest.approx((whole.ssim + 1.0 + short.ssim) / 3, rel=1e-12)
    assert cell.psnr == pytest.approx(
        (whole.psnr + short.psnr) / 2, rel=1e-12
    )  # videos weigh equally


def test_finite_mean_rules():
    assert finite_mean(np.array([10.0, np.inf, 20.0])) == (15.0, 1)
    m, n = finite_mean(np.array([np.inf, np.inf]))
    assert np.isposinf(m) and n == 2


def test_bad_input_is_an_input_error(pair):
    gen, gt = pair
    with pytest.raises(InputError, match="differ in shape"):
        frame_ssim(gen[:, :100], gt)
    with pytest.raises(InputError, match="uint8"):
        frame_psnr(gen.astype(np.float32), gt.astype(np.float32))
    with pytest.raises(InputError, match="11x11"):
        frame_ssim(gen[:, :10, :10], gt[:, :10, :10])
    with pytest.raises(InputError, match="generated vs"):
        QualityAccumulator().update(gen[:2], gt)
    with pytest.raises(InputError, match="no frames"):
        QualityAccumulator().result()

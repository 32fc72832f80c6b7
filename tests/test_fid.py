"""FID: preprocessing vs torch, ONNX vs TorchScript, Fréchet distance vs independent oracles,
streaming statistics vs np.cov (SPEC §3)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import linalg

from conftest import CLIPS_DIR, SHARED_MODELS
from lipleak.errors import InputError
from lipleak.metrics import fid as fidmod
from lipleak.metrics.fid import FeatureStats, compute_stats, frechet_distance
from lipleak.models.inception import FIDInception, preprocess, resize_bilinear

TS = SHARED_MODELS / "fid_inception_torchscript.pt"


def read_frames(path, indices):
    cap = cv2.VideoCapture(str(path))
    out, i, want = [], 0, set(indices)
    while len(out) < len(want):
        ok, frame = cap.read()
        if not ok:
            break
        if i in want:
            out.append(frame)
        i += 1
    cap.release()
    assert len(out) == len(want), f"{path}: could not read frames {sorted(want)}"
    return out


def centre_crop(frame, frac):
    h, w = frame.shape[:2]
    s = int(min(h, w) * frac)
    y, x = (h - s) // 2, (w - s) // 2
    return np.ascontiguousarray(frame[y : y + s, x : x + s])


@pytest.fixture(scope="module")
def crops():
    """8 real face-ish crops: 4 upsampled (≈200² from a 256² face clip), 4 downsampled (≈420²)."""
    small = [
        centre_crop(f, 0.8) for f in read_frames(CLIPS_DIR / "real07_reagan.mp4", [0, 40, 80, 120])
    ]
    big = [
        centre_crop(f, 0.6) for f in read_frames(CLIPS_DIR / "real11_suit_man.mp4", [0, 30, 60, 90])
    ]
    return small + big


@pytest.fixture(scope="module")
def inception_onnx(tmp_path_factory):
    from lipleak.export.inception_onnx import export

    return export(TS, tmp_path_factory.mktemp("fid") / "fid_inception.onnx")


@pytest.fixture(scope="module")
def onnx_feats(inception_onnx, crops):
    return FIDInception(inception_onnx, backend="cpu", batch_size=3).features(crops)


# -- preprocessing ---------------------------------------------------------------------


def torch_resize(img_hwc: np.ndarray, size: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(img_hwc)).permute(2, 0, 1)[None]
    r = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return r[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize(
    "shape",
    [
        (299, 299),
        (100, 120),
        (224, 224),
        (50, 31),
        (598, 598),
        (700, 700),
        (1000, 650),
        (1500, 1200),
    ],
)
def test_resize_matches_torch_bilinear(shape):
    # Includes > 2× shrinking, where cv2.resize(INTER_LINEAR) differs from torch by ~1e-4.
    img = np.random.default_rng(shape[0]).random(shape + (3,), dtype=np.float32)
    np.testing.assert_allclose(
        resize_bilinear(img, 299, 299), torch_resize(img, 299), rtol=0, atol=1e-5
    )


def test_preprocess_matches_pytorch_fid_chain(crops):
    ours = preprocess(crops)
    for k, crop in enumerate(crops):
        rgb01 = crop[:, :, ::-1].astype(np.float32) / 255.0
        ref = torch_resize(rgb01, 299).transpose(2, 0, 1) * 2 - 1
        np.testing.assert_allclose(ours[k], ref, rtol=0, atol=1e-5)
    assert ours.shape == (8, 3, 299, 299) and ours.dtype == np.float32


def test_preprocess_rejects_bad_crop():
    with pytest.raises(InputError, match="BGR uint8"):
        preprocess([np.zeros((10, 10), np.uint8)])
    with pytest.raises(InputError, match="BGR uint8"):
        preprocess([np.zeros((10, 10, 3), np.float32)])


# -- network ---------------------------------------------------------------------------


def test_onnx_features_match_torchscript(crops, onnx_feats):
    model = torch.jit.load(str(TS), map_location="cpu").eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(preprocess(crops))).numpy()
    assert onnx_feats.shape == (8, 2048) and onnx_feats.dtype == np.float32
    # 1e-4 relative: per-element error within 1e-4 of that frame's largest feature, and
    # the feature vectors' relative L2 error within 1e-4.
    err = np.abs(onnx_feats - ref)
    assert (err.max(axis=1) <= 1e-4 * np.abs(ref).max(axis=1)).all(), err.max()
    rel = np.linalg.norm(onnx_feats - ref, axis=1) / np.linalg.norm(ref, axis=1)
    assert rel.max() < 1e-4, rel


def test_batch_size_does_not_change_features(inception_onnx, crops, onnx_feats):
    one = FIDInception(inception_onnx, backend="cpu", batch_size=8).features(crops)
    np.testing.assert_allclose(one, onnx_feats, rtol=1e-5, atol=1e-5)


# -- Fréchet distance --------------------------------------------------------------------


def oracle_scipy(x1, x2):
    """SPEC §3 formula straight: np.cov, scipy sqrtm, real part."""
    m1, m2 = x1.mean(0), x2.mean(0)
    s1, s2 = np.cov(x1, rowvar=False), np.cov(x2, rowvar=False)
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real))


def oracle_eigh(x1, x2):
    """tr sqrtm(Σ1Σ2) as Σ√λ of the symmetric Σ1^½ Σ2 Σ1^½ (same spectrum), via eigh only."""
    m1, m2 = x1.mean(0).astype(np.float64), x2.mean(0).astype(np.float64)
    s1, s2 = np.cov(x1, rowvar=False), np.cov(x2, rowvar=False)
    w, v = np.linalg.eigh(s1)
    r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    lam = np.linalg.eigvalsh(r @ s2 @ r)
    return float(
        ((m1 - m2) ** 2).sum()
        + np.trace(s1)
        + np.trace(s2)
        - 2 * np.sqrt(np.clip(lam, 0, None)).sum()
    )


def test_frechet_matches_oracles_on_real_features(onnx_feats):
    a, b = onnx_feats[:4], onnx_feats[4:]  # two different clips, 2048-d, rank-deficient
    ours = fidmod.fid(FeatureStats().update(a), FeatureStats().update(b))
    assert ours > 1.0
    # The scipy-sqrtm oracle is checked in the full-rank test below; at 2048-d one more
    # sqrtm costs ~10 s on 2 cores, and the eigh oracle shares no code with sqrtm.
    assert ours == pytest.approx(oracle_eigh(a, b), rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_frechet_matches_oracles_full_rank(seed):
    rng = np.random.default_rng(seed)
    a = rng.gamma(0.5, 0.4, (600, 96))  # ReLU-like non-negative features
    b = rng.gamma(0.6, 0.35, (500, 96)) + rng.normal(0, 0.05, 96)
    ours = fidmod.fid(FeatureStats(96).update(a), FeatureStats(96).update(b))
    assert ours == pytest.approx(oracle_scipy(a, b), rel=1e-6)
    assert ours == pytest.approx(oracle_eigh(a, b), rel=1e-6)


def test_fid_of_a_set_with_itself_is_zero():
    # Full rank at the real dimension (n > 2048); with n ≤ d the covariance is singular and
    # sqrtm's rounding leaves |d²| ~ 1e-6 (pytorch-fid warns about exactly that).
    x = np.random.default_rng(2).gamma(0.5, 0.4, (2300, 2048)).astype(np.float32)
    st = FeatureStats().update(x)
    assert abs(fidmod.fid(st, st)) < 1e-6


def test_identical_mean_cov_closed_form():
    # Σ1 = Σ2 = diag(d): sqrtm(Σ1Σ2) = Σ, so d² = ‖Δμ‖² exactly.
    s = np.diag([1.0, 2.0, 3.0])
    assert frechet_distance(np.zeros(3), s, np.array([1.0, 2.0, 2.0]), s) == pytest.approx(
        9.0, rel=1e-12
    )


def test_eps_retry_when_sqrtm_is_not_finite(monkeypatch):
    calls = []
    real = linalg.sqrtm

    def flaky(m):
        calls.append(m.copy())
        return np.full_like(m, np.nan) if len(calls) == 1 else real(m)

    monkeypatch.setattr(fidmod.linalg, "sqrtm", flaky)
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    d = frechet_distance(np.zeros(2), s1, np.zeros(2), s2)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s1 + 1e-6 * np.eye(2)) @ (s2 + 1e-6 * np.eye(2)))
    expect = (
        1 + 4 + 9 + 1 - 2 * (np.sqrt((1 + 1e-6) * (9 + 1e-6)) + np.sqrt((4 + 1e-6) * (1 + 1e-6)))
    )
    assert d == pytest.approx(expect, rel=1e-12)


def test_imaginary_component_rules():
    # sqrtm(diag(-1, 1)) = diag(i, 1): imaginary diagonal 1 > 1e-3 → error
    with pytest.raises(InputError, match="imaginary component"):
        frechet_distance(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))
    # |imag| = 1e-4 ≤ 1e-3 → dropped: d² = tr(Σ1 + Σ2) − 2·Re tr sqrtm = (−1e-8 + 1 + 2) − 2·1
    d = frechet_distance(np.zeros(2), np.diag([-1e-8, 1.0]), np.zeros(2), np.eye(2))
    assert d == pytest.approx(1.0 - 1e-8, rel=1e-12)


def test_mismatched_shapes_raise():
    with pytest.raises(InputError, match="mismatched"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


# -- streaming statistics ----------------------------------------------------------------


def test_streaming_stats_equal_np_cov():
    x = np.random.default_rng(3).gamma(0.5, 0.4, (1000, 2048)).astype(np.float32)
    st = FeatureStats()
    for i in range(0, 1000, 37):  # uneven batches
        st.update(x[i : i + 37])
    mu, cov = st.mean_cov()
    ref = np.cov(x.astype(np.float64), rowvar=False)
    assert st.n == 1000
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=1e-12, atol=0)
    np.testing.assert_allclose(cov, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_merge_of_shards_equals_one_pass(tmp_path):
    x = np.random.default_rng(4).gamma(0.5, 0.4, (300, 2048))
    one = FeatureStats().update(x)
    shards = [
        FeatureStats().update(x[:70]),
        FeatureStats().update(x[70:71]),
        FeatureStats().update(x[71:]),
    ]
    merged = FeatureStats()
    for s in shards:
        merged.merge(FeatureStats.load(s.save(tmp_path / f"{id(s)}.npz")))  # through the cache
    assert merged.n == one.n == 300
    for a, b in zip(merged.mean_cov(), one.mean_cov(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(b).max())


def test_compute_stats_streams_model_batches(onnx_feats):
    class Fake:  # stands in for FIDInception: looks the crop's index up in real features
        def __init__(self):
            self.batches = []

        def features(self, batch):
            self.batches.append(len(batch))
            return onnx_feats[[int(c[0, 0, 0]) for c in batch]]

    fake = Fake()
    crops = (np.full((4, 4, 3), k, np.uint8) for k in range(8))
    st = compute_stats(fake, crops, batch_size=3)
    assert fake.batches == [3, 3, 2]
    np.testing.assert_allclose(
        st.mean_cov()[1], np.cov(onnx_feats.astype(np.float64), rowvar=False), rtol=0, atol=1e-12
    )


def test_stats_errors(tmp_path):
    with pytest.raises(InputError, match="at least 2 frames"):
        FeatureStats().update(np.zeros((1, 2048))).mean_cov()
    with pytest.raises(InputError, match="N×2048"):
        FeatureStats().update(np.zeros((3, 10)))
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(InputError, match="not a FeatureStats"):
        FeatureStats.load(bad)

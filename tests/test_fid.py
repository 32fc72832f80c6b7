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
    sa, sb = FeatureStats().update(a), FeatureStats().update(b)
    ours = fidmod.fid(sa, sb)  # both sets < 2048 frames: singular values of F1 F2ᵀ (4×4)
    d2d = frechet_distance(*sa.mean_cov(), *sb.mean_cov())  # no factors: the 2048² eigh path
    assert ours > 1.0
    # The scipy-sqrtm oracle at 2048-d costs ~15 s on 2 cores: the slow test below; the
    # eigh oracle shares no code with either path.
    oracle = oracle_eigh(a, b)
    assert ours == pytest.approx(oracle, rel=1e-6) and d2d == pytest.approx(oracle, rel=1e-6)


@pytest.mark.slow
def test_frechet_matches_pytorch_fid_algorithm_on_real_features(onnx_feats, monkeypatch):
    """Both new paths against pytorch-fid's whole algorithm (sqrtm, eps retry, imaginary
    rule) on the real 4-vs-4 features: Σ1Σ2 is singular (rank 3 of 2048)."""
    calls = []
    real = linalg.sqrtm
    monkeypatch.setattr(fidmod.linalg, "sqrtm", lambda m: calls.append(1) or real(m))
    sa, sb = FeatureStats().update(onnx_feats[:4]), FeatureStats().update(onnx_feats[4:])
    ref = fidmod.frechet_distance_sqrtm(*sa.mean_cov(), *sb.mean_cov())
    assert calls == [1]  # scipy's sqrtm stayed finite on this singular product: no eps retry
    assert fidmod.fid(sa, sb) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(*sa.mean_cov(), *sb.mean_cov()) == pytest.approx(ref, rel=1e-6)
    assert calls == [1]  # the new paths never call sqrtm


def synthetic(rng, n, d, shift=0.0):
    """Correlated, non-negative features (ReLU of a low-rank mix plus noise), pool3-like."""
    z = rng.normal(size=(n, 16)) @ rng.normal(size=(16, d)) / 4 + rng.normal(size=(n, d)) * 0.5
    return np.maximum(z + shift, 0)


def all_paths(x1, x2):
    """The distance through each path: factors as FeatureStats keeps them, one factor, none."""
    d = x1.shape[1]
    s1, s2 = FeatureStats(d).update(x1), FeatureStats(d).update(x2)
    (m1, c1), (m2, c2) = s1.mean_cov(), s2.mean_cov()
    f1, f2 = s1.factor(), s2.factor()
    out = {"fid": fidmod.fid(s1, s2), "eigh": frechet_distance(m1, c1, m2, c2)}
    if f1 is not None:
        out["factor1"] = frechet_distance(m1, c1, m2, c2, factor1=f1)
    if f2 is not None:
        out["factor2"] = frechet_distance(m1, c1, m2, c2, factor2=f2)
    return out, (m1, c1, m2, c2)


@pytest.mark.parametrize(
    "n1, n2",
    [
        (2, 2),  # rank 1 each
        (10, 40),  # both n < d: singular values of F1 F2ᵀ
        (50, 200),  # one n < d: F1 Σ2 F1ᵀ
        (95, 95),  # rank d−1 each, rows kept
        (96, 96),  # rank d−1, rows dropped: the d×d path on a singular Σ
        (97, 130),  # n just above d: full rank, near-singular
        (600, 500),  # full rank
    ],
)
def test_all_paths_match_pytorch_fid_algorithm(n1, n2, monkeypatch):
    """Every path against pytorch-fid's algorithm (sqrtm, eps retry, imaginary rule),
    within 1e-6 relative, on full-rank, rank-deficient and near-singular covariances."""
    rng = np.random.default_rng(n1 * 1000 + n2)
    x1, x2 = synthetic(rng, n1, 96), synthetic(rng, n2, 96, shift=0.1)
    calls = []
    real = linalg.sqrtm
    monkeypatch.setattr(fidmod.linalg, "sqrtm", lambda m: calls.append(1) or real(m))
    got, stats = all_paths(x1, x2)

    def not_positive_definite(*_a, **_k):
        raise np.linalg.LinAlgError("forced")

    with monkeypatch.context() as m:  # the eigh branch also where Cholesky would succeed
        m.setattr(fidmod.linalg, "cholesky", not_positive_definite)
        got["eigh, no Cholesky"] = frechet_distance(*stats)
    assert calls == []  # none of the new paths calls sqrtm
    ref = fidmod.frechet_distance_sqrtm(*stats)
    assert calls == [1]  # sqrtm stayed finite (no eps retry) even where Σ1Σ2 is singular
    assert ref > 1.0
    for name, v in got.items():
        assert v == pytest.approx(ref, rel=1e-6), name
    if n1 < 96:
        assert "factor1" in got
    if n2 < 96:
        assert "factor2" in got


def test_near_singular_spectrum_matches_sqrtm():
    # eigenvalues from 1 down to 1e-12 (condition 1e12), not from frames: the eigh path
    rng = np.random.default_rng(7)
    q1, _ = np.linalg.qr(rng.normal(size=(64, 64)))
    q2, _ = np.linalg.qr(rng.normal(size=(64, 64)))
    s1 = (q1 * np.logspace(0, -12, 64)) @ q1.T
    s2 = (q2 * np.logspace(0.5, -12, 64)) @ q2.T
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    mu1, mu2 = rng.random(64), rng.random(64)
    ref = fidmod.frechet_distance_sqrtm(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_frechet_matches_oracles_full_rank(seed):
    rng = np.random.default_rng(seed)
    a = rng.gamma(0.5, 0.4, (600, 96))  # ReLU-like non-negative features
    b = rng.gamma(0.6, 0.35, (500, 96)) + rng.normal(0, 0.05, 96)
    ours = fidmod.fid(FeatureStats(96).update(a), FeatureStats(96).update(b))
    assert ours == pytest.approx(oracle_scipy(a, b), rel=1e-6)
    assert ours == pytest.approx(oracle_eigh(a, b), rel=1e-6)


def test_fid_of_a_set_with_itself_is_zero():
    # Full rank at the real dimension (n > 2048): the eigh path.
    x = np.random.default_rng(2).gamma(0.5, 0.4, (2300, 2048)).astype(np.float32)
    st = FeatureStats().update(x)
    assert abs(fidmod.fid(st, st)) < 1e-6


def test_fid_of_a_small_set_with_itself_is_rounding():
    # n ≤ d: Σ is singular. sqrtm (and the d×d eigh path) leave ~1e-6·(tr Σ1 + tr Σ2) of
    # rounding here (pytorch-fid warns about it); the factors leave ~1e-13.
    x = np.random.default_rng(5).gamma(0.5, 0.4, (40, 256))
    st = FeatureStats(256).update(x)
    mu, cov = st.mean_cov()
    tr = 2 * np.trace(cov)
    assert abs(fidmod.fid(st, st)) < 1e-12 * tr
    ref = fidmod.frechet_distance_sqrtm(mu, cov, mu, cov)
    assert abs(ref) < 1e-6 * tr and abs(frechet_distance(mu, cov, mu, cov)) < 1e-6 * tr


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
    d = fidmod.frechet_distance_sqrtm(np.zeros(2), s1, np.zeros(2), s2)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s1 + 1e-6 * np.eye(2)) @ (s2 + 1e-6 * np.eye(2)))
    expect = (
        1 + 4 + 9 + 1 - 2 * (np.sqrt((1 + 1e-6) * (9 + 1e-6)) + np.sqrt((4 + 1e-6) * (1 + 1e-6)))
    )
    assert d == pytest.approx(expect, rel=1e-12)
    # The eigh path has no sqrtm to fail: the same covariances, no retry, the exact value.
    calls.clear()
    d = frechet_distance(np.zeros(2), s1, np.zeros(2), s2)
    assert calls == [] and d == pytest.approx(1 + 4 + 9 + 1 - 2 * (3 + 2), rel=1e-12)


def test_eps_retry_on_a_singular_product_is_the_regularised_distance(monkeypatch):
    """Were sqrtm to break down on a singular Σ1Σ2 (n < d), pytorch-fid would return the
    distance of Σ + 1e-6·I: the eigh path reproduces that number from those covariances,
    and it differs from the unregularised one by far more than rounding (why the new
    paths, which cannot break down, do not add eps)."""
    rng = np.random.default_rng(11)
    x1, x2 = synthetic(rng, 20, 96), synthetic(rng, 60, 96, shift=0.1)
    (m1, c1), (m2, c2) = (FeatureStats(96).update(x).mean_cov() for x in (x1, x2))
    real = linalg.sqrtm
    state = {"first": True}

    def breaks_once(m):
        if state.pop("first", False):
            return np.full_like(m, np.inf)
        return real(m)

    monkeypatch.setattr(fidmod.linalg, "sqrtm", breaks_once)
    retried = fidmod.frechet_distance_sqrtm(m1, c1, m2, c2)
    # pytorch-fid adds eps inside the square root only; tr Σ1 + tr Σ2 stay unregularised
    eye = 1e-6 * np.eye(96)
    diff = m1 - m2
    regularised = diff @ diff + np.trace(c1) + np.trace(c2)
    regularised -= 2 * fidmod.trace_sqrt_product(c1 + eye, c2 + eye)
    assert regularised == pytest.approx(retried, rel=1e-6)
    exact = frechet_distance(m1, c1, m2, c2)
    print(f"eps retry moves d² by {(retried - exact) / exact:.2e} relative")
    assert abs(retried - exact) > 1e-4 * exact  # 8.2e-4 relative when measured


def test_imaginary_component_rules(monkeypatch):
    for distance in (fidmod.frechet_distance_sqrtm, frechet_distance):
        # sqrtm(diag(-1, 1)) = diag(i, 1): imaginary diagonal 1 > 1e-3 → error
        with pytest.raises(InputError, match="imaginary component"):
            distance(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))
        # |imag| = 1e-4 ≤ 1e-3 → dropped: d² = tr(Σ1 + Σ2) − 2·Re tr sqrtm = (−1e-8 + 1 + 2) − 2
        d = distance(np.zeros(2), np.diag([-1e-8, 1.0]), np.zeros(2), np.eye(2))
        assert d == pytest.approx(1.0 - 1e-8, rel=1e-12)
    # frechet_distance gets there by handing a non-PSD Σ (−1e-8 is beyond rounding) to
    # pytorch-fid's algorithm, not by a rule of its own
    calls = []
    real = linalg.sqrtm
    monkeypatch.setattr(fidmod.linalg, "sqrtm", lambda m: calls.append(1) or real(m))
    frechet_distance(np.zeros(2), np.diag([-1e-8, 1.0]), np.zeros(2), np.eye(2))
    frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.diag([1.0, -1e-8]))
    assert calls == [1, 1]
    # rounding-sized negative eigenvalues (a real covariance's) stay on the eigh path
    frechet_distance(np.zeros(2), np.diag([-1e-17, 1.0]), np.zeros(2), np.eye(2))
    assert calls == [1, 1]


def test_input_that_is_not_a_covariance_goes_to_sqrtm(monkeypatch):
    calls = []
    real = linalg.sqrtm
    monkeypatch.setattr(fidmod.linalg, "sqrtm", lambda m: calls.append(1) or real(m))
    s = np.eye(3)
    bad = s.copy()
    bad[0, 2] = np.nan  # upper triangle only: eigh would never read it
    d = frechet_distance(np.zeros(3), bad, np.zeros(3), s)
    assert np.isnan(d) and calls == [1, 1]  # pytorch-fid's answer: nan after its eps retry
    calls.clear()
    skew = np.array([[2.0, 0.5], [0.0, 1.0]])  # not symmetric
    d = frechet_distance(np.zeros(2), skew, np.zeros(2), np.eye(2))
    assert calls == [1]
    assert d == pytest.approx(
        fidmod.frechet_distance_sqrtm(np.zeros(2), skew, np.zeros(2), np.eye(2))
    )


def test_factor_of_another_set_is_refused():
    rng = np.random.default_rng(3)
    a, b = FeatureStats(8).update(rng.random((5, 8))), FeatureStats(8).update(rng.random((6, 8)))
    (m1, c1), (m2, c2) = a.mean_cov(), b.mean_cov()
    with pytest.raises(InputError, match="not one of this covariance"):
        frechet_distance(m1, c1, m2, c2, factor1=b.factor())
    with pytest.raises(InputError, match="does not fit"):
        frechet_distance(m1, c1, m2, c2, factor2=np.ones((3, 7)))


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


def test_rows_are_kept_only_below_dim(tmp_path):
    x = np.random.default_rng(6).gamma(0.5, 0.4, (20, 16)).astype(np.float32)
    st = FeatureStats(16).update(x[:10]).update(x[10:15])
    f = st.factor()  # 15 < 16 frames: kept, as given (float32), centred and scaled in float64
    assert st.rows[0].dtype == np.float32 and f.dtype == np.float64 and f.shape == (15, 16)
    xc = x[:15].astype(np.float64) - x[:15].astype(np.float64).mean(0)
    np.testing.assert_allclose(f, xc / np.sqrt(14), rtol=0, atol=1e-12)
    np.testing.assert_allclose(f.T @ f, st.mean_cov()[1], rtol=0, atol=1e-12)
    x[0] = 99  # the caller's buffer is not aliased
    assert st.factor()[0, 0] == f[0, 0]
    loaded = FeatureStats.load(st.save(tmp_path / "s.npz"))  # rows go through the cache
    np.testing.assert_array_equal(loaded.factor(), f)
    assert FeatureStats(16).update(x[:15]).update(x[15:16]).rows is None  # 16th frame: gone
    assert FeatureStats(16).update(x).rows is None
    assert FeatureStats(16).update(x[:1]).factor() is None  # fewer than 2 frames
    # merge: kept while the total stays below dim and both sides kept theirs
    merged = FeatureStats(16).update(x[:4]).merge(FeatureStats(16).update(x[4:9]))
    np.testing.assert_allclose(
        merged.factor(), FeatureStats(16).update(x[:9]).factor(), rtol=0, atol=1e-12
    )
    assert FeatureStats(16).update(x[:9]).merge(FeatureStats(16).update(x[9:16])).rows is None
    assert FeatureStats(16).update(x[:4]).merge(FeatureStats(16).update(x)).rows is None
    # a file without rows (older version, or ≥ dim frames) loads without them
    np.savez(tmp_path / "old.npz", n=np.int64(15), sum=st.sum, sum_outer=st.sum_outer)
    old = FeatureStats.load(tmp_path / "old.npz")
    assert old.rows is None and old.factor() is None
    assert fidmod.fid(old, old.merge(FeatureStats(16))) == pytest.approx(
        fidmod.fid(st, loaded), abs=1e-6 * np.trace(st.mean_cov()[1])
    )

"""Per-video visual metrics (lipleak.visual): one decode, one detection pass, shared crops.

Oracles: a generated video identical to its GT (SSIM 1, PSNR inf, CSIM 1, LMD 0,
features equal); crops rebuilt in the test from a direct SCRFD run with numpy padding
and the quality module on them; FeatureStats built in one pass and np.cov for the cell
FID; brute force for the nearest-detection rule.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import CLIPS_DIR, SHARED_MODELS
from lipleak.errors import InputError
from lipleak.faces.scrfd import SCRFD
from lipleak.io.audio import load_audio
from lipleak.io.video import iter_frames
from lipleak.metrics.fid import FeatureStats, cell_fid
from lipleak.metrics.quality import frame_psnr, frame_ssim
from lipleak.models.inception import FIDInception
from lipleak.visual import GTAnalysis, VisualScorer, VisualSettings, nearest_sources
from media import write_lossless

N = 25  # frames per test clip: the mouth-audio correlation needs >= 25 (1 s)
CLIP = CLIPS_DIR / "real07_reagan.mp4"  # 256x256: cheap to run every model on


@pytest.fixture(scope="module")
def frames():
    out = []
    for f in iter_frames(CLIP):
        out.append(f)
        if len(out) == N:
            return out


@pytest.fixture(scope="module")
def media(tmp_path_factory, frames):
    d = tmp_path_factory.mktemp("visual")
    return {
        "dir": d,
        "gt": write_lossless(d / "gt.mkv", frames),
        "audio": load_audio(CLIPS_DIR / "real07_reagan.wav"),
    }


@pytest.fixture(scope="module")
def detections(frames):
    """A direct SCRFD run: the highest-scoring face per frame (box, keypoints)."""
    det = SCRFD(SHARED_MODELS / "scrfd_500m.onnx", backend="cpu")
    out = []
    for f in frames:
        b, s, k = det.detect(f)
        out.append((b[int(np.argmax(s)), :4].astype(np.float64), k[int(np.argmax(s))]))
    return out


@pytest.fixture(scope="module")
def arcface_onnx(tmp_path_factory):
    from lipleak.export.arcface import export_random

    return export_random(tmp_path_factory.mktemp("arcface") / "iresnet50_random.onnx", seed=0)


@pytest.fixture(scope="module")
def scorer(model_dir, arcface_onnx):
    # LPIPS is tested in test_lpips.py (it needs the lpips package's heads)
    return VisualScorer(VisualSettings(arcface=str(arcface_onnx), lpips="none", backend="cpu"))


@pytest.fixture(scope="module")
def gt(scorer, media):
    return scorer.analyze_gt(media["gt"])


@pytest.fixture(scope="module")
def identical(scorer, gt, media):
    return scorer.score(media["gt"], gt, media["gt"], media["audio"], "AM")


def brighten_mouth(frames, detections, delta=40):
    """Each frame with +delta (saturating) on a rectangle around its mouth corners."""
    out = []
    for f, (_, kps) in zip(frames, detections, strict=True):
        (xl, yl), (xr, yr) = kps[3], kps[4]
        x0, x1 = int(min(xl, xr)) - 8, int(max(xl, xr)) + 8
        y0, y1 = int(min(yl, yr)) - 10, int(max(yl, yr)) + 12
        g = f.copy()
        g[y0:y1, x0:x1] = np.clip(g[y0:y1, x0:x1].astype(np.int16) + delta, 0, 255)
        out.append(g)
    return out


@pytest.fixture(scope="module")
def offset(scorer, gt, media, frames, detections):
    gen = write_lossless(media["dir"] / "gen_mouth.mkv", brighten_mouth(frames, detections))
    return scorer.score(gen, gt, media["gt"], media["audio"], "AM")


def test_identical_video_scores_perfectly(identical, gt):
    m = identical.metrics
    assert m["n_frames_gen"] == m["n_frames_gt"] == m["n_frames_compared"] == N
    assert m["ssim"] == pytest.approx(1.0, abs=1e-9)
    assert m["psnr"] == float("inf") and m["n_identical_frames"] == N  # quality module's rule
    assert m["csim"] == pytest.approx(1.0, abs=1e-6)
    assert m["lmd"] == pytest.approx(0.0, abs=1e-9)
    assert m["n_no_face_gen"] == 0 and m["n_no_face_gt"] == 0
    assert identical.reasons == {"lpips": "not requested (--lpips none)"}
    np.testing.assert_allclose(identical.features, gt.features, rtol=1e-6, atol=1e-7)
    # FID of a set against itself: 25 frames give a rank-24 2048x2048 covariance, where
    # sqrtm's rounding left a floor documented as 1e-6 of tr(Σ1) + tr(Σ2); the frame
    # factors FID now uses below 2048 frames leave ~1e-13 of it.
    d = cell_fid([identical.features[:10], identical.features[10:]], [gt.features])
    _, cov = FeatureStats().update(gt.features).mean_cov()
    assert abs(d) < 1e-6 * 2 * np.trace(cov), d


def independent_crop(frame, box, size=224):
    """The documented face crop, rebuilt with cv2.copyMakeBorder instead of crop_square."""
    x1, y1, x2, y2 = box
    side = round(1.1 * max(x2 - x1, y2 - y1))
    x0, y0 = round((x1 + x2 - side) / 2), round((y1 + y2 - side) / 2)
    padded = cv2.copyMakeBorder(frame, side, side, side, side, cv2.BORDER_CONSTANT, value=0)
    sq = padded[y0 + side : y0 + 2 * side, x0 + side : x0 + 2 * side]
    return cv2.resize(sq, (size, size), interpolation=cv2.INTER_AREA)


def test_mouth_offset_quality_equals_direct_computation(offset, gt, frames, detections, model_dir):
    boxes = np.stack([b for b, _ in detections])
    np.testing.assert_array_equal(gt.boxes, boxes)  # GT boxes are SCRFD's best face
    gen = brighten_mouth(frames, detections)
    gen_crops = [independent_crop(f, b) for f, b in zip(gen, boxes, strict=True)]
    gt_crops = [independent_crop(f, b) for f, b in zip(frames, boxes, strict=True)]
    m = offset.metrics
    assert m["ssim"] == pytest.approx(frame_ssim(gen_crops, gt_crops).mean(), rel=1e-12)
    assert m["psnr"] == pytest.approx(frame_psnr(gen_crops, gt_crops).mean(), rel=1e-12)
    assert m["ssim"] < 0.999 and np.isfinite(m["psnr"]) and m["n_identical_frames"] == 0
    assert m["lmd"] > 0
    # the features are Inception's on those same crops (the model run directly)
    onnx = next((model_dir / "onnx").glob("fid_inception-*.onnx"))
    direct = FIDInception(onnx, backend="cpu").features([gen_crops[0], gen_crops[-1]])
    np.testing.assert_allclose(offset.features[[0, -1]], direct, rtol=1e-5, atol=1e-5)


def test_features_and_cell_fid(offset, identical, gt, monkeypatch):
    """cell_fid streams the arrays into two FeatureStats and calls fid() on them: the stats
    it hands over must equal ones built in one pass over the stacked arrays. (fid() itself
    is tested in test_fid, so the Fréchet step is replaced by a recorder here and run for
    real once, in the test above.)"""
    from lipleak.metrics import fid as fid_mod

    assert offset.features.shape == (N, 2048) and offset.features.dtype == np.float32
    seen = []
    monkeypatch.setattr(fid_mod, "fid", lambda a, b: seen.append((a, b)) or 12.5)
    gen = [offset.features[:7], identical.features, offset.features[7:]]
    ref = [gt.features, gt.features[:12], gt.features[12:]]
    assert cell_fid(iter(gen), iter(ref)) == 12.5 and len(seen) == 1
    for got, arrays in zip(seen[0], (gen, ref), strict=True):
        x = np.concatenate(arrays).astype(np.float64)
        one_pass = FeatureStats().update(np.concatenate(arrays))
        assert got.n == one_pass.n == len(x)
        np.testing.assert_allclose(got.sum, x.sum(0), rtol=1e-12)
        np.testing.assert_allclose(got.sum_outer, one_pass.sum_outer, rtol=1e-10, atol=1e-9)
        mu, cov = got.mean_cov()
        np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-7, atol=1e-9)


# -- no ArcFace in the model dir, a clip of one frame repeated ---------------------------


@pytest.fixture(scope="module")
def plain_scorer(model_dir):
    # defaults w600k_r50 and LPIPS alex: not in the dir
    return VisualScorer(VisualSettings(backend="cpu"))


@pytest.fixture(scope="module")
def still_video(media, frames):
    return write_lossless(media["dir"] / "still.mkv", [frames[0]] * N)


@pytest.fixture(scope="module")
def plain_gt(plain_scorer, still_video):
    return plain_scorer.analyze_gt(still_video)


@pytest.fixture(scope="module")
def still(plain_scorer, plain_gt, still_video, media):
    """The still clip scored against itself: with a moving GT the GT boxes would move the
    landmark crop over the still face, and PFLD's jitter alone gives std ~1e-3."""
    return plain_scorer.score(still_video, plain_gt, still_video, media["audio"], "AM")


def test_repeated_frame_shows_no_mouth_motion(still):
    m = still.metrics
    assert m["mouth_aperture_std"] < 1e-6
    assert m["mouth_open_fraction"] in (0.0, 1.0)
    assert np.isnan(m["mouth_audio_corr"]) and np.isnan(m["mouth_audio_lag"])
    assert "does not move" in still.reasons["mouth_audio_corr"]


def test_missing_arcface_reports_csim_not_computed(still, plain_scorer, plain_gt, gt):
    assert np.isnan(still.metrics["csim"]) and still.metrics["lmd"] == 0
    assert "w600k_r50" in still.reasons["csim"] and "not in the model dir" in still.reasons["csim"]
    assert (
        "lpips_alex" in still.reasons["lpips"] and "not in the model dir" in still.reasons["lpips"]
    )
    not_computed = {"csim", "lpips", "mouth_audio_corr", "mouth_audio_lag"}
    computed = {k for k, v in still.metrics.items() if not np.isnan(v)}
    assert computed == set(still.metrics) - not_computed
    assert set(still.reasons) == not_computed
    assert (
        plain_gt.embeddings is None
        and plain_scorer.describe()["models"]["arcface"]["sha256"] is None
    )
    # an analysis made with other settings is refused, not silently mixed
    with pytest.raises(InputError, match="other settings") as exc:
        plain_scorer.score(gt.video, gt, gt.video, None, "SI")
    assert exc.value.status == "stale_gt"


# -- GT frames without a face --------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_nearest_sources_brute_force(seed):
    det = np.random.default_rng(seed).random(40) < 0.2
    det[seed * 7] = True
    idx = np.flatnonzero(det)
    # nearest detection; a tie goes to the earlier frame (argmin keeps the first minimum)
    want = [idx[np.argmin(np.abs(idx - f))] for f in range(40)]
    np.testing.assert_array_equal(nearest_sources(det), want)


def test_faceless_gt_frames_hold_the_nearest_box(model_dir, media, frames, gt):
    """Same frames with and without faceless stretches, ArcFace or not, batch 2 or 32:
    the frames with a face get the same boxes, landmarks and features."""
    black = {0, 1, 9, 10, 11, 12, 13, 14}  # a 6-frame gap: more than batch_size 2 holds
    clip = [np.zeros_like(f) if i in black else f for i, f in enumerate(frames)]
    path = write_lossless(media["dir"] / "gaps.mkv", clip)
    small = VisualScorer(VisualSettings(backend="cpu", batch_size=2))
    g = small.analyze_gt(path)
    assert set(np.flatnonzero(~g.detected)) == black and np.isnan(g.scores[sorted(black)]).all()
    src = {0: 2, 1: 2, 9: 8, 10: 8, 11: 8, 12: 15, 13: 15, 14: 15}
    for i, j in src.items():
        np.testing.assert_array_equal(g.boxes[i], gt.boxes[j])
        np.testing.assert_array_equal(g.kps[i], gt.kps[j])
    keep = [i for i in range(N) if i not in black]
    np.testing.assert_array_equal(g.boxes[keep], gt.boxes[keep])
    np.testing.assert_allclose(g.landmarks[keep], gt.landmarks[keep], atol=1e-4)
    np.testing.assert_allclose(g.features[keep], gt.features[keep], rtol=1e-5, atol=1e-5)
    assert np.abs(g.features[sorted(black)] - gt.features[sorted(black)]).max() > 1e-2


def test_gt_cache_round_trip_and_errors(gt, tmp_path, plain_scorer, frames):
    back = GTAnalysis.load(gt.save(tmp_path / "gt.npz"))
    for name in ("boxes", "kps", "scores", "detected", "landmarks", "features", "embeddings"):
        np.testing.assert_array_equal(getattr(back, name), getattr(gt, name))
    assert (back.video, back.n_frames, back.settings_hash) == (
        gt.video,
        gt.n_frames,
        gt.settings_hash,
    )
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(InputError) as exc:
        GTAnalysis.load(tmp_path / "junk.npz")
    assert exc.value.status == "bad_cache"
    # a GT without any face, and an unreadable file, are InputErrors naming the file
    blank = write_lossless(tmp_path / "blank.mkv", [np.zeros_like(frames[0])] * 3)
    with pytest.raises(InputError, match="blank.mkv") as exc:
        plain_scorer.analyze_gt(blank)
    assert exc.value.status == "no_face"
    (tmp_path / "bad.mp4").write_bytes(b"junk")
    with pytest.raises(InputError) as exc:
        plain_scorer.analyze_gt(tmp_path / "bad.mp4")
    assert exc.value.status == "not_a_video"

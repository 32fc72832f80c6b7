"""CSIM: 5-point alignment (residual and least-squares optimality), a random-weight
IResNet-50 ArcFace graph end to end on real frames, cosine similarity (SPEC §5)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage.transform import SimilarityTransform

from conftest import CLIPS_DIR, SHARED_MODELS
from lipleak.errors import InputError
from lipleak.export.arcface import export_random, iresnet50
from lipleak.faces.align import TEMPLATE, estimate_norm, norm_crop, umeyama_similarity
from lipleak.metrics.csim import CSIMAccumulator, cosine_similarity, video_csim
from lipleak.models.arcface import ArcFace, preprocess
from media import read_frames


def apply(m, pts):
    return pts @ m[:, :2].T + m[:, 2]


def similarity(scale, angle, t):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, t[0]], [scale * s, scale * c, t[1]]])


# -- alignment ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_exact_for_similarity_images_of_the_template(seed):
    rng = np.random.default_rng(seed)
    fwd = similarity(rng.uniform(0.5, 6), rng.uniform(-0.8, 0.8), rng.uniform(-50, 600, 2))
    kps = apply(fwd, TEMPLATE)  # where the template's points lie in the frame
    m = estimate_norm(kps)
    assert np.abs(apply(m, kps) - TEMPLATE).max() < 1e-6  # pixels
    inv = np.linalg.inv(np.vstack([fwd, [0, 0, 1]]))[:2]
    np.testing.assert_allclose(m, inv, rtol=0, atol=1e-9 * np.abs(inv).max())


def lstsq_similarity(src, dst):
    """Oracle: the similarity x' = a·x − b·y + tx, y' = b·x + a·y + ty is linear in
    (a, b, tx, ty)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
        rhs += [u, v]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


@pytest.mark.parametrize("seed", range(5))
def test_residual_is_the_least_squares_optimum(seed):
    rng = np.random.default_rng(10 + seed)
    fwd = similarity(rng.uniform(1, 4), rng.uniform(-0.5, 0.5), rng.uniform(100, 400, 2))
    kps = apply(fwd, TEMPLATE) + rng.normal(0, 4, (5, 2))  # a real face is not a similarity image
    m = estimate_norm(kps)
    ref = lstsq_similarity(kps, TEMPLATE)
    np.testing.assert_allclose(m, ref, rtol=0, atol=1e-9 * np.abs(ref).max())
    res = ((apply(m, kps) - TEMPLATE) ** 2).sum()
    assert res == pytest.approx(((apply(ref, kps) - TEMPLATE) ** 2).sum(), rel=1e-9)
    assert res > 1e-3  # the noise really left a residual
    # and skimage's Umeyama estimate (what insightface's norm_crop uses) agrees
    st = SimilarityTransform.from_estimate(kps, TEMPLATE)
    assert st
    np.testing.assert_allclose(m, st.params[:2], rtol=0, atol=1e-9 * np.abs(ref).max())


def test_reflection_is_never_chosen():
    mirrored = TEMPLATE * [-1, 1] + [200, 0]  # left/right swapped: best fit with a mirror
    m = umeyama_similarity(mirrored, TEMPLATE)
    assert np.linalg.det(m[:, :2]) > 0
    np.testing.assert_allclose(m, lstsq_similarity(mirrored, TEMPLATE), atol=1e-9)


def test_norm_crop_puts_marked_keypoints_on_the_template():
    fwd = similarity(3.0, 0.3, (150.0, 60.0))
    kps = apply(fwd, TEMPLATE)
    frame = np.zeros((600, 600, 3), np.uint8)
    for k, (x, y) in enumerate(kps):
        cv2.circle(frame, (round(x), round(y)), 9, (40 * k + 50, 255, 0), -1)
    crop = norm_crop(frame, kps)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    for k, (x, y) in enumerate(TEMPLATE):
        ys, xs = np.nonzero(crop[:, :, 0] == 40 * k + 50)
        assert abs(xs.mean() - x) < 0.6 and abs(ys.mean() - y) < 0.6  # the dot's centre
    # pixel for pixel what insightface's norm_crop gives (skimage estimate + warpAffine)
    st = SimilarityTransform.from_estimate(kps, TEMPLATE)
    crop_ref = cv2.warpAffine(frame, st.params[:2], (112, 112), borderValue=0.0)
    assert np.array_equal(crop, crop_ref)


def test_alignment_errors():
    with pytest.raises(InputError, match="5×2"):
        estimate_norm(np.zeros((4, 2)))
    with pytest.raises(InputError, match="degenerate"):
        estimate_norm(np.ones((5, 2)))
    with pytest.raises(InputError, match="BGR uint8"):
        norm_crop(np.zeros((10, 10), np.uint8), TEMPLATE)


# -- ArcFace graph end to end -------------------------------------------------------------


@pytest.fixture(scope="session")
def arcface_onnx(tmp_path_factory):
    return export_random(tmp_path_factory.mktemp("arcface") / "iresnet50_random.onnx", seed=0)


@pytest.fixture(scope="module")
def detector():
    from lipleak.faces.scrfd import SCRFD

    return SCRFD(SHARED_MODELS / "scrfd_500m.onnx", backend="cpu")


def faces_of(detector, frames):
    kps = []
    for f in frames:
        boxes, scores, k = detector.detect(f)
        assert len(boxes) >= 1
        kps.append(k[int(np.argmax(scores))])
    return kps


def test_random_iresnet50_runs_end_to_end(arcface_onnx, detector):
    frames = read_frames(CLIPS_DIR / "real11_suit_man.mp4", [0, 50])
    other = read_frames(CLIPS_DIR / "real04_woman_glasses.mp4", [0])
    kps = faces_of(detector, frames + other)
    faces = [norm_crop(f, k) for f, k in zip(frames + other, kps, strict=True)]
    model = ArcFace(arcface_onnx, backend="cpu")
    assert model.runtime.inputs[0].shape[1:] == (3, 112, 112)
    emb = model.embed(faces)
    assert emb.shape == (3, 512) and np.isfinite(emb).all()
    # the exported graph computes what the torch architecture computes
    with torch.no_grad():
        ref = iresnet50(seed=0)(torch.from_numpy(preprocess(faces))).numpy()
    np.testing.assert_allclose(emb, ref, rtol=0, atol=1e-4 * np.abs(ref).max())
    # a face with itself: exactly 1; different people: clearly less (input-sensitive graph)
    self_sim = cosine_similarity(emb, emb)
    np.testing.assert_allclose(self_sim, 1.0, rtol=0, atol=1e-6)
    assert cosine_similarity(emb[[0]], emb[[2]])[0] < 0.99
    # video_csim of a clip against itself is 1 on every frame
    res = video_csim(model, frames, kps[:2], frames, kps[:2])
    assert res.n_frames == 2 and res.n_skipped == 0
    assert abs(res.csim - 1.0) < 1e-6


def test_fixed_batch_graph_is_run_in_chunks(tmp_path):
    small = (1, 1, 1, 1)  # a small IResNet: only the wrapper's batching is under test
    dyn = ArcFace(export_random(tmp_path / "d.onnx", seed=3, layers=small), backend="cpu")
    fixed = ArcFace(
        export_random(tmp_path / "f.onnx", seed=3, layers=small, dynamic_batch=False),
        backend="cpu",
        batch_size=8,
    )
    assert fixed.fixed_batch == 1 and dyn.fixed_batch is None
    faces = list(np.random.default_rng(0).integers(0, 256, (5, 112, 112, 3), dtype=np.uint8))
    np.testing.assert_allclose(fixed.embed(faces), dyn.embed(faces), rtol=0, atol=1e-5)


def test_preprocess_is_rgb_scaled_nchw():
    face = np.random.default_rng(1).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    x = preprocess([face])
    ref = (face[:, :, ::-1].astype(np.float64).transpose(2, 0, 1) - 127.5) / 127.5
    np.testing.assert_allclose(x[0], ref, rtol=0, atol=1e-7)
    with pytest.raises(InputError, match="112×112×3"):
        preprocess([np.zeros((100, 100, 3), np.uint8)])


# -- CSIM accumulation --------------------------------------------------------------------


class FakeArcFace:
    """Embeds a face as its mean colour (3-d): enough to check the bookkeeping."""

    def embed(self, faces):
        return np.array([f.reshape(-1, 3).mean(0) + 1 for f in faces])


def test_accumulator_skips_frames_without_faces_and_averages():
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, (200, 200, 3), dtype=np.uint8) for _ in range(4)]
    kps = [TEMPLATE + 40, None, TEMPLATE + 50, TEMPLATE + 60]
    gt_kps = [TEMPLATE + 40, TEMPLATE + 40, None, TEMPLATE + 30]
    acc = CSIMAccumulator(FakeArcFace())
    acc.update(frames[:2], kps[:2], frames[:2], gt_kps[:2])
    acc.update(frames[2:], kps[2:], frames[2:], gt_kps[2:])
    res = acc.result()
    assert res.n_frames == 2 and res.n_skipped == 2
    e = FakeArcFace().embed
    g = e([norm_crop(frames[0], kps[0]), norm_crop(frames[3], kps[3])])
    t = e([norm_crop(frames[0], gt_kps[0]), norm_crop(frames[3], gt_kps[3])])
    expect = [a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(g, t, strict=True)]
    np.testing.assert_allclose(res.per_frame, expect, rtol=1e-12)
    assert res.csim == pytest.approx(np.mean(expect), rel=1e-12)


def test_no_face_anywhere_is_an_input_error():
    acc = CSIMAccumulator(FakeArcFace())
    acc.update([np.zeros((50, 50, 3), np.uint8)], [None], [np.zeros((50, 50, 3), np.uint8)], [None])
    with pytest.raises(InputError, match="no frame has a face"):
        acc.result()
    with pytest.raises(InputError, match="differ in length"):
        acc.update([np.zeros((50, 50, 3), np.uint8)], [None], [], [])


def test_a_graph_with_other_input_rows_is_refused():
    """ArcFace and PFLD open their graphs through BatchedModel.open, which names the model
    and the input it wanted."""
    from lipleak.errors import ModelError
    from lipleak.faces.landmarks import PFLD

    scrfd = SHARED_MODELS / "scrfd_500m.onnx"  # N×3×H×W, not N×3×112×112
    with pytest.raises(ModelError, match=r"ArcFace input must be N×3×112×112, got"):
        ArcFace(scrfd, backend="cpu")
    with pytest.raises(ModelError, match=r"landmark input must be N×3×112×112, got"):
        PFLD(scrfd, backend="cpu")

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


# ---------------------------------------------------------------------------------------
# Mouth ROIs
# ---------------------------------------------------------------------------------------

from collections import deque  # noqa: E402

from lipleak.faces import mouth_roi  # noqa: E402
from lipleak.faces.mean_face import MEAN_FACE  # noqa: E402


def _sk_warp_crop(frame, src, dst, lm):
    """align_mouth.py's warp_img + cut_patch with skimage (the oracle)."""
    from skimage import transform as tf

    tform = tf.estimate_transform("similarity", src, dst)
    warped = (tf.warp(frame, inverse_map=tform.inverse, output_shape=(256, 256)) * 255).astype(
        "uint8"
    )
    return _cut_patch(warped, tform(lm)[48:68]), tform


def _cut_patch(img, landmarks, height=48, width=48, threshold=5):
    center_x, center_y = np.mean(landmarks, axis=0)
    if center_y - height < 0:
        center_y = height
    if center_x - width < 0:
        center_x = width
    if center_y + height > img.shape[0]:
        center_y = img.shape[0] - height
    if center_x + width > img.shape[1]:
        center_x = img.shape[1] - width
    return np.copy(
        img[
            int(round(center_y) - round(height)) : int(round(center_y) + round(height)),
            int(round(center_x) - round(width)) : int(round(center_x) + round(width)),
        ]
    )


def _oracle_rois(frames, landmarks, mean_face=MEAN_FACE, margin=12):
    """align_mouth.py's landmarks_interpolate + crop_patch, frames in memory."""
    from skimage import transform as tf

    lms = list(landmarks)
    valid = [i for i, x in enumerate(lms) if x is not None]
    for a, b in zip(valid, valid[1:], strict=False):
        if b - a > 1:
            delta = lms[b] - lms[a]
            for idx in range(1, b - a):
                lms[a + idx] = lms[a] + idx / float(b - a) * delta
    lms[: valid[0]] = [lms[valid[0]]] * valid[0]
    lms[valid[-1] :] = [lms[valid[-1]]] * (len(lms) - valid[-1])
    stable = [33, 36, 39, 42, 45]
    margin = min(len(frames), margin)
    q_frame, q_lm, seq = deque(), deque(), []
    for i, frame in enumerate(frames):
        q_lm.append(lms[i])
        q_frame.append(frame)
        if len(q_frame) == margin:
            smoothed = np.mean(q_lm, axis=0)
            cur_lm, cur_frame = q_lm.popleft(), q_frame.popleft()
            patch, trans = _sk_warp_crop(cur_frame, smoothed[stable], mean_face[stable], cur_lm)
            seq.append(patch)
        if i == len(lms) - 1:
            while q_frame:
                cur_frame = q_frame.popleft()
                warped = tf.warp(cur_frame, inverse_map=trans.inverse, output_shape=(256, 256))
                warped = (warped * 255).astype("uint8")
                seq.append(_cut_patch(warped, trans(q_lm.popleft())[48:68]))
    return np.array(seq)


def _similarity(scale, angle_deg, tx, ty):
    a = np.deg2rad(angle_deg)
    return np.array(
        [
            [scale * np.cos(a), -scale * np.sin(a), tx],
            [scale * np.sin(a), scale * np.cos(a), ty],
            [0, 0, 1.0],
        ]
    )


def _synthetic_clip(n, seed=0, shape=(240, 320), noise=1.5, drift=(2.0, 0.5)):
    """Textured frames and a face: the mean face moved by a similarity, jittered."""
    rng = np.random.default_rng(seed)
    frames, lms = [], []
    base = rng.integers(20, 236, (shape[0] // 8, shape[1] // 8, 3)).astype(np.uint8)
    for k in range(n):
        big = np.kron(base, np.ones((8, 8, 1), np.uint8))
        frame = np.clip(big.astype(int) + rng.integers(-15, 16, big.shape), 0, 255)
        frames.append(frame.astype(np.uint8))
        t = _similarity(0.9 + 0.01 * k, 8 - k, 30 + drift[0] * k, 10 + drift[1] * k)
        lm = mouth_roi.apply_matrix(t, MEAN_FACE) + rng.normal(0, noise, (68, 2))
        lms.append(lm)
    return frames, lms


def test_mean_face_geometry():
    assert MEAN_FACE.shape == (68, 2) and np.isfinite(MEAN_FACE).all()
    assert (MEAN_FACE > 0).all() and (MEAN_FACE < 256).all()
    eyes_y = MEAN_FACE[[36, 39, 42, 45], 1]
    assert np.ptp(eyes_y) < 6  # eye corners level
    nose, mouth = MEAN_FACE[33], MEAN_FACE[48:68].mean(axis=0)
    assert mouth[1] - nose[1] > 10 and abs(mouth[0] - nose[0]) < 3
    assert MEAN_FACE[36, 0] < MEAN_FACE[39, 0] < MEAN_FACE[42, 0] < MEAN_FACE[45, 0]


def test_similarity_equals_skimage():
    from skimage import transform as tf

    rng = np.random.default_rng(3)
    for _ in range(20):
        src = rng.uniform(0, 300, (5, 2))
        dst = rng.uniform(0, 256, (5, 2))
        ref = tf.estimate_transform("similarity", src, dst).params
        np.testing.assert_array_equal(mouth_roi.estimate_similarity(src, dst), ref)
        np.testing.assert_array_equal(
            mouth_roi.apply_matrix(ref, src), tf.SimilarityTransform(matrix=ref)(src)
        )


@pytest.mark.parametrize(
    "case",
    [
        "inside",
        "near_border",
        "partly_outside",
        "no_black_pixel",
        "no_black_outside",
        "canvas_inside",
        "gray",
    ],
)
def test_warp_patch_equals_skimage(case):
    frames, lms = _synthetic_clip(3, seed=5)
    frame, lm = frames[1], lms[1]
    if case == "near_border":
        lm = lm + np.array([170.0, 60.0])  # the mouth patch reaches past the frame edge
    if case == "partly_outside":
        lm = lm + np.array([-120.0, 90.0])
    if case in ("no_black_pixel", "no_black_outside"):
        frame = np.maximum(frame, 20)
    if case == "no_black_outside":
        lm = lm + np.array([-120.0, 90.0])  # skimage's clip range then depends on cval use
    if case == "canvas_inside":
        # the whole 256×256 canvas samples inside the frame: skimage clips to the input range
        frame = np.maximum(frame, 20)
        lm = mouth_roi.apply_matrix(_similarity(0.6, 5, 60, 40), MEAN_FACE)
    if case == "gray":
        frame = frame[:, :, 1].copy()
    ids = list(mouth_roi.STABLE_POINTS)
    t_inv = np.linalg.inv(mouth_roi.estimate_similarity(lm[ids], MEAN_FACE[ids]))
    assert mouth_roi._any_outside(t_inv, *frame.shape[:2]) == (case != "canvas_inside")
    ref, tform = _sk_warp_crop(frame, lm[ids], MEAN_FACE[ids], lm)
    t = mouth_roi.estimate_similarity(lm[ids], MEAN_FACE[ids])
    origin = mouth_roi.patch_origin(mouth_roi.apply_matrix(t, lm)[48:68])
    got = mouth_roi.warp_patch(frame, t, origin, (96, 96))
    assert got.shape == ref.shape and got.dtype == np.uint8
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("n, gaps", [(20, ()), (5, ()), (30, (0, 1, 7, 8, 9, 29)), (12, (11,))])
def test_mouth_roi_stream_equals_align_mouth(n, gaps):
    frames, lms = _synthetic_clip(n, seed=n)
    lms = [None if i in gaps else lm for i, lm in enumerate(lms)]
    ref = _oracle_rois(frames, lms)
    m = mouth_roi.MouthROI(raw=True)
    got = []
    for f, lm in zip(frames, lms, strict=True):
        got += m.push(f, lm)
    got += m.flush()
    assert len(got) == n
    np.testing.assert_array_equal(np.stack(got), ref)
    # the model input: gray, centre 88, normalised, as av_hubert reads the ROI video
    import cv2

    gray = np.stack([cv2.cvtColor(p, cv2.COLOR_BGR2GRAY) for p in ref])[:, 4:92, 4:92]
    want = ((gray / 255.0 - 0.421) / 0.165).astype(np.float32)
    rois = mouth_roi.mouth_rois(zip(frames, lms, strict=True))
    assert rois.shape == (n, 88, 88) and rois.dtype == np.float32
    np.testing.assert_array_equal(rois, want)


def test_stable_points_land_on_the_template():
    """Residual: a face that is an exact similarity image of the mean face is mapped back
    onto it; its mouth centre lands at the centre of the 96×96 patch."""
    for t in (_similarity(0.7, 12, 40, 5), _similarity(1.3, -20, -10, 30)):
        lm = mouth_roi.apply_matrix(t, MEAN_FACE)
        ids = list(mouth_roi.STABLE_POINTS)
        est = mouth_roi.estimate_similarity(lm[ids], MEAN_FACE[ids])
        back = mouth_roi.apply_matrix(est, lm)
        assert np.abs(back - MEAN_FACE).max() < 1e-9  # every point, not only the stable ones
        centre = back[48:68].mean(axis=0)
        r0, c0 = mouth_roi.patch_origin(back[48:68])
        assert abs(r0 + 48 - centre[1]) <= 0.5 and abs(c0 + 48 - centre[0]) <= 0.5


def test_mouth_centre_is_the_crop_centre_in_pixels():
    """A bright dot drawn at the mouth centre of the frame ends up at the ROI's centre."""
    t = _similarity(1.1, 15, 60, 20)
    lm = mouth_roi.apply_matrix(t, MEAN_FACE)
    frame = np.full((300, 360, 3), 40, np.uint8)
    cx, cy = lm[48:68].mean(axis=0)
    yy, xx = np.mgrid[:300, :360]
    frame[(yy - cy) ** 2 + (xx - cx) ** 2 <= 4] = 250
    rois = mouth_roi.mouth_rois([(frame, lm)] * 3, raw=True)
    gray = rois[0].max(axis=2).astype(float)
    ys, xs = np.nonzero(gray > 150)
    # pixel centres sit at integer coordinates (skimage's warp), and the patch starts at
    # round(centre) - 48: the centre is at index 48 ± 0.5, the dot's pixels within ±0.5 more
    assert abs(ys.mean() - 48) <= 1.0 and abs(xs.mean() - 48) <= 1.0


def test_no_landmarks_at_all_is_no_face():
    from lipleak.errors import InputError

    frames, _ = _synthetic_clip(3)
    m = mouth_roi.MouthROI()
    for f in frames:
        assert m.push(f, None) == []
    with pytest.raises(InputError) as e:
        m.flush()
    assert e.value.status == "no_face"


@pytest.mark.slow
def test_real_clip_end_to_end(shared_models):
    """Frames -> SCRFD + PFLD landmarks -> ROIs on a real clip: one finite 88×88 ROI per
    frame, and the first 30 frames equal align_mouth.py's skimage path bit for bit."""

    from conftest import CLIPS
    from lipleak.faces.landmarks import PFLD
    from lipleak.faces.scrfd import SCRFD
    from lipleak.io.video import iter_frames

    det = SCRFD(shared_models / "scrfd_500m.onnx", backend="cpu")
    pfld = PFLD(shared_models / "pfld_68.onnx", backend="cpu")
    clip = CLIPS[0]
    n_frames = sum(1 for _ in iter_frames(clip))
    m = mouth_roi.MouthROI()
    first: list[tuple[np.ndarray, np.ndarray | None]] = []
    rois = []
    for frame, lm in mouth_roi.face_landmarks(iter_frames(clip), det, pfld, batch_size=16):
        if len(first) < 30:
            first.append((frame, lm))
        rois += m.push(frame, lm)
    rois += m.flush()
    rois = np.stack(rois)
    assert rois.shape == (n_frames, 88, 88) and rois.dtype == np.float32
    assert np.isfinite(rois).all()
    assert rois.std() > 0.1  # a picture, not a constant
    assert sum(lm is not None for _, lm in first) > 20
    ref = _oracle_rois([f for f, _ in first], [lm for _, lm in first])
    got = mouth_roi.mouth_rois(first, raw=True)
    np.testing.assert_array_equal(got, ref)

"""PFLD landmarks (crop geometry, mapping back to pixels) and LMD (SPEC §6)."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from conftest import CLIPS_DIR, SHARED_MODELS
from lipleak.errors import InputError
from lipleak.faces.landmarks import PFLD, crop_square, preprocess, square_box
from lipleak.faces.scrfd import SCRFD
from lipleak.metrics.lmd import LMDAccumulator, lmd, lmd_per_frame

PFLD_ONNX = SHARED_MODELS / "pfld_68.onnx"


def read_frames(path, n):
    cap = cv2.VideoCapture(str(path))
    out = []
    while len(out) < n:
        ok, frame = cap.read()
        assert ok
        out.append(frame)
    cap.release()
    return out


@pytest.fixture(scope="module")
def pfld():
    return PFLD(PFLD_ONNX, backend="cpu")


@pytest.fixture(scope="module")
def clip():
    """30 frames of a real clip with their SCRFD boxes."""
    frames = read_frames(CLIPS_DIR / "real07_reagan.mp4", 30)
    det = SCRFD(SHARED_MODELS / "scrfd_500m.onnx", backend="cpu")
    boxes = []
    for f in frames:
        b, s, _ = det.detect(f)
        boxes.append(b[int(np.argmax(s))])
    return frames, boxes


@pytest.fixture(scope="module")
def clip_landmarks(pfld, clip):
    return pfld.landmarks(*clip)


# -- landmarks ---------------------------------------------------------------------------


def test_square_box_and_padded_crop():
    assert square_box(np.array([10.0, 20.0, 110.0, 220.0])) == (-50, 10, 220)  # 1.1·200, centred
    frame = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    c = crop_square(frame, -2, 1, 4)
    assert c.shape == (4, 4, 3)
    assert (c[:, :2] == 0).all()  # left of the frame: zero padding
    np.testing.assert_array_equal(c[:, 2:], frame[1:5, 0:2])
    assert (crop_square(frame, 10, 10, 3) == 0).all()  # entirely outside
    with pytest.raises(InputError, match="too small"):
        square_box(np.array([5.0, 5.0, 5.5, 5.5]))


def test_landmarks_equal_a_direct_run_mapped_back(pfld, clip, clip_landmarks):
    """Oracle: the PFLD demo's crop (copyMakeBorder padding), onnxruntime directly, and
    pixel = corner + relative·side."""
    frames, boxes = clip
    sess = ort.InferenceSession(str(PFLD_ONNX), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].name == "input" and sess.get_outputs()[0].shape[1] == 136
    for k in (0, 17):
        x1, y1, x2, y2 = boxes[k]
        side = round(1.1 * max(x2 - x1, y2 - y1))
        x0, y0 = round((x1 + x2 - side) / 2), round((y1 + y2 - side) / 2)
        h, w = frames[k].shape[:2]
        padded = cv2.copyMakeBorder(frames[k], side, side, side, side, cv2.BORDER_CONSTANT, value=0)
        crop = padded[y0 + side : y0 + 2 * side, x0 + side : x0 + 2 * side]
        inp = (
            cv2.resize(crop, (112, 112))[:, :, ::-1].astype(np.float32).transpose(2, 0, 1)[None]
            / 255
        )
        rel = sess.run(None, {"input": inp})[0].reshape(68, 2)
        np.testing.assert_allclose(clip_landmarks[k], rel * side + [x0, y0], rtol=0, atol=1e-3)
    assert clip_landmarks.shape == (30, 68, 2)
    # the mouth lies in the lower half of the face box, inside it horizontally
    mouth = clip_landmarks[:, 48:68]
    bx = np.array(boxes)
    assert ((mouth[..., 0] > bx[:, None, 0]) & (mouth[..., 0] < bx[:, None, 2])).all()
    assert (mouth[..., 1] > ((bx[:, 1] + bx[:, 3]) / 2)[:, None]).all()


def test_translation_moves_landmarks_by_the_same_amount(pfld, clip):
    frames, boxes = clip
    frame, box = frames[0], boxes[0]
    dx, dy = 37, 21
    shifted = np.zeros((frame.shape[0] + dy, frame.shape[1] + dx, 3), np.uint8)
    shifted[dy:, dx:] = frame
    a = pfld.landmarks([frame], [box])
    b = pfld.landmarks([shifted], [box + np.array([dx, dy, dx, dy], np.float32)])
    np.testing.assert_allclose(b - a, np.broadcast_to([dx, dy], a.shape), rtol=0, atol=1e-6)


def test_batching_does_not_change_landmarks(clip, clip_landmarks):
    small = PFLD(PFLD_ONNX, backend="cpu", batch_size=7).landmarks(*clip)
    np.testing.assert_allclose(small, clip_landmarks, rtol=0, atol=1e-4)


def test_landmark_input_errors(pfld, clip):
    frames, boxes = clip
    with pytest.raises(InputError, match="frames but"):
        pfld.landmarks(frames[:2], boxes[:1])
    with pytest.raises(InputError, match="112×112×3"):
        preprocess([np.zeros((100, 112, 3), np.uint8)])


# -- LMD -------------------------------------------------------------------------------


def test_lmd_of_a_clip_against_itself_is_zero(clip_landmarks):
    r = lmd(clip_landmarks, clip_landmarks.copy())
    assert r.lmd == 0.0 and r.n_frames == 30
    np.testing.assert_array_equal(r.per_frame, 0.0)


def test_lmd_with_known_mouth_shifts(clip_landmarks):
    rng = np.random.default_rng(0)
    shifts = rng.normal(0, 3, (30, 20, 2))  # a different vector for every mouth point and frame
    moved = clip_landmarks.copy()
    moved[:, 48:68] += shifts
    moved[:, :48] += rng.normal(0, 5, (30, 48, 2))  # the rest of the face does not count
    # centring removes the mean shift: per frame Σ_i ‖d_i − d̄‖
    expect = np.linalg.norm(shifts - shifts.mean(axis=1, keepdims=True), axis=2).sum(axis=1)
    r = lmd(moved, clip_landmarks)
    np.testing.assert_allclose(r.per_frame, expect, rtol=1e-9)
    assert r.lmd == pytest.approx(expect.mean(), rel=1e-9)
    assert r.lmd > 10  # the shifts did not cancel


def test_lmd_ignores_a_common_translation(clip_landmarks):
    moved = clip_landmarks + np.array([12.5, -7.0])
    np.testing.assert_allclose(lmd_per_frame(moved, clip_landmarks), 0.0, atol=1e-9)


def test_lmd_hand_computed_single_frame():
    gt = np.zeros((1, 20, 2))
    gen = np.zeros((1, 20, 2))
    gen[0, 0] = [4.0, 3.0]  # one point moved by 5 px: centred, it moves 5·19/20 and the
    # other 19 move by 5/20 each → 5·19/20 + 19·5/20
    assert lmd_per_frame(gen, gt)[0] == pytest.approx(2 * 5 * 19 / 20, rel=1e-12)


def test_lmd_accumulator_streams_and_names_the_model(clip_landmarks):
    moved = clip_landmarks.copy()
    moved[:, 50] += [2.0, 1.0]
    acc = LMDAccumulator("pfld_68")
    acc.update(moved[:10], clip_landmarks[:10])
    acc.update(moved[10:], clip_landmarks[10:])
    r = acc.result()
    assert r.landmark_model == "pfld_68" and r.n_frames == 30
    assert r.lmd == pytest.approx(lmd(moved, clip_landmarks).lmd, rel=1e-12)


def test_lmd_errors(clip_landmarks):
    with pytest.raises(InputError, match="N×68×2"):
        lmd_per_frame(np.zeros((3, 10, 2)), np.zeros((3, 10, 2)))
    with pytest.raises(InputError, match="generated vs"):
        lmd_per_frame(clip_landmarks[:3], clip_landmarks[:4])
    with pytest.raises(InputError, match="no frame"):
        LMDAccumulator().result()

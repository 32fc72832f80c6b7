"""SCRFD detection, syncnet_python tracking semantics, median filter and the crop geometry."""

from __future__ import annotations

from itertools import islice

import cv2
import numpy as np
import pytest
from scipy import signal

from conftest import CLIPS_DIR, SHARED_MODELS
from lipleak.faces.crop import prealigned_crop, syncnet_crop, syncnet_crop_raw
from lipleak.faces.scrfd import SCRFD
from lipleak.faces.track import medfilt, track_faces
from lipleak.io.video import iter_frames
from track_oracle import reference_track_shot

SCRFD_PATH = SHARED_MODELS / "scrfd_500m.onnx"


@pytest.fixture(scope="module")
def detector():
    return SCRFD(SCRFD_PATH)


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize(
    "name", ["real03_aoc", "real05_cnn_anchor", "real08_feifeili", "real09_vox_rdj"]
)
def test_detect_one_face(detector, name):
    frame = next(iter_frames(CLIPS_DIR / f"{name}.mp4"))
    h, w = frame.shape[:2]
    boxes, scores, kps = detector.detect(frame)
    assert boxes.shape == (1, 4) and scores.shape == (1,) and kps.shape == (1, 5, 2)
    assert boxes.dtype == scores.dtype == kps.dtype == np.float32
    x1, y1, x2, y2 = boxes[0]
    assert 0.3 * min(h, w) < x2 - x1 < 0.8 * w and 0.3 * min(h, w) < y2 - y1 < h
    assert -5 <= x1 and -5 <= y1 and x2 <= w + 5 and y2 <= h + 5
    assert scores[0] > 0.6
    # eyes above nose above mouth corners, all inside the box
    assert np.all(
        (kps[0, :, 0] > x1) & (kps[0, :, 0] < x2) & (kps[0, :, 1] > y1) & (kps[0, :, 1] < y2)
    )
    assert kps[0, 0, 0] < kps[0, 1, 0] and max(kps[0, :2, 1]) < kps[0, 2, 1] < min(kps[0, 3:, 1])


def _oracle_detect(det: SCRFD, frame, thresh: float, nms_thresh: float):
    """insightface's decoding written out cell by cell, plus a plain pairwise NMS."""
    blob, scale = det.preprocess(frame)
    out = det.model.run({det.input_name: blob})
    outs = [out[n] for n in det.output_names]
    side = blob.shape[2]
    cands = []
    for si, stride in enumerate((8, 16, 32)):
        n = side // stride
        sc, bb, kp = outs[si][:, 0], outs[si + 3], outs[si + 6]
        for row in range(n):
            for col in range(n):
                for a in range(2):
                    idx = (row * n + col) * 2 + a
                    if sc[idx] < thresh:
                        continue
                    cx, cy = col * stride, row * stride
                    d = bb[idx] * stride
                    box = [cx - d[0], cy - d[1], cx + d[2], cy + d[3]]
                    pts = [
                        [cx + kp[idx, 2 * k] * stride, cy + kp[idx, 2 * k + 1] * stride]
                        for k in range(5)
                    ]
                    cands.append((float(sc[idx]), np.array(box) / scale, np.array(pts) / scale))
    cands.sort(key=lambda c: -c[0])
    kept = []
    for c in cands:
        ok = True
        for k in kept:
            a, b = c[1], k[1]
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
            inter = iw * ih
            union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
            if inter / (union - inter) > nms_thresh:
                ok = False
                break
        if ok:
            kept.append(c)
    return kept


@pytest.mark.parametrize("name", ["real04_woman_glasses", "real07_reagan"])
def test_decode_and_nms_match_oracle(name):
    det = SCRFD(SCRFD_PATH, det_thresh=0.05, nms_thresh=0.4)
    frame = next(iter_frames(CLIPS_DIR / f"{name}.mp4"))
    boxes, scores, kps = det.detect(frame)
    ref = _oracle_detect(det, frame, 0.05, 0.4)
    assert len(ref) == len(boxes) > 1  # a low threshold leaves several boxes after NMS
    np.testing.assert_allclose(scores, [r[0] for r in ref], rtol=0, atol=0)
    np.testing.assert_allclose(boxes, np.array([r[1] for r in ref]), rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(kps, np.array([r[2] for r in ref]), rtol=1e-6, atol=1e-3)
    assert np.all(np.diff(scores) <= 0)


def test_preprocess_geometry():
    det = SCRFD(SCRFD_PATH)
    blob, scale = det.preprocess(np.full((256, 200, 3), 200, np.uint8))
    assert blob.shape == (1, 3, 256, 256) and scale == 1.0  # small frames are not enlarged
    assert np.allclose(blob[0, :, :, :200], (200 - 127.5) / 128) and np.all(
        blob[0, :, :, 200:] == -127.5 / 128
    )
    blob, scale = det.preprocess(np.zeros((720, 1280, 3), np.uint8))
    assert blob.shape == (1, 3, 640, 640) and scale == 360 / 720
    big = SCRFD(SCRFD_PATH, upscale=True)
    blob, scale = big.preprocess(np.zeros((256, 200, 3), np.uint8))
    assert blob.shape == (1, 3, 640, 640) and scale == 640 / 256


# ---------------------------------------------------------------- tracking on real clips


# ---------------------------------------------------------------- tracking semantics


def _dets_from(per_frame):
    """per_frame: list of lists of boxes -> detector-style tuples (scores descending)."""
    out = []
    for boxes in per_frame:
        b = np.array(boxes, np.float32).reshape(-1, 4)
        n = len(b)
        kps = np.repeat(((b[:, :2] + b[:, 2:]) / 2)[:, None, :], 5, axis=1)
        out.append((b, np.linspace(0.9, 0.6, n, dtype=np.float32), kps.astype(np.float32)))
    return out


def _moving_box(f, x0=100.0, size=150.0):
    return [x0 + 0.5 * f, 80.0 + 0.2 * f, x0 + 0.5 * f + size, 80.0 + 0.2 * f + size]


@pytest.mark.parametrize("gap,n_tracks", [(25, 1), (26, 2)])
def test_gap_bridged_or_split(gap, n_tracks):
    frames = [[] for _ in range(200)]
    last_before = 59
    for f in range(200):
        if f <= last_before or f >= last_before + gap:
            frames[f] = [_moving_box(f)]
    tracks = track_faces(_dets_from(frames), min_track=50)
    assert len(tracks) == n_tracks
    if n_tracks == 1:
        tr = tracks[0]
        np.testing.assert_array_equal(tr.frames, np.arange(200))
        # linear interpolation across the gap reproduces the linear motion
        expect = np.array([_moving_box(f) for f in range(200)])
        np.testing.assert_allclose(tr.boxes, expect, atol=1e-3)
        missing = np.arange(last_before + 1, last_before + gap)
        assert np.all(np.isnan(tr.det_scores[missing])) and not np.isnan(tr.det_scores[0])
        np.testing.assert_allclose(tr.kps[:, 0], (expect[:, :2] + expect[:, 2:]) / 2, atol=1e-3)
    else:
        assert [len(t) for t in tracks] == [60, 200 - 59 - gap]


def test_two_faces_two_tracks():
    frames = [[_moving_box(f, 50), _moving_box(f, 400)] for f in range(150)]
    tracks = track_faces(_dets_from(frames))
    assert len(tracks) == 2
    assert sorted(round(t.x[75]) for t in tracks) == [round(50 + 37.5 + 75), round(400 + 37.5 + 75)]


def test_short_and_small_tracks_dropped():
    frames = [[_moving_box(f)] for f in range(100)]  # 100 detections: not > min_track
    assert track_faces(_dets_from(frames)) == []
    frames = [[_moving_box(f)] for f in range(101)]
    assert len(track_faces(_dets_from(frames))) == 1
    small = [[[10, 10, 110, 60]] for _ in range(150)]  # mean width exactly 100: not > 100
    assert track_faces(_dets_from(small)) == []
    assert len(track_faces(_dets_from(small), min_face_size=99.5)) == 1


def test_tracking_matches_reference_on_random_scenes():
    rng = np.random.default_rng(3)
    n_tracks = 0
    for trial in range(12):
        n = 160
        faces = []
        for _ in range(rng.integers(1, 4)):
            x0, y0, size = rng.uniform(0, 600), rng.uniform(0, 300), rng.uniform(60, 220)
            vx, vy = rng.uniform(-1.5, 1.5, 2)
            start, stop = sorted(rng.integers(0, n, 2))
            faces.append((x0, y0, size, vx, vy, start, stop + 40))
        per_frame = []
        for f in range(n):
            boxes = []
            for x0, y0, size, vx, vy, start, stop in faces:
                if start <= f < stop and rng.random() > 0.15 + 0.5 * (trial % 3 == 2):
                    j = rng.normal(0, 4, 4)
                    boxes.append(
                        [
                            x0 + vx * f + j[0],
                            y0 + vy * f + j[1],
                            x0 + vx * f + size + j[2],
                            y0 + vy * f + size + j[3],
                        ]
                    )
            if trial % 4 == 3 and boxes:  # a near-duplicate box exercises the skip quirk
                boxes.append([v + 2 for v in boxes[0]])
            per_frame.append(boxes)
        dets = _dets_from(per_frame)
        scenefaces = [
            [
                {"frame": f, "bbox": [float(v) for v in b], "conf": float(s)}
                for b, s in zip(d[0], d[1], strict=True)
            ]
            for f, d in enumerate(dets)
        ]
        ref = reference_track_shot(scenefaces, 25, 30, 60)
        ours = track_faces(dets, min_track=30, min_face_size=60)
        assert len(ours) == len(ref), trial
        n_tracks += len(ref)
        for t, r in zip(ours, ref, strict=True):
            np.testing.assert_array_equal(t.frames, r["frame"])
            np.testing.assert_allclose(t.boxes, r["bbox"], rtol=0, atol=1e-9)
            # crop_video's smoothing
            w, h = r["bbox"][:, 2] - r["bbox"][:, 0], r["bbox"][:, 3] - r["bbox"][:, 1]
            np.testing.assert_array_equal(t.s, signal.medfilt(np.maximum(h, w) / 2, 13))
            np.testing.assert_array_equal(
                t.x, signal.medfilt((r["bbox"][:, 0] + r["bbox"][:, 2]) / 2, 13)
            )
            np.testing.assert_array_equal(
                t.y, signal.medfilt((r["bbox"][:, 1] + r["bbox"][:, 3]) / 2, 13)
            )
    assert n_tracks >= 8


@pytest.mark.filterwarnings("ignore:kernel_size exceeds volume extent")
@pytest.mark.parametrize("n", [1, 2, 7, 13, 14, 200])
@pytest.mark.parametrize("k", [3, 9, 13])
def test_medfilt_equals_scipy(n, k):
    x = np.random.default_rng(n * 31 + k).normal(50, 30, n)
    x[::5] = -abs(x[::5])  # negatives, so the zero padding matters at both ends
    np.testing.assert_array_equal(medfilt(x, k), signal.medfilt(x, k))


# ---------------------------------------------------------------- crops


def _pad_oracle(frame, s, x, y, cs=0.4):
    bsi = int(s * (1 + 2 * cs))
    padded = np.pad(frame, ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=(110, 110))
    my, mx = y + bsi, x + bsi
    return padded[
        int(my - s) : int(my + s * (1 + 2 * cs)), int(mx - s * (1 + cs)) : int(mx + s * (1 + cs))
    ]


def test_crop_equals_numpy_pad_oracle():
    rng = np.random.default_rng(11)
    frame = rng.integers(0, 256, (180, 240, 3), dtype=np.uint8)
    cases = [
        (60.0, 120.0, 90.0),
        (60.3, 0.0, 0.0),
        (60.7, 239.9, 179.9),
        (30.2, -20.5, 200.7),
        (100.0, 300.0, -40.0),
        (5.5, 120.0, 90.0),
        (150.0, 120.0, 90.0),
        (40.0, -70.0, 90.0),
    ]
    cases += [
        (rng.uniform(2, 160), rng.uniform(-120, 360), rng.uniform(-120, 300)) for _ in range(300)
    ]
    n_checked = 0
    for s, x, y in cases:
        ref = _pad_oracle(frame, s, x, y)
        ours = syncnet_crop_raw(frame, s, x, y)
        assert ours.shape == ref.shape and np.array_equal(ours, ref), (s, x, y)
        if ref.shape[0] and ref.shape[1]:
            n_checked += 1
            assert np.array_equal(syncnet_crop(frame, s, x, y), cv2.resize(ref, (224, 224)))
        else:
            with pytest.raises(ValueError):
                syncnet_crop(frame, s, x, y)
    assert n_checked > 150 and len(cases) - n_checked > 20  # both kinds occur


def test_crop_on_real_track(detector):
    clip = CLIPS_DIR / "real04_woman_glasses.mp4"
    frames = list(islice(iter_frames(clip), 120))
    dets = [detector.detect(f) for f in frames]
    tracks = track_faces(dets, min_track=100)
    assert len(tracks) == 1
    tr = tracks[0]
    for i in (0, 60, len(tr) - 1):
        f = tr.frames[i]
        crop = syncnet_crop(frames[f], tr.s[i], tr.x[i], tr.y[i])
        assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
        assert np.array_equal(
            crop, cv2.resize(_pad_oracle(frames[f], tr.s[i], tr.x[i], tr.y[i]), (224, 224))
        )


def test_prealigned_crop():
    frame = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    out = prealigned_crop(frame)
    assert out.shape == (224, 224, 3) and np.array_equal(out, cv2.resize(frame, (224, 224)))

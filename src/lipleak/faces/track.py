"""Face tracks as syncnet_python builds them (run_pipeline.py ``track_shot`` + ``crop_video``).

Tracking, per shot (``lipleak.faces.shots`` splits the video first, as the reference
does with PySceneDetect; ``track_faces`` gets one shot's detections): scan frames in order
and detections in the detector's order (score, descending); the first unused detection
starts a track, and a later detection joins it when it is at most ``num_failed_det`` frames
after the track's last detection and its IoU with that detection is > ``iou_thres``. The
reference removes joined detections from the list it is iterating over, which makes Python
skip the next detection of the same frame; we reproduce that. Repeat until no detection is left.
A track is kept when it has more than ``min_track`` *detections* and, after linear
interpolation over the missing frames, max(mean width, mean height) > ``min_face_size``.

Smoothing (crop_video): s = max(w, h) / 2 and the box centre x, y per frame, each
median-filtered with kernel 13 (``scipy.signal.medfilt``: zero-padded ends).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MEDFILT_KERNEL = 13


@dataclass
class Track:
    frames: np.ndarray  # int64[n], consecutive frame indices
    boxes: np.ndarray  # float64[n, 4] x1, y1, x2, y2, interpolated, not smoothed
    s: np.ndarray  # float64[n] half box size, median-filtered
    x: np.ndarray  # float64[n] box centre, median-filtered
    y: np.ndarray  # float64[n]
    kps: np.ndarray  # float64[n, 5, 2] keypoints, interpolated like the boxes
    det_scores: np.ndarray  # float64[n] detector score; NaN on interpolated frames

    def __len__(self) -> int:
        return len(self.frames)


def iou(a, b) -> float:
    """The reference's IoU: no +1 on widths, intersection clipped at 0."""
    xa, ya = max(a[0], b[0]), max(a[1], b[1])
    xb, yb = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, xb - xa) * max(0.0, yb - ya)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter / float(area_a + area_b - inter)


def medfilt(x: np.ndarray, kernel_size: int = MEDFILT_KERNEL) -> np.ndarray:
    """``scipy.signal.medfilt`` for 1-D input: running median, zero-padded at both ends."""
    if kernel_size % 2 != 1:
        raise ValueError("kernel_size must be odd")
    x = np.asarray(x, dtype=np.float64)
    half = kernel_size // 2
    padded = np.concatenate([np.zeros(half), x, np.zeros(half)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel_size)
    return np.sort(windows, axis=1)[:, half].copy()


def _group(detections, num_failed_det: int, iou_thres: float) -> list[list[tuple[int, int]]]:
    """All tracks as lists of (frame, detection index), in the order the reference finds them."""
    pools = [list(range(len(d[0]))) for d in detections]
    tracks = []
    while True:
        track: list[tuple[int, int]] = []
        last_box = None
        for f, pool in enumerate(pools):
            i = 0
            while i < len(pool):
                j = pool[i]
                box = detections[f][0][j]
                if not track:
                    joined = True
                elif f - track[-1][0] <= num_failed_det:
                    joined = iou(box, last_box) > iou_thres
                else:
                    break
                if joined:
                    track.append((f, j))
                    last_box = [float(v) for v in box]
                    del pool[i]
                    i += 1  # the reference's list iterator skips the element after a removal
                else:
                    i += 1
        if not track:
            return tracks
        tracks.append(track)


def _interp(frames_det: np.ndarray, frames_all: np.ndarray, values: np.ndarray) -> np.ndarray:
    flat = values.reshape(len(values), -1)
    out = np.stack(
        [np.interp(frames_all, frames_det, flat[:, c]) for c in range(flat.shape[1])], axis=1
    )
    return out.reshape((len(frames_all),) + values.shape[1:])


def track_faces(
    detections,
    num_failed_det: int = 25,
    min_track: int = 100,
    min_face_size: float = 100.0,
    iou_thres: float = 0.5,
    first_frame: int = 0,
) -> list[Track]:
    """Tracks from per-frame detections ``[(boxes[n,4], scores[n], kps[n,5,2]), ...]``.

    The list index plus ``first_frame`` (where a shot starts) is the frame index (25 fps).
    Returns the kept tracks in the order found.
    """
    kept = []
    for members in _group(detections, num_failed_det, iou_thres):
        if len(members) <= min_track:
            continue
        fd = np.array([f for f, _ in members], dtype=np.int64)
        boxes = np.array([detections[f][0][j] for f, j in members], dtype=np.float64)
        scores = np.array([detections[f][1][j] for f, j in members], dtype=np.float64)
        kps = np.array([detections[f][2][j] for f, j in members], dtype=np.float64)
        frames = np.arange(fd[0], fd[-1] + 1)
        boxes_i = _interp(fd, frames, boxes)
        w = boxes_i[:, 2] - boxes_i[:, 0]
        h = boxes_i[:, 3] - boxes_i[:, 1]
        if max(np.mean(w), np.mean(h)) <= min_face_size:
            continue
        det_scores = np.full(len(frames), np.nan)
        det_scores[fd - fd[0]] = scores
        kept.append(
            Track(
                frames=frames + first_frame,
                boxes=boxes_i,
                s=medfilt(np.maximum(h, w) / 2),
                x=medfilt((boxes_i[:, 0] + boxes_i[:, 2]) / 2),
                y=medfilt((boxes_i[:, 1] + boxes_i[:, 3]) / 2),
                kps=_interp(fd, frames, kps),
                det_scores=det_scores,
            )
        )
    return kept


def track_shots(detections, shots, **kw) -> list[tuple[int, Track]]:
    """(shot index, track) for every shot long enough to be tracked (``Shot.tracked``),
    each shot tracked on its own detections only, as the reference's ``track_shot`` per
    scene: no track crosses a cut. ``kw`` as for ``track_faces``."""
    return [
        (shot.index, t)
        for shot in shots
        if shot.tracked
        for t in track_faces(
            detections[shot.start_frame : shot.end_frame + 1], first_frame=shot.start_frame, **kw
        )
    ]

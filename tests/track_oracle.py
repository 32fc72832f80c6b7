"""syncnet_python's ``track_shot`` (run_pipeline.py), transcribed: the tracking oracle."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import interp1d


def reference_track_shot(scenefaces, num_failed_det, min_track, min_face_size):
    """syncnet_python's track_shot, transcribed: dict faces, list.remove while iterating,
    scipy interp1d."""

    def iou_ref(a, b):
        xa, ya, xb, yb = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
        inter = max(0, xb - xa) * max(0, yb - ya)
        return inter / float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    tracks = []
    while True:
        track = []
        for framefaces in scenefaces:
            for face in framefaces:
                if track == []:
                    track.append(face)
                    framefaces.remove(face)
                elif face["frame"] - track[-1]["frame"] <= num_failed_det:
                    if iou_ref(face["bbox"], track[-1]["bbox"]) > 0.5:
                        track.append(face)
                        framefaces.remove(face)
                        continue
                else:
                    break
        if track == []:
            break
        elif len(track) > min_track:
            framenum = np.array([f["frame"] for f in track])
            bboxes = np.array([np.array(f["bbox"]) for f in track])
            frame_i = np.arange(framenum[0], framenum[-1] + 1)
            bboxes_i = np.stack([interp1d(framenum, bboxes[:, j])(frame_i) for j in range(4)], 1)
            if (
                max(
                    np.mean(bboxes_i[:, 2] - bboxes_i[:, 0]),
                    np.mean(bboxes_i[:, 3] - bboxes_i[:, 1]),
                )
                > min_face_size
            ):
                tracks.append({"frame": frame_i, "bbox": bboxes_i})
    return tracks

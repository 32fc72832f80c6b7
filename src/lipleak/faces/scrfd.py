"""SCRFD face detector (insightface det_500m / det_10g ONNX): boxes, scores, 5 keypoints.

Pre-processing as insightface's ``SCRFD.detect``: the frame is resized (cv2 bilinear)
keeping its aspect ratio to fit ``input_size``×``input_size``, placed top-left on a zero
canvas, BGR->RGB, (x − 127.5) / 128. One deliberate difference (``upscale=False``, the
default): frames smaller than ``input_size`` are not enlarged; the canvas shrinks to the
smallest multiple of 32 that holds them. Enlarging tight face crops (224-256 px, the
face filling the frame) to 640 makes the face bigger than SCRFD-500M's anchors cover:
on the shared clips real07/real08 it then finds nothing at 0.5 (scores ~0.4 or none),
while at native size it scores ~0.8; it is also 4-8× cheaper. ``upscale=True`` restores
insightface's behaviour. Outputs per stride (8, 16, 32), 2 anchors per cell:
scores, box distances and keypoint offsets in stride units. A box is decoded as
(cx − d0, cy − d1, cx + d2, cy + d3) around the anchor centre; greedy NMS uses
insightface's +1 pixel areas and keeps a box when its IoU with every kept one is
<= ``nms_thresh``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..runtime import open_model

STRIDES = (8, 16, 32)
NUM_ANCHORS = 2


def _anchor_centers(h: int, w: int, stride: int) -> np.ndarray:
    ys, xs = np.mgrid[:h, :w]
    centers = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centers, NUM_ANCHORS, axis=0)


def nms(boxes: np.ndarray, scores: np.ndarray, thresh: float) -> np.ndarray:
    """Indices kept by greedy NMS, highest score first (insightface's +1 area convention)."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= thresh]
    return np.asarray(keep, dtype=np.int64)


class SCRFD:
    """``detect(frame_bgr) -> (boxes[n,4], scores[n], kps[n,5,2])`` in frame pixels."""

    def __init__(
        self,
        onnx_path: str | Path,
        backend: str = "cpu",
        input_size: int = 640,
        det_thresh: float = 0.5,
        nms_thresh: float = 0.4,
        upscale: bool = False,
        concurrent: bool = False,
    ):
        if input_size % 32:
            raise ValueError("input_size must be a multiple of 32")
        self.model = open_model(onnx_path, backend, concurrent=concurrent)
        self.input_name = self.model.inputs[0].name
        self.output_names = [o.name for o in self.model.outputs]
        if len(self.output_names) != 3 * len(STRIDES):
            raise ValueError(f"{onnx_path}: expected 9 outputs (scores/boxes/kps × 3 strides)")
        self.input_size = input_size
        self.upscale = upscale
        self.det_thresh = det_thresh
        self.nms_thresh = nms_thresh
        self._centers: dict[tuple[int, int], np.ndarray] = {}

    def _anchors(self, side: int, stride: int) -> np.ndarray:
        key = (side, stride)
        if key not in self._centers:
            self._centers[key] = _anchor_centers(side // stride, side // stride, stride)
        return self._centers[key]

    def input_side(self, h: int, w: int) -> int:
        """Square canvas side for an h×w frame."""
        if self.upscale:
            return self.input_size
        return min(self.input_size, -(-max(h, w) // 32) * 32)

    def preprocess(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, float]:
        h, w = frame_bgr.shape[:2]
        size = self.input_side(h, w)
        if h / w > 1.0:
            nh, nw = size, int(size / (h / w))
        else:
            nw, nh = size, int(size * (h / w))
        if not self.upscale and nh >= h and nw >= w:
            nh, nw = h, w  # fits already: no resize at all
        scale = nh / h
        canvas = np.zeros((size, size, 3), np.float32)
        canvas[:nh, :nw] = cv2.resize(frame_bgr, (nw, nh))
        blob = (canvas[..., ::-1] - 127.5) / 128.0
        return np.ascontiguousarray(blob.transpose(2, 0, 1)[None], dtype=np.float32), scale

    def detect(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        blob, scale = self.preprocess(frame_bgr)
        out = self.model.run({self.input_name: blob})
        outs = [out[n] for n in self.output_names]
        boxes, scores, kps = [], [], []
        for i, stride in enumerate(STRIDES):
            sc = outs[i].reshape(-1)
            d = outs[i + 3].reshape(-1, 4) * stride
            k = outs[i + 6].reshape(-1, 10) * stride
            sel = np.nonzero(sc >= self.det_thresh)[0]
            c = self._anchors(blob.shape[2], stride)[sel]
            d, k = d[sel], k[sel]
            boxes.append(np.concatenate([c - d[:, :2], c + d[:, 2:]], axis=1))
            kps.append(np.repeat(c, 5, axis=0).reshape(-1, 5, 2) + k.reshape(-1, 5, 2))
            scores.append(sc[sel])
        boxes = np.concatenate(boxes).astype(np.float32) / scale
        kps = np.concatenate(kps).astype(np.float32) / scale
        scores = np.concatenate(scores).astype(np.float32)
        keep = nms(boxes, scores, self.nms_thresh)
        return boxes[keep], scores[keep], kps[keep]

    def detect_batch(self, frames) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The published graphs have a fixed batch of 1, so frames run one at a time."""
        return [self.detect(f) for f in frames]

"""S3FD face detector as syncnet_python runs it (``detectors/s3fd``, ``run_pipeline.py``).

syncnet_python calls ``detect_faces(rgb, conf_th=0.9, scales=[0.25])``: the RGB frame is
resized by 0.25 (cv2 bilinear), (123, 117, 104) is subtracted per RGB channel (its
(104, 117, 123) BGR mean), and the network's six heads are decoded against prior boxes
centred at ((j + 0.5)·stride, (i + 0.5)·stride) of side ``anchor`` (strides 4 .. 128,
anchors 16 .. 512) with variances (0.1, 0.2). Faces with softmax probability > 0.05 go
through NMS at IoU 0.3 (at most 5000 in, 750 out), those above ``conf_th`` are scaled
back to the frame and go through a second NMS at 0.1. Both NMS use areas without the +1
pixel and keep a box when its IoU with every kept one is <= the threshold. Ties in score
are broken by position (a stable sort); torch's and numpy's sorts may order them otherwise.

``detect`` returns what ``SCRFD.detect`` returns; S3FD has no keypoints, so they are NaN.
The graph's height and width are dynamic, which the TensorRT backend (dynamic batch only)
does not build: "auto" and the TensorRT backends run it on onnxruntime (CUDA when usable).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..runtime import available_backends, open_model

STRIDES = (4, 8, 16, 32, 64, 128)
ANCHORS = (16, 32, 64, 128, 256, 512)
VARIANCES = (0.1, 0.2)
# the reference's RGB input less its BGR mean (104, 117, 123), channel by channel
RGB_MEAN = np.array([123.0, 117.0, 104.0], np.float32)
PRE_NMS_THRESH = 0.05
PRE_NMS_TOP_K = 5000
POST_NMS_TOP_K = 750


def nms(boxes: np.ndarray, scores: np.ndarray, thresh: float, top_k: int | None = None):
    """Indices kept by greedy NMS, highest score first (areas without +1, as the reference)."""
    x1, y1, x2, y2 = np.asarray(boxes, np.float64).T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-np.asarray(scores), kind="stable")
    if top_k is not None:
        order = order[:top_k]
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(iou > thresh)]  # a NaN IoU (two empty boxes) keeps the box
    return np.asarray(keep, dtype=np.int64)


def priors(h: int, w: int, feature_sizes) -> np.ndarray:
    """[n, 4] (cx, cy, width, height) of every head cell, relative to the h×w input."""
    out = []
    for (fh, fw), step, size in zip(feature_sizes, STRIDES, ANCHORS, strict=True):
        i, j = np.mgrid[:fh, :fw]
        cx = (j.reshape(-1) + 0.5) * step / w
        cy = (i.reshape(-1) + 0.5) * step / h
        out.append(
            np.stack(
                [cx, cy, np.full_like(cx, size / w), np.full_like(cy, size / h)],
                axis=1,
            )
        )
    return np.concatenate(out).astype(np.float32)


def decode(loc: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """SSD box decoding: [n, 4] offsets and priors → [n, 4] (x1, y1, x2, y2), relative."""
    centre = prior[:, :2] + loc[:, :2] * VARIANCES[0] * prior[:, 2:]
    size = prior[:, 2:] * np.exp(loc[:, 2:] * VARIANCES[1])
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def face_probability(conf: np.ndarray) -> np.ndarray:
    """Softmax face probability of [n, 2] (background, face) logits."""
    z = conf - conf.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e[:, 1] / e.sum(axis=1)


def postprocess(
    heads, in_h: int, in_w: int, frame_h: int, frame_w: int, conf_th: float
) -> tuple[np.ndarray, np.ndarray]:
    """(boxes[n, 4] in frame pixels, scores[n]) from the six (conf, loc) head pairs."""
    confs, locs, sizes = [], [], []
    for conf, loc in heads:
        sizes.append(conf.shape[2:])
        confs.append(conf[0].transpose(1, 2, 0).reshape(-1, 2))
        locs.append(loc[0].transpose(1, 2, 0).reshape(-1, 4))
    prob = face_probability(np.concatenate(confs).astype(np.float32))
    sel = np.nonzero(prob > PRE_NMS_THRESH)[0]
    boxes = decode(np.concatenate(locs)[sel].astype(np.float32), priors(in_h, in_w, sizes)[sel])
    prob = prob[sel]
    keep = nms(boxes, prob, 0.3, PRE_NMS_TOP_K)[:POST_NMS_TOP_K]
    boxes, prob = boxes[keep], prob[keep]
    sure = prob > conf_th
    boxes = boxes[sure].astype(np.float64) * np.array([frame_w, frame_h, frame_w, frame_h])
    prob = prob[sure]
    keep = nms(boxes, prob, 0.1)
    return boxes[keep].astype(np.float32), prob[keep].astype(np.float32)


def onnxruntime_backend(backend: str) -> str:
    """``backend`` for a graph with a dynamic image size: never a TensorRT engine."""
    if backend in ("auto", "tensorrt", "ort-tensorrt"):
        return "ort-cuda" if available_backends().get("ort-cuda", (False,))[0] else "cpu"
    return backend


class S3FD:
    """``detect(frame_bgr) -> (boxes[n,4], scores[n], kps[n,5,2] NaN)`` in frame pixels."""

    def __init__(
        self,
        onnx_path: str | Path,
        backend: str = "cpu",
        scale: float = 0.25,
        conf_th: float = 0.9,
        concurrent: bool = False,
    ):
        self.model = open_model(onnx_path, onnxruntime_backend(backend), concurrent=concurrent)
        self.input_name = self.model.inputs[0].name
        self.output_names = [o.name for o in self.model.outputs]
        if len(self.output_names) != 2 * len(STRIDES):
            raise ValueError(f"{onnx_path}: expected 12 outputs (conf/loc × 6 sources)")
        self.scale = scale
        self.conf_th = conf_th

    def preprocess(self, frame_bgr: np.ndarray) -> np.ndarray:
        small = cv2.resize(
            frame_bgr, (0, 0), fx=self.scale, fy=self.scale, interpolation=cv2.INTER_LINEAR
        )
        blob = small[..., ::-1].astype(np.float32) - RGB_MEAN
        return np.ascontiguousarray(blob.transpose(2, 0, 1)[None])

    def detect(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        blob = self.preprocess(frame_bgr)
        out = self.model.run({self.input_name: blob})
        heads = [
            (out[self.output_names[2 * k]], out[self.output_names[2 * k + 1]])
            for k in range(len(STRIDES))
        ]
        h, w = frame_bgr.shape[:2]
        boxes, scores = postprocess(heads, blob.shape[2], blob.shape[3], h, w, self.conf_th)
        kps = np.full((len(boxes), 5, 2), np.nan, np.float32)
        return boxes, scores, kps

    def detect_batch(self, frames) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return [self.detect(f) for f in frames]

"""AV-HuBERT's video input (SPEC §9): mouth ROIs aligned to the mean face, streamed.

av_hubert makes its ROIs with ``avhubert/preparation/align_mouth.py`` (after mpc001's
``crop_mouth_from_video.py``) and reads them with ``avhubert/utils.py``:

1. Frames without landmarks get landmarks interpolated linearly between the nearest
   detected frames; leading and trailing ones copy the first / last detected frame.
2. Landmarks are smoothed over a forward window of ``window_margin`` = 12 frames (the
   frame and the 11 after it; ``min(12, n_frames)`` for shorter clips).
3. A similarity transform (``skimage.transform.estimate_transform('similarity')``,
   Umeyama's least squares) maps the smoothed stable points (33, 36, 39, 42, 45) onto the
   mean face; the BGR frame is warped with it to 256×256 (``skimage.transform.warp``:
   the frame read as float in [0, 1], bilinear, 0 outside), ``* 255`` and
   ``astype(uint8)`` (truncation, not rounding).
4. ``cut_patch``: a 96×96 patch centred on the mean of the frame's own (unsmoothed,
   transformed) mouth landmarks 48..67, the centre clamped so the patch stays inside.
   Its "too much bias" errors are tested after the clamp, so they can never fire; the
   patch is always clamped, here too.
5. The last 11 frames (whole windows no longer exist) reuse the last window's transform,
   each with its own landmarks.
6. Reading: ``cv2.cvtColor(BGR2GRAY)``, centre crop 88×88 (rows/cols 4..91),
   ``(x / 255 − 0.421) / 0.165``, float32.

Deviations, both deliberate:
- av_hubert writes the 96×96 ROIs to an mp4 (PNG frames, ffmpeg ``-crf 20``, H.264
  4:2:0) and reads them back, so its ROIs carry lossy-codec noise; here the ROI goes to
  step 6 directly. The published models were trained on the round-tripped ROIs; the
  difference is codec noise, not geometry.
- When no frame of a clip has landmarks, av_hubert resizes whole frames to 96×96; here
  that is InputError "no_face" (a face-less clip has no lips to score).

The warp here is numpy, not skimage: only the 96×96 output pixels of the patch are
computed (the patch position depends on the landmarks alone), with skimage's own
arithmetic (inverse matrix from ``np.linalg.inv``, the same bilinear formula and order of
operations, the clip to the input's range), so the patch equals skimage's warp + crop
bit for bit (``tests/test_avhubert_prep.py``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from ..errors import InputError
from .mean_face import CANVAS, MEAN_FACE

STABLE_POINTS = (33, 36, 39, 42, 45)  # nose tip, outer and inner eye corners
MOUTH = slice(48, 68)
WINDOW_MARGIN = 12
PATCH = 96  # crop_height, crop_width
PATCH_THRESHOLD = 5  # cut_patch's threshold (its checks cannot fire, see the module doc)
CROP = 88  # image_crop_size
MEAN, STD = 0.421, 0.165  # image_mean, image_std of the published configs


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3×3 similarity matrix mapping ``src`` points onto ``dst`` (least squares, Umeyama).

    skimage's ``_umeyama(src, dst, estimate_scale=True)`` step by step: centre both
    sets, A = dstᵀ·src / n, reflection guard by det(A), SVD, scale from the singular
    values over the source variance. Point sets of rank < 1 give a NaN matrix.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    n, dim = src.shape
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_d, dst_d = src - src_mean, dst - dst_mean
    a = dst_d.T @ src_d / n
    d = np.ones((dim,), dtype=np.float64)
    if np.linalg.det(a) < 0:
        d[dim - 1] = -1
    t = np.eye(dim + 1, dtype=np.float64)
    u, s, v = np.linalg.svd(a)
    tol = s.max() * np.max(a.shape) * np.finfo(float).eps
    rank = np.count_nonzero(s > tol)
    if rank == 0:
        return np.nan * t
    if rank == dim - 1:
        if np.linalg.det(u) * np.linalg.det(v) > 0:
            t[:dim, :dim] = u @ v
        else:
            keep = d[dim - 1]
            d[dim - 1] = -1
            t[:dim, :dim] = u @ np.diag(d) @ v
            d[dim - 1] = keep
    else:
        t[:dim, :dim] = u @ np.diag(d) @ v
    scale = 1.0 / src_d.var(axis=0).sum() * (s @ d)
    t[:dim, dim] = dst_mean - scale * (t[:dim, :dim] @ src_mean.T)
    t[:dim, :dim] *= scale
    return t


def apply_matrix(t: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``tform(points)`` of a skimage ProjectiveTransform subclass: [n, 2] float64."""
    pts = np.asarray(points, np.float64)
    h = np.column_stack([pts, np.ones(len(pts))]) @ t.T
    # skimage leaves w = 0 as the smallest positive number instead of dividing by zero
    h[h[:, 2] == 0, 2] = np.finfo(float).eps
    return h[:, :2] / h[:, 2:3]


def patch_origin(mouth_points: np.ndarray, size: int = CANVAS) -> tuple[int, int]:
    """(row, col) of the top-left corner of ``cut_patch``'s 96×96 patch in the canvas.

    The centre is the mean of the (transformed) mouth points, clamped so the patch lies
    inside the ``size``×``size`` canvas; the slice starts at round(centre) − 48 with
    Python's round (half to even), as cut_patch slices.
    """
    cx, cy = np.mean(mouth_points, axis=0)
    if not (np.isfinite(cx) and np.isfinite(cy)):
        raise InputError(None, "mouth landmarks are not finite", "bad_landmarks")
    half = PATCH // 2
    cy = min(max(cy, half), size - half)
    cx = min(max(cx, half), size - half)
    return int(round(cy) - round(half)), int(round(cx) - round(half))


def warp_patch(
    frame_bgr: np.ndarray, t: np.ndarray, origin: tuple[int, int], shape: tuple[int, int]
) -> np.ndarray:
    """Output pixels [r0, r0+h) × [c0, c0+w) of ``skimage.transform.warp(frame,
    inverse_map=SimilarityTransform(t).inverse)`` then ``* 255`` ``astype(uint8)``.

    ``frame_bgr``: H×W×C (or H×W) uint8. The result is uint8 h×w(×C).
    """
    img = np.asarray(frame_bgr)
    if img.dtype != np.uint8:
        raise InputError(None, f"expected a uint8 frame, got {img.dtype}", "bad_frame")
    flat = img if img.ndim == 3 else img[:, :, None]
    rows, cols = flat.shape[:2]
    m = np.linalg.inv(t)  # SimilarityTransform.inverse.params
    r0, c0 = origin
    h, w = shape
    rr, cc = np.meshgrid(
        np.arange(r0, r0 + h, dtype=np.float64),
        np.arange(c0, c0 + w, dtype=np.float64),
        indexing="ij",
    )
    xx = m[0, 0] * cc + m[0, 1] * rr + m[0, 2]
    yy = m[1, 0] * cc + m[1, 1] * rr + m[1, 2]
    if not (m[2, 0] == 0 and m[2, 1] == 0 and m[2, 2] == 1):  # skimage's projective branch
        zz = m[2, 0] * cc + m[2, 1] * rr + m[2, 2]
        xx, yy = xx / zz, yy / zz
    c, r = xx, yy
    minr, minc = np.floor(r), np.floor(c)
    maxr, maxc = np.ceil(r), np.ceil(c)
    dr, dc = r - minr, c - minc
    # img_as_float: uint8 * (1 / 255) in float64
    src = np.multiply(flat, 1.0 / 255, dtype=np.float64)

    def pix(ri: np.ndarray, ci: np.ndarray) -> np.ndarray:
        inside = (ri >= 0) & (ri < rows) & (ci >= 0) & (ci < cols)
        out = np.zeros(ri.shape + (flat.shape[2],))
        out[inside] = src[ri[inside].astype(np.intp), ci[inside].astype(np.intp)]
        return out  # mode 'constant', cval 0

    dc3, dr3 = dc[..., None], dr[..., None]
    top = (1 - dc3) * pix(minr, minc) + dc3 * pix(minr, maxc)
    bottom = (1 - dc3) * pix(maxr, minc) + dc3 * pix(maxr, maxc)
    out = (1 - dr3) * top + dr3 * bottom
    # warp's clip=True (skimage 0.26 ``_clip_warp_output``): to the input's [min, max],
    # widened to cval 0 when the input has no 0 but the whole 256×256 output has one
    lo, hi = src.min(), src.max()
    if lo > 0 and _any_outside(m, rows, cols):
        lo = 0.0
    np.clip(out, lo, hi, out=out)
    out = (out * 255).astype(np.uint8)
    return out if img.ndim == 3 else out[:, :, 0]


def _any_outside(m: np.ndarray, rows: int, cols: int, size: int = CANVAS) -> bool:
    """Whether some pixel of the whole size×size output samples only outside the frame
    (its value is then exactly cval 0: all four bilinear neighbours are outside)."""
    rr, cc = np.meshgrid(
        np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="ij"
    )
    c = m[0, 0] * cc + m[0, 1] * rr + m[0, 2]
    r = m[1, 0] * cc + m[1, 1] * rr + m[1, 2]
    if not (m[2, 0] == 0 and m[2, 1] == 0 and m[2, 2] == 1):
        z = m[2, 0] * cc + m[2, 1] * rr + m[2, 2]
        c, r = c / z, r / z
    # each of the four corners (floor/ceil row × floor/ceil col) outside through its row
    # or its column (a weight is never 0 for a corner distinct from the others)
    r_lo = (np.floor(r) < 0) | (np.floor(r) >= rows)
    r_hi = (np.ceil(r) < 0) | (np.ceil(r) >= rows)
    c_lo = (np.floor(c) < 0) | (np.floor(c) >= cols)
    c_hi = (np.ceil(c) < 0) | (np.ceil(c) >= cols)
    return bool(((r_lo | c_lo) & (r_lo | c_hi) & (r_hi | c_lo) & (r_hi | c_hi)).any())


def roi_input(patch_bgr: np.ndarray) -> np.ndarray:
    """A 96×96 BGR uint8 patch -> av_hubert's 88×88 float32 input (gray, centre, norm)."""
    gray = cv2.cvtColor(patch_bgr, cv2.COLOR_BGR2GRAY) if patch_bgr.ndim == 3 else patch_bgr
    h, w = gray.shape
    dh, dw = int(round(h - CROP) / 2.0), int(round(w - CROP) / 2.0)
    crop = gray[dh : dh + CROP, dw : dw + CROP]
    return (((crop - 0.0) / 255.0 - MEAN) / STD).astype(np.float32)


class MouthROI:
    """Frames and their 68 landmarks in, av_hubert's mouth ROIs out, in frame order.

    ``push(frame_bgr, landmarks)`` (landmarks [68, 2] float in frame pixels, or None
    where no face was found) returns the ROIs that became ready (float32 88×88 each,
    a list, often empty); ``flush()`` returns the rest at the end of the clip. Held:
    ``window_margin`` frames, plus the frames of a run without landmarks until the next
    detected frame (interpolation needs both ends). ``raw=True`` returns the 96×96 BGR
    uint8 patches instead (the ROIs before av_hubert's reading step).
    """

    def __init__(
        self,
        mean_face: np.ndarray = MEAN_FACE,
        window_margin: int = WINDOW_MARGIN,
        raw: bool = False,
    ) -> None:
        self.mean_face = np.asarray(mean_face, np.float64)
        if self.mean_face.shape != (68, 2):
            raise ValueError(f"mean face must be 68×2, got {self.mean_face.shape}")
        self.margin = int(window_margin)
        self.raw = raw
        self._q: deque[tuple[np.ndarray, np.ndarray]] = deque()  # frames with landmarks
        self._gap: list[np.ndarray] = []  # frames waiting for the next detected landmarks
        self._last: np.ndarray | None = None  # last detected landmarks
        self._trans: np.ndarray | None = None  # last window's transform
        self.n_in = 0

    def push(self, frame_bgr: np.ndarray, landmarks: np.ndarray | None) -> list[np.ndarray]:
        self.n_in += 1
        if landmarks is None:
            self._gap.append(frame_bgr)
            return []
        lm = np.asarray(landmarks, np.float64)
        if lm.shape != (68, 2):
            raise InputError(None, f"expected 68×2 landmarks, got {lm.shape}", "bad_landmarks")
        out: list[np.ndarray] = []
        if self._gap:
            # landmarks_interpolate: a linear ramp between the detected ends; a leading
            # run copies the first detected landmarks
            start = lm if self._last is None else self._last
            n = len(self._gap) + 1
            for k, frame in enumerate(self._gap, start=1):
                filled = start + k / float(n) * (lm - start) if self._last is not None else lm
                out += self._enqueue(frame, filled)
            self._gap = []
        self._last = lm
        out += self._enqueue(frame_bgr, lm)
        return out

    def flush(self) -> list[np.ndarray]:
        """The remaining ROIs; InputError "no_face" when no frame had landmarks."""
        out: list[np.ndarray] = []
        if self._last is None:
            if self.n_in == 0:
                return out
            raise InputError(None, f"no face landmarks in any of {self.n_in} frames", "no_face")
        for frame in self._gap:  # trailing frames copy the last detected landmarks
            out += self._enqueue(frame, self._last)
        self._gap = []
        if self._q and self._trans is None:
            # fewer frames than the window: av_hubert's margin is then the clip length
            out.append(self._window())
        while self._q:
            frame, lm = self._q.popleft()
            out.append(self._crop(frame, self._trans, lm))
        return out

    def _enqueue(self, frame: np.ndarray, lm: np.ndarray) -> list[np.ndarray]:
        self._q.append((frame, lm))
        if len(self._q) == self.margin:
            return [self._window()]
        return []

    def _window(self) -> np.ndarray:
        smoothed = np.mean([q[1] for q in self._q], axis=0)
        frame, lm = self._q.popleft()
        ids = list(STABLE_POINTS)
        t = estimate_similarity(smoothed[ids, :], self.mean_face[ids, :])
        if not np.isfinite(t).all():
            raise InputError(None, "degenerate face landmarks (no similarity)", "bad_landmarks")
        self._trans = t
        return self._crop(frame, t, lm)

    def _crop(self, frame: np.ndarray, t: np.ndarray, lm: np.ndarray) -> np.ndarray:
        origin = patch_origin(apply_matrix(t, lm)[MOUTH])
        patch = warp_patch(frame, t, origin, (PATCH, PATCH))
        return patch if self.raw else roi_input(patch)


def mouth_rois(frames_and_landmarks, **kwargs) -> np.ndarray:
    """All ROIs of a clip at once: float32 [T, 88, 88] (or uint8 [T, 96, 96, 3] raw)."""
    m = MouthROI(**kwargs)
    out: list[np.ndarray] = []
    for frame, lm in frames_and_landmarks:
        out += m.push(frame, lm)
    out += m.flush()
    return np.stack(out)


def face_landmarks(
    frames_bgr: Iterable[np.ndarray], detector, pfld, batch_size: int = 32
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """BGR frames -> (frame, 68 landmarks in frame pixels, or None where no face).

    One face per frame: the detector's highest-scoring box (``lipleak.faces.scrfd.SCRFD``
    or anything with its ``detect``), as ``lipleak.visual.gt`` picks the GT face; PFLD
    (``lipleak.faces.landmarks.PFLD``) on that box. Frames go to PFLD in batches of
    ``batch_size``, so at most that many frames are held. av_hubert uses dlib's
    detector and 68-point predictor instead (the same 300-W point order).
    """
    batch: list[tuple[np.ndarray, np.ndarray | None]] = []

    def run() -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        found = [(f, b) for f, b in batch if b is not None]
        lms = iter(pfld.landmarks([f for f, _ in found], [b for _, b in found])) if found else None
        for f, b in batch:
            yield f, (None if b is None else next(lms))
        batch.clear()

    for frame in frames_bgr:
        boxes, scores, _ = detector.detect(frame)
        box = boxes[int(np.argmax(scores)), :4].astype(np.float64) if len(boxes) else None
        batch.append((frame, box))
        if len(batch) >= batch_size:
            yield from run()
    if batch:
        yield from run()

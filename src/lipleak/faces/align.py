"""ArcFace alignment: 5 keypoints → 112×112 crop (SPEC §5; insightface ``norm_crop``).

The 5 keypoints (left eye, right eye, nose tip, left and right mouth corner, in image
order as SCRFD returns them) are mapped onto insightface's template by the least-squares
similarity transform (rotation, uniform scale, translation; Umeyama 1991, what
skimage's ``SimilarityTransform.estimate`` computes), then the frame is warped with
``cv2.warpAffine`` (bilinear, border value 0), as insightface does.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError

SIZE = 112
# insightface's arcface_dst, which it stores as float32: rounding it the same way keeps
# the transform (and so the crop) identical to insightface's.
TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
).astype(np.float64)


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2×3 matrix M of the similarity transform minimising Σ‖M·[src;1] − dst‖² (no reflection)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    n = src.shape[0]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    var_s = (sc**2).sum() / n
    if not np.isfinite(var_s) or var_s <= 0:
        raise InputError(None, "degenerate keypoints (all in one place)", "bad_keypoints")
    cov = dc.T @ sc / n
    d = np.ones(2)
    if np.linalg.det(cov) < 0:  # the best orthogonal map would reflect: take a rotation
        d[1] = -1
    u, s, vt = np.linalg.svd(cov)
    rot = u @ np.diag(d) @ vt
    scale = (s * d).sum() / var_s
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def estimate_norm(kps5: np.ndarray) -> np.ndarray:
    """2×3 transform taking 5 keypoints (pixels) onto the 112×112 ArcFace template."""
    kps5 = np.asarray(kps5, np.float64)
    if kps5.shape != (5, 2) or not np.isfinite(kps5).all():
        raise InputError(None, f"expected 5×2 finite keypoints, got {kps5.shape}", "bad_keypoints")
    return umeyama_similarity(kps5, TEMPLATE)


def norm_crop(frame_bgr: np.ndarray, kps5: np.ndarray) -> np.ndarray:
    """The 112×112×3 uint8 aligned face (same channel order as the input)."""
    if not (
        isinstance(frame_bgr, np.ndarray)
        and frame_bgr.ndim == 3
        and frame_bgr.shape[2] == 3
        and frame_bgr.dtype == np.uint8
    ):
        raise InputError(
            None,
            f"expected a BGR uint8 H×W×3 frame, got "
            f"{getattr(frame_bgr, 'dtype', None)} {getattr(frame_bgr, 'shape', None)}",
            "bad_frame",
        )
    m = estimate_norm(kps5)
    return cv2.warpAffine(frame_bgr, m, (SIZE, SIZE), borderValue=0.0)

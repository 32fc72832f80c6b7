"""AVS_u, AVS_m, AVS_v: AV-HuBERT sync metrics (SPEC §9; Yaman et al. 2024).

Each is a mean over frames of the cosine similarity of two per-frame AV-HuBERT feature
sequences (the last encoder layer, one vector per 25-fps frame):

- AVS_u = mean_t cos(F_A(t), F_V(t)): audio-only vs video-only features of the generated
  video with its driving audio; needs no ground truth, higher is better;
- AVS_m = mean_t cos(F_AV_gen(t), F_AV_gt(t)): audio-visual features, generated vs GT;
- AVS_v = mean_t cos(F_V_gen(t), F_V_gt(t)): video-only features, generated vs GT.

Generated and GT frames are paired by index at 25 fps, as for SSIM: the first
min(len) frames. The paper leaves the windowing open; the features may come from the
encoder run over the whole clip (the default) or over windows of k frames
(``lipleak.avs``), which changes the features, never this arithmetic.

The chain, like pytorch-fid's: features → per-frame cosines → mean.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["EPS", "avs", "frame_cosines", "paired"]

# torch.nn.functional.cosine_similarity's eps: a zero vector gives cos 0, not NaN.
EPS = 1e-8


def paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first min(len(a), len(b)) frames of both T×D sequences (frames paired by index)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise InputError(None, f"feature shapes differ: {a.shape} vs {b.shape}", "bad_features")
    n = min(len(a), len(b))
    if n == 0:
        raise InputError(None, "no frames to compare", "too_short")
    return a[:n], b[:n]


def frame_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """cos(a_t, b_t) per frame, in float64: a·b / (max(|a|, eps) · max(|b|, eps))."""
    a, b = paired(a, b)
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    na = np.maximum(np.linalg.norm(a, axis=1), EPS)
    nb = np.maximum(np.linalg.norm(b, axis=1), EPS)
    return (a * b).sum(1) / (na * nb)


def avs(a: np.ndarray, b: np.ndarray) -> float:
    """The mean over paired frames of ``frame_cosines(a, b)``: AVS_u for (F_A, F_V) of one
    video, AVS_m for (F_AV_gen, F_AV_gt), AVS_v for (F_V_gen, F_V_gt)."""
    return float(frame_cosines(a, b).mean())

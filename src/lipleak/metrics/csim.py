"""CSIM: ArcFace cosine similarity between generated and GT faces (SPEC §5).

Per frame: both faces aligned to the ArcFace template with their own 5 keypoints
(``norm_crop``), embedded, cosine similarity of the two embeddings (float64). A video's
CSIM is the mean over the frames where both faces have keypoints; frames without a face
on either side are skipped and counted. Streaming: ``CSIMAccumulator.update`` takes any
number of frames at a time and keeps one float per frame.

Public API: ``video_csim`` and ``CSIMAccumulator`` score a video from frames and keypoints
with any ArcFace model. ``lipleak.visual`` computes the same per-frame cosine
(``cosine_similarity``) inline, batched with its other models, on the keypoints it tracks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..faces.align import norm_crop

__all__ = ["CSIMAccumulator", "CSIMResult", "cosine_similarity", "video_csim"]


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cos(a_i, b_i) in float64 (N×D, N×D → N)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise InputError(None, f"embedding shapes differ: {a.shape} vs {b.shape}", "bad_features")
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@dataclass
class CSIMResult:
    csim: float  # mean over scored frames
    per_frame: np.ndarray  # float64, one value per scored frame
    n_frames: int  # frames scored
    n_skipped: int  # frames without keypoints in the generated or the GT frame


class CSIMAccumulator:
    """Accumulates per-frame CSIM of one video (or any set of frame pairs)."""

    def __init__(self, model):
        self.model = model  # lipleak.models.arcface.ArcFace (anything with embed(faces))
        self.values: list[np.ndarray] = []
        self.skipped = 0

    def update_aligned(
        self, gen_faces: Sequence[np.ndarray], gt_faces: Sequence[np.ndarray]
    ) -> None:
        """Add pairs of already aligned 112×112 faces."""
        if len(gen_faces) != len(gt_faces):
            raise InputError(
                None, f"{len(gen_faces)} generated vs {len(gt_faces)} GT faces", "frame_mismatch"
            )
        if len(gen_faces):
            self.values.append(
                cosine_similarity(self.model.embed(gen_faces), self.model.embed(gt_faces))
            )

    def update(
        self,
        gen_frames: Sequence[np.ndarray],
        gen_kps: Sequence[np.ndarray | None],
        gt_frames: Sequence[np.ndarray],
        gt_kps: Sequence[np.ndarray | None],
    ) -> None:
        """Add frame pairs (BGR uint8) with their 5×2 keypoints (None: no face in that frame)."""
        n = len(gen_frames)
        if not (len(gen_kps) == n == len(gt_frames) == len(gt_kps)):
            raise InputError(
                None, "generated/GT frames and keypoints differ in length", "frame_mismatch"
            )
        keep = [i for i in range(n) if gen_kps[i] is not None and gt_kps[i] is not None]
        self.skipped += n - len(keep)
        self.update_aligned(
            [norm_crop(gen_frames[i], gen_kps[i]) for i in keep],
            [norm_crop(gt_frames[i], gt_kps[i]) for i in keep],
        )

    def result(self) -> CSIMResult:
        per = np.concatenate(self.values) if self.values else np.zeros(0)
        if per.size == 0:
            raise InputError(None, "CSIM: no frame has a face in both videos", "no_face")
        return CSIMResult(float(per.mean()), per, int(per.size), self.skipped)


def video_csim(
    model,
    gen_frames: Sequence[np.ndarray],
    gen_kps: Sequence[np.ndarray | None],
    gt_frames: Sequence[np.ndarray],
    gt_kps: Sequence[np.ndarray | None],
) -> CSIMResult:
    """CSIM of one generated video against its GT, frames aligned by index."""
    acc = CSIMAccumulator(model)
    acc.update(gen_frames, gen_kps, gt_frames, gt_kps)
    return acc.result()

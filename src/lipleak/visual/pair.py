"""LPIPS of one generated video against its GT, alone: what ``sync --gt-dir`` adds to a row.

The crops and arithmetic are ``score``'s (``VisualScorer``, docs/metrics.md): per GT frame
the primary face box (SCRFD, highest score; a faceless frame takes the box of the nearest
frame with a face, ties to the earlier one), the generated frame resized to the GT's size
and both cut with the GT's box (``face_crop``), LPIPS per frame, the mean over the first
min(T_gen, T_gt) frames. Without the rest of the visual metrics it needs no landmarks,
Inception or ArcFace: one detection pass over the GT (only its boxes, 32 B per frame, are
kept), then one decode of both videos in batches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError, ModelError
from ..models import store
from .crops import face_crop, match_size
from .gt import nearest_sources
from .models import resolve_lpips
from .settings import VisualSettings


def gt_boxes(detector, gt_video: str | Path) -> tuple[np.ndarray, tuple[int, int]]:
    """(F×4 float64 face boxes, one per GT frame, held from the nearest detection;
    (height, width) of the GT frames). InputError "no_face" when no frame has a face."""
    from ..io.video import iter_frames

    found: list[np.ndarray | None] = []
    shape = None
    for frame in iter_frames(gt_video):
        if shape is None:
            shape = frame.shape[:2]
        elif frame.shape[:2] != shape:
            raise InputError(gt_video, "frame size changes within the video", "bad_frame")
        boxes, scores, _ = detector.detect(frame)
        found.append(boxes[int(np.argmax(scores)), :4].astype(np.float64) if len(boxes) else None)
    if not any(b is not None for b in found):
        raise InputError(gt_video, f"no face found in any of its {len(found)} frames", "no_face")
    src = nearest_sources(np.array([b is not None for b in found]))
    return np.stack([found[i] for i in src]), shape


class PairScorer:
    """SCRFD and LPIPS for one ``VisualSettings`` (its detector, crop, crop size, LPIPS)."""

    def __init__(self, settings: VisualSettings | None = None):
        from ..faces.scrfd import SCRFD
        from ..models.lpips import LPIPS

        s = self.settings = settings or VisualSettings()
        reason = resolve_lpips(s.lpips, s.lpips_trunk, s.crop_size)
        if reason is not None:
            # asked for by --gt-dir: a run without it would be a run without its point
            raise ModelError(f"cannot compute LPIPS: {reason}")
        det_path = store.locate(s.detector)
        self.detector = SCRFD(det_path, backend=s.backend)
        self.model = LPIPS.load(s.lpips, s.lpips_trunk, backend=s.backend)
        self.info = {
            "detector": {"name": s.detector, "sha256": store.verify(s.detector, det_path)},
            "lpips": {"net": s.lpips, **self.model.provenance},
        }

    def describe(self) -> dict:
        keys = ("crop", "crop_size", "detector", "lpips", "lpips_trunk")
        return {"settings": {k: getattr(self.settings, k) for k in keys}, **self.info}

    def per_frame(self, gen_video: str | Path, gt_video: str | Path) -> np.ndarray:
        """LPIPS of each paired frame, float32 (first min(T_gen, T_gt) frames)."""
        from ..io.video import iter_frames

        s = self.settings
        boxes, (h, w) = gt_boxes(self.detector, gt_video)
        out: list[np.ndarray] = []
        gen_b: list[np.ndarray] = []
        gt_b: list[np.ndarray] = []

        def run() -> None:
            out.append(self.model.distance(gen_b, gt_b))
            gen_b.clear()
            gt_b.clear()

        gt_frames = iter_frames(gt_video)
        try:
            for i, gen in enumerate(iter_frames(gen_video)):
                if i >= len(boxes):
                    break
                gt = next(gt_frames, None)
                if gt is None:  # the GT changed between the two decodes
                    raise InputError(gt_video, "ended early on its second decode", "bad_input")
                gen_b.append(face_crop(match_size(gen, h, w), boxes[i], s.crop, s.crop_size))
                gt_b.append(face_crop(gt, boxes[i], s.crop, s.crop_size))
                if len(gen_b) >= s.batch_size:
                    run()
            if gen_b:
                run()
        finally:
            gt_frames.close()
        if not out:
            raise InputError(gen_video, "no frames", "too_short")
        return np.concatenate(out)

    def lpips(self, gen_video: str | Path, gt_video: str | Path) -> float:
        """The video's LPIPS: the mean of ``per_frame`` in float64 (as ``score``'s)."""
        return float(self.per_frame(gen_video, gt_video).astype(np.float64).mean())

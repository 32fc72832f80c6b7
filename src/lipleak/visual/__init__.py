"""Per-video visual metrics (SPEC §3–§6 and mouth motion), for the protocol's ``score``.

    scorer = VisualScorer(VisualSettings())
    gt = scorer.analyze_gt("gt.mp4")            # once per GT video; gt.save()/load() cache it
    r = scorer.score("gen.mp4", gt, "gt.mp4", audio, "AM")
    r.metrics["ssim"], r.features               # features: pooled per cell, see below
    lipleak.metrics.fid.cell_fid([r.features for r in cell], [gt.features for gt in gts])

See docs/metrics.md for every number, its crops and its aggregation.
"""

from __future__ import annotations

from .crops import face_crop, match_size
from .gt import GTAnalysis, nearest_sources
from .models import VisualModels, resolve_arcface
from .score import METRICS, SETUPS, VisualResult, VisualScorer
from .settings import VisualSettings
from .stored import gt_metrics, stored_metrics

__all__ = [
    "METRICS",
    "SETUPS",
    "GTAnalysis",
    "VisualModels",
    "VisualResult",
    "VisualScorer",
    "VisualSettings",
    "face_crop",
    "gt_metrics",
    "match_size",
    "nearest_sources",
    "resolve_arcface",
    "stored_metrics",
]

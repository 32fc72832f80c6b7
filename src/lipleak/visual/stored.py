"""The visual group's numbers as the protocol's results store keeps them.

A GT video has no generated counterpart, so its visual numbers are its own mouth motion
against its own audio (the "GT (real)" reference column) and how often SCRFD missed its
face. A generated video's ``VisualResult`` marks what it could not compute with NaN and a
reason; the store wants None there instead, so that such a metric is a "not computed" row
rather than a number that would poison a cell mean.
"""

from __future__ import annotations

import numpy as np

from ..metrics import mouth
from .gt import GTAnalysis
from .score import VisualResult


def gt_metrics(gt: GTAnalysis, audio) -> tuple[dict, dict[str, str]]:
    """(metrics, reasons) of a GT video: mouth–audio correlation and lag with its own audio
    (int16, 16 kHz mono, an array or an iterable of chunks) and its faceless-frame count."""
    am = mouth.audio_motion(mouth.aperture(gt.landmarks), audio)
    metrics = {
        "mouth_audio_corr": am.corr,
        "mouth_audio_lag": None if am.lag is None else float(am.lag),
        "n_no_face_gt": gt.n_no_face,
    }
    reasons = (
        {} if am.lag is not None else {"mouth_audio_corr": am.reason, "mouth_audio_lag": am.reason}
    )
    return metrics, reasons


def stored_metrics(result: VisualResult) -> dict[str, float | None]:
    """``result.metrics`` with every non-finite value None, except PSNR, whose +inf means
    "all frames identical" (``lipleak.metrics.quality``) and is kept; every metric that has
    a reason is present."""
    metrics: dict[str, float | None] = dict(result.metrics)
    for k, v in list(metrics.items()):
        if v is not None and not np.isfinite(v) and k != "psnr":
            metrics[k] = None
    for k in result.reasons:
        metrics.setdefault(k, None)
    return metrics

"""AV-HuBERT sync metrics of one video (SPEC §9): AVS_u, and AVS_m/AVS_v against its GT.

See ``lipleak.avs.score`` for use and docs/metrics.md for the definitions and what this
project decided where the paper is silent.
"""

from __future__ import annotations

from .score import METRICS, AVSReference, AVSScorer, windows
from .settings import AVSSettings

__all__ = ["METRICS", "AVSReference", "AVSScorer", "AVSSettings", "windows"]

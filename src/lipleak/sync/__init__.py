"""SyncNet scoring of one video (SPEC §2): LSE-C, LSE-D and offset, per face track.

    scorer = SyncScorer(SyncSettings(mode="prealigned"))
    result = scorer.score("video.mp4")          # or .score(video, audio="other.wav")
    result.lse_c, result.lse_d, result.offset, result.tracks
    result.tracks[0].segments, result.timeline  # SPEC §11: sync over time
    scorer.describe()                           # models, sha256s, settings hash

Modules: ``settings`` (SyncSettings), ``scorer`` (SyncScorer and its results),
``search`` (the streamed offset search), ``audio`` (MFCC windows of an audio stream),
``segments``/``timecode``/``timeline`` (sync over time, docs/timeline.md).
Batch runs: ``inputs`` (files, folders and @LIST files → jobs), ``results`` (the resumable
SQLite store of per-video rows), ``rows`` (printed lines, CSV/JSONL, summary, keep lists).
"""

from __future__ import annotations

from .scorer import SyncScorer, TrackSync, VideoSync
from .settings import SyncSettings

__all__ = ["SyncScorer", "SyncSettings", "TrackSync", "VideoSync"]

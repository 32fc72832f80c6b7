"""One video in, LSE-C / LSE-D out (SPEC §2): decode → crops → SyncNet → offset search.

Work in progress: the data types below are the stable interface used by the protocol
layer; ``SyncScorer.score`` is being written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# Settings that do not change any number (batch size, backend) are kept out of the hash so
# that reruns with another batch size reuse finished results.
_NOT_HASHED = ("batch_size", "backend")


@dataclass(frozen=True)
class SyncSettings:
    mode: str = "prealigned"  # "prealigned" (full frame -> 224x224) or "detect"
    reference_frames: bool = False  # reproduce the reference tool's JPEG round trip
    vshift: int = 15
    min_track: int = 100
    min_face_size: float = 100.0
    crop_scale: float = 0.4
    num_failed_det: int = 25
    detector: str = "scrfd_500m"
    syncnet: str = "syncnet_v2"
    batch_size: int = 32
    backend: str = "auto"

    def as_dict(self) -> dict:
        return asdict(self)

    def hashed_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in _NOT_HASHED}

    def hash(self) -> str:
        blob = json.dumps(self.hashed_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class TrackSync:
    start_frame: int
    end_frame: int  # inclusive
    n_windows: int
    offset: int
    lse_c: float
    lse_d: float
    mdist: list[float] = field(default_factory=list)
    fconf: list[float] = field(default_factory=list)


@dataclass
class VideoSync:
    video: str
    audio_source: str  # "container", a file path, or "array"
    n_frames: int  # frames at 25 fps that were scored
    src_fps: float
    resampled: bool  # converted to 25 fps first
    frame_path: str  # "lossless" or "reference-jpeg"
    tracks: list[TrackSync]
    offset: int  # offset of the longest track
    lse_c: float  # frame-weighted mean over tracks
    lse_d: float

    def to_dict(self, verbose: bool = False) -> dict:
        d = asdict(self)
        if not verbose:
            for t in d["tracks"]:
                t.pop("mdist", None)
                t.pop("fconf", None)
        return d


AudioInput = "str | Path | np.ndarray | None"

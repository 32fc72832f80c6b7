"""Settings of the AV-HuBERT sync metrics (SPEC §9), hashed like ``SyncSettings``."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import LipleakError
from ..settings import HashedSettings

# Batch size and backend never change a number (beyond the backend's float rounding,
# which the visual metrics also leave out of their hash).
_NOT_HASHED = ("batch_size", "backend")


@dataclass(frozen=True)
class AVSSettings(HashedSettings):
    NOT_HASHED = _NOT_HASHED

    # registry name of an AV-HuBERT checkpoint, or a path to one (fairseq format)
    model: str = "avhubert_large_vox"
    # frames per encoder window: 0 runs the encoder over the whole clip (SPEC §9's
    # default); k > 0 runs it over consecutive windows of k frames (the last shorter),
    # which bounds memory and attention cost on long videos but changes the features
    window: int = 0
    detector: str = "scrfd_500m"  # registry name (mouth ROI landmarks: the face box)
    landmarks: str = "pfld_68"  # registry name (68 points, the 300-W order av_hubert uses)
    # frames per detector/landmark batch and per encoder batch (at least one window)
    batch_size: int = 32
    backend: str = "auto"

    def __post_init__(self):
        if int(self.window) < 0:
            raise LipleakError(
                f"AVS window must be 0 (whole clip) or > 0 frames, got {self.window}"
            )
        if int(self.batch_size) < 1:
            raise LipleakError(f"batch_size must be at least 1, got {self.batch_size}")

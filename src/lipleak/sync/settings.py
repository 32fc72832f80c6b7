"""What a SyncNet scoring run is asked to do (SPEC §2), hashed like ``VisualSettings``."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import HashedSettings

# Settings that do not change any number (batch size, backend) are kept out of the hash so
# that reruns with another batch size reuse finished results.
_NOT_HASHED = ("batch_size", "backend", "decoder")


@dataclass(frozen=True)
class SyncSettings(HashedSettings):
    NOT_HASHED = _NOT_HASHED

    mode: str = "prealigned"  # "prealigned" (full frame -> 224x224) or "detect"
    reference_frames: bool = False  # reproduce the reference tool's JPEG round trip
    vshift: int = 15
    min_track: int = 100
    min_face_size: float = 100.0
    crop_scale: float = 0.4
    num_failed_det: int = 25
    detector: str = "scrfd_500m"
    syncnet: str = "syncnet_v2"
    precision: str = "fp32"  # "fp16" only on TensorRT; it moves numbers, so it is hashed
    batch_size: int = 32
    backend: str = "auto"
    decoder: str = "auto"  # "auto" (DALI when usable, else CPU), "cpu", "dali"

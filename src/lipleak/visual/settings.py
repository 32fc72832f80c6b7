"""Settings of the per-video visual metrics (SPEC §3–§6), hashed like ``SyncSettings``."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import LipleakError
from ..settings import HashedSettings

CROPS = ("face", "full")
LPIPS_NETS = ("alex", "vgg", "none")  # "none": LPIPS not computed
# Settings that do not change any number are kept out of the hash, so that a rerun with
# another batch size or backend reuses finished results and cached GT analyses.
_NOT_HASHED = ("batch_size", "backend")


@dataclass(frozen=True)
class VisualSettings(HashedSettings):
    NOT_HASHED = _NOT_HASHED

    crop: str = "face"  # "face": 1.1x square around the GT face box; "full": whole frame
    crop_size: int = 224  # both crop modes are resized to crop_size x crop_size
    detector: str = "scrfd_500m"  # registry name
    arcface: str = "w600k_r50"  # registry name or path to an ArcFace ONNX (112x112 input)
    landmarks: str = "pfld_68"  # registry name
    fid_model: str = "fid_inception"  # registry name of the TorchScript FID Inception
    lpips: str = "alex"  # LPIPS v0.1 trunk (SPEC §8): alex (the package's default), vgg, none
    lpips_trunk: str | None = None  # a torchvision-layout trunk file instead of the registry's
    mouth_threshold: float = 0.1  # aperture above which a mouth counts as open (SI)
    batch_size: int = 32
    backend: str = "auto"

    def __post_init__(self):
        if self.crop not in CROPS:
            raise LipleakError(f"unknown crop {self.crop!r}; choose one of {', '.join(CROPS)}")
        if self.lpips not in LPIPS_NETS:
            raise LipleakError(
                f"unknown LPIPS trunk {self.lpips!r}; choose one of {', '.join(LPIPS_NETS)}"
            )
        if int(self.crop_size) < 16:
            raise LipleakError(f"crop_size must be at least 16, got {self.crop_size}")
        if int(self.batch_size) < 1:
            raise LipleakError(f"batch_size must be at least 1, got {self.batch_size}")

"""What a SyncNet scoring run is asked to do (SPEC §2), hashed like ``VisualSettings``."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..errors import LipleakError
from ..io.dali import DECODERS
from ..runtime.select import BACKENDS, PRECISIONS
from ..settings import HashedSettings

MODES = ("prealigned", "detect")
# How one video score is made from its face tracks: "weighted-mean" (frame-weighted mean,
# the longest track's offset), "best" (MoChaBench: the track with the highest LSE-C, its
# LSE-D and offset), "longest" (the longest track's three numbers).
TRACK_RULES = ("weighted-mean", "best", "longest")
# Detect mode: "content" splits the video into shots first (SPEC §10, PySceneDetect's
# ContentDetector, as syncnet_python does) and tracks faces per shot; "none" tracks over
# the whole video as one shot (what this project did before shots existed).
SHOT_MODES = ("content", "none")
MAX_VSHIFT = 100_000  # the most the core's shift_distances accepts
# Settings that do not change any number (batch size, backend) are kept out of the hash so
# that reruns with another batch size reuse finished results. The decoder is hashed (see
# hashed_dict): NVDEC's frames differ from the CPU decoder's by a few levels.
_NOT_HASHED = ("batch_size", "backend", "ffmpeg_path")
# The timeline's gate and confidence threshold only re-derive statuses and verdicts from
# stored segment numbers (``lipleak.sync.timeline``): a rerun with others rescores nothing.
_TIMELINE_RULE = ("gate", "max_lead_ms", "max_lag_ms", "min_segment_lse_c")


@dataclass(frozen=True)
class SyncSettings(HashedSettings):
    NOT_HASHED = _NOT_HASHED + _TIMELINE_RULE

    mode: str = "prealigned"  # "prealigned" (full frame -> 224x224) or "detect"
    reference_frames: bool = False  # reproduce the reference tool's JPEG round trip
    vshift: int = 15
    min_track: int = 100
    min_face_size: float = 100.0
    crop_scale: float = 0.4
    num_failed_det: int = 25
    detector: str = "scrfd_500m"
    syncnet: str = "syncnet_v2"
    precision: str = "fp32"  # "fp16" (tensorrt, torch), "bf16" (torch) move numbers: hashed
    batch_size: int = 32
    backend: str = "auto"
    # "cpu" (the reference decoder: PyAV / libswscale), "dali" (NVDEC on the GPU, an error
    # where it cannot run) or "auto" (DALI for each video it can decode, else the CPU; each
    # row's ``decoder`` says which). Hashed when not "cpu": GPU frames differ by a few
    # levels, so a resumed run never mixes them into CPU-decoded rows.
    decoder: str = "cpu"
    # reference_frames only. ``ffmpeg``: what makes the JPEGs, ``ffmpeg -version``'s first
    # line or "bundled libavcodec ..." when no binary was found; hashed, since encoders of
    # different FFmpeg releases move LSE-D. ``ffmpeg_path``: the binary to run ("": look on
    # PATH), not hashed, as the same version elsewhere gives the same bytes. SyncScorer
    # fills both in (``with_ffmpeg``).
    ffmpeg: str = ""
    ffmpeg_path: str = ""
    tracks: str = "weighted-mean"
    shots: str = "content"
    # SPEC §11 segments: length and hop in seconds (rounded to 25-fps windows); they make
    # the segment numbers, so they are hashed (when not the defaults, see hashed_dict)
    segment: float = 4.0
    hop: float = 2.0
    gate: str = "itu-bt1359"  # a preset or frames:K (lipleak.sync.timeline.GATE_PRESETS)
    max_lead_ms: float | None = None  # replaces the gate's limit
    max_lag_ms: float | None = None
    min_segment_lse_c: float = 3.0  # a segment below it is low_confidence

    def __post_init__(self):
        for name, allowed in (
            ("mode", MODES),
            ("decoder", DECODERS),
            ("backend", BACKENDS),
            ("precision", PRECISIONS),
            ("tracks", TRACK_RULES),
            ("shots", SHOT_MODES),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise LipleakError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
        # vshift 0 still scores (offset 0 only); the upper bound is the core's.
        if not 0 <= self.vshift <= MAX_VSHIFT:
            raise LipleakError(f"vshift must be 0..{MAX_VSHIFT} frames, got {self.vshift}")
        for name in ("batch_size", "min_track"):
            if getattr(self, name) < 1:
                raise LipleakError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("min_face_size", "crop_scale", "num_failed_det"):
            if getattr(self, name) < 0:
                raise LipleakError(f"{name} must not be negative, got {getattr(self, name)}")
        if (self.ffmpeg or self.ffmpeg_path) and not self.reference_frames:
            raise LipleakError("an ffmpeg binary is only used with reference_frames")
        for name in ("segment", "hop"):
            v = getattr(self, name)
            if not (math.isfinite(v) and round(v * 25) >= 1):
                raise LipleakError(
                    f"{name} must be at least 0.04 s (one frame), got {getattr(self, name)}"
                )
        try:
            self.timeline_rule()
        except ValueError as exc:
            raise LipleakError(str(exc)) from None

    def timeline_rule(self):
        """The gate and threshold that turn segment numbers into a verdict."""
        from .timeline import TimelineRule, parse_gate

        gate = parse_gate(self.gate, self.max_lead_ms, self.max_lag_ms)
        return TimelineRule(gate, float(self.min_segment_lse_c))

    def hashed_dict(self) -> dict:
        d = super().hashed_dict()
        if not self.reference_frames:
            # lossless runs keep the hashes they had before the field existed
            del d["ffmpeg"]
        if self.tracks == "weighted-mean":
            # the default rule keeps the hashes stored before the field existed
            del d["tracks"]
        if self.mode == "prealigned" or self.shots == "none":
            # one shot: the hashes stored before shots existed stay valid
            del d["shots"]
        else:
            from ..faces.shots import describe

            d["shots"] = describe()  # the pinned scenedetect release and its settings
        if self.decoder == "cpu":
            # the reference decoder keeps the hashes stored while the decoder was unhashed
            del d["decoder"]
        for name, default in (("segment", 4.0), ("hop", 2.0)):
            if d[name] == default:
                del d[name]  # the defaults keep the hashes stored before segments existed
        return d

    def with_ffmpeg(self) -> SyncSettings:
        """These settings with the reference JPEG encoder of this machine filled in.

        The binary is ``ffmpeg_path`` or ``ffmpeg`` on PATH; without one, the bundled
        encoder, with a warning. Settings that already name an encoder (a Ray driver's,
        stored ones) must find the same one here: another version would be another hash.
        """
        if not self.reference_frames:
            return self
        from ..io.ffmpeg_jpeg import reference_encoder

        label, path = reference_encoder(self.ffmpeg_path or None)
        if self.ffmpeg and self.ffmpeg != label:
            raise LipleakError(
                f"the settings ask for JPEG frames from {self.ffmpeg!r}, "
                f"but this machine has {label!r}"
            )
        return replace(self, ffmpeg=label, ffmpeg_path=path)

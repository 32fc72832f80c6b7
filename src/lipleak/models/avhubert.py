"""AV-HuBERT features behind the runtime interface: preprocessed clips in, (T, D) out.

The checkpoint (``large_vox_iter5.pt``, ``base_vox_iter5.pt`` or a file in their format) is
exported once to one ONNX graph per modality mode (``lipleak.models.onnx_files`` says
where); later runs only open them. Exporting needs torch; computing features does not.

Inputs are av_hubert's (SPEC §9), already preprocessed: video (T, 88, 88) float32, the
normalised grayscale mouth ROI; audio (T, 104) float32, the stacked, normalised log
filterbanks. Output: (T, D) float32, the last encoder layer (D = 1024 large, 768 base).
Modes: "audio" (F_A, video features zeroed), "video" (F_V) and "av" (F_AV).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..export.avhubert_shapes import (
    AUDIO_DIM,
    AUDIO_INPUT,
    FEATURES_OUTPUT,
    MODES,
    ROI_SIZE,
    VIDEO_INPUT,
    mode_inputs,
)
from ..runtime import Runtime, open_model
from . import onnx_files, registry, store

DEFAULT = "avhubert_large"  # SPEC §9: the self-supervised large_vox_iter5.pt


def resolve_checkpoint(name_or_path: str | Path) -> tuple[Path, str, str | None, bool]:
    """(path, sha256, registry name or None, pinned) of a registry name or a file path.

    A registry name must be in the model dir (checked against its sha256 if pinned). A
    path is taken as given, named after the pinned registry entry with its sha256 if any;
    a path is never "pinned" unless its sha256 is a registry's.
    """
    if isinstance(name_or_path, str) and name_or_path in registry.MODELS:
        spec = registry.get(name_or_path)
        if spec.kind != "avhubert":
            raise ModelError(f"{name_or_path} is a {spec.kind} model, not an AV-HuBERT checkpoint")
        path = store.locate(spec.name)
        return path, store.verify(spec.name, path), spec.name, spec.pinned
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        known = ", ".join(n for n, s in registry.MODELS.items() if s.kind == "avhubert")
        raise ModelError(f"{path}: no such AV-HuBERT checkpoint (a file, or one of: {known})")
    sha = store.file_sha256(path)
    spec = registry.by_sha256(sha)
    return path, sha, spec.name if spec else None, spec is not None


def _as_batch(x: np.ndarray | None, tail: tuple[int, ...], what: str) -> np.ndarray | None:
    if x is None:
        return None
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != len(tail) + 2 or x.shape[2:] != tail:
        shape = "×".join(map(str, tail))
        raise ValueError(f"{what} must be B×T×{shape} (batched) or T×{shape}, got {x.shape}")
    return x


class AVHubert:
    """AV-HuBERT's feature graphs (one per mode) on one backend."""

    def __init__(
        self,
        checkpoint: Path,
        sha256: str,
        name: str | None,
        pinned: bool,
        runtimes: dict[str, Runtime],
    ):
        self.checkpoint = checkpoint
        self.sha256 = sha256
        self.name = name
        self.pinned = pinned
        self.runtimes = runtimes

    @classmethod
    def load(
        cls,
        name_or_path: str | Path = DEFAULT,
        modes: tuple[str, ...] = MODES,
        backend: str = "auto",
        onnx_root: Path | None = None,
        precision: str = "fp32",
        max_batch: int = 8,
    ) -> AVHubert:
        """Open AV-HuBERT from a registry name (in the model dir) or a checkpoint path, with
        the graphs of ``modes``; they are exported on first use, each file atomically."""
        for mode in modes:
            mode_inputs(mode)  # unknown modes fail before any export
        path, sha, name, pinned = resolve_checkpoint(name_or_path)
        files = onnx_files.avhubert_modes(path, sha, tuple(modes), onnx_root)
        runtimes = {
            mode: open_model(file, backend, precision=precision, max_batch=max_batch)
            for mode, file in files.items()
        }
        return cls(path, sha, name, pinned, runtimes)

    def features_batch(
        self, mode: str, video: np.ndarray | None = None, audio: np.ndarray | None = None
    ) -> np.ndarray:
        """B clips of equal length T: video B×T×88×88, audio B×T×104 → B×T×D float32."""
        if mode not in self.runtimes:
            raise ValueError(f"mode {mode!r} not loaded (loaded: {', '.join(self.runtimes)})")
        video = _as_batch(video, (ROI_SIZE, ROI_SIZE), "video")
        audio = _as_batch(audio, (AUDIO_DIM,), "audio")
        given = {VIDEO_INPUT: video, AUDIO_INPUT: audio}
        needed = mode_inputs(mode)
        extra = [k for k, v in given.items() if v is not None and k not in needed]
        absent = [k for k in needed if given[k] is None]
        if extra or absent:
            raise ValueError(f"mode {mode!r} takes {' and '.join(needed)}")
        if video is not None and audio is not None and video.shape[:2] != audio.shape[:2]:
            raise ValueError(f"video is {video.shape[:2]} (B, T) but audio {audio.shape[:2]}")
        feeds = {}
        if video is not None:
            feeds[VIDEO_INPUT] = video[:, None]  # B×1×T×88×88
        if audio is not None:
            feeds[AUDIO_INPUT] = np.ascontiguousarray(audio.transpose(0, 2, 1))  # B×104×T
        b, t = next(iter(feeds.values())).shape[0], (video if video is not None else audio).shape[1]
        if b == 0 or t == 0:
            raise ValueError("no frames")
        return self.runtimes[mode].run(feeds)[FEATURES_OUTPUT]

    def features(
        self, mode: str, video: np.ndarray | None = None, audio: np.ndarray | None = None
    ) -> np.ndarray:
        """One clip: video T×88×88 and/or audio T×104 float32 → T×D float32."""
        v = None if video is None else np.asarray(video)[None]
        a = None if audio is None else np.asarray(audio)[None]
        return self.features_batch(mode, v, a)[0]

    def describe(self) -> dict:
        """What computed the features: checkpoint (sha256, pinned), ONNX files, backend."""
        infos = {mode: rt.describe() for mode, rt in self.runtimes.items()}
        first = next(iter(infos.values()))
        return {
            "checkpoint": {
                "name": self.name,
                "path": str(self.checkpoint),
                "sha256": self.sha256,
                "pinned": self.pinned,
            },
            "onnx": {
                mode: {"path": i.model_path, "sha256": i.model_sha256} for mode, i in infos.items()
            },
            "backend": first.backend,
            "runtime": asdict(first),
        }

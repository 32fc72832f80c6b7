"""One video (with its driving audio, and its GT when there is one) → AVS_u, AVS_m, AVS_v.

    scorer = AVSScorer(AVSSettings())
    ref = scorer.reference("gt.mp4", gt_audio)          # once per GT: F_AV, F_V, its AVS_u
    scorer.score("gen.mp4", driving_audio, ref)        # {"avs_u", "avs_m", "avs_v"}
    scorer.score("gen.mp4", driving_audio)             # {"avs_u"}: no GT needed

Features are AV-HuBERT's last encoder layer per 25-fps frame (``lipleak.models.avhubert``)
on av_hubert's inputs (``lipleak.avs.inputs``); the arithmetic is ``lipleak.metrics.avs``.
With ``window`` k > 0 the encoder runs over consecutive windows of k frames (the last one
shorter), full windows batched ``batch_size`` at a time; each window is computed alone,
so batching never changes a feature.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..faces.mean_face import MEAN_FACE
from ..metrics.avs import avs
from ..models import store
from .inputs import audio_input, video_input
from .settings import AVSSettings

METRICS = ("avs_u", "avs_m", "avs_v")


@dataclass
class AVSReference:
    """What a GT contributes to the AVS of its generated videos."""

    av: np.ndarray  # F_AV of the GT with its own audio, float32 T×D
    video: np.ndarray  # F_V of the GT, float32 T×D
    avs_u: float  # the GT's own AVS_u (a ceiling for its generated videos)


def windows(n: int, k: int) -> list[tuple[int, int]]:
    """[start, stop) of the encoder windows over n frames: the whole clip for k = 0."""
    if k <= 0 or k >= n:
        return [(0, n)]
    return [(s, min(s + k, n)) for s in range(0, n, k)]


class AVSScorer:
    """SCRFD, PFLD and AV-HuBERT for one ``AVSSettings``, loaded once."""

    def __init__(self, settings: AVSSettings, model=None):
        from ..faces.landmarks import PFLD
        from ..faces.scrfd import SCRFD
        from ..models.avhubert import AVHubert

        s = self.settings = settings
        det_path = store.locate(s.detector)
        lm_path = store.locate(s.landmarks)
        self.info = {
            "detector": {"name": s.detector, "sha256": store.verify(s.detector, det_path)},
            "landmarks": {"name": s.landmarks, "sha256": store.verify(s.landmarks, lm_path)},
            # the template the ROIs are aligned to moves every number: hash its values
            "mean_face_sha256": hashlib.sha256(
                np.ascontiguousarray(MEAN_FACE, np.float64).tobytes()
            ).hexdigest(),
        }
        self.detector = SCRFD(det_path, backend=s.backend)
        self.pfld = PFLD(lm_path, backend=s.backend, batch_size=s.batch_size)
        self.model = model if model is not None else AVHubert.load(s.model, backend=s.backend)

    def describe(self) -> dict:
        return {"settings": self.settings.as_dict(), **self.info, "avhubert": self.model.describe()}

    # -- features ---------------------------------------------------------------------------
    def inputs(self, path: str | Path, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(video T×88×88, audio T×104) of one clip and its driving audio."""
        v = video_input(path, self.detector, self.pfld, self.settings.batch_size)
        if len(v) == 0:
            raise InputError(path, "no video frames", "too_short")
        try:
            a = audio_input(audio, len(v))
        except InputError as exc:
            raise InputError(path, exc.cause, exc.status) from None
        return v, a

    def features(self, mode: str, video: np.ndarray, audio: np.ndarray) -> np.ndarray:
        """F_A ("audio"), F_V ("video") or F_AV ("av") of one clip's inputs: float32 T×D."""
        feeds = {"audio": (None, audio), "video": (video, None), "av": (video, audio)}[mode]
        spans = windows(len(video), int(self.settings.window))
        out: list[np.ndarray] = [None] * len(spans)  # type: ignore[list-item]
        by_len: dict[int, list[int]] = {}
        for i, (s, e) in enumerate(spans):
            by_len.setdefault(e - s, []).append(i)
        bs = int(self.settings.batch_size)
        for idx in by_len.values():
            for j in range(0, len(idx), bs):
                part = idx[j : j + bs]
                v, a = (
                    None if x is None else np.stack([x[spans[i][0] : spans[i][1]] for i in part])
                    for x in feeds
                )
                f = self.model.features_batch(mode, video=v, audio=a)
                for i, fi in zip(part, f, strict=True):
                    out[i] = fi
        return np.concatenate(out)

    # -- metrics ----------------------------------------------------------------------------
    def reference(self, path: str | Path, audio: np.ndarray) -> AVSReference:
        v, a = self.inputs(path, audio)
        fv = self.features("video", v, a)
        return AVSReference(
            av=self.features("av", v, a), video=fv, avs_u=avs(self.features("audio", v, a), fv)
        )

    def score(
        self, path: str | Path, audio: np.ndarray, reference: AVSReference | None = None
    ) -> dict[str, float]:
        """AVS_u of ``path`` with ``audio`` (its driving audio); with a reference (its GT),
        AVS_m and AVS_v too."""
        v, a = self.inputs(path, audio)
        fv = self.features("video", v, a)
        out = {"avs_u": avs(self.features("audio", v, a), fv)}
        if reference is not None:
            out["avs_m"] = avs(self.features("av", v, a), reference.av)
            out["avs_v"] = avs(fv, reference.video)
        return out

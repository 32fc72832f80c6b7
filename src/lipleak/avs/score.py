"""One video (with its driving audio, and its GT when there is one) → AVS_u, AVS_m, AVS_v.

    scorer = AVSScorer(AVSSettings())
    ref = scorer.reference("gt.mp4", gt_audio)          # once per GT: F_AV, F_V, its AVS_u
    scorer.score("gen.mp4", driving_audio, ref)        # {"avs_u", "avs_m", "avs_v"}
    scorer.score("gen.mp4", driving_audio)             # {"avs_u"}: no GT needed

Features are AV-HuBERT's last encoder layer per 25-fps frame (``lipleak.models.avhubert``)
on av_hubert's inputs (``lipleak.avs.inputs``); the arithmetic is ``lipleak.metrics.avs``.
With ``window`` k > 0 the encoder runs over consecutive windows of k frames (the last one
shorter), max(1, batch_size // k) windows per batch; each window is computed alone, so
batching never changes a feature.

Memory: ``score`` streams. Frames are decoded, aligned and cut into mouth ROIs as they
come; each window goes through the encoder once it is full, and only the per-frame
cosines are kept (8 B per frame and metric), so with k > 0 memory is bounded by the batch,
not by the video's length (with k = 0 the whole clip is one window: the encoder's own
input and attention grow with it). The GT's ``AVSReference`` keeps its F_AV and F_V
(2·D floats per frame), which every generated video of the stem is compared with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..faces.mean_face import MEAN_FACE
from ..io.audio import array_chunks
from ..metrics.avs import frame_cosines
from ..metrics.fbank import FEAT_DIM, avhubert_audio
from ..models import store
from .inputs import audio_input, mouth_rois, video_input
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
            # the template the ROIs are aligned to moves every number: its values are
            # hashed like a model file, so every settings hash that walks the model
            # sha256s (score's group hash, sync's run hash) carries it
            "mean_face": {
                "sha256": hashlib.sha256(
                    np.ascontiguousarray(MEAN_FACE, np.float64).tobytes()
                ).hexdigest()
            },
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
        bs = self._windows_per_batch()
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

    def _windows_per_batch(self) -> int:
        k = int(self.settings.window)
        return 1 if k <= 0 else max(1, int(self.settings.batch_size) // k)

    # -- streaming ----------------------------------------------------------------------------
    def input_windows(self, path: str | Path, audio: np.ndarray):
        """(start frame, video n×88×88, audio n×104) of each encoder window in order, made as
        the frames are decoded: one window of ROIs is held (the whole clip with k = 0). The
        same inputs as ``inputs`` cut by ``windows``."""
        try:
            # every stacked row: cheap (416 B per frame), and the video's length is known
            # only at its end; rows past the video are never used, missing ones are zeros
            # (what av_hubert's alignment appends, normalised)
            rows = avhubert_audio(array_chunks(np.asarray(audio, np.int16)))
        except InputError as exc:
            raise InputError(path, exc.cause, exc.status) from None
        k = int(self.settings.window)
        buf: list[np.ndarray] = []
        start = 0

        def emit():
            nonlocal start
            n = len(buf)
            a = rows[start : start + n]
            if len(a) < n:
                a = np.concatenate([a, np.zeros((n - len(a), FEAT_DIM), np.float32)])
            out = (start, np.stack(buf), a)
            start += n
            buf.clear()
            return out

        for roi in mouth_rois(path, self.detector, self.pfld, self.settings.batch_size):
            buf.append(roi)
            if k > 0 and len(buf) == k:
                yield emit()
        if buf:
            yield emit()
        if start == 0:
            raise InputError(path, "no video frames", "too_short")

    def feature_windows(self, path: str | Path, audio: np.ndarray, modes: tuple[str, ...]):
        """(start frame, {mode: features n×D}) of each window, in order."""
        per_batch = self._windows_per_batch()
        group: list = []

        def run():
            v = np.stack([w[1] for w in group])
            a = np.stack([w[2] for w in group])
            feeds = {"audio": {"audio": a}, "video": {"video": v}, "av": {"video": v, "audio": a}}
            f = {m: self.model.features_batch(m, **feeds[m]) for m in modes}
            out = [(w[0], {m: f[m][i] for m in modes}) for i, w in enumerate(group)]
            group.clear()
            return out

        for w in self.input_windows(path, audio):
            if group and len(w[1]) != len(group[0][1]):  # the last, shorter window
                yield from run()
            group.append(w)
            if len(group) == per_batch:
                yield from run()
        if group:
            yield from run()

    # -- metrics ----------------------------------------------------------------------------
    def reference(self, path: str | Path, audio: np.ndarray) -> AVSReference:
        av, fv, cos = [], [], []
        for _, f in self.feature_windows(path, audio, ("audio", "video", "av")):
            av.append(f["av"])
            fv.append(f["video"])
            cos.append(frame_cosines(f["audio"], f["video"]))
        return AVSReference(
            av=np.concatenate(av),
            video=np.concatenate(fv),
            avs_u=float(np.concatenate(cos).mean()),
        )

    def score(
        self, path: str | Path, audio: np.ndarray, reference: AVSReference | None = None
    ) -> dict[str, float]:
        """AVS_u of ``path`` with ``audio`` (its driving audio); with a reference (its GT),
        AVS_m and AVS_v too (over the first min(T, T_gt) frames)."""
        modes = ("audio", "video") + (() if reference is None else ("av",))
        cos: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
        for s, f in self.feature_windows(path, audio, modes):
            cos["avs_u"].append(frame_cosines(f["audio"], f["video"]))
            if reference is not None and s < len(reference.av):
                cos["avs_m"].append(frame_cosines(f["av"], reference.av[s : s + len(f["av"])]))
                cos["avs_v"].append(
                    frame_cosines(f["video"], reference.video[s : s + len(f["video"])])
                )
        return {m: float(np.concatenate(c).mean()) for m, c in cos.items() if c}

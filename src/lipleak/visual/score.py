"""One generated video against its GT: SSIM, PSNR, CSIM, LMD, mouth motion, FID features.

``VisualScorer.score`` decodes the generated video once, the GT in lockstep (frames
paired by index at 25 fps; the first min(len) frames are compared, both lengths are
reported), and runs SCRFD once per generated frame. Every metric uses the GT frame's
face box, so generated and GT crops cover the same pixels:

- SSIM / PSNR (SPEC §4) on the crops (``lipleak.visual.crops``), per frame → video mean;
  PSNR's identical-frame rule is ``lipleak.metrics.quality``'s (inf left out, counted).
- LPIPS (SPEC §8): v0.1 distance of each generated crop to its GT crop (the SSIM crops)
  → video mean; not computed (NaN with the reason) with ``--lpips none`` or without its
  model files.
- FID (SPEC §3): Inception features of the generated crops are returned, to be pooled
  over all videos of a cell against the pooled GT features
  (``lipleak.metrics.fid.cell_fid``).
- CSIM (SPEC §5): ArcFace on ``norm_crop`` of the generated frame with its own SCRFD
  keypoints (the GT frame's keypoints when SCRFD finds no face: counted in
  ``n_no_face_gen``) against the GT embedding; cosine per frame → video mean.
- LMD (SPEC §6): PFLD on the generated frame with the GT box against the GT landmarks.
  The protocol reads it for AM; it is computed for every setup.
- Mouth motion (``lipleak.metrics.mouth``) from the generated landmarks: open fraction
  and aperture std for every setup (SI is where they mean leakage); best-lag correlation
  with the driving audio's RMS envelope for AM and XM.

A generated video whose frame size differs from the GT's is resized to the GT size
(``cv2.INTER_AREA``) before anything else, so all coordinates are GT pixels.
Metrics that cannot be computed are NaN in ``metrics`` and say why in ``reasons``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError, LipleakError
from ..faces.align import norm_crop
from ..metrics import mouth
from ..metrics.csim import cosine_similarity
from ..metrics.lmd import lmd_per_frame
from ..metrics.quality import QualityAccumulator
from .crops import face_crop, match_size
from .gt import GTAnalysis, analyze
from .models import VisualModels
from .settings import VisualSettings

SETUPS = ("AM", "XM", "SI")
METRICS = (
    "ssim",
    "psnr",
    "lpips",
    "csim",
    "lmd",
    "mouth_open_fraction",
    "mouth_aperture_std",
    "mouth_audio_corr",
    "mouth_audio_lag",
    "n_frames_gen",
    "n_frames_gt",
    "n_frames_compared",
    "n_identical_frames",
    "n_no_face_gen",
    "n_no_face_gt",
)


@dataclass
class VisualResult:
    video: str
    gt_video: str
    setup: str
    metrics: dict[str, float]  # every name in METRICS; NaN where not computed
    reasons: dict[str, str]  # metric name -> why it is NaN
    features: np.ndarray  # float32 n_frames_compared×2048, generated crops (for cell FID)
    per_frame: dict[str, np.ndarray] = field(
        default_factory=dict
    )  # ssim, psnr, csim, lpips, lmd, aperture


class _Accumulators:
    def __init__(self):
        self.quality = QualityAccumulator()
        self.features: list[np.ndarray] = []
        self.csim: list[np.ndarray] = []
        self.lpips: list[np.ndarray] = []
        self.lmd: list[np.ndarray] = []
        self.aperture: list[np.ndarray] = []
        self.no_face = 0


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)


class VisualScorer:
    """Per-video visual metrics with one set of settings; models are loaded once."""

    def __init__(self, settings: VisualSettings | None = None, concurrent: bool = False):
        self.settings = settings or VisualSettings()
        self.models = VisualModels(self.settings, concurrent)

    def describe(self) -> dict:
        """Everything that produced a number: models with sha256, settings, versions."""
        import av
        import cv2

        return {
            "package": "lipleak-fast",
            "version": __version__,
            "settings": self.settings.as_dict(),
            "settings_hash": self.settings.hash(),
            "models": self.models.describe(),
            "libraries": {"av": av.__version__, "opencv": cv2.__version__, "numpy": np.__version__},
        }

    def analyze_gt(self, gt_video: str | Path) -> GTAnalysis:
        """Boxes, keypoints, landmarks, embeddings and crop features of a GT video."""
        return analyze(self.models, self.settings, gt_video)

    # -- scoring ----------------------------------------------------------------------
    def _check(self, gt: GTAnalysis, gt_video, audio, setup: str) -> None:
        if setup not in SETUPS:
            raise LipleakError(f"unknown setup {setup!r}; choose one of {', '.join(SETUPS)}")
        if gt.settings_hash != self.settings.hash():
            raise InputError(
                gt_video,
                f"GT analysis was made with other settings "
                f"({gt.settings_hash}, now {self.settings.hash()}); analyze it again",
                "stale_gt",
            )
        if isinstance(audio, np.ndarray) and (audio.ndim != 1 or audio.dtype != np.int16):
            raise InputError(
                None,
                f"driving audio must be 1-D int16 at 16 kHz, got {audio.dtype} {audio.shape}",
                "bad_audio",
            )

    def _batch(self, acc: _Accumulators, gt: GTAnalysis, batch: list) -> None:
        m, s = self.models, self.settings
        idx = np.array([b[0] for b in batch])
        gens = [b[1] for b in batch]
        boxes = gt.boxes[idx]
        gen_crops = [face_crop(f, b, s.crop, s.crop_size) for f, b in zip(gens, boxes, strict=True)]
        gt_crops = [
            face_crop(b[2], box, s.crop, s.crop_size) for b, box in zip(batch, boxes, strict=True)
        ]
        acc.quality.update(gen_crops, gt_crops)
        if m.lpips is not None:
            acc.lpips.append(m.lpips.distance(gen_crops, gt_crops))
        acc.features.append(m.inception.features(gen_crops))
        lm = m.pfld.landmarks(gens, boxes)
        acc.lmd.append(lmd_per_frame(lm, gt.landmarks[idx]))
        acc.aperture.append(mouth.aperture(lm))
        kps = []
        for i, f in zip(idx, gens, strict=True):
            found, scores, k = m.detector.detect(f)
            if len(found):
                kps.append(k[int(np.argmax(scores))])
            else:
                kps.append(gt.kps[i])
                acc.no_face += 1
        if m.arcface is None or gt.embeddings is None:
            return
        emb = m.arcface.embed([norm_crop(f, k) for f, k in zip(gens, kps, strict=True)])
        acc.csim.append(cosine_similarity(emb, gt.embeddings[idx]))

    def score(
        self,
        gen_video: str | Path,
        gt: GTAnalysis,
        gt_video: str | Path,
        audio: np.ndarray | Iterable[np.ndarray] | None,
        setup: str,
    ) -> VisualResult:
        """Metrics of one generated video against its GT (see the module doc).

        ``audio``: the driving audio (int16, 16 kHz mono) for the AM/XM mouth-motion
        correlation, as an array or an iterable of chunks (read once, after the video,
        and only as far as the video's frames); ignored for SI.
        """
        from ..io.video import iter_av_frames, iter_frames, to_bgr

        self._check(gt, gt_video, audio, setup)
        acc = _Accumulators()
        gt_frames = iter_frames(gt_video)
        batch: list = []
        n_gen = 0
        try:
            for av_frame in iter_av_frames(gen_video):
                if n_gen < gt.n_frames:  # past the GT's end frames are only counted
                    gt_frame = next(gt_frames, None)
                    if gt_frame is None:
                        raise InputError(
                            gt_video,
                            f"ends after {n_gen} frames but its GT "
                            f"analysis has {gt.n_frames}; analyze it again",
                            "stale_gt",
                        )
                    if gt_frame.shape[:2] != (gt.height, gt.width):
                        raise InputError(
                            gt_video, "frame size differs from its GT analysis", "stale_gt"
                        )
                    gen = match_size(to_bgr(av_frame), gt.height, gt.width)
                    batch.append((n_gen, gen, gt_frame))
                    if len(batch) >= self.settings.batch_size:
                        self._batch(acc, gt, batch)
                        batch = []
                n_gen += 1
            if batch:
                self._batch(acc, gt, batch)
        finally:
            gt_frames.close()
        return self._result(acc, gt, gen_video, gt_video, audio, setup, n_gen)

    def _result(
        self, acc: _Accumulators, gt: GTAnalysis, gen_video, gt_video, audio, setup: str, n_gen: int
    ) -> VisualResult:
        nan = float("nan")
        metrics = dict.fromkeys(METRICS, nan)
        reasons: dict[str, str] = {}
        q = acc.quality.result()
        n = q.n_frames
        metrics.update(
            ssim=q.ssim,
            psnr=q.psnr,
            n_identical_frames=float(q.n_identical),
            n_frames_gen=float(n_gen),
            n_frames_gt=float(gt.n_frames),
            n_frames_compared=float(n),
            n_no_face_gt=float((~gt.detected[:n]).sum()),
        )
        csim = _cat(acc.csim)
        if self.models.arcface is None:
            reasons["csim"] = self.models.arcface_reason
        elif gt.embeddings is None:
            reasons["csim"] = "the GT analysis has no ArcFace embeddings; analyze it again"
        else:
            metrics["csim"] = float(csim.mean())
        lp = _cat(acc.lpips)
        if self.models.lpips is None:
            reasons["lpips"] = self.models.lpips_reason
        else:
            metrics["lpips"] = float(lp.astype(np.float64).mean())
        metrics["n_no_face_gen"] = float(acc.no_face)
        lmd = _cat(acc.lmd)
        metrics["lmd"] = float(lmd.mean())
        ap = _cat(acc.aperture)
        try:
            sm = mouth.silent_motion(ap, self.settings.mouth_threshold)
            metrics.update(mouth_open_fraction=sm.open_fraction, mouth_aperture_std=sm.aperture_std)
        except InputError as exc:
            reasons["mouth_open_fraction"] = reasons["mouth_aperture_std"] = exc.cause
        if setup == "SI":
            why = "SI: the driving audio is silence (read mouth_open_fraction / mouth_aperture_std)"
        elif audio is None:
            why = "no driving audio given"
        else:
            am = mouth.audio_motion(ap, audio)
            why = am.reason
            if am.reason is None:
                metrics.update(mouth_audio_corr=am.corr, mouth_audio_lag=float(am.lag))
        if why is not None:
            reasons["mouth_audio_corr"] = reasons["mouth_audio_lag"] = why
        features = _cat(acc.features).astype(np.float32, copy=False).reshape(n, -1)
        return VisualResult(
            str(gen_video),
            str(gt_video),
            setup,
            metrics,
            reasons,
            features,
            {
                "ssim": q.ssim_per_frame,
                "psnr": q.psnr_per_frame,
                "csim": csim,
                "lpips": lp,
                "lmd": lmd,
                "aperture": ap,
            },
        )

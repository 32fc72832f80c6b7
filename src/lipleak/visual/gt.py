"""GT analysis: everything about a GT video that every generated video is compared with.

One decode and one SCRFD pass of the GT give, per frame: the primary face (highest
score) box and 5 keypoints, PFLD landmarks (GT frame pixels, which are the GT crop's
pixel units: the PFLD crop is a square of frame pixels), ArcFace embeddings of the
aligned GT faces (when an ArcFace model is available) and FID Inception features of the
GT crops. It is computed once per GT video and cached (``save``/``load``, .npz).

Frames where SCRFD finds no face take the box and keypoints of the nearest frame that
has one (ties go to the earlier frame) and are flagged in ``detected``. Frames waiting
for a later detection are held in memory up to ``batch_size`` of them; a longer faceless
stretch is not held but re-read in a second decode of just those frames at the end, so
memory stays bounded by the batch size whatever the video.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..faces.align import norm_crop
from ..files import atomic_path
from .crops import face_crop

FORMAT = 1  # bump when the cached fields change


def nearest_sources(detected: np.ndarray) -> np.ndarray:
    """int64[F]: for each frame, the nearest frame with a detection (ties: the earlier one)."""
    det = np.asarray(detected, bool)
    idx = np.flatnonzero(det)
    if idx.size == 0:
        raise ValueError("no frame has a detection")
    f = np.arange(det.size)
    k = np.searchsorted(idx, f)  # first detected frame at or after f
    nxt = idx[np.minimum(k, idx.size - 1)]
    prev = idx[np.maximum(k - 1, 0)]
    use_prev = (k > 0) & ((k == idx.size) | (f - prev <= nxt - f))
    return np.where(use_prev, prev, nxt)


@dataclass
class GTAnalysis:
    video: str
    n_frames: int
    width: int
    height: int
    settings_hash: str  # VisualSettings.hash() of the scorer that made it
    boxes: np.ndarray  # float64 F×4, x1 y1 x2 y2 (held from the nearest detection)
    kps: np.ndarray  # float64 F×5×2
    scores: np.ndarray  # float32 F detector score of the frame's own face; NaN if none
    detected: np.ndarray  # bool F: SCRFD found a face in this frame
    landmarks: np.ndarray  # float64 F×68×2, GT frame pixels
    features: np.ndarray  # float32 F×2048 Inception features of the GT crops
    embeddings: np.ndarray | None  # float32 F×D ArcFace embeddings; None without ArcFace

    @property
    def n_no_face(self) -> int:
        return int((~self.detected).sum())

    def save(self, path: str | Path) -> Path:
        """Write the analysis to an .npz (atomically)."""
        path = Path(path)
        extra = {} if self.embeddings is None else {"embeddings": self.embeddings}
        # a file object, so np.savez cannot append .npz to the temporary name
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                format=np.int64(FORMAT),
                video=np.str_(self.video),
                n_frames=np.int64(self.n_frames),
                width=np.int64(self.width),
                height=np.int64(self.height),
                settings_hash=np.str_(self.settings_hash),
                boxes=self.boxes,
                kps=self.kps,
                scores=self.scores,
                detected=self.detected,
                landmarks=self.landmarks,
                features=self.features,
                **extra,
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> GTAnalysis:
        """Read what ``save`` wrote; InputError (status ``bad_cache``) if it is not that."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["format"]) != FORMAT:
                    raise InputError(
                        path,
                        f"GT analysis format {int(z['format'])}, expected {FORMAT}",
                        "bad_cache",
                    )
                gt = cls(
                    str(z["video"]),
                    int(z["n_frames"]),
                    int(z["width"]),
                    int(z["height"]),
                    str(z["settings_hash"]),
                    z["boxes"],
                    z["kps"],
                    z["scores"],
                    z["detected"],
                    z["landmarks"],
                    z["features"],
                    z["embeddings"] if "embeddings" in z.files else None,
                )
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(path, f"not a GT analysis .npz ({exc})", "bad_cache") from None
        n = gt.n_frames
        shapes = [
            gt.boxes.shape == (n, 4),
            gt.kps.shape == (n, 5, 2),
            gt.detected.shape == (n,),
            gt.landmarks.shape == (n, 68, 2),
            gt.features.shape[0] == n,
            gt.embeddings is None or gt.embeddings.shape[0] == n,
        ]
        if not all(shapes):
            raise InputError(path, "GT analysis arrays do not match its frame count", "bad_cache")
        return gt


class _Batcher:
    """Frames with a known box go into model batches; results are kept by frame index."""

    def __init__(self, models, crop: str, crop_size: int, batch_size: int):
        self.models, self.crop, self.crop_size, self.batch_size = (
            models,
            crop,
            crop_size,
            batch_size,
        )
        self.queue: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        self.index: list[np.ndarray] = []
        self.landmarks: list[np.ndarray] = []
        self.features: list[np.ndarray] = []
        self.embeddings: list[np.ndarray] = []

    def push(self, i: int, frame: np.ndarray, box: np.ndarray, kps: np.ndarray) -> None:
        self.queue.append((i, frame, box, kps))
        if len(self.queue) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.queue:
            return
        idx = np.array([q[0] for q in self.queue])
        frames = [q[1] for q in self.queue]
        boxes = [q[2] for q in self.queue]
        m = self.models
        self.landmarks.append(m.pfld.landmarks(frames, boxes))
        crops = [
            face_crop(f, b, self.crop, self.crop_size) for f, b in zip(frames, boxes, strict=True)
        ]
        self.features.append(m.inception.features(crops))
        if m.arcface is not None:
            self.embeddings.append(
                m.arcface.embed(
                    [norm_crop(f, q[3]) for f, q in zip(frames, self.queue, strict=True)]
                )
            )
        self.index.append(idx)
        self.queue = []

    def assemble(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        self.flush()
        order = np.argsort(np.concatenate(self.index), kind="stable")
        if len(order) != n:
            raise AssertionError(f"GT analysis processed {len(order)} of {n} frames")
        lm = np.concatenate(self.landmarks)[order]
        feats = np.concatenate(self.features)[order]
        emb = np.concatenate(self.embeddings)[order] if self.embeddings else None
        return lm, feats, emb


def _pick(j: int, prev: int | None, nxt: int | None) -> int:
    """The nearest detected frame to j (same rule as ``nearest_sources``)."""
    if prev is None:
        return nxt
    if nxt is None or j - prev <= nxt - j:
        return prev
    return nxt


def analyze(models, settings, video: str | Path) -> GTAnalysis:
    """One decode and one detection pass of a GT video (see the module doc)."""
    from ..io.video import iter_frames

    s = settings
    batcher = _Batcher(models, s.crop, s.crop_size, s.batch_size)
    dets: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}  # frame -> box, kps, score
    pending: list[tuple[int, np.ndarray | None]] = []  # waiting for the next detection
    redo: dict[int, int] = {}  # frames dropped from ``pending``: frame -> source frame
    last: int | None = None
    held = 0  # frames of ``pending`` kept in memory
    shape = None
    n = 0

    def resolve(nxt: int | None) -> None:
        nonlocal held
        for j, fr in pending:
            src = _pick(j, last, nxt)
            if fr is None:
                redo[j] = src
            else:
                batcher.push(j, fr, dets[src][0], dets[src][1])
        pending.clear()
        held = 0

    for n, frame in enumerate(iter_frames(video)):  # noqa: B007 - n is the count afterwards
        if shape is None:
            shape = frame.shape
        elif frame.shape != shape:
            raise InputError(
                video,
                f"frame {n} is {frame.shape[1]}x{frame.shape[0]}, earlier "
                f"frames {shape[1]}x{shape[0]}",
                "bad_frame",
            )
        boxes, scores, kps = models.detector.detect(frame)
        if len(boxes):
            k = int(np.argmax(scores))
            dets[n] = (boxes[k, :4].astype(np.float64), kps[k].astype(np.float64), float(scores[k]))
            resolve(n)
            last = n
            batcher.push(n, frame, dets[n][0], dets[n][1])
        else:
            # Past the batch size, a faceless frame is not held: it is re-read at the end.
            keep = held < s.batch_size
            held += keep
            pending.append((n, frame if keep else None))
    n_frames = n + 1
    if not dets:
        raise InputError(video, f"no face found in any of its {n_frames} frames", "no_face")
    resolve(None)
    if redo:
        stop = max(redo)
        for j, frame in enumerate(iter_frames(video)):
            if j in redo:
                batcher.push(j, frame, dets[redo[j]][0], dets[redo[j]][1])
            if j >= stop:
                break
    src = nearest_sources(np.array([i in dets for i in range(n_frames)]))
    landmarks, features, embeddings = batcher.assemble(n_frames)
    return GTAnalysis(
        video=str(video),
        n_frames=n_frames,
        width=int(shape[1]),
        height=int(shape[0]),
        settings_hash=s.hash(),
        boxes=np.stack([dets[i][0] for i in src]),
        kps=np.stack([dets[i][1] for i in src]),
        scores=np.array([dets[i][2] if i in dets else np.nan for i in range(n_frames)], np.float32),
        detected=np.array([i in dets for i in range(n_frames)]),
        landmarks=landmarks,
        features=features,
        embeddings=embeddings,
    )

"""One clip → AV-HuBERT's two inputs, prepared as av_hubert prepares them (SPEC §9).

- video: 25-fps BGR frames → face (SCRFD, best box) → 68 landmarks (PFLD) → mouth ROI
  (``lipleak.faces.mouth_roi``: aligned to av_hubert's mean face, 96×96, gray, centre
  88×88, normalised) → float32 [T, 88, 88];
- audio: 16 kHz int16 → log mel filterbank, 4 rows stacked per video frame, aligned to
  the video's frame count, each row layer-normalised (``lipleak.metrics.fbank``) →
  float32 [T, 104].

Decoding, detection and ROIs stream (held: one detector batch and the 12-frame smoothing
window); what is kept is the model's input itself, 31 KB per frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..faces.mouth_roi import MouthROI, face_landmarks
from ..io.audio import array_chunks
from ..io.video import iter_frames
from ..metrics.fbank import avhubert_audio


def mouth_rois(path: str | Path, detector, pfld, batch_size: int = 32) -> Iterator[np.ndarray]:
    """The mouth ROI of each frame of ``path`` in order (float32 88×88), as the frames are
    decoded. InputError "no_face" (at the end) when no frame has a face."""
    rois = MouthROI()
    for frame, lm in face_landmarks(iter_frames(path), detector, pfld, batch_size):
        yield from rois.push(frame, lm)
    yield from rois.flush()


def video_input(path: str | Path, detector, pfld, batch_size: int = 32) -> np.ndarray:
    """Mouth ROIs of every frame of ``path``: float32 [T, 88, 88]."""
    out = list(mouth_rois(path, detector, pfld, batch_size))
    return np.stack(out) if out else np.zeros((0, 88, 88), np.float32)


def audio_input(samples: np.ndarray, n_video: int) -> np.ndarray:
    """av_hubert's audio rows for ``n_video`` frames from 16 kHz int16 samples:
    float32 [n_video, 104] (padded as av_hubert pads when the audio is shorter)."""
    return avhubert_audio(array_chunks(np.asarray(samples, np.int16)), n_video)

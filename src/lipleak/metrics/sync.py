"""LSE-C / LSE-D from SyncNet embeddings (SPEC §2), a chain of small steps:

audio samples → MFCC (C++ core) → 20-column windows; face crops → 5-frame windows;
both towers → embeddings; embeddings → offset search (C++ core, streamed batch by batch
in ``lipleak.sync``) → LSE-C, LSE-D. ``mfcc_windows`` is the one-shot form that
``lipleak.sync.audio.AudioWindows`` reproduces on a stream.

Window k pairs video frames [k, k+5) with MFCC columns [4k, 4k+20); the number of
windows is N = min(n_frames, floor(n_samples / 640)) - 5, as in syncnet_python.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from ..export.syncnet_shapes import (
    MFCC_COEFFS,
    MFCC_PER_FRAME,
    SAMPLES_PER_FRAME,
    WINDOW_FRAMES,
    WINDOW_MFCC,
)


def n_windows(n_frames: int, n_samples: int) -> int:
    """Number of SyncNet windows for a clip, as syncnet_python counts them (may be <= 0)."""
    return min(n_frames, n_samples // SAMPLES_PER_FRAME) - WINDOW_FRAMES


def mfcc_windows(audio: np.ndarray, count: int) -> np.ndarray:
    """MFCC windows for the first ``count`` video windows: float32[count, 1, 13, 20]."""
    cc = _core.mfcc(np.ascontiguousarray(audio, dtype=np.int16)).T  # 13 x T
    out = np.empty((count, 1, MFCC_COEFFS, WINDOW_MFCC), dtype=np.float32)
    for k in range(count):
        out[k, 0] = cc[:, MFCC_PER_FRAME * k : MFCC_PER_FRAME * k + WINDOW_MFCC]
    return out


def lip_window(crops: list[np.ndarray], out: np.ndarray) -> None:
    """Write five 224x224x3 BGR uint8 crops into ``out`` (float32[3, 5, 224, 224])."""
    for t, crop in enumerate(crops):
        out[:, t] = crop.transpose(2, 0, 1)

"""Face crops for SyncNet: syncnet_python's crop_video geometry, and the prealigned resize.

crop_video pads the frame with bsi = int(s(1 + 2cs)) pixels of value 110 on every side,
then slices rows [int(my − s), int(my + s(1 + 2cs))) and columns
[int(mx − s(1 + cs)), int(mx + s(1 + cs))) with my = y + bsi, mx = x + bsi, and resizes
to 224×224 (cv2 bilinear). We build only the slice, not the padded frame, using Python's
slice rules (negative starts count from the end, ``int`` truncates toward zero) so that
the result is the reference's for any box, including ones near or beyond the edges.
"""

from __future__ import annotations

import cv2
import numpy as np

PAD_VALUE = 110


def _span(start: float, stop: float, n: int) -> tuple[int, int]:
    a, b, _ = slice(int(start), int(stop)).indices(n)
    return a, max(a, b)


def syncnet_crop_raw(
    frame_bgr: np.ndarray, s: float, x: float, y: float, crop_scale: float = 0.4
) -> np.ndarray:
    """The crop before resizing: exactly ``np.pad(frame, bsi, 110)[rows, cols]``."""
    cs = crop_scale
    bs = s
    bsi = int(bs * (1 + 2 * cs))
    h, w = frame_bgr.shape[:2]
    my = y + bsi
    mx = x + bsi
    r0, r1 = _span(my - bs, my + bs * (1 + 2 * cs), h + 2 * bsi)
    c0, c1 = _span(mx - bs * (1 + cs), mx + bs * (1 + cs), w + 2 * bsi)
    out = np.full((r1 - r0, c1 - c0) + frame_bgr.shape[2:], PAD_VALUE, dtype=frame_bgr.dtype)
    # overlap of the requested window with the frame, in padded coordinates
    fr0, fr1 = max(r0, bsi), min(r1, bsi + h)
    fc0, fc1 = max(c0, bsi), min(c1, bsi + w)
    if fr1 > fr0 and fc1 > fc0:
        out[fr0 - r0 : fr1 - r0, fc0 - c0 : fc1 - c0] = frame_bgr[
            fr0 - bsi : fr1 - bsi, fc0 - bsi : fc1 - bsi
        ]
    return out


def syncnet_crop(
    frame_bgr: np.ndarray, s: float, x: float, y: float, crop_scale: float = 0.4, size: int = 224
) -> np.ndarray:
    """syncnet_python's face crop of one frame, resized to size×size (uint8 BGR)."""
    face = syncnet_crop_raw(frame_bgr, s, x, y, crop_scale)
    if face.shape[0] == 0 or face.shape[1] == 0:
        raise ValueError(f"empty face crop for s={s}, x={x}, y={y}")
    return cv2.resize(face, (size, size))


def prealigned_crop(frame_bgr: np.ndarray, size: int = 224) -> np.ndarray:
    """Wav2Lip's LRS2 protocol: the whole frame is the face; resize it."""
    return cv2.resize(frame_bgr, (size, size))

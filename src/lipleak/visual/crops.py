"""The crops every visual metric shares (SPEC §3–§4: FID, SSIM, PSNR on the same crops).

``face``: the square of side round(1.1·max(w, h)) centred on the GT frame's face box
(``lipleak.faces.landmarks.square_box``, the PFLD crop), zero-padded where it leaves the
frame, resized to ``size``×``size``. The generated frame is cut with the GT frame's box,
so both crops cover the same pixels. ``full``: the whole frame resized to
``size``×``size`` (aspect ratio not kept). Resizing is ``cv2.INTER_AREA``: area
averaging when shrinking (no aliasing from large faces), bilinear when enlarging.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..faces.landmarks import crop_square, square_box

INTERP = cv2.INTER_AREA


def face_crop(
    frame: np.ndarray, box: np.ndarray, mode: str = "face", size: int = 224
) -> np.ndarray:
    """BGR uint8 ``size``×``size``×3 crop of ``frame`` (``box``: x1, y1, x2, y2 of the GT face)."""
    if mode == "full":
        src = frame
    else:
        src = crop_square(frame, *square_box(box))
    return np.ascontiguousarray(cv2.resize(src, (size, size), interpolation=INTERP))


def match_size(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """A generated frame resized to the GT frame size (unchanged when it already is)."""
    if frame.shape[:2] == (height, width):
        return frame
    return np.ascontiguousarray(cv2.resize(frame, (width, height), interpolation=INTERP))

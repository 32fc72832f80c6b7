"""68-point facial landmarks with PFLD (``pfld_68.onnx``, SPEC §6).

The model (cunjian/pytorch_face_landmark ``pfld.onnx``) takes a 112×112 RGB face crop in
[0, 1] (input ``input``, N×3×112×112) and returns 136 values: 68 × (x, y) relative to
the crop, 0..1, in the 300-W order (jaw 0–16, brows 17–26, nose 27–35, eyes 36–47,
outer lips 48–59, inner lips 60–67).

Crop (as that repository's PFLD demo does around a detector box): a square of side
``round(1.1 · max(w, h))`` pixels centred on the box centre, zero-padded where it leaves
the frame, resized to 112×112 with ``cv2.resize`` (bilinear). Landmarks are mapped back
to frame pixels as ``corner + relative · side``. Give the generated frame the GT frame's
box to get both landmark sets in the GT crop's pixel coordinates (SPEC §6).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..runtime.batching import BatchedModel

SIZE = 112
CROP_SCALE = 1.1
N_POINTS = 68
MODEL_NAME = "PFLD 68-point (cunjian/pytorch_face_landmark pfld.onnx)"


def square_box(box: np.ndarray, scale: float = CROP_SCALE) -> tuple[int, int, int]:
    """(x0, y0, side): the square crop, in integer frame pixels, around an x1,y1,x2,y2 box."""
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, np.float64)[:4])
    side = int(round(scale * max(x2 - x1, y2 - y1)))
    if not np.isfinite(side) or side < 2:
        raise InputError(None, f"face box too small or invalid: {box}", "bad_box")
    return int(round((x1 + x2 - side) / 2)), int(round((y1 + y2 - side) / 2)), side


def crop_square(frame: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """frame[y0:y0+side, x0:x0+side], zero where the square leaves the frame."""
    h, w = frame.shape[:2]
    out = np.zeros((side, side) + frame.shape[2:], frame.dtype)
    ya, yb = max(y0, 0), min(y0 + side, h)
    xa, xb = max(x0, 0), min(x0 + side, w)
    if ya < yb and xa < xb:
        out[ya - y0 : yb - y0, xa - x0 : xb - x0] = frame[ya:yb, xa:xb]
    return out


def preprocess(faces_bgr: Sequence[np.ndarray]) -> np.ndarray:
    """112×112 BGR uint8 crops → float32 N×3×112×112 RGB in [0, 1]."""
    out = np.empty((len(faces_bgr), 3, SIZE, SIZE), np.float32)
    for k, face in enumerate(faces_bgr):
        if not (
            isinstance(face, np.ndarray)
            and face.shape == (SIZE, SIZE, 3)
            and face.dtype == np.uint8
        ):
            raise InputError(
                None,
                f"expected a 112×112×3 uint8 crop, got "
                f"{getattr(face, 'dtype', None)} {getattr(face, 'shape', None)}",
                "bad_frame",
            )
        out[k] = face[:, :, ::-1].transpose(2, 0, 1)
    return out / np.float32(255)


class PFLD:
    """Frames + face boxes → N×68×2 landmarks in frame pixels."""

    name = MODEL_NAME

    def __init__(
        self,
        onnx_path: str | Path,
        backend: str = "auto",
        batch_size: int = 64,
        crop_scale: float = CROP_SCALE,
        concurrent: bool = False,
    ):
        self.batched = BatchedModel.open(
            onnx_path, backend, batch_size, concurrent, (3, SIZE, SIZE), "landmark"
        )
        self.runtime = self.batched.runtime
        self.fixed_batch, self.batch_size = self.batched.fixed_batch, self.batched.batch_size
        self.crop_scale = crop_scale

    def predict_crops(self, faces_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """112×112 BGR crops → N×68×2 float32, relative to the crop (0..1)."""
        x = preprocess(faces_bgr)
        return self.batched.run_rows(x, (0, N_POINTS * 2)).reshape(len(x), N_POINTS, 2)

    def landmarks(
        self, frames_bgr: Sequence[np.ndarray], boxes: Sequence[np.ndarray]
    ) -> np.ndarray:
        """BGR frames and one x1,y1,x2,y2 face box each → N×68×2 float64 frame pixels."""
        if len(frames_bgr) != len(boxes):
            raise InputError(
                None, f"{len(frames_bgr)} frames but {len(boxes)} boxes", "frame_mismatch"
            )
        squares = [square_box(b, self.crop_scale) for b in boxes]
        crops = [
            cv2.resize(crop_square(f, *sq), (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
            for f, sq in zip(frames_bgr, squares, strict=True)
        ]
        rel = self.predict_crops(crops).astype(np.float64)
        corner = np.array([[sq[0], sq[1]] for sq in squares], np.float64).reshape(-1, 1, 2)
        side = np.array([sq[2] for sq in squares], np.float64).reshape(-1, 1, 1)
        return corner + rel * side

    def describe(self):
        return self.runtime.describe()

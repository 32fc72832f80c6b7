"""Shot boundaries as syncnet_python finds them before tracking faces (SPEC §10).

The reference (``run_pipeline.py`` ``scene_detect``) runs PySceneDetect's
``ContentDetector()`` with its defaults through a ``SceneManager`` on its 25-fps
re-encode. We run the same detector class, from the pinned scenedetect release, on this
project's own 25-fps frames (one decode for faces and shots), through its per-frame API
``process_frame``; what the ``SceneManager`` adds around it is reproduced here: the
automatic downscale (``compute_downscale_factor`` of the larger frame side, then
``cv2.resize`` to the rounded size with its default bilinear interpolation) and the
frame numbering (0 for the first frame, cuts are the first frame of a new shot).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import LipleakError

# The reference's environment pins 0.6.7.1; 0.7 dropped VideoManager and may move cuts.
SCENEDETECT_VERSION = "0.6.7.1"
FPS = 25.0  # the frames shots are found in (every video is resampled to 25 fps first)


@dataclass(frozen=True)
class Shot:
    index: int
    start_frame: int  # 25-fps frame index
    end_frame: int  # inclusive
    tracked: bool  # long enough (>= min_track frames) for faces to be tracked in it
    start_s: float = 0.0  # time of its first frame's start, from the frame index at 25 fps
    end_s: float = 0.0  # time of its last frame's end
    # SMPTE labels of its first and last frame at the source's frame rate (drop-frame for
    # 29.97/59.94; ``lipleak.timecode``), filled in with the result (``at_rate``)
    start_tc: str = ""
    end_tc: str = ""

    def at_rate(self, src_fps: float) -> Shot:
        """This shot with its timecodes at the source's frame rate."""
        from dataclasses import replace

        from ..timecode import timecode

        return replace(
            self,
            start_tc=timecode(self.start_frame, src_fps),
            end_tc=timecode(self.end_frame, src_fps),
        )

    @classmethod
    def make(cls, index: int, start: int, end_excl: int, tracked: bool) -> Shot:
        return cls(index, start, end_excl - 1, tracked, start / FPS, end_excl / FPS)

    @property
    def n_frames(self) -> int:
        return self.end_frame - self.start_frame + 1


def _scenedetect():
    try:
        import scenedetect
        from scenedetect.detectors import ContentDetector
        from scenedetect.scene_manager import Interpolation, compute_downscale_factor
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise LipleakError(
            f"detect mode needs scenedetect=={SCENEDETECT_VERSION} (pip install "
            f"scenedetect=={SCENEDETECT_VERSION}): {exc}"
        ) from exc
    if scenedetect.__version__ != SCENEDETECT_VERSION:
        raise LipleakError(
            f"detect mode needs scenedetect=={SCENEDETECT_VERSION} (the reference's "
            f"release; others may place cuts elsewhere), found {scenedetect.__version__}"
        )
    return ContentDetector, Interpolation.LINEAR.value, compute_downscale_factor


def describe() -> str:
    """What finds the shots, for the settings hash."""
    return f"scenedetect {SCENEDETECT_VERSION} ContentDetector() defaults, auto downscale"


class ShotDetector:
    """Feed every 25-fps frame in order (``push``); ``shots`` after the last one."""

    def __init__(self):
        content_detector, self._interpolation, self._factor_of = _scenedetect()
        self._detector = content_detector()
        self._cuts: list[int] = []
        self._n = 0
        self._size: tuple[int, int] | None = None  # (w, h) after the downscale
        self._finished = False

    @property
    def n_frames(self) -> int:
        return self._n

    def _small(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        factor = self._factor_of(max(w, h))
        if factor <= 1.0:
            return frame
        size = (max(1, round(w / factor)), max(1, round(h / factor)))
        return cv2.resize(frame, size, interpolation=self._interpolation)

    def push(self, frame: np.ndarray) -> None:
        if self._finished:
            raise RuntimeError("ShotDetector.push after shots()")
        self._cuts += self._detector.process_frame(self._n, self._small(frame))
        self._n += 1

    def cuts(self) -> list[int]:
        """The frames that start a new shot, as ``SceneManager.get_cut_list`` gives them."""
        if not self._finished:
            self._cuts += self._detector.post_process(max(self._n - 1, 0))
            self._finished = True
        return sorted(set(self._cuts))

    def shots(self, min_track: int) -> list[Shot]:
        """The shots (a video without a cut is one), each marked tracked when it spans at
        least ``min_track`` frames (the reference's ``shot[1] - shot[0] >= min_track``)."""
        return shots_from_cuts(self.cuts(), self._n, min_track)


def shots_from_cuts(cuts: list[int], n_frames: int, min_track: int) -> list[Shot]:
    bounds = [0, *[c for c in cuts if 0 < c < n_frames], n_frames]
    return [
        Shot.make(i, a, b, b - a >= min_track)
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
        if b > a
    ]


def whole_video(n_frames: int) -> list[Shot]:
    """The one shot of a prealigned video (a face clip by definition) or of ``--shots none``."""
    return [Shot.make(0, 0, n_frames, True)] if n_frames > 0 else []

"""The frames a scorer reads, whichever way they are made.

Lossless frames and the bundled libavcodec's JPEG round trip come from ``video``; the
reference tool's round trip made by the user's own ``ffmpeg`` binary from ``ffmpeg_jpeg``,
which itself decodes through ``video``. This module sits above both so that neither
imports the other back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from . import video
from .ffmpeg_jpeg import iter_jpeg_frames


def iter_frames(
    path: str | Path,
    fps: float = video.TARGET_FPS,
    reference_frames: bool = False,
    ffmpeg: str | None = None,
) -> Iterator[np.ndarray]:
    """BGR uint8 frames at 25 fps, one decoded frame in memory at a time.

    ``reference_frames=True`` gives the JPEG frames of syncnet_python's ``ffmpeg ...
    %06d.jpg`` extraction: made by the ``ffmpeg`` binary given, or with None by the
    libavcodec PyAV bundles, in process.
    """
    if reference_frames and ffmpeg is not None:
        if fps != video.TARGET_FPS:
            raise ValueError("only 25 fps output is supported (SPEC §2)")
        return iter_jpeg_frames(path, ffmpeg)
    return video.iter_frames(path, fps, reference_frames)

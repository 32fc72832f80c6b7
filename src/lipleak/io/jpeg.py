"""The reference tool's JPEG round trip, in process (``--reference-frames``).

syncnet_python's SyncNetInstance.evaluate extracts frames with ``ffmpeg -y -i VIDEO -threads
1 -f image2 %06d.jpg`` and reads them back with ``cv2.imread`` (its run_pipeline.py adds
``-qscale:v 2`` for the detection frames: ``qscale=2``). With no quality option the CLI uses
the mjpeg encoder's rate control at the codec's default 200 kb/s (q between 2 and 31, chosen
per frame from the bits spent so far), full-range 4:2:0 (yuvj420p; newer ffmpeg says yuv420p
+ pc range, the same bytes), one encoder thread (the CLI forces 1 for MJPEG), time base
1/25, and converts the decoded frame to full range with libswscale's bicubic (the CLI's
default flags). Because rate control carries state from frame to frame, one
``MjpegRoundTrip`` must see a video's frames in order, and a fresh one is needed per video.

Measured against the ffmpeg 9 binary (imageio-ffmpeg): the JPEG bytes are identical apart
from the COM segment, which carries the libavcodec version string.
"""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np

DEFAULT_BIT_RATE = 200_000  # libavcodec's default "b" option, which the CLI leaves alone
FF_QP2LAMBDA = 118


class MjpegRoundTrip:
    """Encode frames one by one as the ffmpeg CLI's image2/mjpeg output, decode with cv2."""

    def __init__(
        self, fps: int = 25, sample_aspect_ratio: Fraction | None = None, qscale: int | None = None
    ):
        self.fps = fps
        # qscale=2 reproduces run_pipeline.py's detection frames (``-qscale:v 2``); None is
        # SyncNetInstance.evaluate's extraction (rate control at the default bit rate).
        self.qscale = qscale
        # SAR only changes the JFIF APP0 header (absent when unknown), never pixels.
        self.sar = sample_aspect_ratio
        self._enc = None
        self._size: tuple[int, int] | None = None
        self._pix_fmt: str | None = None
        self._n = 0

    def _open(self, width: int, height: int, pix_fmt: str):
        import av

        enc = av.CodecContext.create("mjpeg", "w")
        enc.width, enc.height = width, height
        enc.pix_fmt = pix_fmt
        enc.time_base = Fraction(1, self.fps)
        enc.framerate = Fraction(self.fps)
        if self.qscale is None:
            enc.bit_rate = DEFAULT_BIT_RATE
        else:  # what the CLI's -qscale:v sets: fixed quantiser, lambda = q * FF_QP2LAMBDA
            enc.options = {"flags": "+qscale", "global_quality": str(self.qscale * FF_QP2LAMBDA)}
        enc.thread_count = 1
        if self.sar:
            enc.sample_aspect_ratio = self.sar
        enc.open()
        self._enc, self._size, self._pix_fmt = enc, (width, height), pix_fmt

    def encode(self, frame) -> bytes:
        """One frame (``av.VideoFrame`` from the decoder, or BGR uint8 array) -> JPEG bytes.

        A decoded YUV frame is coded 4:2:0 as the CLI does for video input. A BGR array is
        coded 4:4:4, which is what the CLI picks for RGB input (e.g. png frames).
        """
        import av

        pix_fmt = "yuvj420p"
        if isinstance(frame, np.ndarray):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")
            pix_fmt = "yuvj444p"
        if self._enc is None:
            self._open(frame.width, frame.height, pix_fmt)
        elif (frame.width, frame.height, pix_fmt) != (*self._size, self._pix_fmt):
            raise ValueError("frame size or kind changed inside one video")
        yuv = frame.reformat(format=pix_fmt, interpolation="BICUBIC")
        yuv.pts, yuv.time_base = self._n, Fraction(1, self.fps)
        self._n += 1
        packets = self._enc.encode(yuv)
        if len(packets) != 1:  # mjpeg is intra-only without delay: one packet per frame
            raise RuntimeError(f"mjpeg encoder returned {len(packets)} packets for one frame")
        return bytes(packets[0])

    def __call__(self, frame) -> np.ndarray:
        """Round trip: BGR uint8 H×W×3 as ``cv2.imread`` reads the CLI's JPEG."""
        data = self.encode(frame)
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

"""The frames of one video for SyncNet: probed once, decoder chosen once, decoded per pass.

With ``decoder="auto"`` a GPU decode that fails before its first frame falls back to the
CPU decoder (logged), and from then on every pass over that video uses the CPU, so that
the result's ``decoder`` names what made all its frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import dali
from ..io import frames as io_frames
from ..io import video as cpu_video
from ..io.container import check_complete
from ..runtime.probe import probe_gpu


@dataclass
class VideoFrames:
    path: Path
    info: cpu_video.VideoInfo
    choice: dali.DecoderChoice
    reference_frames: bool
    ffmpeg: str | None = None  # the binary making the reference JPEGs; None: bundled
    asked: str = "cpu"  # the decoder the settings asked for: "cpu", "dali" or "auto"
    # why the GPU decoder was given up for this video ("auto" only), None while it holds
    fallback: str | None = field(default=None, compare=False)
    _gpu_passes: int = field(default=0, compare=False, repr=False)

    @classmethod
    def open(
        cls,
        path: Path,
        decoder: str,
        reference_frames: bool,
        ffmpeg: str | None = None,
        check_audio: bool = False,
    ) -> VideoFrames:
        """Probe ``path`` and pick its decoder.

        InputError for a file that is no video, and "decode_error" for a video stream cut
        off before the end its container states: checked here, before any frame is
        decoded, because every mode and decoder starts here and none reads to the end for
        certain (the prealigned scorer stops with the audio). ``check_audio`` checks the
        file's own audio stream in the same pass over its packets.
        """
        info = cpu_video.probe(path)
        check_complete(path, ("video", "audio") if check_audio else ("video",))
        # io does not look for GPUs itself; the (cached) probe is only worth asking when
        # DALI may be used at all.
        gpu = probe_gpu() if decoder != "cpu" else dali.NO_GPU_GIVEN
        choice = dali.choose_decoder(path, decoder, reference_frames, info, gpu)
        return cls(path, info, choice, reference_frames, ffmpeg, asked=decoder)

    @property
    def decoder(self) -> str:
        """What made the frames: "dali" or "cpu" (also after an "auto" fallback)."""
        return "cpu" if self.fallback is not None else self.choice.decoder

    def _fall_back(self, reason: str) -> None:
        self.fallback = reason

    def decode(self) -> Iterator[np.ndarray]:
        """One pass over the BGR frames at 25 fps; each call decodes the file again."""
        if self.decoder == "cpu":
            return io_frames.iter_frames(
                self.path, fps=25.0, reference_frames=self.reference_frames, ffmpeg=self.ffmpeg
            )
        # Only "auto", and only before any frame of this video came from the GPU, may fall
        # back: a second pass (detect mode) on the CPU would crop GPU-detected faces from
        # CPU frames. "dali" fails instead of switching quietly.
        may_fall_back = self.asked == "auto" and self._gpu_passes == 0
        self._gpu_passes += 1
        return dali.iter_frames(
            self.path,
            decoder="auto" if may_fall_back else "dali",
            reference_frames=self.reference_frames,
            ffmpeg=self.ffmpeg,
            choice=self.choice,
            info=self.info,
            on_fallback=self._fall_back,
        )

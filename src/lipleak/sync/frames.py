"""The frames of one video for SyncNet: probed once, decoder chosen once, decoded per pass."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import dali
from ..io import frames as io_frames
from ..io import video as cpu_video
from ..io.container import check_complete
from ..runtime.probe import probe_gpu


@dataclass(frozen=True)
class VideoFrames:
    path: Path
    info: cpu_video.VideoInfo
    choice: dali.DecoderChoice
    reference_frames: bool
    ffmpeg: str | None = None  # the binary making the reference JPEGs; None: bundled

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
        return cls(path, info, choice, reference_frames, ffmpeg)

    @property
    def decoder(self) -> str:
        return self.choice.decoder

    def decode(self) -> Iterator[np.ndarray]:
        """One pass over the BGR frames at 25 fps; each call decodes the file again."""
        if self.choice.decoder == "cpu":
            return io_frames.iter_frames(
                self.path, fps=25.0, reference_frames=self.reference_frames, ffmpeg=self.ffmpeg
            )
        # decoder="dali": a GPU failure is an error, not a quiet switch to the CPU, so that
        # the result's ``decoder`` names what made the frames.
        return dali.iter_frames(
            self.path,
            decoder="dali",
            reference_frames=self.reference_frames,
            ffmpeg=self.ffmpeg,
            choice=self.choice,
            info=self.info,
        )

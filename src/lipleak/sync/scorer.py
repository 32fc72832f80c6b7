"""One video in, LSE-C / LSE-D out (SPEC §2): decode → crops → SyncNet → offset search.

Frames stream from the decoder straight into fixed-size SyncNet batches, so memory is
bounded by the batch size; only the 1024-d embeddings (4 KiB per frame and tower) are
kept for the offset search. The video is probed and its decoder chosen once
(``lipleak.sync.frames``); ``detect`` mode decodes twice (detect + track, then crop)
rather than holding frames.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..export.syncnet_shapes import SAMPLES_PER_FRAME, WINDOW_FRAMES
from ..io.audio import array_chunks, sample_range
from ..io.container import check_complete
from .audio import AudioWindows
from .frames import VideoFrames
from .search import WindowStream
from .settings import SyncSettings


@dataclass
class TrackSync:
    start_frame: int
    end_frame: int  # inclusive
    n_windows: int
    offset: int
    lse_c: float
    lse_d: float
    mdist: list[float] = field(default_factory=list)
    fconf: list[float] = field(default_factory=list)


def aggregate_tracks(tracks: list[TrackSync], rule: str) -> tuple[int, float, float]:
    """(offset, LSE-C, LSE-D) of a video from its tracks.

    ``weighted-mean``: LSE-C/D averaged with each track's frame count as weight, the
    longest track's offset. ``best``: MoChaBench's per-video rule, the track with the
    highest LSE-C (syncnet_python's confidence) with its own LSE-D and offset, so the
    three numbers come from one track. ``longest``: the longest track's numbers. Ties go
    to the earliest track (tracks are in the order they start).
    """
    if not tracks:
        raise ValueError("no tracks to aggregate")
    lengths = np.array([t.end_frame - t.start_frame + 1 for t in tracks], np.float64)
    longest = tracks[int(np.argmax(lengths))]
    if rule == "weighted-mean":
        return (
            longest.offset,
            float(np.average([t.lse_c for t in tracks], weights=lengths)),
            float(np.average([t.lse_d for t in tracks], weights=lengths)),
        )
    if rule == "best":
        chosen = tracks[int(np.argmax([t.lse_c for t in tracks]))]
    elif rule == "longest":
        chosen = longest
    else:
        raise ValueError(f"unknown track rule {rule!r}")
    return chosen.offset, chosen.lse_c, chosen.lse_d


@dataclass
class VideoSync:
    video: str
    audio_source: str  # "container", a file path, or "array"
    n_frames: int  # frames at 25 fps that were scored
    src_fps: float
    resampled: bool  # converted to 25 fps first
    # "lossless", "reference-jpeg" (an ffmpeg binary: provenance's settings.ffmpeg says
    # which) or "reference-jpeg-bundled" (none found: PyAV's libavcodec, in process)
    frame_path: str
    tracks: list[TrackSync]
    # made from the tracks by ``track_rule`` (see ``aggregate_tracks``)
    offset: int
    lse_c: float
    lse_d: float
    decoder: str = "cpu"  # which decoder produced the frames ("cpu" = PyAV, or "dali")
    track_rule: str = "weighted-mean"
    # the video's own audio put on its timeline (``io.timeline``): seconds of silence put
    # before it (> 0) or of audio cut from its start (< 0); 0 for --audio files and arrays
    audio_shift_s: float = 0.0
    # the video's own audio stream that was scored (``io.streams.AudioStream.as_dict``:
    # number, index, language, codec); None for --audio files and arrays
    audio_stream: dict | None = None

    def to_dict(self, verbose: bool = False) -> dict:
        d = asdict(self)
        if not verbose:
            for t in d["tracks"]:
                t.pop("mdist", None)
                t.pop("fconf", None)
        return d


class SyncScorer:
    """Scores videos with one set of settings; models are loaded once."""

    def __init__(self, settings: SyncSettings | None = None, concurrent: bool = False):
        """``concurrent``: several threads will score at once through ``sharing`` copies
        (the face detector is opened for it, ``runtime.open_model``); changes no number."""
        from ..models.syncnet import SyncNet

        # valid: SyncSettings checks itself; with_ffmpeg finds the reference JPEG encoder
        self.settings = (settings or SyncSettings()).with_ffmpeg()
        self.syncnet = SyncNet.load(
            self.settings.syncnet,
            backend=self.settings.backend,
            precision=self.settings.precision,
            max_batch=self.settings.batch_size,
        )
        self._detector = None
        self._concurrent = concurrent

    @property
    def detector(self):
        if self._detector is None:
            from ..models import registry

            name = self.settings.detector
            spec = registry.MODELS.get(name)
            if (spec.filename if spec else name).endswith(".pth"):
                # an S3FD checkpoint (registry name or file): its ONNX export, made on first use
                from ..faces.s3fd import S3FD
                from ..models.onnx_files import s3fd_onnx

                path, self._detector_sha = s3fd_onnx(name)
                self._detector = S3FD(
                    path, backend=self.settings.backend, concurrent=self._concurrent
                )
            else:
                from ..faces.scrfd import SCRFD
                from ..models import store

                path = store.locate(name)
                self._detector_sha = store.verify(name, path)
                self._detector = SCRFD(
                    path, backend=self.settings.backend, concurrent=self._concurrent
                )
        return self._detector

    def describe(self) -> dict:
        """Everything that produced a number: models with sha256, versions, settings."""
        import av
        import cv2

        models = {"syncnet": self.syncnet.describe()}
        if self.settings.mode == "detect":
            self.detector  # noqa: B018 - loads it so its sha256 is known
            models["detector"] = {"name": self.settings.detector, "sha256": self._detector_sha}
        return {
            "package": "lipleak-fast",
            "version": __version__,
            "settings": self.settings.as_dict(),
            "settings_hash": self.settings.hash(),
            "models": models,
            "libraries": {"av": av.__version__, "opencv": cv2.__version__, "numpy": np.__version__},
        }

    def sharing(self, syncnet) -> SyncScorer:
        """This scorer with ``syncnet`` in place of its own (the pipeline's shared tower).

        Settings and the detector stay shared; the detector is loaded here, before any
        worker thread could race to load it.
        """
        if self.settings.mode == "detect":
            self.detector  # noqa: B018
        other = copy.copy(self)
        other.syncnet = syncnet
        return other

    @property
    def frame_path(self) -> str:
        if not self.settings.reference_frames:
            return "lossless"
        return "reference-jpeg" if self.settings.ffmpeg_path else "reference-jpeg-bundled"

    # -- inputs ---------------------------------------------------------------------
    def _audio(self, video: Path, audio, stream=None):
        """(a function giving the audio samples as a fresh chunk iterator, its label, the
        shift that put the video's own audio on its timeline, the stream it is: ``stream``
        or, for None, ffmpeg's choice, ``io.streams.choose``).

        Audio is streamed, not loaded: memory does not grow with the clip's length.
        """
        from ..io.audio import iter_audio
        from ..io.streams import choose
        from ..io.timeline import audio_shift

        if isinstance(audio, np.ndarray):
            if audio.ndim != 1 or audio.dtype != np.int16:
                raise InputError(None, "audio array must be 1-D int16 at 16 kHz", "bad_input")
            return lambda: array_chunks(audio), "array", 0, None
        # The audio that will be read is checked as the video is: the streamed reader may
        # stop before a cut (detect mode reads the tracks' stretches only). The video's own
        # track was checked by VideoFrames.open in its pass; an --audio file is checked
        # here, and an audio track that is not used may be anything.
        if audio is None:
            chosen = stream if stream is not None else choose(video)
            shift = audio_shift(video, chosen.number)
            return (
                lambda: iter_audio(video, shift=shift, stream=chosen.number),
                "container",
                shift,
                chosen,
            )
        source = Path(audio)
        check_complete(source, ("audio",))
        return lambda: iter_audio(source), str(audio), 0, None

    # -- scoring --------------------------------------------------------------------
    def score(self, video: str | Path, audio=None, stream=None) -> VideoSync:
        """LSE-C / LSE-D of one video against its own audio track (``stream``, an
        ``io.streams.AudioStream``; None: the one ffmpeg picks) or ``audio``."""
        video = Path(video)
        s = self.settings
        frames = VideoFrames.open(
            video, s.decoder, s.reference_frames, s.ffmpeg_path or None, check_audio=audio is None
        )
        chunks, audio_source, shift, chosen = self._audio(video, audio, stream)
        whole = AudioWindows(chunks())
        try:
            if not whole.has_frames(WINDOW_FRAMES + 1):
                raise InputError(
                    video,
                    f"too short: {whole.n_samples / 16000:.2f} s of audio; "
                    "SyncNet needs more than 0.2 s (5 frames)",
                    "too_short",
                )
            if self.settings.mode == "prealigned":
                tracks, n_frames = self._score_prealigned(frames, whole)
            else:  # each track reads its own stretch of the audio
                whole.close()
                tracks, n_frames = self._score_detect(frames, chunks)
        finally:
            whole.close()
        offset, lse_c, lse_d = aggregate_tracks(tracks, s.tracks)
        return VideoSync(
            video=str(video),
            audio_source=audio_source,
            n_frames=n_frames,
            src_fps=float(frames.info.src_fps),
            resampled=bool(frames.info.needs_resample),
            frame_path=self.frame_path,
            tracks=tracks,
            offset=offset,
            lse_c=lse_c,
            lse_d=lse_d,
            decoder=frames.decoder,
            track_rule=s.tracks,
            audio_shift_s=float(shift),
            audio_stream=None if chosen is None else chosen.as_dict(),
        )

    def _track_result(self, video: Path, stream: WindowStream, start: int, end: int) -> TrackSync:
        r = stream.result()
        if r is None:
            raise InputError(
                video,
                f"too short: {end - start + 1} frames; SyncNet needs at "
                "least 6 frames (0.24 s) of video and audio",
                "too_short",
            )
        return TrackSync(
            start_frame=start,
            end_frame=end,
            n_windows=stream.windows,
            offset=int(r["offset"]),
            lse_c=float(r["lse_c"]),
            lse_d=float(r["lse_d"]),
            mdist=[float(x) for x in r["mdist"]],
            fconf=[float(x) for x in r["fconf"]],
        )

    def _score_prealigned(self, frames: VideoFrames, audio: AudioWindows):
        from ..faces.crop import prealigned_crop

        video = frames.path
        stream = WindowStream(self.syncnet, audio, self.settings.vshift, self.settings.batch_size)
        n_frames = 0
        for frame in frames.decode():
            n_frames += 1
            stream.push(prealigned_crop(frame))
            if stream.done:
                break  # the audio ends here: later frames cannot enter any window
        return [self._track_result(video, stream, 0, n_frames - 1)], n_frames

    def _score_detect(self, frames: VideoFrames, chunks):
        """Two decoding passes (detect and track, then crop) rather than holding frames."""
        from ..faces.crop import syncnet_crop
        from ..faces.track import track_faces

        s = self.settings
        video = frames.path
        detections = [self.detector.detect(frame) for frame in frames.decode()]
        n_frames = len(detections)
        tracks = track_faces(
            detections,
            num_failed_det=s.num_failed_det,
            min_track=s.min_track,
            min_face_size=s.min_face_size,
        )
        if not tracks:
            raise InputError(
                video,
                f"no face track: no face seen for more than {s.min_track} "
                f"frames with a mean size above {s.min_face_size:g} px "
                f"({n_frames} frames decoded)",
                "no_face",
            )
        streams = []  # each track reads its own stretch of the audio, streamed
        try:
            for t in tracks:
                start, end = int(t.frames[0]), int(t.frames[-1])
                seg = AudioWindows(
                    sample_range(chunks(), start * SAMPLES_PER_FRAME, (end + 1) * SAMPLES_PER_FRAME)
                )
                streams.append(
                    (t, start, end, seg, WindowStream(self.syncnet, seg, s.vshift, s.batch_size))
                )
            for idx, frame in enumerate(frames.decode()):
                for t, start, end, _, stream in streams:
                    if start <= idx <= end and not stream.done:
                        i = idx - start
                        stream.push(syncnet_crop(frame, t.s[i], t.x[i], t.y[i], s.crop_scale))
                if all(st.done or idx >= end for _, _, end, _, st in streams):
                    break
            results = [
                self._track_result(video, st, start, end) for _, start, end, _, st in streams
            ]
        finally:
            for *_, seg, _ in streams:
                seg.close()
        return results, n_frames

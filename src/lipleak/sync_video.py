"""One video in, LSE-C / LSE-D out (SPEC §2): decode → crops → SyncNet → offset search.

Frames stream from the decoder straight into fixed-size SyncNet batches, so memory is
bounded by the batch size; only the 1024-d embeddings (4 KiB per frame and tower) are
kept for the offset search. ``detect`` mode decodes twice (detect + track, then crop)
rather than holding frames.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import __version__, _core
from .errors import InputError
from .metrics import sync as syncm
from .settings import HashedSettings

# Settings that do not change any number (batch size, backend) are kept out of the hash so
# that reruns with another batch size reuse finished results.
_NOT_HASHED = ("batch_size", "backend", "decoder")


@dataclass(frozen=True)
class SyncSettings(HashedSettings):
    NOT_HASHED = _NOT_HASHED

    mode: str = "prealigned"  # "prealigned" (full frame -> 224x224) or "detect"
    reference_frames: bool = False  # reproduce the reference tool's JPEG round trip
    vshift: int = 15
    min_track: int = 100
    min_face_size: float = 100.0
    crop_scale: float = 0.4
    num_failed_det: int = 25
    detector: str = "scrfd_500m"
    syncnet: str = "syncnet_v2"
    precision: str = "fp32"  # "fp16" only on TensorRT; it moves numbers, so it is hashed
    batch_size: int = 32
    backend: str = "auto"
    decoder: str = "auto"  # "auto" (DALI when usable, else CPU), "cpu", "dali"



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


@dataclass
class VideoSync:
    video: str
    audio_source: str  # "container", a file path, or "array"
    n_frames: int  # frames at 25 fps that were scored
    src_fps: float
    resampled: bool  # converted to 25 fps first
    frame_path: str  # "lossless" or "reference-jpeg"
    tracks: list[TrackSync]
    offset: int  # offset of the longest track
    lse_c: float  # frame-weighted mean over tracks
    lse_d: float
    decoder: str = "cpu"  # which decoder produced the frames ("cpu" = PyAV, or "dali")

    def to_dict(self, verbose: bool = False) -> dict:
        d = asdict(self)
        if not verbose:
            for t in d["tracks"]:
                t.pop("mdist", None)
                t.pop("fconf", None)
        return d



class _StreamingSearch:
    """Offset search fed batch by batch, so memory does not grow with video length.

    Row i of the distance matrix needs audio embeddings i-vshift .. i+vshift; it is final
    once video window i+vshift exists (then all those audio rows are real, not padding),
    or when the stream ends (rows past the last window are the zero padding). Rows are
    computed by the core's ``shift_distances`` with ``row0``, which gives bit for bit the
    rows of the one-shot search; only the N x (2*vshift+1) distances are kept.
    """

    def __init__(self, syncnet, audio: syncm.AudioWindows, vshift: int, batch_size: int):
        self.syncnet = syncnet
        self.vshift = vshift
        self.batch_size = batch_size
        self.audio = audio
        self.v = np.empty((0, 1024), np.float32)  # pending video rows [v0, n_video)
        self.v0 = 0
        self.a = np.empty((0, 1024), np.float32)  # audio rows [a0, a0 + len(a))
        self.a0 = 0
        self.n_video = 0
        self.rows: list[np.ndarray] = []

    def _audio_rows(self, hi: int) -> None:
        """Make sure audio embeddings exist up to row ``hi`` (exclusive)."""
        while self.a0 + len(self.a) < hi:
            lo = self.a0 + len(self.a)
            n = min(self.batch_size, hi - lo)
            win = self.audio.windows(lo, lo + n)
            self.audio.release(lo + n)
            self.a = np.concatenate([self.a, self.syncnet.embed_audio(win)])

    def _finalize(self, upto: int, n_total: int | None) -> None:
        """Compute distance rows [v0, upto); ``n_total`` is the window count once known."""
        if upto <= self.v0:
            return
        hi = upto + self.vshift if n_total is None else min(n_total, upto + self.vshift)
        self._audio_rows(hi)
        lo = max(0, self.v0 - self.vshift)
        audio = self.a[lo - self.a0 : hi - self.a0]
        chunk = self.v[: upto - self.v0]
        self.rows.append(_core.shift_distances(chunk, audio, self.vshift, self.v0 - lo))
        self.v = self.v[upto - self.v0 :]
        self.v0 = upto
        keep = max(0, self.v0 - self.vshift) - self.a0  # audio rows no longer needed
        if keep > 0:
            self.a, self.a0 = self.a[keep:], self.a0 + keep

    def add(self, emb: np.ndarray) -> None:
        self.v = np.concatenate([self.v, emb])
        self.n_video += len(emb)
        self._finalize(self.n_video - self.vshift, None)

    def finish(self) -> dict:
        self._finalize(self.n_video, self.n_video)
        return _core.sync_stats(np.concatenate(self.rows))


class _WindowStream:
    """Turns consecutive 224x224 crops of one track into SyncNet lip embeddings.

    Window k (frames k..k+4) is emitted when frame k+5 arrives, which reproduces
    syncnet_python's count N = n_frames - 5; the audio caps it the same way (window k
    needs k + 6 frames of samples). Embeddings go straight into the streaming offset
    search; audio is read only as far as the windows reach.
    """

    def __init__(self, syncnet, audio: syncm.AudioWindows, vshift: int, batch_size: int):
        self.syncnet = syncnet
        self.audio = audio
        self.search = _StreamingSearch(syncnet, audio, vshift, batch_size)
        self.ring: deque[np.ndarray] = deque(maxlen=syncm.WINDOW_FRAMES + 1)
        self.batch = np.empty((batch_size, 3, syncm.WINDOW_FRAMES, 224, 224), np.float32)
        self.filled = 0
        self.windows = 0

    @property
    def done(self) -> bool:
        """No further window can be made: the audio ends before it."""
        return not self.audio.has_frames(self.windows + syncm.WINDOW_FRAMES + 1)

    def push(self, crop: np.ndarray) -> None:
        self.ring.append(crop)
        if len(self.ring) <= syncm.WINDOW_FRAMES or self.done:
            return
        syncm.lip_window(list(self.ring)[: syncm.WINDOW_FRAMES], self.batch[self.filled])
        self.filled += 1
        self.windows += 1
        if self.filled == len(self.batch):
            self.flush()

    def flush(self) -> None:
        if self.filled:
            self.search.add(self.syncnet.embed_lips(self.batch[: self.filled]))
            self.filled = 0

    def result(self) -> dict | None:
        """The offset search over all windows, or None when there were none."""
        self.flush()
        return self.search.finish() if self.windows else None


class SyncScorer:
    """Scores videos with one set of settings; models are loaded once."""

    def __init__(self, settings: SyncSettings | None = None):
        from .models.syncnet import SyncNet

        self.settings = settings or SyncSettings()
        if self.settings.mode not in ("prealigned", "detect"):
            raise ValueError(f"unknown mode {self.settings.mode!r}")
        self.syncnet = SyncNet.load(self.settings.syncnet, backend=self.settings.backend,
                                    precision=self.settings.precision,
                                    max_batch=max(self.settings.batch_size, 1))
        self._detector = None

    @property
    def detector(self):
        if self._detector is None:
            from .faces.scrfd import SCRFD
            from .models import store

            path = store.locate(self.settings.detector)
            self._detector_sha = store.verify(self.settings.detector, path)
            self._detector = SCRFD(path, backend=self.settings.backend)
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
            "libraries": {"av": av.__version__, "opencv": cv2.__version__,
                          "numpy": np.__version__},
        }

    # -- inputs ---------------------------------------------------------------------
    def _audio(self, video: Path, audio):
        """(a function giving the audio samples as a fresh chunk iterator, its label).

        Audio is streamed, not loaded: memory does not grow with the clip's length.
        """
        from .io.audio import iter_audio

        if audio is None:
            return lambda: iter_audio(video), "container"
        if isinstance(audio, np.ndarray):
            if audio.ndim != 1 or audio.dtype != np.int16:
                raise InputError(None, "audio array must be 1-D int16 at 16 kHz", "bad_input")
            return lambda: syncm.array_chunks(audio), "array"
        return lambda: iter_audio(Path(audio)), str(audio)

    def _decoder(self, video: Path, info) -> str:
        if self.settings.decoder == "cpu":
            return "cpu"
        from .io.dali import choose_decoder
        from .runtime.probe import probe_gpu

        self._choice = choose_decoder(video, self.settings.decoder,
                                      self.settings.reference_frames, info, probe_gpu())
        return self._choice.decoder

    def _frames(self, video: Path):
        """BGR frames at 25 fps: DALI on a GPU when it can decode this file, else PyAV."""
        if self._decoder_used == "cpu":
            from .io.video import iter_frames

            return iter_frames(video, fps=25.0, reference_frames=self.settings.reference_frames)
        from .io.dali import iter_frames

        return iter_frames(video, decoder="dali",
                           reference_frames=self.settings.reference_frames, choice=self._choice)

    # -- scoring --------------------------------------------------------------------
    def score(self, video: str | Path, audio=None) -> VideoSync:
        """LSE-C / LSE-D of one video against its own audio track or ``audio``."""
        from .io.video import probe

        video = Path(video)
        info = probe(video)
        self._decoder_used = self._decoder(video, info)
        chunks, audio_source = self._audio(video, audio)
        whole = syncm.AudioWindows(chunks())
        try:
            if not whole.has_frames(syncm.WINDOW_FRAMES + 1):
                raise InputError(video, f"too short: {whole.n_samples / 16000:.2f} s of audio; "
                                 "SyncNet needs more than 0.2 s (5 frames)", "too_short")
            if self.settings.mode == "prealigned":
                tracks, n_frames = self._score_prealigned(video, whole)
            else:  # each track reads its own stretch of the audio
                whole.close()
                tracks, n_frames = self._score_detect(video, chunks)
        finally:
            whole.close()
        weights = np.array([t.end_frame - t.start_frame + 1 for t in tracks], np.float64)
        longest = tracks[int(np.argmax(weights))]
        return VideoSync(
            video=str(video), audio_source=audio_source, n_frames=n_frames,
            src_fps=float(info.src_fps), resampled=bool(info.needs_resample),
            frame_path="reference-jpeg" if self.settings.reference_frames else "lossless",
            tracks=tracks, offset=longest.offset,
            lse_c=float(np.average([t.lse_c for t in tracks], weights=weights)),
            lse_d=float(np.average([t.lse_d for t in tracks], weights=weights)),
            decoder=self._decoder_used,
        )

    def _track_result(self, video: Path, stream: _WindowStream, start: int,
                      end: int) -> TrackSync:
        r = stream.result()
        if r is None:
            raise InputError(video, f"too short: {end - start + 1} frames; SyncNet needs at "
                             "least 6 frames (0.24 s) of video and audio", "too_short")
        return TrackSync(start_frame=start, end_frame=end, n_windows=stream.windows,
                         offset=int(r["offset"]), lse_c=float(r["lse_c"]),
                         lse_d=float(r["lse_d"]), mdist=[float(x) for x in r["mdist"]],
                         fconf=[float(x) for x in r["fconf"]])

    def _score_prealigned(self, video: Path, audio: syncm.AudioWindows):
        from .faces.crop import prealigned_crop

        stream = _WindowStream(self.syncnet, audio, self.settings.vshift,
                               self.settings.batch_size)
        n_frames = 0
        for frame in self._frames(video):
            n_frames += 1
            stream.push(prealigned_crop(frame))
            if stream.done:
                break  # the audio ends here: later frames cannot enter any window
        return [self._track_result(video, stream, 0, n_frames - 1)], n_frames

    def _score_detect(self, video: Path, chunks):
        from .faces.crop import syncnet_crop
        from .faces.track import track_faces

        s = self.settings
        detections = [self.detector.detect(frame) for frame in self._frames(video)]
        n_frames = len(detections)
        tracks = track_faces(detections, num_failed_det=s.num_failed_det,
                             min_track=s.min_track, min_face_size=s.min_face_size)
        if not tracks:
            raise InputError(video, f"no face track: no face seen for more than {s.min_track} "
                             f"frames with a mean size above {s.min_face_size:g} px "
                             f"({n_frames} frames decoded)", "no_face")
        streams = []  # each track reads its own stretch of the audio, streamed
        try:
            for t in tracks:
                start, end = int(t.frames[0]), int(t.frames[-1])
                seg = syncm.AudioWindows(syncm.sample_range(
                    chunks(), start * syncm.SAMPLES_PER_FRAME,
                    (end + 1) * syncm.SAMPLES_PER_FRAME))
                streams.append((t, start, end, seg,
                                _WindowStream(self.syncnet, seg, s.vshift, s.batch_size)))
            for idx, frame in enumerate(self._frames(video)):
                for t, start, end, _, stream in streams:
                    if start <= idx <= end and not stream.done:
                        i = idx - start
                        stream.push(syncnet_crop(frame, t.s[i], t.x[i], t.y[i], s.crop_scale))
                if all(st.done or idx >= end for _, _, end, _, st in streams):
                    break
            results = [self._track_result(video, st, start, end)
                       for _, start, end, _, st in streams]
        finally:
            for *_, seg, _ in streams:
                seg.close()
        return results, n_frames

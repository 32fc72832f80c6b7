"""One video in, LSE-C / LSE-D out (SPEC §2): decode → crops → SyncNet → offset search.

Frames stream from the decoder straight into fixed-size SyncNet batches, so memory is
bounded by the batch size; only the 1024-d embeddings (4 KiB per frame and tower) are
kept for the offset search. The video is probed and its decoder chosen once
(``lipleak.sync.frames``); ``detect`` mode decodes twice (detect + track, then crop)
rather than holding frames.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..export.syncnet_shapes import SAMPLES_PER_FRAME, WINDOW_FRAMES
from ..io.audio import array_chunks
from ..io.container import check_complete
from ..io.tape import ChunkTape
from ..malloc import trim
from .audio import AudioWindows
from .checkpoint import Checkpoint
from .frames import VideoFrames
from .search import WindowStream
from .segments import Segment, no_face_segments, track_segments, windows_for
from .settings import SyncSettings
from .timeline import build_timeline


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
    shot: int = 0  # the shot it lies in (``VideoSync.shots``); tracks never cross a cut
    segments: list[Segment] = field(default_factory=list)  # SPEC §11
    # the offset search's rows d[i, s] (N x S) and the audio energy per frame of the track's
    # stretch, from which the segments are made; None once they are, unless the scorer was
    # made with keep_rows (256 B per frame: 22 MB an hour of video); not in to_dict
    distances: np.ndarray | None = field(default=None, repr=False, compare=False)
    frame_energy: np.ndarray | None = field(default=None, repr=False, compare=False)


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


def fill_segments(tracks: list[TrackSync], src_fps: float, s: SyncSettings) -> None:
    """Fills the segments (SPEC §11) of each track that has none yet."""
    length, hop = windows_for(s.segment), windows_for(s.hop)
    for t in tracks:
        if not t.segments:  # a track has at least one window, so at least one segment
            t.segments = track_segments(
                t.distances,
                t.frame_energy,
                t.start_frame,
                length,
                hop,
                src_fps,
                s.min_segment_lse_c,
            )


def add_segments(
    tracks: list[TrackSync], n_frames: int, src_fps: float, s: SyncSettings
) -> list[Segment]:
    """Fills the tracks' segments (``fill_segments``); returns detect mode's no_face
    stretches."""
    fill_segments(tracks, src_fps, s)
    if s.mode != "detect":
        return []
    return no_face_segments(
        n_frames, [(t.start_frame, t.end_frame) for t in tracks], windows_for(s.segment), src_fps
    )


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
    # the shots of the video (``lipleak.faces.shots.Shot``): detect mode's cuts, else one
    shots: list = field(default_factory=list)
    # detect mode: stretches of at least half a segment that no track covers (SPEC §11)
    no_face: list[Segment] = field(default_factory=list)
    # global offset, drift, verdict and failing ranges under the settings' gate
    # (lipleak.sync.timeline.build_timeline); ``regate`` gives it under another
    timeline: dict | None = None
    # the video's own audio put on its timeline (``io.timeline``): seconds of silence put
    # before it (> 0) or of audio cut from its start (< 0); 0 for --audio files and arrays
    audio_shift_s: float = 0.0
    # the video's own audio stream that was scored (``io.streams.AudioStream.as_dict``:
    # number, index, language, codec); None for --audio files and arrays
    audio_stream: dict | None = None

    def to_dict(self, verbose: bool = False) -> dict:
        # asdict deep-copies every field: the per-frame rows, which are not output (22 MB
        # an hour of video), are left out before, not after
        lean = [replace(t, distances=None, frame_energy=None) for t in self.tracks]
        d = asdict(replace(self, tracks=lean))
        for t in d["tracks"]:
            t.pop("distances", None)
            t.pop("frame_energy", None)
            if not verbose:
                t.pop("mdist", None)
                t.pop("fconf", None)
        return d

    def regate(self, settings: SyncSettings) -> dict:
        """The timeline under ``settings``' gate and threshold; no rescoring. Only the
        timeline fields of ``settings`` are used; the segments' statuses follow it."""
        return regate_tracks(self.tracks, self.no_face, self.src_fps, settings)


def regate_tracks(tracks: list[TrackSync], no_face: list[Segment], src_fps: float, settings):
    tracks_segs = [[s.to_dict() for s in t.segments] for t in tracks]
    timeline = build_timeline(
        tracks_segs, [s.to_dict() for s in no_face], src_fps, settings.timeline_rule()
    )
    for t, segs in zip(tracks, tracks_segs):
        for seg, d in zip(t.segments, segs):
            seg.status = d["status"]
    return timeline


class SyncScorer:
    """Scores videos with one set of settings; models are loaded once."""

    def __init__(
        self, settings: SyncSettings | None = None, concurrent: bool = False, keep_rows=False
    ):
        """``concurrent``: several threads will score at once through ``sharing`` copies
        (the face detector is opened for it, ``runtime.open_model``); changes no number.
        ``keep_rows``: results keep each track's distance rows and audio energy
        (``TrackSync.distances``, ``frame_energy``); otherwise they are dropped once the
        track's segments are made (an hour of detect-mode video has ~500 tracks)."""
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
        self.keep_rows = keep_rows

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
    def score(
        self,
        video: str | Path,
        audio=None,
        stream=None,
        checkpoint: Checkpoint | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> VideoSync:
        """LSE-C / LSE-D of one video against its own audio track (``stream``, an
        ``io.streams.AudioStream``; None: the one ffmpeg picks) or ``audio``.

        ``checkpoint`` (``lipleak.sync.checkpoint``): the scoring state is saved there
        every ``checkpoint.every_frames`` frames, and a saved one is resumed (the frames
        before it are decoded again but not scored); the numbers are bit for bit those of
        an uninterrupted run. ``progress(done, total)`` is called as frames are scored:
        frames so far and the expected count (detect mode decodes the video twice: each
        pass counts).
        """
        video = Path(video)
        s = self.settings
        frames = VideoFrames.open(
            video, s.decoder, s.reference_frames, s.ffmpeg_path or None, check_audio=audio is None
        )
        chunks, audio_source, shift, chosen = self._audio(video, audio, stream)
        if progress is not None:
            passes = 1 if s.mode == "prealigned" else 2
            total = passes * frames.info.n_frames
            progress(0, total)
            progress = partial(_report, progress, total)
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
                from ..faces.shots import whole_video

                tracks, n_frames = self._score_prealigned(frames, whole, checkpoint, progress)
                shots = whole_video(n_frames)
            else:  # each track reads its own stretch of the audio
                whole.close()
                tracks, n_frames, shots = self._score_detect(frames, chunks, checkpoint, progress)
        finally:
            whole.close()
        return self.video_sync(frames, tracks, n_frames, shots, audio_source, shift, chosen)

    def video_sync(
        self, frames: VideoFrames, tracks, n_frames, shots, audio_source, shift, chosen
    ) -> VideoSync:
        """The result of a video from its scored tracks: the video's numbers by the track
        rule, the segments and timeline of SPEC §11, what made the frames and the audio."""
        s = self.settings
        offset, lse_c, lse_d = aggregate_tracks(tracks, s.tracks)
        src_fps = float(frames.info.src_fps)
        no_face = add_segments(tracks, n_frames, src_fps, s)
        if not self.keep_rows:
            for t in tracks:
                t.distances = t.frame_energy = None
        return VideoSync(
            video=str(frames.path),
            audio_source=audio_source,
            n_frames=n_frames,
            src_fps=src_fps,
            resampled=bool(frames.info.needs_resample),
            frame_path=self.frame_path,
            tracks=tracks,
            offset=offset,
            lse_c=lse_c,
            lse_d=lse_d,
            decoder=frames.decoder,
            track_rule=s.tracks,
            shots=[shot.at_rate(src_fps) for shot in shots],
            no_face=no_face,
            timeline=regate_tracks(tracks, no_face, src_fps, s),
            audio_shift_s=float(shift),
            audio_stream=None if chosen is None else chosen.as_dict(),
        )

    def _track_result(
        self, frames: VideoFrames, stream: WindowStream, start: int, end: int, shot: int = 0
    ) -> TrackSync:
        """A track's numbers and segments; its rows dropped then unless ``keep_rows``."""
        r = stream.result()
        result = track_sync(frames.path, r, start, end, stream.windows, stream.audio, shot)
        if isinstance(result, InputError):
            raise result
        fill_segments([result], float(frames.info.src_fps), self.settings)
        if not self.keep_rows:
            result.distances = result.frame_energy = None
        return result

    def _score_prealigned(self, frames: VideoFrames, audio: AudioWindows, checkpoint, progress):
        from ..faces.crop import prealigned_crop

        s = self.settings
        stream = WindowStream(
            self.syncnet, audio, s.vshift, s.batch_size, expected_frames=frames.info.n_frames
        )
        skip = 0
        saved = checkpoint.load() if checkpoint is not None else None
        if saved is not None and saved[0].get("kind") == "prealigned":
            skip = int(saved[0]["frame"])
            _restore_streams([stream], *saved, s.vshift)
        n_frames = 0
        for frame in frames.decode():
            n_frames += 1
            if n_frames <= skip:
                continue  # scored before the checkpoint
            stream.push(prealigned_crop(frame))
            if stream.done:
                break  # the audio ends here: later frames cannot enter any window
            if checkpoint is not None and checkpoint.due(n_frames):
                _save_streams(checkpoint, {"kind": "prealigned", "frame": n_frames}, [stream])
            if progress is not None:
                progress(n_frames)
        return [self._track_result(frames, stream, 0, n_frames - 1)], n_frames

    def detect_tracks(self, frames: VideoFrames, checkpoint=None, progress=None):
        """Detect mode's first pass: faces and shots on every frame, then faces tracked
        per shot (SPEC §10: no track crosses a cut; shots shorter than ``min_track``
        frames are listed without tracks, as the reference skips them).

        Returns (tracks as [(shot index, Track)], frames, shots, the loaded checkpoint
        or None, whether it was saved in the second pass). With a ``checkpoint`` the
        detections are saved as they come and a saved first pass is resumed.
        """
        from ..faces.detections import DetectionLog
        from ..faces.shots import ShotDetector, whole_video
        from ..faces.track import track_shots

        s = self.settings
        cutter = ShotDetector() if s.shots == "content" else None
        saved = checkpoint.load() if checkpoint is not None else None
        if saved is not None and saved[0].get("kind") != "detect":
            saved = None
        detections = DetectionLog()
        for part in _det_parts(saved[2]) if saved is not None else []:
            detections.extend(part)
        saved_dets = len(detections)
        pass2 = saved is not None and saved[0]["pass"] == 2
        # resumed in pass 2, only the cut detector sees the frames again
        for idx, frame in enumerate(frames.decode() if cutter is not None or not pass2 else ()):
            if cutter is not None:  # the cut detector is cheap: fed again from frame 0
                cutter.push(frame)
            if pass2 and idx + 1 >= len(detections):
                break  # pass 1 was done: only the cut detector had to see the frames again
            if idx < len(detections):
                continue
            detections.append(self.detector.detect(frame))
            n = len(detections)
            if checkpoint is not None and checkpoint.due(n):
                checkpoint.save(
                    {"kind": "detect", "pass": 1, "frame": n},
                    {},
                    _det_arrays(detections, saved_dets),
                )
                saved_dets = n
            if progress is not None:
                progress(n)
        n_frames = len(detections)
        shots = cutter.shots(s.min_track) if cutter is not None else whole_video(n_frames)
        tracks = track_shots(
            detections,
            shots,
            num_failed_det=s.num_failed_det,
            min_track=s.min_track,
            min_face_size=s.min_face_size,
        )
        if checkpoint is not None and not pass2:  # what pass 2 resumes from
            checkpoint.save(
                {"kind": "detect", "pass": 2, "frame": 0, "streams": []},
                {},
                _det_arrays(detections, saved_dets),
            )
        if not tracks:
            cut = f" in {len(shots)} shots" if len(shots) > 1 else ""
            raise InputError(
                frames.path,
                f"no face track: no face seen for more than {s.min_track} "
                f"frames{cut} with a mean size above {s.min_face_size:g} px "
                f"({n_frames} frames decoded)",
                "no_face",
            )
        return tracks, n_frames, shots, saved, pass2

    def _score_detect(self, frames: VideoFrames, chunks, checkpoint, progress):
        """Two decoding passes (detect faces and shots, then crop) rather than holding frames."""
        from ..faces.crop import syncnet_crop

        s = self.settings
        tracks, n_frames, shots, saved, pass2 = self.detect_tracks(frames, checkpoint, progress)
        # Only the crop path (size and centre per frame) is needed from here: an hour of
        # video has ~520 tracks, and their boxes, keypoints and scores (~150 B per frame)
        # would otherwise stay in memory to the end; each path is dropped once its track
        # is scored.
        paths = [(t.s, t.x, t.y) for _, t in tracks]
        spans = [(shot, int(t.frames[0]), int(t.frames[-1])) for shot, t in tracks]
        del tracks
        trim()  # what the first pass freed goes back before the second pass's buffers
        streams = []  # each track reads its own stretch of the audio, streamed ...
        tape = ChunkTape(chunks)  # ... from one pass over it (io.tape: not one per track)
        try:
            for _, start, end in spans:
                seg = AudioWindows(
                    tape.reader(start * SAMPLES_PER_FRAME, (end + 1) * SAMPLES_PER_FRAME)
                )
                streams.append(
                    (
                        start,
                        end,
                        seg,
                        WindowStream(
                            self.syncnet,
                            seg,
                            s.vshift,
                            s.batch_size,
                            expected_frames=end - start + 1,
                        ),
                    )
                )
            skip = 0
            if pass2 and saved[0]["streams"]:
                skip = int(saved[0]["frame"])
                _restore_streams(
                    [st[-1] for st in streams],
                    *saved,
                    s.vshift,
                    finished=[end < skip for _, end, _, _ in streams],
                )
            # A track's result and segments are made as it ends (None: not yet); its rows
            # are then dropped (``keep_rows``) once a checkpoint holds them all (``unsaved``)
            results: list[TrackSync | InputError | None] = [None] * len(streams)
            unsaved: list[int] = []

            def close(k: int) -> None:
                start, end, _, stream = streams[k]
                stream.finish()  # its last rows read the audio, then it is closed
                paths[k] = None
                try:
                    results[k] = self._track_result(frames, stream, start, end, spans[k][0])
                except InputError as exc:  # raised below, in track order
                    results[k] = exc
                if not self.keep_rows:
                    if checkpoint is None:
                        stream.release_rows()
                    else:
                        unsaved.append(k)

            for idx, frame in enumerate(frames.decode()):
                if idx < skip:
                    continue  # cropped and scored before the checkpoint
                for k, (start, end, _, stream) in enumerate(streams):
                    # a track's audio is not opened before its first frame (a long video
                    # has hundreds of tracks), and is closed once the track is scored
                    if results[k] is not None or idx < start:
                        continue
                    if idx <= end and not stream.done:
                        i = idx - start
                        size, x, y = paths[k]
                        stream.push(syncnet_crop(frame, size[i], x[i], y[i], s.crop_scale))
                    if idx >= end or stream.done:
                        close(k)
                if all(r is not None for r in results):
                    break
                if checkpoint is not None and checkpoint.due(idx + 1):
                    _save_streams(
                        checkpoint,
                        {"kind": "detect", "pass": 2, "frame": idx + 1},
                        [st[-1] for st in streams],
                    )
                    for k in unsaved:
                        streams[k][-1].release_rows()
                    unsaved.clear()
                if progress is not None:
                    progress(n_frames + idx + 1)  # detect mode decodes the video twice
            for k, r in enumerate(results):
                if r is None:  # the video ended before the track (a stated count too high)
                    close(k)
            for r in results:
                if isinstance(r, InputError):
                    raise r
        finally:
            for *_, seg, _ in streams:
                seg.close()
            tape.close()
        return results, n_frames, shots


def track_sync(
    video: Path, r: dict | None, start: int, end: int, windows: int, audio, shot: int = 0
) -> TrackSync | InputError:
    """A track's numbers from its offset search's result ``r`` (None: no window) and the
    audio stream that fed it (its per-frame energy makes the segments' loudness)."""
    if r is None:
        return InputError(
            video,
            f"too short: {end - start + 1} frames; SyncNet needs at "
            "least 6 frames (0.24 s) of video and audio",
            "too_short",
        )
    return TrackSync(
        start_frame=start,
        end_frame=end,
        n_windows=windows,
        offset=int(r["offset"]),
        lse_c=float(r["lse_c"]),
        lse_d=float(r["lse_d"]),
        mdist=[float(x) for x in r["mdist"]],
        fconf=[float(x) for x in r["fconf"]],
        shot=shot,
        distances=r["distances"],
        frame_energy=audio.frame_energy(),
    )


def _report(progress: Callable[[int, int], None], total: int, done: int) -> None:
    # a stated frame count can be off (VFR, a short stream): never report past the end
    progress(done, max(total, done))


# -- checkpoints (``lipleak.sync.checkpoint``) -------------------------------------------


def _save_streams(checkpoint: Checkpoint, meta: dict, streams: list[WindowStream]) -> None:
    """Save ``meta`` and every stream's state; each stream's new distance rows are appended."""
    arrays, appended, scalars = {}, {}, []
    for i, stream in enumerate(streams):
        state, rows = stream.state()
        scalars.append({k: int(v) for k, v in state.items() if not isinstance(v, np.ndarray)})
        arrays |= {f"s{i}/{k}": v for k, v in state.items() if isinstance(v, np.ndarray)}
        appended[f"s{i}/rows"] = rows
    checkpoint.save({**meta, "streams": scalars}, arrays, appended)


def _restore_streams(
    streams: list[WindowStream], meta, arrays, parts, vshift: int, finished=None
) -> None:
    """``finished[i]``: stream i's track had ended when the checkpoint was saved."""
    for i, stream in enumerate(streams):
        state = dict(meta["streams"][i])
        state |= {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(f"s{i}/")}
        rows = parts.get(f"s{i}/rows")
        stream.restore(
            state,
            np.concatenate(rows) if rows else np.empty((0, 2 * vshift + 1)),
            finished=bool(finished and finished[i]),
        )


def _det_arrays(log, start: int) -> dict[str, np.ndarray]:
    """The detections of frames ``start ..`` as checkpoint parts."""
    return {f"det/{k}": v for k, v in log.arrays(start).items()}


def _det_parts(parts: dict[str, list[np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """The saved detection parts, in order, as ``DetectionLog.arrays`` gave them."""
    names = [k[4:] for k in parts if k.startswith("det/")]
    n = len(parts.get("det/count", []))
    return [{k: parts[f"det/{k}"][i] for k in names} for i in range(n)]

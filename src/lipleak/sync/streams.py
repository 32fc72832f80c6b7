"""Every audio stream of one video against one decode and one lip-tower pass
(``sync --audio-stream all``; issue 24, item 2).

A dubbing master with N languages is N scores of the same pictures: the frames, crops and
lip embeddings do not depend on the audio, so they are made once and each embedding run
goes into N offset searches, one per stream (``MultiWindowStream``). Each search gets
exactly the windows its own audio covers, so every result equals ``SyncScorer.score``
of that stream alone, bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..export.syncnet_shapes import SAMPLES_PER_FRAME, WINDOW_FRAMES
from ..io.tape import ChunkTape
from .audio import AudioWindows
from .frames import VideoFrames
from .scorer import SyncScorer, VideoSync, track_sync
from .search import StreamingSearch

__all__ = ["MultiWindowStream", "score_streams"]


class MultiWindowStream:
    """``search.WindowStream`` for several audio signals of the same crops: one embedding
    per window, handed to each signal's offset search while its audio covers the window
    (window k needs k + 6 frames of samples, as in ``WindowStream.done``)."""

    def __init__(
        self,
        syncnet,
        audios: list[AudioWindows],
        vshift: int,
        batch_size: int,
        expected_frames: int = 0,
    ):
        self.syncnet = syncnet
        self.audios = audios
        expected = expected_frames - WINDOW_FRAMES  # sizes the searches' row buffers only
        self.searches = [StreamingSearch(syncnet, a, vshift, batch_size, expected) for a in audios]
        self.batch_size = batch_size
        self.frames: list[np.ndarray] = []
        self.first = 0  # the first window not yet embedded
        self.seen = 0
        self.windows = 0  # windows made (those any audio covers)
        self.covered = [0] * len(audios)  # windows each audio covers

    def _covers(self, i: int, k: int) -> bool:
        return self.covered[i] == k and self.audios[i].has_frames(k + WINDOW_FRAMES + 1)

    @property
    def done(self) -> bool:
        return not any(self._covers(i, self.windows) for i in range(len(self.audios)))

    def push(self, crop: np.ndarray) -> None:
        if self.done:
            return
        self.frames.append(crop)
        self.seen += 1
        if self.seen <= WINDOW_FRAMES:
            return
        k = self.windows
        for i in range(len(self.audios)):
            if self._covers(i, k):
                self.covered[i] = k + 1
        self.windows += 1
        if self.windows - self.first == self.batch_size:
            self.flush()

    def flush(self) -> None:
        n = self.windows - self.first
        if n:
            run = np.stack(self.frames[: n + WINDOW_FRAMES - 1])
            emb = self.syncnet.embed_lip_frames([run])
            for i, search in enumerate(self.searches):
                take = min(self.covered[i], self.windows) - self.first
                if take > 0:
                    search.add(emb[:take])
            del self.frames[:n]
            self.first = self.windows

    def results(self) -> list[dict | None]:
        """Each signal's offset search, None for one that covered no window."""
        self.flush()
        return [s.finish() if c else None for s, c in zip(self.searches, self.covered, strict=True)]


def score_streams(
    scorer: SyncScorer, video: str | Path, streams: list
) -> list[VideoSync | InputError]:
    """``scorer.score(video, stream=s)`` for every ``s`` in ``streams`` (``io.streams
    .AudioStream``), with one decode of the video and one lip-tower pass. A stream that
    cannot be scored is its InputError; one the whole video cannot (no video, no face)
    is raised."""
    video = Path(video)
    s = scorer.settings
    frames = VideoFrames.open(video, s.decoder, s.reference_frames, s.ffmpeg_path or None)
    sources = [scorer._audio(video, None, st) for st in streams]
    out: list[VideoSync | InputError | None] = [None] * len(streams)
    live = []
    for i, (chunks, _, _, _) in enumerate(sources):
        probe = AudioWindows(chunks())
        try:
            if not probe.has_frames(WINDOW_FRAMES + 1):
                out[i] = InputError(
                    video,
                    f"too short: {probe.n_samples / 16000:.2f} s of audio in "
                    f"{streams[i].label()}; SyncNet needs more than 0.2 s (5 frames)",
                    "too_short",
                )
            else:
                live.append(i)
        finally:
            probe.close()
    if live:
        fns = [sources[i][0] for i in live]
        per = (
            _detect(scorer, frames, fns) if s.mode == "detect" else _prealigned(scorer, frames, fns)
        )
        for i, (tracks, n_frames, shots) in zip(live, per, strict=True):
            if isinstance(tracks, InputError):
                out[i] = tracks
                continue
            _, label, shift, chosen = sources[i]
            out[i] = scorer.video_sync(frames, tracks, n_frames, shots, label, shift, chosen)
    return out  # type: ignore[return-value]


def _prealigned(scorer, frames, chunk_fns):
    """[(tracks or InputError, n_frames, shots)] per signal, prealigned mode (one shot)."""
    from ..faces.crop import prealigned_crop

    s = scorer.settings
    audios = [AudioWindows(fn()) for fn in chunk_fns]
    try:
        stream = MultiWindowStream(
            scorer.syncnet, audios, s.vshift, s.batch_size, frames.info.n_frames
        )
        n_frames = 0
        for frame in frames.decode():
            n_frames += 1
            stream.push(prealigned_crop(frame))
            if stream.done:
                break
        results = stream.results()
    finally:
        for a in audios:
            a.close()
    from ..faces.shots import whole_video

    out = []
    for i, r in enumerate(results):
        t = track_sync(frames.path, r, 0, n_frames - 1, stream.covered[i], audios[i])
        out.append((t if isinstance(t, InputError) else [t], n_frames, whole_video(n_frames)))
    return out


def _detect(scorer, frames, chunk_fns):
    """[(tracks or InputError, n_frames, shots)] per signal, detect mode: one detection
    pass (``SyncScorer.detect_tracks``: faces tracked per shot), then one crop pass
    feeding every track's multi-stream."""
    from ..faces.crop import syncnet_crop

    s = scorer.settings
    video = frames.path
    tracks, n_frames, shots, _, _ = scorer.detect_tracks(frames)
    streams = []
    tapes = [ChunkTape(fn) for fn in chunk_fns]  # each signal read once for every track
    try:
        for _, t in tracks:
            start, end = int(t.frames[0]), int(t.frames[-1])
            segs = [
                AudioWindows(tape.reader(start * SAMPLES_PER_FRAME, (end + 1) * SAMPLES_PER_FRAME))
                for tape in tapes
            ]
            streams.append(
                (
                    t,
                    start,
                    end,
                    segs,
                    MultiWindowStream(
                        scorer.syncnet, segs, s.vshift, s.batch_size, end - start + 1
                    ),
                )
            )
        for idx, frame in enumerate(frames.decode()):
            for t, start, end, _, st in streams:
                if start <= idx <= end and not st.done:
                    i = idx - start
                    st.push(syncnet_crop(frame, t.s[i], t.x[i], t.y[i], s.crop_scale))
            if all(st.done or idx >= end for _, _, end, _, st in streams):
                break
        per_track = [
            (shot, start, end, segs, st, st.results())
            for (shot, _), (_, start, end, segs, st) in zip(tracks, streams, strict=True)
        ]
    finally:
        for *_, segs, _ in streams:
            for seg in segs:
                seg.close()
        for tape in tapes:
            tape.close()
    out = []
    for i in range(len(chunk_fns)):
        results = [
            track_sync(video, rs[i], start, end, st.covered[i], segs[i], shot)
            for shot, start, end, segs, st, rs in per_track
        ]
        bad = next((r for r in results if isinstance(r, InputError)), None)
        out.append((bad if bad is not None else results, n_frames, shots))
    return out


# --- jobs of a volume run (``sync --audio-stream``) --------------------------------------


class StreamGroup:
    """Consecutive jobs of one video's audio streams, handed to one worker together."""

    def __init__(self, jobs: list):
        self.jobs = jobs
        self.video = jobs[0].video
        self.audio = None

    def check(self) -> None:
        self.jobs[0].check()


def expand(jobs: list, spec: int | str | None) -> list:
    """``jobs`` with ``spec`` (``io.streams.parse_spec``) applied to those scored against
    their video's own audio: N / lang:CODE set on each (resolved when scored, so a video
    without such a stream is a failed row naming the streams it has); ``all``: one job per
    audio stream, grouped. A video whose streams cannot be listed (no audio, not a video)
    stays one job, whose scoring then gives its failed row."""
    from dataclasses import replace

    from ..io.streams import ALL, audio_streams

    if spec is None:
        return jobs
    out = []
    for n, job in enumerate(jobs):
        if job.audio is not None:
            out.append(job)
        elif spec != ALL:
            out.append(replace(job, stream=spec))
        else:
            try:
                streams = audio_streams(job.video)
            except InputError:
                out.append(job)
                continue
            out += [replace(job, stream=s.number, group=n) for s in streams]
    return out


def group_streams(jobs):
    """``jobs`` with each run of consecutive jobs of one group as a ``StreamGroup``; reads
    one job ahead (jobs are decided one by one as the pipeline asks for them)."""
    pending: list = []
    for job in jobs:
        if pending and (job.group is None or job.group != pending[0].group):
            yield pending[0] if len(pending) == 1 else StreamGroup(pending)
            pending = []
        if job.group is None:
            yield job
        else:
            pending.append(job)
    if pending:
        yield pending[0] if len(pending) == 1 else StreamGroup(pending)


def score_job(scorer: SyncScorer, job, checkpoint=None):
    """[(job, VideoSync | InputError)]: a ``StreamGroup`` scored in one pass
    (``score_streams``), any other job as ``SyncScorer.score`` with its stream (and its
    ``checkpoint``, ``lipleak.sync.checkpoint``)."""
    from ..io.streams import choose

    if isinstance(job, StreamGroup):
        streams = [choose(job.video, j.stream) for j in job.jobs]
        return list(zip(job.jobs, score_streams(scorer, job.video, streams), strict=True))
    spec = getattr(job, "stream", None)
    stream = None if spec is None or job.audio is not None else choose(job.video, spec)
    return [(job, scorer.score(job.video, job.audio, stream=stream, checkpoint=checkpoint))]

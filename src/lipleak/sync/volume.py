"""``sync`` over many videos: skip what is done, score the rest, commit each row at once.

    run = VolumeRun(jobs, store, LocalExecutor(scorer, workers=2))
    counts = run.run(argv, on_row=print_row)

The driver (this module, in the calling process) is the only writer of the results store
(``lipleak.sync.results``). It decides per job, just before handing it out, whether the job
is done already: a row with the same key (video, audio), run hash (settings + model sha256)
and inputs hash (file names, sizes, modification times) exists. Whatever the executor gives
back (a ``VideoSync`` or the ``InputError`` of a video that cannot be scored) is committed
as one row in one transaction, so a run killed at any moment keeps every finished video and
a rerun does only the rest.

Executors: ``LocalExecutor`` (``SyncPipeline`` in this process) or a Ray executor
(``lipleak.protocol.distributed.SyncRayExecutor``); both have ``start() -> (run_hash,
provenance)``, ``run(jobs, commit)`` and ``close()``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .. import __version__
from ..errors import InputError
from .checkpoint import Checkpoint
from .pipeline import SyncPipeline
from .results import (
    RunLock,  # noqa: F401 - re-exported for the command
    SyncStore,
    lock_path,
    one_line,
    row_from_error,
    row_from_result,
    sync_inputs_hash,
)

Commit = Callable[[object, object], None]  # (job, VideoSync | InputError)


def run_hash(provenance: dict) -> str:
    """The hash a row is stored under: the settings that change numbers and every model's
    sha256, so that another checkpoint or setting is another row, never a mix."""
    models = {
        name: (m.get("checkpoint", m).get("sha256") if isinstance(m, dict) else None)
        for name, m in provenance["models"].items()
    }
    key = {"settings": provenance["settings_hash"], "models": models}
    for extra in ("avs", "pair"):  # only when used: other runs keep their hash and rows
        if extra in provenance:
            key[extra] = provenance[extra]["hash"]
    blob = json.dumps(key, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def avs_provenance(avs) -> dict:
    """What the run hash and the stored provenance say about AVS: its describe() and a
    hash of its settings and models."""
    desc = avs.describe()
    models = {
        "avhubert": desc["avhubert"]["checkpoint"]["sha256"],
        "detector": desc["detector"]["sha256"],
        "landmarks": desc["landmarks"]["sha256"],
        "mean_face": desc["mean_face"]["sha256"],
    }
    blob = json.dumps({"settings": avs.settings.hash(), "models": models}, sort_keys=True)
    return {"hash": hashlib.sha256(blob.encode()).hexdigest()[:16], **desc}


def hashed(desc: dict) -> dict:
    """``desc`` with a hash of itself (settings and model sha256 it names)."""
    blob = json.dumps(desc, sort_keys=True, default=str)
    return {"hash": hashlib.sha256(blob.encode()).hexdigest()[:16], **desc}


def gt_lpips(pair, job) -> float | InputError:
    """LPIPS of one job's video against its GT (``job.gt``)."""
    from pathlib import Path

    if job.gt is None or not Path(job.gt).is_file():
        gt = "none" if job.gt is None else f"{Path(job.gt).name}.* in {Path(job.gt).parent}"
        return InputError(job.video, f"no GT video ({gt})", "missing_gt")
    try:
        return pair.lpips(job.video, job.gt)
    except InputError as exc:
        return exc


def avs_u(avs, job) -> float | InputError:
    """AVS_u of one job's video with its audio (its own track without one)."""
    from ..io.audio import load_audio
    from ..io.streams import choose
    from ..io.timeline import audio_shift

    try:
        if job.audio is not None:
            return avs.score(job.video, load_audio(job.audio))["avs_u"]
        # the video's own audio stream on its timeline, as SyncNet scored it
        n = choose(job.video, getattr(job, "stream", None)).number
        audio = load_audio(job.video, shift=audio_shift(job.video, n), stream=n)
        return avs.score(job.video, audio)["avs_u"]
    except InputError as exc:
        return exc


class LocalExecutor:
    """Scores jobs in this process: ``workers`` threads around one shared SyncNet."""

    def __init__(self, scorer, workers: int = 2, avs=None, pair=None):
        self.scorer = scorer
        self.workers = workers
        self.avs = avs  # lipleak.avs.AVSScorer: AVS_u of each scored video, or None
        self.pair = pair  # lipleak.visual.pair.PairScorer: LPIPS against job.gt, or None
        self.pipeline: SyncPipeline | None = None
        # job -> its Checkpoint (VolumeRun sets it): long videos resume where they stopped
        self.checkpoint_for: Callable[[object], object] | None = None

    def start(self) -> tuple[str, dict]:
        provenance = self.scorer.describe()
        if self.avs is not None:
            provenance["avs"] = avs_provenance(self.avs)
        if self.pair is not None:
            provenance["pair"] = hashed(self.pair.describe())
        return run_hash(provenance), provenance

    def run(self, jobs: Iterable, commit: Commit) -> None:
        from .streams import group_streams

        with SyncPipeline(self.scorer, self.workers) as self.pipeline:
            # the streams of one video (--audio-stream all) go to one worker together
            for job, outcome in self.pipeline.run(group_streams(jobs), self.checkpoint_for):
                if not isinstance(outcome, InputError) and (self.avs or self.pair):
                    # AV-HuBERT and LPIPS run here, after SyncNet, one video at a time:
                    # their onnxruntime sessions use every core themselves
                    extras = {}
                    if self.avs is not None:
                        extras["avs_u"] = avs_u(self.avs, job)
                    if self.pair is not None:
                        extras["lpips"] = gt_lpips(self.pair, job)
                    outcome = (outcome, extras)
                commit(job, outcome)

    def close(self) -> None:
        pass


@dataclass
class Counts:
    scored: int = 0
    skipped: int = 0
    failed: int = 0  # of the videos scored in this run
    failures: list[str] = field(default_factory=list)


class VolumeRun:
    """One ``sync`` run over a list of jobs (``lipleak.sync.inputs.VideoJob``)."""

    def __init__(
        self,
        jobs: list,
        store: SyncStore,
        executor,
        retry_failed: bool = False,
        checkpoint_every: float | None = 60.0,
    ):
        """``checkpoint_every``: seconds of video between two checkpoints of a video being
        scored (``lipleak.sync.checkpoint``; executors with ``checkpoint_for``: the local
        one), None for none."""
        self.jobs = jobs
        self.store = store
        self.executor = executor
        self.retry_failed = retry_failed
        self.checkpoint_every = checkpoint_every
        self.hash: str | None = None
        self.provenance: dict | None = None
        self._in_hash: dict[tuple[str, str], str] = {}  # jobs handed out, not yet committed
        self._checkpoints: dict[tuple[str, str], Checkpoint] = {}

    def start(self) -> None:
        if self.hash is None:
            self.hash, self.provenance = self.executor.start()

    def pending(self, counts: Counts, on_skip: Callable[[object], None]) -> Iterator:
        """The jobs still to do, decided one by one as the executor asks for them."""
        for job in self.jobs:
            try:
                in_hash = sync_inputs_hash(job.video, job.audio, job.gt)
            except OSError as exc:
                # one file that cannot even be stat'ed is that video's failed row (its
                # scoring says why), never the end of the run; "?" is no hash: rescored
                in_hash = f"? {exc.strerror or type(exc).__name__}"
            # one indexed look-up per job (retry: a failed row is not done), so a retry
            # costs the same per job whatever the size of the store
            if self.store.is_done(job.key(), self.hash, in_hash, ok_only=self.retry_failed):
                counts.skipped += 1
                on_skip(job)
                continue
            # the row records the files as they were when their scoring was decided: one
            # changed while it was scored is scored again by the next run
            self._in_hash[job.key()] = in_hash
            if self.checkpoint_every is not None:
                self._checkpoints[job.key()] = Checkpoint(
                    self.store.path, job.key(), self.hash, in_hash, self.checkpoint_every
                )
            yield job

    def row(self, job, outcome) -> dict:
        extras: dict = {}
        if isinstance(outcome, tuple):  # (VideoSync, {column: value or its InputError})
            outcome, extras = outcome
        if isinstance(outcome, InputError):
            row = row_from_error(job.key(), outcome)
        else:
            row = row_from_result(job.key(), outcome)
        why = []
        for col, value in extras.items():
            if isinstance(value, InputError):
                # LSE stands; the column stays empty and the row says why
                why.append(f"{col}: {value.status}: {value.cause}")
            else:
                row[col] = float(value)
        if why:
            row["reason"] = one_line("; ".join(why))
        row["settings_hash"] = self.hash
        row["inputs_hash"] = self._in_hash.pop(job.key())
        self._checkpoints.pop(job.key(), None)
        return row

    def run(
        self,
        argv: list[str],
        on_row: Callable[[dict], None] = lambda row: None,
        on_skip: Callable[[object], None] = lambda job: None,
    ) -> Counts:
        self.start()
        counts = Counts()
        self.store.start_run(__version__, argv, {"run_hash": self.hash, **self.provenance})

        def commit(job, outcome) -> None:
            row = self.row(job, outcome)
            self.store.commit(row)  # one transaction: the row is whole or absent
            if row["status"] == "ok":
                counts.scored += 1
            else:
                counts.failed += 1
                counts.failures.append(f"{job.video}: {row['reason']}")
            on_row(row)

        if hasattr(self.executor, "checkpoint_for"):
            # a group of one video's streams (--audio-stream all) has none
            self.executor.checkpoint_for = lambda job: (
                self._checkpoints.get(job.key()) if hasattr(job, "key") else None
            )
        try:
            self.executor.run(self.pending(counts, on_skip), commit)
        finally:
            self.executor.close()
        self.store.finish_run()
        return counts

    def rows(self) -> list[dict]:
        """This run's rows (done before or now) in the jobs' order."""
        return self.store.rows(self.hash, keys=[j.key() for j in self.jobs])


__all__ = ["Counts", "LocalExecutor", "VolumeRun", "lock_path", "run_hash"]

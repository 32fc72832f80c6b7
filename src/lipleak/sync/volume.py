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
    if "avs" in provenance:  # only then: runs without AVS keep their hash and rows
        key["avs"] = provenance["avs"]["hash"]
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
        "mean_face": desc["mean_face_sha256"],
    }
    blob = json.dumps({"settings": avs.settings.hash(), "models": models}, sort_keys=True)
    return {"hash": hashlib.sha256(blob.encode()).hexdigest()[:16], **desc}


def avs_u(avs, job) -> float | InputError:
    """AVS_u of one job's video with its audio (its own track without one)."""
    from ..io.audio import load_audio

    try:
        return avs.score(job.video, load_audio(job.audio or job.video))["avs_u"]
    except InputError as exc:
        return exc


class LocalExecutor:
    """Scores jobs in this process: ``workers`` threads around one shared SyncNet."""

    def __init__(self, scorer, workers: int = 2, avs=None):
        self.scorer = scorer
        self.workers = workers
        self.avs = avs  # lipleak.avs.AVSScorer: AVS_u of each scored video, or None
        self.pipeline: SyncPipeline | None = None

    def start(self) -> tuple[str, dict]:
        provenance = self.scorer.describe()
        if self.avs is not None:
            provenance["avs"] = avs_provenance(self.avs)
        return run_hash(provenance), provenance

    def run(self, jobs: Iterable, commit: Commit) -> None:
        with SyncPipeline(self.scorer, self.workers) as self.pipeline:
            for job, outcome in self.pipeline.run(jobs):
                if self.avs is not None and not isinstance(outcome, InputError):
                    # AV-HuBERT runs here, after SyncNet, one video at a time: its
                    # onnxruntime sessions use every core themselves
                    outcome = (outcome, avs_u(self.avs, job))
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

    def __init__(self, jobs: list, store: SyncStore, executor, retry_failed: bool = False):
        self.jobs = jobs
        self.store = store
        self.executor = executor
        self.retry_failed = retry_failed
        self.hash: str | None = None
        self.provenance: dict | None = None
        self._in_hash: dict[tuple[str, str], str] = {}  # jobs handed out, not yet committed

    def start(self) -> None:
        if self.hash is None:
            self.hash, self.provenance = self.executor.start()

    def pending(self, counts: Counts, on_skip: Callable[[object], None]) -> Iterator:
        """The jobs still to do, decided one by one as the executor asks for them."""
        for job in self.jobs:
            in_hash = sync_inputs_hash(job.video, job.audio)
            if self.store.is_done(job.key(), self.hash, in_hash) and not (
                self.retry_failed and self._failed(job)
            ):
                counts.skipped += 1
                on_skip(job)
                continue
            # the row records the files as they were when their scoring was decided: one
            # changed while it was scored is scored again by the next run
            self._in_hash[job.key()] = in_hash
            yield job

    def _failed(self, job) -> bool:
        rows = self.store.rows(self.hash, keys=[job.key()])
        return bool(rows) and rows[0]["status"] != "ok"

    def row(self, job, outcome) -> dict:
        avs = None
        if isinstance(outcome, tuple):  # (VideoSync, AVS_u or the InputError of AVS)
            outcome, avs = outcome
        if isinstance(outcome, InputError):
            row = row_from_error(job.key(), outcome)
        else:
            row = row_from_result(job.key(), outcome)
        if isinstance(avs, InputError):
            # LSE stands; AVS_u stays empty and the row says why
            row["reason"] = one_line(f"avs_u: {avs.status}: {avs.cause}")
        elif avs is not None:
            row["avs_u"] = float(avs)
        row["settings_hash"] = self.hash
        row["inputs_hash"] = self._in_hash.pop(job.key())
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

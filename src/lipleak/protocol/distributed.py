"""`score DIR --ray [ADDRESS]`: the per-stem work of ``scoring.py`` on Ray actors.

Each actor is one ``StemScorer`` (models loaded once): one per GPU when the cluster has
GPUs (``num_gpus=1``), CPU actors otherwise. A task is one stem — its GT and its six
generations — so the GT analysis (decode, faces, landmarks, Inception features) is made once
and held in that actor's memory for the cells that need it; a retry redoes at most one stem.

The driver stays the only writer of the results store: results come back to it and are
committed unit by unit as tasks finish (``ray.wait``). An actor that dies (killed, out of
memory, a lost node) is restarted by Ray and its in-flight tasks are retried there
(``max_restarts``/``max_task_retries``); nothing was committed for them, and a commit is a
replace per unit key, so nothing is lost or written twice. A stem that kills its worker on
every try is committed as failed (``worker_died``) so the run can finish; ``--retry-failed``
tries it again. An interrupted driver is rerun like any other: done units are skipped.

Per-video feature files and the GT analysis cache are written by the workers under
DIR/.lipleak, so DIR must be on a filesystem every node sees at the same path (the driver
sends absolute paths).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator

from ..errors import LipleakError
from ..sync import SyncSettings
from .scoring import StemScorer
from .tasks import GroupResult, StemTask

LOCAL = "local"  # --ray without ADDRESS: RAY_ADDRESS, else the cluster started here, else a new one
MAX_TASK_RETRIES = 3
IN_FLIGHT_PER_WORKER = 2  # one running, one queued: no idle gap between stems


def _ray():
    try:
        import ray
    except ImportError:
        raise LipleakError("--ray needs Ray: pip install 'lipleak-fast[ray]'") from None
    return ray


class StemWorker:
    """The body of one Ray actor (wrapped by ``ray.remote`` in ``RayExecutor.start``)."""

    def __init__(self, sync: SyncSettings, visual, threads: int | None, avs=None):
        if threads:
            # several CPU actors share a machine: each gets its share of the cores rather than
            # every onnxruntime/torch pool spinning up one thread per core
            os.environ.setdefault("LIPLEAK_ORT_THREADS", str(threads))
            os.environ["OMP_NUM_THREADS"] = os.environ["LIPLEAK_ORT_THREADS"]
        self.error: LipleakError | None = None
        try:
            self.scorer = StemScorer(sync, visual, avs)
        except LipleakError as exc:
            # kept for describe() to raise as a task error: Ray passes that exception to the
            # driver as itself, whereas a failed constructor reaches it only as text
            self.scorer, self.error = None, exc
            return
        if threads and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(os.environ["LIPLEAK_ORT_THREADS"]))

    def describe(self) -> dict:
        import socket

        if self.error is not None:
            raise self.error
        return {
            "hashes": self.scorer.hashes,
            "provenance": self.scorer.provenance,
            "node": socket.gethostname(),
            "pid": os.getpid(),
        }

    def score_stem(self, task: StemTask) -> list[GroupResult]:
        return list(self.scorer.score_stem(task))


def plan_workers(resources: dict, workers: int | None) -> tuple[int, dict, int | None]:
    """(number of actors, their Ray resource options, threads each) for a cluster's totals.

    GPUs present: one actor per GPU (or ``workers``), each holding one. CPU only: one actor
    per CPU (or ``workers``), each scheduled on one CPU and given its share of the cores.
    """
    gpus = int(resources.get("GPU", 0))
    cpus = int(resources.get("CPU", 0))
    if workers is not None and workers < 1:
        raise LipleakError(f"--ray-workers must be at least 1, got {workers}")
    if gpus:
        n = workers or gpus
        if n > gpus:
            raise LipleakError(
                f"--ray-workers {n}: the Ray cluster has {gpus} GPU(s); one worker holds one GPU"
            )
        return n, {"num_gpus": 1, "num_cpus": 1}, None
    if cpus < 1:
        raise LipleakError("the Ray cluster has no CPU and no GPU to run workers on")
    n = workers or cpus
    if n > cpus:
        raise LipleakError(
            f"--ray-workers {n}: the Ray cluster has {cpus} CPU(s); one worker needs one"
        )
    return n, {"num_cpus": 1}, max(1, cpus // n)


class RayExecutor:
    """Runs ``StemTask``s on Ray actors; the driver commits what comes back.

    ``address``: a Ray address (``host:port``, ``ray://…``, ``auto``) or ``LOCAL``. A Ray
    session that is already initialised in this process is used as it is (and left running).
    ``worker_class``: the actor body, ``StemWorker`` or a subclass of it (the worker-death
    tests use one that dies on cue); it must be importable, or pickled by value, on the
    workers.
    """

    TASK_WORD = "stem"

    def __init__(
        self,
        sync: SyncSettings,
        visual=None,
        address: str = LOCAL,
        workers: int | None = None,
        max_task_retries: int = MAX_TASK_RETRIES,
        worker_class: type[StemWorker] = StemWorker,
        avs=None,
    ):
        self.sync, self.visual, self.avs = sync, visual, avs
        self.address, self.workers = address, workers
        self.max_task_retries = max_task_retries
        self.worker_class = worker_class
        self.actors: list = []
        self.describes: list[dict] = []
        self.load: list[int] = []  # unfinished tasks per actor, while run() runs
        self._owns_ray = False

    def _worker_kwargs(self) -> dict:
        # only when asked for: worker classes of other commands (sync) take no AVS settings
        return {} if self.avs is None else {"avs": self.avs}

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> tuple[dict, dict]:
        import logging

        if self.actors:
            # a second set of actors would load every model again and orphan the first
            raise RuntimeError("RayExecutor.start() called twice")
        ray = _ray()
        if not ray.is_initialized():
            try:
                ray.init(
                    address=None if self.address == LOCAL else self.address,
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )  # errors reach the driver as exceptions
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise LipleakError(
                    f"cannot reach the Ray cluster at {self.address!r}: "
                    f"{str(exc).splitlines()[0] if str(exc) else exc!r}"
                ) from None
            self._owns_ray = True
        n, options, threads = plan_workers(ray.cluster_resources(), self.workers)
        actor = ray.remote(self.worker_class).options(
            max_restarts=-1, max_task_retries=self.max_task_retries, **options
        )
        self.actors = [
            actor.remote(self.sync, self.visual, threads, **self._worker_kwargs()) for _ in range(n)
        ]
        try:
            self.describes = ray.get([a.describe.remote() for a in self.actors])
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, LipleakError):
                raise cause from None  # a missing model etc.: its own one-line message
            raise
        except ray.exceptions.RayActorError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise LipleakError(f"a Ray worker could not start: {first}") from None
        first = self.describes[0]
        for d in self.describes[1:]:
            if d["hashes"] != first["hashes"]:
                # mixed models or versions would mix numbers in one table
                raise LipleakError(
                    f"Ray workers disagree on settings/model hashes: {first['node']} has "
                    f"{first['hashes']}, {d['node']} has {d['hashes']}; install the same "
                    "models and lipleak-fast version on every node"
                )
        return first["hashes"], first["provenance"]

    def close(self) -> None:
        if not self.actors and not self._owns_ray:
            return
        ray = _ray()
        for a in self.actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - an actor already gone is fine
                pass
        self.actors = []
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    # -- the work -------------------------------------------------------------------------
    def run(self, tasks: Iterator[StemTask], commit: Callable[[GroupResult], None]) -> None:
        ray = _ray()
        tasks = iter(tasks)
        pending: dict = {}  # ObjectRef -> (actor index, task)
        load = self.load = [0] * len(self.actors)

        def submit() -> bool:
            task = next(tasks, None)
            if task is None:
                return False
            i = min(range(len(load)), key=load.__getitem__)
            pending[self._submit(self.actors[i], task)] = (i, task)
            load[i] += 1
            return True

        more = True
        while more and len(pending) < IN_FLIGHT_PER_WORKER * len(self.actors):
            more = submit()
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            i, task = pending.pop(ref)
            load[i] -= 1
            for r in self._results(ray, ref, task):
                commit(r)
            while more and len(pending) < IN_FLIGHT_PER_WORKER * len(self.actors):
                more = submit()

    def _submit(self, actor, task: StemTask):
        return actor.score_stem.remote(task.absolute())

    def _results(self, ray, ref, task: StemTask) -> list[GroupResult]:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            # an exception raised by our code in the worker: a setup problem stops the run
            # with its own message, anything else with the worker's traceback
            cause = getattr(exc, "cause", None)
            if isinstance(cause, LipleakError):
                raise cause from None
            raise
        except ray.exceptions.RayActorError as exc:
            # the worker process died on every try: record the stem as failed, go on
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            cause = (
                f"the Ray worker holding this {self.TASK_WORD} died "
                f"({self.max_task_retries + 1} tries; {why[:200]})"
            )
            return self._died(task, cause)

    def _died(self, task: StemTask, cause: str) -> list[GroupResult]:
        hashes = self.describes[0]["hashes"]
        return [
            GroupResult.failed(
                v,
                group,
                hashes[group],
                "worker_died",
                cause,
                f"{v.cell_video.path}: {cause}",
                k == len(v.groups) - 1,
            )
            for v in task.videos
            for k, group in enumerate(v.groups)
        ]


# -- sync over many videos ----------------------------------------------------------------
JOBS_PER_TASK = 4  # videos per Ray task: enough to fill a worker's pipeline, little to redo


class SyncWorker:
    """The body of one Ray actor of ``sync --ray``: a ``SyncScorer`` and its pipeline."""

    def __init__(self, sync: SyncSettings, visual, threads: int | None):
        from ..sync import SyncScorer

        if threads:
            os.environ.setdefault("LIPLEAK_ORT_THREADS", str(threads))
        self.error: LipleakError | None = None
        try:
            self.scorer = SyncScorer(sync)
        except LipleakError as exc:
            self.scorer, self.error = None, exc

    def describe(self) -> dict:
        import socket

        from ..sync.volume import run_hash

        if self.error is not None:
            raise self.error
        provenance = self.scorer.describe()
        return {
            "hashes": {"sync": run_hash(provenance)},
            "provenance": provenance,
            "node": socket.gethostname(),
            "pid": os.getpid(),
        }

    def score_jobs(self, jobs: tuple) -> list[tuple[object, object]]:
        from ..sync.pipeline import SyncPipeline

        # one thread per job of the task, at most 2: the actor has its share of the cores
        with SyncPipeline(self.scorer, workers=min(2, len(jobs))) as pipe:
            return list(pipe.run(jobs))


def _absolute(job):
    """The job with absolute paths, which mean the same on every node of a shared disk."""
    from dataclasses import replace
    from pathlib import Path

    audio = None if job.audio is None else Path(job.audio).absolute()
    return replace(job, video=Path(job.video).absolute(), audio=audio)


class SyncRayExecutor(RayExecutor):
    """``RayExecutor`` for ``sync``: tasks are tuples of ``VideoJob``s; results come back
    as ``(job, VideoSync | InputError)`` and are committed by the driver
    (``lipleak.sync.volume``), which is also the executor interface it implements."""

    TASK_WORD = "video batch"

    def __init__(
        self,
        sync: SyncSettings,
        address: str = LOCAL,
        workers: int | None = None,
        max_task_retries: int = MAX_TASK_RETRIES,
        worker_class=SyncWorker,
    ):
        super().__init__(sync, None, address, workers, max_task_retries, worker_class)

    def start(self) -> tuple[str, dict]:
        hashes, provenance = super().start()
        return hashes["sync"], provenance

    def run(self, jobs, commit) -> None:  # type: ignore[override]
        def tasks():
            batch: list = []
            for job in jobs:
                batch.append(_absolute(job))
                if len(batch) == JOBS_PER_TASK:
                    yield tuple(batch)
                    batch = []
            if batch:
                yield tuple(batch)

        super().run(tasks(), lambda pair: commit(*pair))

    def _submit(self, actor, task):
        return actor.score_jobs.remote(task)

    def _died(self, task, cause: str):
        from ..errors import InputError

        return [(job, InputError(job.video, cause, "worker_died")) for job in task]

"""Many videos through one SyncNet: a pipeline, not a loop (SPEC §2 numbers unchanged).

    with SyncPipeline(scorer, workers=2) as pipe:
        for job, outcome in pipe.run(jobs):      # as each video finishes
            ...                                  # a VideoSync, or the InputError it raised

``workers`` threads each take the next video and run ``SyncScorer.score`` on it: decoding,
crops, the audio stream and its MFCC, the offset search. Their lip crops (runs of
consecutive frames) do not go to the model directly but to ``SharedLipTower``, whose
serving thread(s) own the lip tower and run it on batches made of the windows of whatever
runs are waiting, from any video; the model makes the float windows from the crops
(``SyncNet.embed_lip_frames``: on the GPU with the torch backend). So the decoding of
the next videos overlaps the inference of the current ones, and short clips share
batches instead of leaving the model half-idle.

Every number equals scoring each video alone on the CPU backends, bit for bit: a window's
embedding depends on that window only, and onnxruntime's and torch's CPU kernels give it
the same bits in any batch (``tests/test_sync_volume.py`` checks the rows against
single-video scoring, for several batch sizes and worker counts). On CUDA, cuDNN and
cuBLAS choose kernels by batch shape, so an embedding may change in its last bits with
the batch it lands in: rows agree within the fp32 path's 1e-3, not bit for bit (not yet
measured on a GPU). A worker does not wait for its batch: it queues it and decodes on, up to the
tower's ``lip_in_flight`` batches of one video (one per tower thread, and one more), so
that the only or last long video of a run keeps every replica busy. Memory is bounded
by ``workers`` (each holds one video's streaming state and at most ``lip_in_flight`` + 1
batches of crops) and one queued job, never by the number or length of the videos.
The audio tower (about 1/9 of the lip tower's core time per window on the CPU,
``bench/volume_ceiling.py``) runs in the worker threads, on the CPU in a single-threaded
session of its own (``SyncNet.audio_for_threads``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..export.syncnet_shapes import EMBED_DIM
from ..models.syncnet import run_windows
from ..runtime.probe import cpu_threads


@dataclass
class TowerStats:
    """What the shared lip tower did: for utilisation (busy / wall) and batch fill."""

    windows: int = 0
    batches: int = 0
    busy_s: float = 0.0  # host seconds inside the model call, summed over the serving threads
    mixed_batches: int = 0  # batches holding windows of more than one request


class _Request:
    __slots__ = ("runs", "rows", "value", "error", "done")

    def __init__(self, runs: list[np.ndarray]):
        self.runs = runs
        self.rows = sum(map(run_windows, runs))
        self.value: np.ndarray | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def result(self) -> np.ndarray:
        """The embeddings, once the tower made them (blocks until then)."""
        if self.rows == 0:
            return np.zeros((0, EMBED_DIM), np.float32)
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value


class SharedLipTower:
    """A SyncNet whose lip tower is fed by many threads and served by ``replicas`` threads
    (``SyncNet.lip_replicas``).

    Has SyncNet's ``embed_lip_frames``/``embed_audio``/``describe``, so a ``SyncScorer``
    uses it as its model (``SyncScorer.sharing``). ``embed_lip_frames`` blocks its caller
    until the windows of the runs it gave are embedded; the tower thread takes waiting
    requests first come, first served, up to ``batch_size`` windows per model call, and
    starts as soon as it is free: waiting for a fuller batch would leave it idle. On the
    CPU backend each serving thread has a single-threaded onnxruntime session of its own,
    so that many batches run at once. With the torch backend on CUDA the threads share the
    one runtime: ``TorchRuntime.run_prepared`` holds its lock only while queuing a batch,
    so one thread uploads and builds the next batch while the other's runs; the batches
    still run one after the other on the model's one stream. On TensorRT and
    onnxruntime-GPU one thread (their runs hold the device to the end).
    ``busy_s`` in the stats is host time inside the model call summed over the serving
    threads (lock waits and, on CUDA, the other thread's queued GPU time included): up to
    ``replicas`` × the wall time, so not the device's busy share; that comes from
    ``TorchRuntime.start_busy_clock`` (CUDA events on the model's stream,
    ``bench/gpu_check.py``).
    """

    def __init__(self, syncnet, batch_size: int, replicas: int = 1):
        self.syncnet = syncnet
        self.batch_size = batch_size
        self.stats = TowerStats()
        self._waiting: list[_Request] = []
        self._cond = threading.Condition()
        self._stats_lock = threading.Lock()
        self._closed = False
        self.replicas = syncnet.lip_replicas(replicas)
        self._audio = syncnet.audio_for_threads()
        self._threads = [
            threading.Thread(target=self._serve, args=(r,), name=f"lip-tower-{i}", daemon=True)
            for i, r in enumerate(self.replicas)
        ]
        for t in self._threads:
            t.start()

    # -- what a scorer calls ----------------------------------------------------------
    @property
    def lip_in_flight(self) -> int:
        """Batches one video may have waiting or running at once: one per tower thread and
        one more queued, so that the only (or last) video of a run keeps every replica
        busy while its worker decodes on (``WindowStream``)."""
        return len(self.replicas) + 1

    def submit_lip_frames(self, runs: list[np.ndarray]) -> _Request:
        """Queue the windows of ``runs`` for the tower and return at once; ``result()``
        waits for their embeddings. The runs are not written to while queued."""
        req = _Request(list(runs))
        if req.rows == 0:
            return req
        with self._cond:
            if self._closed:
                raise RuntimeError("the shared lip tower is closed")
            self._waiting.append(req)
            self._cond.notify()
        return req

    def embed_lip_frames(self, runs: list[np.ndarray]) -> np.ndarray:
        """``SyncNet.embed_lip_frames``, batched with other callers' windows. Blocks until
        done; the runs are only read before it returns."""
        return self.submit_lip_frames(runs).result()

    def embed_audio(self, x: np.ndarray) -> np.ndarray:
        return self.syncnet.embed_audio(x, self._audio)

    def describe(self) -> dict:
        return self.syncnet.describe()

    # -- the tower thread -------------------------------------------------------------
    def _take(self) -> list[_Request] | None:
        with self._cond:
            while not self._waiting and not self._closed:
                self._cond.wait()
            if not self._waiting:
                return None  # closed and drained
            taken, rows = [], 0
            while self._waiting and (not taken or rows + self._waiting[0].rows <= self.batch_size):
                req = self._waiting.pop(0)
                taken.append(req)
                rows += req.rows
            return taken

    def _serve(self, runtime) -> None:
        while (taken := self._take()) is not None:
            n = sum(r.rows for r in taken)
            t0 = time.perf_counter()
            try:
                y = self.syncnet.embed_lip_frames([run for r in taken for run in r.runs], runtime)
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
                for r in taken:
                    r.error = exc
                    r.done.set()
                continue
            with self._stats_lock:
                self.stats.busy_s += time.perf_counter() - t0
                self.stats.windows += n
                self.stats.batches += 1
                self.stats.mixed_batches += len(taken) > 1
            i = 0
            for r in taken:
                r.value = y[i : i + r.rows]
                i += r.rows
                r.done.set()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join()


_END = object()


def default_replicas() -> int:
    """Lip-tower serving threads: two where there are two cores or more (on the CPU backend
    two single-threaded sessions outrun one on two threads, ``bench/bench_volume.py``; with
    the torch backend on CUDA two threads over the one runtime keep the GPU fed while one
    waits for its embeddings), else one. ``SyncNet.lip_replicas`` gives one on TensorRT and
    onnxruntime-GPU whatever this says."""
    cores = cpu_threads()
    return 2 if cores >= 2 else 1


@contextmanager
def served(scorer, replicas: int | None = None) -> Iterator:
    """``scorer`` with its lip tower served by ``SharedLipTower`` threads: how one video is
    scored on its own (``sync VIDEO``). Its batches queue while its frames are decoded
    (``WindowStream``), and on the CPU two single-threaded tower sessions run two of them
    at once, as the folder pipeline does, so one video alone goes as fast there as here.
    Same numbers as ``scorer.score``."""
    tower = SharedLipTower(
        scorer.syncnet,
        scorer.settings.batch_size,
        default_replicas() if replicas is None else replicas,
    )
    try:
        yield scorer.sharing(tower)
    finally:
        tower.close()


class SyncPipeline:
    """Scores an iterable of jobs with ``workers`` threads around one ``SharedLipTower``.

    A job is anything with ``video`` and ``audio`` attributes (``lipleak.sync.inputs
    .VideoJob``). ``run`` yields ``(job, VideoSync | InputError)`` in the order videos
    finish; an InputError is a video that cannot be scored, any other exception stops
    the run. Jobs are taken from the iterable only as workers free up, so a caller can
    decide per job, just before it starts, whether it is still to do.
    """

    def __init__(self, scorer, workers: int = 2, replicas: int | None = None):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.scorer = scorer
        self.workers = workers
        self.replicas = default_replicas() if replicas is None else replicas
        self.tower: SharedLipTower | None = None
        self.stats: TowerStats | None = None  # the last run's, kept after close

    def __enter__(self) -> SyncPipeline:
        self.tower = SharedLipTower(
            self.scorer.syncnet, self.scorer.settings.batch_size, self.replicas
        )
        self.stats = self.tower.stats
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.tower is not None:
            self.tower.close()
            self.tower = None

    def run(
        self, jobs: Iterable, checkpoint_for: Callable[[object], object] | None = None
    ) -> Iterator[tuple[object, object]]:
        """``checkpoint_for(job)``: the ``lipleak.sync.checkpoint.Checkpoint`` of a job
        (or None), so that a long video resumes where a killed run left it."""
        if self.tower is None:
            raise RuntimeError("SyncPipeline.run outside its with-block")
        scorer = self.scorer.sharing(self.tower)

        def score(_worker: int, job) -> Iterator[tuple[object, object]]:
            from .streams import score_job

            try:
                check = getattr(job, "check", None)  # a VideoJob: its files still exist
                if check is not None:
                    check()
                checkpoint = checkpoint_for(job) if checkpoint_for is not None else None
                # (job, outcome) per audio stream: one for a VideoJob, several for the
                # streams of one video scored together (--audio-stream all)
                yield from score_job(scorer, job, checkpoint)
            except InputError as exc:
                for one in getattr(job, "jobs", [job]):
                    yield one, exc

        return feed_threads(jobs, score, self.workers)


_ITEM_DONE = object()


def feed_threads(
    items: Iterable, handle: Callable[[int, object], Iterable], workers: int
) -> Iterator:
    """Everything ``handle(worker, item)`` yields, for every item, as it is yielded.

    ``workers`` threads take one item at a time; ``worker`` (0 .. workers - 1) lets a
    handler keep per-thread state. Items are pulled from ``items`` here, in the caller's
    thread (a caller's generator may read a database that belongs to that thread), one
    ahead of the free workers so that none waits for the next. At most ``workers + 1``
    items are taken and not finished, so memory does not depend on how many there are.
    An exception other than those a handler turns into outputs is raised here; an
    exhausted, failed or abandoned run stops the workers after their current item.
    """
    source = iter(items)
    todo: queue.Queue = queue.Queue()
    done: queue.Queue = queue.Queue()

    def work(index: int) -> None:
        while (item := todo.get()) is not _END:
            try:
                for out in handle(index, item):
                    done.put((True, out))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                done.put((False, exc))
                return
            done.put((True, _ITEM_DONE))

    threads = [
        threading.Thread(target=work, args=(i,), name=f"lipleak-worker-{i}", daemon=True)
        for i in range(workers)
    ]
    for t in threads:
        t.start()
    in_flight, more = 0, True
    try:
        while True:
            while more and in_flight < workers + 1:
                item = next(source, _END)
                if item is _END:
                    more = False
                else:
                    todo.put(item)
                    in_flight += 1
            if not in_flight:
                break
            ok, out = done.get()
            if not ok:
                raise out
            if out is _ITEM_DONE:
                in_flight -= 1
            else:
                yield out
    finally:
        while True:
            try:
                todo.get_nowait()
            except queue.Empty:
                break
        for _ in threads:
            todo.put(_END)

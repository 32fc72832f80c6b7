"""`score DIR`: every video of every protocol cell, scored with the audio SPEC §1
prescribes, one committed unit at a time.

| cell | SyncNet scored against | mouth motion against |
|---|---|---|
| GT (the real videos) | their own audio | their own audio |
| AM | the GT's audio | the GT's audio |
| XM | the plan's driving audio (no plan: the generated video's own track) | the same |
| SI | the GT's audio | silence (SI measures mouth movement under silence) |

Work is ordered by stem so that a GT video's analysis (faces, landmarks, features) is made
once and reused by its six generations; it is also cached on disk next to the database.

Two halves: ``UnitScorer`` holds the models and turns one stem's ``StemTask`` into
``UnitResult``s (pure computation plus the per-video feature files); ``DirectoryScorer`` is
the driver: discovery, the skip logic and the only writer to the results store. Both the
local loop and the Ray workers of ``distributed.py`` run the same ``UnitScorer``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError, LipleakError
from ..io.audio import load_audio
from ..sync_video import SyncScorer, SyncSettings
from .dataset import (
    CELLS,
    GT_REF,
    GT_SETUP,
    Layout,
    discover,
    features_path,
    gt_audio_source,
    gt_cache_path,
    lock_path,
    plan_path,
    results_db,
)
from .planner import load_plan
from .results import ResultsStore, RunLock, inputs_hash

SYNC_METRICS = ("lse_c", "lse_d", "offset", "n_frames", "n_tracks")


def group_hash(settings: dict, models: dict) -> str:
    """Settings + every model sha256 that can move a number of the group."""
    blob = json.dumps({"settings": settings, "models": models}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _model_shas(describe: dict) -> dict:
    """Pull every 'sha256' out of a describe() tree, keyed by its path."""
    out = {}

    def walk(d, prefix):
        if isinstance(d, dict):
            for k, v in d.items():
                if k == "sha256" and isinstance(v, str):
                    out[prefix] = v
                else:
                    walk(v, f"{prefix}.{k}" if prefix else k)

    walk(describe, "")
    return out


def _save_npy(path: Path, arr: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part.npy")
        np.save(tmp, np.ascontiguousarray(arr, dtype=np.float32))
        tmp.replace(path)
    except OSError as exc:
        raise LipleakError(f"{path}: cannot write per-video features: {exc.strerror or exc}; "
                           "everything committed before this video is intact") from None


@dataclass
class ScoreOptions:
    sync: SyncSettings = field(default_factory=SyncSettings)
    visual: object | None = None  # lipleak.visual.VisualSettings, or None to skip
    db: Path | None = None
    plan: Path | None = None
    gt: Path | None = None
    retry_failed: bool = False
    quiet: bool = False


@dataclass
class Unit:
    stem: str
    setup: str
    reference: str
    video: Path


@dataclass(frozen=True)
class UnitJob:
    """One unit to compute: the groups still to do and the inputs hash to commit them with."""

    unit: Unit
    groups: tuple[str, ...]
    inputs_hash: str


@dataclass(frozen=True)
class StemTask:
    """The pending units of one stem (its GT first), with every path a worker reads.

    Plain data, so it pickles to a Ray worker; ``absolute()`` makes the paths mean the same
    on every node of a shared filesystem.
    """

    root: Path
    stem: str
    gt_video: Path
    has_plan: bool
    driving: Path | None  # the plan's XM driving audio of this stem
    jobs: tuple[UnitJob, ...]

    def absolute(self) -> StemTask:
        def a(p):
            return None if p is None else Path(p).absolute()

        jobs = tuple(UnitJob(Unit(j.unit.stem, j.unit.setup, j.unit.reference, a(j.unit.video)),
                             j.groups, j.inputs_hash) for j in self.jobs)
        return StemTask(a(self.root), self.stem, a(self.gt_video), self.has_plan, a(self.driving),
                        jobs)


@dataclass
class UnitResult:
    """What the driver commits for one unit and group (``status`` "failed": no numbers)."""

    stem: str
    setup: str
    reference: str
    grp: str
    settings_hash: str
    inputs_hash: str
    metrics: dict
    reasons: dict = field(default_factory=dict)
    detail: dict = field(default_factory=dict)
    status: str = "ok"
    reason: str | None = None  # "<status>: <cause>" of a failed unit
    message: str | None = None  # the one-line error shown on the progress bar
    last: bool = False  # the unit's last pending group: the progress bar moves on

    @property
    def label(self) -> str:
        return f"{self.setup}/{self.reference}/{self.stem} [{self.grp}]"

    @classmethod
    def failed(cls, job: UnitJob, grp: str, settings_hash: str, status: str, cause: str,
               message: str, last: bool) -> UnitResult:
        u = job.unit
        names = SYNC_METRICS if grp == "sync" else ()
        return cls(u.stem, u.setup, u.reference, grp, settings_hash, job.inputs_hash,
                   dict.fromkeys(names), status="failed", reason=f"{status}: {cause}",
                   message=message, last=last)


class UnitScorer:
    """The worker half: holds the models (loaded once) and scores one stem's units.

    Used in process by the local loop and inside each Ray actor. It writes only the
    per-video files that are its own output (Inception features, the cached GT analysis);
    the results store is the driver's.
    """

    def __init__(self, sync: SyncSettings, visual=None):
        self.sync = SyncScorer(sync)
        sync_desc = self.sync.describe()
        self.hashes = {"sync": group_hash(sync.hashed_dict(), _model_shas(sync_desc))}
        self.provenance = {"sync": sync_desc}
        self.visual = None
        if visual is not None:
            from ..visual import VisualScorer

            self.visual = VisualScorer(visual)
            vdesc = self.visual.describe()
            self.hashes["visual"] = group_hash(visual.hashed_dict(), _model_shas(vdesc))
            self.provenance["visual"] = vdesc
        self._task: StemTask | None = None
        self._gt_audio: np.ndarray | InputError | None = None
        self._gt_analysis = None

    @property
    def groups(self) -> tuple[str, ...]:
        return ("sync",) if self.visual is None else ("sync", "visual")

    def score_stem(self, task: StemTask) -> Iterator[UnitResult]:
        """One result per (unit, pending group), in the task's order, as each is ready."""
        # a stem's GT audio and analysis are kept for its units only: work is ordered by stem
        self._task, self._gt_audio, self._gt_analysis = task, None, None
        fns = {"sync": self.score_sync, "visual": self.score_visual}
        for job in task.jobs:
            for i, grp in enumerate(job.groups):
                last = i == len(job.groups) - 1
                h = self.hashes[grp]
                u = job.unit
                try:
                    metrics, reasons, detail = fns[grp](u)
                except InputError as exc:
                    yield UnitResult.failed(job, grp, h, exc.status, exc.cause, str(exc), last)
                    continue
                yield UnitResult(u.stem, u.setup, u.reference, grp, h, job.inputs_hash,
                                 metrics, reasons, detail, last=last)

    # -- audio ----------------------------------------------------------------------------
    def gt_audio(self, stem: str) -> np.ndarray:
        if self._gt_audio is None:
            try:
                self._gt_audio = load_audio(gt_audio_source(self._task.gt_video))
            except InputError as exc:
                self._gt_audio = exc
        a = self._gt_audio
        if isinstance(a, InputError):
            raise InputError(a.path, f"GT audio: {a.cause}", a.status)
        return a

    def sync_audio(self, u: Unit):
        if u.setup == "XM":
            if not self._task.has_plan:
                return None  # the generated video's own track is the driving audio
            if self._task.driving is None:
                raise InputError(u.video, "the plan has no driving audio for this stem", "bad_input")
            return load_audio(self._task.driving)
        return self.gt_audio(u.stem)

    def motion_audio(self, u: Unit) -> np.ndarray:
        if u.setup == "SI":
            return np.zeros_like(self.gt_audio(u.stem))
        if u.setup == "XM":
            a = self.sync_audio(u)
            return load_audio(u.video) if a is None else a
        return self.gt_audio(u.stem)

    # -- groups ---------------------------------------------------------------------------
    def score_sync(self, u: Unit) -> tuple[dict, dict, dict]:
        r = self.sync.score(u.video, self.sync_audio(u))
        metrics = {"lse_c": r.lse_c, "lse_d": r.lse_d, "offset": r.offset,
                   "n_frames": r.n_frames, "n_tracks": len(r.tracks)}
        return metrics, {}, r.to_dict()

    def gt_analysis(self, stem: str):
        from ..visual import GTAnalysis

        if self._gt_analysis is not None:
            return self._gt_analysis
        cache = gt_cache_path(self._task.root, self.hashes["visual"], stem)
        video = self._task.gt_video
        key = inputs_hash(video)
        gta = None
        if cache.is_file() and cache.with_suffix(".key").is_file() \
                and cache.with_suffix(".key").read_text() == key:
            try:
                gta = GTAnalysis.load(cache)
            except InputError:
                gta = None
        if gta is None:
            gta = self.visual.analyze_gt(video)
            try:
                gta.save(cache)
                cache.with_suffix(".key").write_text(key)
            except OSError as exc:
                raise LipleakError(f"{cache}: cannot write the GT analysis cache: "
                                   f"{exc.strerror or exc}") from None
        self._gt_analysis = gta
        return gta

    def score_visual(self, u: Unit) -> tuple[dict, dict, dict]:
        from ..visual import gt_metrics, stored_metrics

        gta = self.gt_analysis(u.stem)
        if u.setup == GT_SETUP:
            feats = gta.features
            metrics, reasons = gt_metrics(gta, self.gt_audio(u.stem))
            detail = {"n_frames": gta.n_frames}
        else:
            r = self.visual.score(u.video, gta, self._task.gt_video, self.motion_audio(u),
                                  u.setup)
            feats, metrics, reasons, detail = r.features, stored_metrics(r), dict(r.reasons), {}
        _save_npy(features_path(self._task.root, self.hashes["visual"], u.setup, u.reference,
                                u.stem), feats)
        return metrics, reasons, detail


class LocalExecutor:
    """Scores stems one after the other in this process."""

    def __init__(self, sync: SyncSettings, visual=None):
        self.worker = UnitScorer(sync, visual)

    def start(self) -> tuple[dict, dict]:
        return self.worker.hashes, self.worker.provenance

    def run(self, tasks: Iterator[StemTask], commit: Callable[[UnitResult], None]) -> None:
        for task in tasks:
            for r in self.worker.score_stem(task):
                commit(r)

    def close(self) -> None:
        pass


class DirectoryScorer:
    """The driver: finds the units of one protocol directory, skips what is done, hands the
    rest to an executor (this process, or Ray workers) and commits each result it gets back.

    ``executor`` needs ``start() -> (hashes, provenance)``, ``run(tasks, commit)`` and
    ``close()``; None scores in this process (models loaded here, at once).
    """

    def __init__(self, root: Path, opts: ScoreOptions, executor=None):
        self.root = Path(root)
        self.opts = opts
        self.plan = self._plan()
        planned = None if self.plan is None else {
            v["stem"]: Path(v["video"]) for v in self.plan[0]["videos"]}
        self.layout: Layout = discover(self.root, opts.gt, planned)
        self.db_path = Path(opts.db) if opts.db else results_db(self.root)
        self.driving = None if self.plan is None else {
            v["stem"]: self.plan[1] / v["audio"]["XM"] for v in self.plan[0]["videos"]}
        self.groups = ("sync",) if opts.visual is None else ("sync", "visual")
        self.hashes: dict[str, str] | None = None
        self.provenance: dict | None = None
        if executor is None:
            executor = LocalExecutor(opts.sync, opts.visual)
            self.hashes, self.provenance = executor.start()
        self.executor = executor

    # -- inputs ---------------------------------------------------------------------------
    def _plan(self) -> tuple[dict, Path] | None:
        path = self.opts.plan or plan_path(self.root)
        if self.opts.plan is None and not Path(path).is_file():
            return None
        return load_plan(path)

    def units(self) -> list[Unit]:
        out = []
        for stem in sorted(self.layout.gt):
            out.append(Unit(stem, GT_SETUP, GT_REF, self.layout.gt[stem]))
            for setup, ref in CELLS:
                video = self.layout.cells.get((setup, ref), {}).get(stem)
                if video is not None:
                    out.append(Unit(stem, setup, ref, video))
        return out

    def audio_files(self, u: Unit) -> list[Path | None]:
        """Files whose change must trigger a rescore of this unit."""
        gt = self.layout.gt[u.stem]
        files = [u.video, gt_audio_source(gt)]
        if u.setup == "XM" and self.driving is not None:
            files.append(self.driving.get(u.stem))
        if u.setup != GT_SETUP:
            files.append(gt)
        return files

    def tasks(self, store: ResultsStore, counts: dict, bar) -> Iterator[StemTask]:
        """The pending work, one task per stem in stem order; done groups are counted as
        skipped here (lazily: a stem is looked at when its task is about to be handed out)."""
        by_stem: dict[str, list[Unit]] = {}
        for u in self.units():
            by_stem.setdefault(u.stem, []).append(u)
        for stem, units in by_stem.items():
            jobs = []
            for u in units:
                in_hash = inputs_hash(*self.audio_files(u))
                todo = []
                for grp in self.groups:
                    h = self.hashes[grp]
                    if store.is_done(u.stem, u.setup, u.reference, grp, h, in_hash) and not (
                            self.opts.retry_failed and self._failed(store, u, grp, h)):
                        counts["skipped"] += 1
                    else:
                        todo.append(grp)
                if todo:
                    jobs.append(UnitJob(u, tuple(todo), in_hash))
                else:
                    bar.update(1)
            if jobs:
                yield StemTask(self.root, stem, self.layout.gt[stem], self.driving is not None,
                               None if self.driving is None else self.driving.get(stem),
                               tuple(jobs))

    # -- the run --------------------------------------------------------------------------
    def run(self, argv: list[str] | None = None) -> dict:
        from tqdm import tqdm

        with RunLock(lock_path(self.db_path)):
            try:
                self.hashes, self.provenance = self.executor.start()
                store = ResultsStore(self.db_path)
                try:
                    store.start_run(__version__, argv or sys.argv[1:], {
                        "hashes": self.hashes, **self.provenance,
                        "layout": {"not_run": [f"{s}/{r}" for s, r in self.layout.not_run],
                                   "missing": {f"{s}/{r}": v for (s, r), v in
                                               self.layout.missing.items() if v}}})
                    counts = self._loop(store, tqdm)
                    store.finish_run()
                finally:
                    store.close()
            finally:
                self.executor.close()
        return counts

    def _loop(self, store: ResultsStore, tqdm) -> dict:
        counts = {"scored": 0, "skipped": 0, "failed": 0, "failures": []}
        bar = tqdm(total=len(self.units()), unit="video", disable=self.opts.quiet, desc="score",
                   dynamic_ncols=True)

        def commit(r: UnitResult) -> None:
            # the only writer: each result is one transaction, idempotent per unit key
            store.commit_unit(r.stem, r.setup, r.reference, r.grp, r.settings_hash,
                              r.inputs_hash, r.metrics, status=r.status, reason=r.reason,
                              detail=r.detail, reasons=r.reasons)
            if r.status == "ok":
                counts["scored"] += 1
            else:
                counts["failed"] += 1
                counts["failures"].append(f"{r.label}: {r.reason}")
                if not self.opts.quiet:
                    bar.write(f"failed: {r.label}: {r.message or r.reason}")
            if r.last:
                bar.update(1)

        self.executor.run(self.tasks(store, counts, bar), commit)
        bar.close()
        return counts

    @staticmethod
    def _failed(store: ResultsStore, u: Unit, grp: str, h: str) -> bool:
        return any(x["status"] != "ok" for x in store.units(grp, h)
                   if (x["stem"], x["setup"], x["reference"]) == (u.stem, u.setup, u.reference))

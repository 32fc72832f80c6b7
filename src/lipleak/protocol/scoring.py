"""`score DIR`: every video of every protocol cell, scored with the audio SPEC §1
prescribes, one committed unit (video × cell × metric group) at a time.

| cell | SyncNet scored against | mouth motion against |
|---|---|---|
| GT (the real videos) | their own audio | their own audio |
| AM | the GT's audio | the GT's audio |
| XM | the plan's driving audio (no plan: the generated video's own track) | the same |
| SI | the GT's audio | silence (SI measures mouth movement under silence) |

The AV-HuBERT metrics (group ``avs``, opt-in) use the mouth-motion column's audio as each
video's driving audio: AVS_u of every video, AVS_m/AVS_v of each generation against its GT.

Work is ordered by stem so that a GT video's analysis (faces, landmarks, features) is made
once and reused by its six generations; it is also cached on disk next to the database.

Two halves: ``StemScorer`` holds the models and turns one stem's ``StemTask`` into
``GroupResult``s (pure computation plus the per-video feature files); ``DirectoryScorer`` is
the driver: discovery (``pending``), the skip logic and the only writer to the results
store. Both the local loop and the Ray workers of ``distributed.py`` run the same
``StemScorer``; the data they exchange is in ``tasks.py``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError, LipleakError
from ..files import atomic_path, atomic_write
from ..io.audio import iter_audio, load_audio
from ..io.container import check_complete
from ..sync import SyncScorer, SyncSettings
from ..sync.pipeline import SharedLipTower, feed_threads
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
from .tasks import CellVideo, GroupResult, PendingStem, PendingVideo, StemTask


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
        # a file object, so np.save cannot append .npy to the temporary name
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(arr, dtype=np.float32))
    except OSError as exc:
        raise LipleakError(
            f"{path}: cannot write per-video features: {exc.strerror or exc}; "
            "everything committed before this video is intact"
        ) from None


@dataclass
class ScoreOptions:
    sync: SyncSettings = field(default_factory=SyncSettings)
    visual: object | None = None  # lipleak.visual.VisualSettings, or None to skip
    avs: object | None = None  # lipleak.avs.AVSSettings, or None to skip
    db: Path | None = None
    plan: Path | None = None
    gt: Path | None = None
    retry_failed: bool = False
    quiet: bool = False
    workers: int = 2  # stems scored at once in this process (LocalExecutor)


class StemScorer:
    """The worker half: holds the models (loaded once) and scores one stem's videos.

    Used in process by the local loop and inside each Ray actor. It writes only the
    per-video files that are its own output (Inception features, the cached GT analysis);
    the results store is the driver's.
    """

    def __init__(self, sync: SyncSettings, visual=None, avs=None, concurrent: bool = False):
        """``concurrent``: copies made with ``sharing`` will score stems on several threads
        at once (the face detectors and visual models are opened for it,
        ``runtime.open_model``)."""
        self.sync = SyncScorer(sync, concurrent)
        sync_desc = self.sync.describe()
        # the scorer's settings: they name the JPEG encoder found on this machine
        sync = self.sync.settings
        self.hashes = {"sync": group_hash(sync.hashed_dict(), _model_shas(sync_desc))}
        self.provenance = {"sync": sync_desc}
        self.visual = None
        if visual is not None:
            from ..visual import VisualScorer

            self.visual = VisualScorer(visual, concurrent)
            visual_desc = self.visual.describe()
            self.hashes["visual"] = group_hash(visual.hashed_dict(), _model_shas(visual_desc))
            self.provenance["visual"] = visual_desc
        self.avs = None
        if avs is not None:
            from ..avs import AVSScorer

            self.avs = AVSScorer(avs)
            avs_desc = self.avs.describe()
            self.hashes["avs"] = group_hash(avs.hashed_dict(), _model_shas(avs_desc))
            self.provenance["avs"] = avs_desc
        self._task: StemTask | None = None
        self._gt_audio: np.ndarray | InputError | None = None
        self._gt_analysis = None
        self._avs_reference = None
        self._audio_checks: dict[Path, InputError | None] = {}

    def sharing(self, syncnet) -> StemScorer:
        """A scorer for another thread: the same models, ``syncnet`` as its SyncNet, and its
        own per-stem state."""
        other = copy.copy(self)
        other.sync = self.sync.sharing(syncnet)
        other._task, other._gt_audio, other._gt_analysis = None, None, None
        other._avs_reference, other._audio_checks = None, {}
        return other

    def score_stem(self, task: StemTask) -> Iterator[GroupResult]:
        """One result per (video, pending group), in the task's order, as each is ready."""
        # a stem's GT audio and analysis are kept for its videos only: work is ordered by stem
        self._task, self._gt_audio, self._gt_analysis = task, None, None
        self._avs_reference, self._audio_checks = None, {}
        fns = {"sync": self.score_sync, "visual": self.score_visual, "avs": self.score_avs}
        for pending in task.videos:
            v = pending.cell_video
            for i, group in enumerate(pending.groups):
                last = i == len(pending.groups) - 1
                h = self.hashes[group]
                try:
                    metrics, reasons, detail = fns[group](v)
                except InputError as exc:
                    yield GroupResult.failed(
                        pending, group, h, exc.status, exc.cause, str(exc), last
                    )
                    continue
                yield GroupResult(
                    v.stem,
                    v.setup,
                    v.reference,
                    group,
                    h,
                    pending.inputs_hash,
                    metrics,
                    reasons,
                    detail,
                    last=last,
                )

    # -- audio ----------------------------------------------------------------------------
    # SyncNet and the mouth-motion envelope read their audio from its file as a stream, so
    # memory does not grow with a clip's length; only AV-HuBERT, which takes a clip whole,
    # gets arrays (``gt_audio``, ``motion_audio``).
    def checked_audio(self, path: Path, what: str) -> Path:
        """``path`` once its audio stream is known to be complete (a pass over its packets,
        once per stem): a reader that stops early could not tell a cut file."""
        if path not in self._audio_checks:
            try:
                check_complete(path, ("audio",))
                self._audio_checks[path] = None
            except InputError as exc:
                self._audio_checks[path] = InputError(exc.path, f"{what}: {exc.cause}", exc.status)
        err = self._audio_checks[path]
        if err is not None:
            raise InputError(err.path, err.cause, err.status)
        return path

    def gt_audio_path(self) -> Path:
        return self.checked_audio(gt_audio_source(self._task.gt_video), "GT audio")

    def gt_audio(self, stem: str) -> np.ndarray:
        """The GT audio as one array (AV-HuBERT only)."""
        if self._gt_audio is None:
            try:
                self._gt_audio = load_audio(self.gt_audio_path())
            except InputError as exc:
                self._gt_audio = exc
        a = self._gt_audio
        if isinstance(a, InputError):
            cause = a.cause if a.cause.startswith("GT audio: ") else f"GT audio: {a.cause}"
            raise InputError(a.path, cause, a.status)
        return a

    def sync_audio(self, v: CellVideo) -> Path | None:
        """The file whose audio SyncNet scores ``v`` against; None: ``v``'s own track."""
        if v.setup == "XM":
            if not self._task.has_plan:
                return None  # the generated video's own track is the driving audio
            if self._task.driving is None:
                raise InputError(v.path, "the plan has no driving audio for this stem", "bad_input")
            return self.checked_audio(self._task.driving, "driving audio")
        return self.gt_audio_path()

    def motion_chunks(self, v: CellVideo):
        """The driving audio of ``v``'s mouth-motion envelope, streamed; None for SI (the
        envelope of silence is not used)."""
        if v.setup == "SI":
            return None
        path = self.sync_audio(v)
        if path is None:
            path = self.checked_audio(v.path, "audio")
        return iter_audio(path)

    def motion_audio(self, v: CellVideo) -> np.ndarray:
        """The driving audio of ``v`` as one array (AV-HuBERT only)."""
        if v.setup == "SI":
            return np.zeros_like(self.gt_audio(v.stem))
        if v.setup == "XM":
            path = self.sync_audio(v)
            return load_audio(v.path if path is None else path)
        return self.gt_audio(v.stem)

    # -- groups ---------------------------------------------------------------------------
    def score_sync(self, v: CellVideo) -> tuple[dict, dict, dict]:
        r = self.sync.score(v.path, self.sync_audio(v))
        metrics = {
            "lse_c": r.lse_c,
            "lse_d": r.lse_d,
            "offset": r.offset,
            "n_frames": r.n_frames,
            "n_tracks": len(r.tracks),
        }
        return metrics, {}, r.to_dict()

    def gt_analysis(self, stem: str):
        from ..visual import GTAnalysis

        if self._gt_analysis is not None:
            return self._gt_analysis
        cache = gt_cache_path(self._task.root, self.hashes["visual"], stem)
        key_file = cache.with_suffix(".key")
        video = self._task.gt_video
        key = inputs_hash(video)
        gta = None
        if cache.is_file() and key_file.is_file() and key_file.read_text() == key:
            try:
                gta = GTAnalysis.load(cache)
            except InputError:
                gta = None
        if gta is None:
            gta = self.visual.analyze_gt(video)
            try:
                gta.save(cache)
                atomic_write(key_file, key, fsync=False)  # a lost key only costs a redo
            except OSError as exc:
                raise LipleakError(
                    f"{cache}: cannot write the GT analysis cache: {exc.strerror or exc}"
                ) from None
        self._gt_analysis = gta
        return gta

    def score_visual(self, v: CellVideo) -> tuple[dict, dict, dict]:
        from ..visual import gt_metrics, stored_metrics

        gta = self.gt_analysis(v.stem)
        if v.setup == GT_SETUP:
            feats = gta.features
            metrics, reasons = gt_metrics(gta, iter_audio(self.gt_audio_path()))
            detail = {"n_frames": gta.n_frames}
        else:
            r = self.visual.score(v.path, gta, self._task.gt_video, self.motion_chunks(v), v.setup)
            feats, metrics, reasons, detail = r.features, stored_metrics(r), dict(r.reasons), {}
        _save_npy(
            features_path(self._task.root, self.hashes["visual"], v.setup, v.reference, v.stem),
            feats,
        )
        return metrics, reasons, detail

    def avs_reference(self):
        """The GT's AV-HuBERT features (kept for the stem's videos), or the InputError
        that prevented them."""
        if self._avs_reference is None:
            try:
                self._avs_reference = self.avs.reference(
                    self._task.gt_video, self.gt_audio(self._task.stem)
                )
            except InputError as exc:
                self._avs_reference = exc
        return self._avs_reference

    def score_avs(self, v: CellVideo) -> tuple[dict, dict, dict]:
        ref = self.avs_reference()
        if v.setup == GT_SETUP:
            if isinstance(ref, InputError):
                raise ref
            return {"avs_u": ref.avs_u}, {}, {}
        # AVS_u needs no GT: a GT that cannot be scored leaves AVS_m/AVS_v without a value
        gt_ok = not isinstance(ref, InputError)
        metrics = self.avs.score(v.path, self.motion_audio(v), ref if gt_ok else None)
        reasons = {}
        if not gt_ok:
            for m in ("avs_m", "avs_v"):
                metrics[m], reasons[m] = None, f"GT: {ref.cause}"
        return metrics, reasons, {}


class LocalExecutor:
    """Scores stems in this process, ``workers`` at a time on threads (``feed_threads``).

    The models are loaded once, at construction, and shared; SyncNet's lip tower runs on
    one thread that batches the windows of every stem being scored (``SharedLipTower``),
    so the decoding and visual metrics of one stem overlap SyncNet on another. Results
    reach ``commit`` in the caller's thread, the only one that writes the store.
    """

    def __init__(self, sync: SyncSettings, visual=None, workers: int = 2, avs=None):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.worker = StemScorer(sync, visual, avs, concurrent=workers > 1)
        self.workers = workers

    def start(self) -> tuple[dict, dict]:
        return self.worker.hashes, self.worker.provenance

    def run(self, tasks: Iterator[StemTask], commit: Callable[[GroupResult], None]) -> None:
        tower = SharedLipTower(self.worker.sync.syncnet, self.worker.sync.settings.batch_size)
        try:
            scorers = [self.worker.sharing(tower) for _ in range(self.workers)]
            for r in feed_threads(tasks, lambda i, task: scorers[i].score_stem(task), self.workers):
                commit(r)
        finally:
            tower.close()

    def close(self) -> None:
        pass


class DirectoryScorer:
    """The driver: finds the videos of one protocol directory, skips what is done, hands the
    rest to an executor (this process, or Ray workers) and commits each result it gets back.

    ``executor`` needs ``start() -> (hashes, provenance)``, ``run(tasks, commit)`` and
    ``close()``; None scores in this process (models loaded here, at once). The executor is
    started once, by ``start()`` (``run()`` calls it if nobody did before).
    """

    def __init__(self, root: Path, opts: ScoreOptions, executor=None):
        self.root = Path(root)
        self.opts = opts
        self.plan = self._plan()
        planned = (
            None
            if self.plan is None
            else {v["stem"]: Path(v["video"]) for v in self.plan[0]["videos"]}
        )
        self.layout: Layout = discover(self.root, opts.gt, planned)
        self.db_path = Path(opts.db) if opts.db else results_db(self.root)
        self.driving = (
            None
            if self.plan is None
            else {v["stem"]: self.plan[1] / v["audio"]["XM"] for v in self.plan[0]["videos"]}
        )
        self.groups = (
            ("sync",)
            + (() if opts.visual is None else ("visual",))
            + (() if opts.avs is None else ("avs",))
        )
        self.hashes: dict[str, str] | None = None
        self.provenance: dict | None = None
        self.executor = (
            executor
            if executor is not None
            else LocalExecutor(opts.sync, opts.visual, opts.workers, opts.avs)
        )

    def start(self) -> None:
        """Start the executor (Ray: its actors and their models) and learn the settings
        hashes of its groups; a second call does nothing."""
        if self.hashes is None:
            self.hashes, self.provenance = self.executor.start()

    # -- inputs ---------------------------------------------------------------------------
    def _plan(self) -> tuple[dict, Path] | None:
        path = self.opts.plan or plan_path(self.root)
        if self.opts.plan is None and not Path(path).is_file():
            return None
        return load_plan(path)

    def ignored(self) -> list[dict[str, str]]:
        """The files of DIR that are not scored, each with the reason (paths relative to
        DIR where they are inside it)."""
        out = []
        for path, why in self.layout.ignored:
            try:
                shown = str(path.relative_to(self.root))
            except ValueError:
                shown = str(path)
            out.append({"path": shown, "reason": why})
        return out

    def cell_videos(self) -> list[CellVideo]:
        out = []
        for stem in sorted(self.layout.gt):
            out.append(CellVideo(stem, GT_SETUP, GT_REF, self.layout.gt[stem]))
            for setup, ref in CELLS:
                video = self.layout.cells.get((setup, ref), {}).get(stem)
                if video is not None:
                    out.append(CellVideo(stem, setup, ref, video))
        return out

    def input_files(self, v: CellVideo) -> list[Path | None]:
        """Files whose change must trigger a rescore of this video: itself, the GT audio,
        the XM driving audio, and the GT video its visual metrics compare with."""
        gt = self.layout.gt[v.stem]
        files = [v.path, gt_audio_source(gt)]
        if v.setup == "XM" and self.driving is not None:
            files.append(self.driving.get(v.stem))
        if v.setup != GT_SETUP:
            files.append(gt)
        return files

    def pending(self, store: ResultsStore) -> Iterator[PendingStem]:
        """What is left to do, one entry per stem in stem order; reads the store only.

        Lazy: a stem is looked at when its entry is asked for, so a driver that hands out
        tasks as workers free up makes each skip decision just before sending.
        """
        by_stem: dict[str, list[CellVideo]] = {}
        for v in self.cell_videos():
            by_stem.setdefault(v.stem, []).append(v)
        for stem, videos in by_stem.items():
            pending, done_videos, skipped = [], 0, 0
            for v in videos:
                in_hash = inputs_hash(*self.input_files(v))
                todo = []
                for group in self.groups:
                    h = self.hashes[group]
                    # one look-up per unit: a retry is linear in the size of the store
                    ok_only = self.opts.retry_failed
                    if store.is_done(v.stem, v.setup, v.reference, group, h, in_hash, ok_only):
                        skipped += 1
                    else:
                        todo.append(group)
                if todo:
                    pending.append(PendingVideo(v, tuple(todo), in_hash))
                else:
                    done_videos += 1
            task = None
            if pending:
                task = StemTask(
                    self.root,
                    stem,
                    self.layout.gt[stem],
                    self.driving is not None,
                    None if self.driving is None else self.driving.get(stem),
                    tuple(pending),
                )
            yield PendingStem(stem, task, done_videos, skipped)

    # -- the run --------------------------------------------------------------------------
    def run(self, argv: list[str] | None = None) -> dict:
        from tqdm import tqdm

        with RunLock(lock_path(self.db_path)):
            try:
                self.start()
                store = ResultsStore(self.db_path)
                try:
                    store.start_run(
                        __version__,
                        argv or sys.argv[1:],
                        {
                            "hashes": self.hashes,
                            **self.provenance,
                            "layout": {
                                "not_run": [f"{s}/{r}" for s, r in self.layout.not_run],
                                "missing": {
                                    f"{s}/{r}": v for (s, r), v in self.layout.missing.items() if v
                                },
                                "ignored": self.ignored(),
                            },
                        },
                    )
                    counts = self._loop(store, tqdm)
                    store.finish_run()
                finally:
                    store.close()
            finally:
                self.executor.close()
        return counts

    def _loop(self, store: ResultsStore, tqdm) -> dict:
        counts = {"scored": 0, "skipped": 0, "failed": 0, "failures": []}
        bar = tqdm(
            total=len(self.cell_videos()),
            unit="video",
            disable=self.opts.quiet,
            desc="score",
            dynamic_ncols=True,
        )

        def tasks() -> Iterator[StemTask]:
            for p in self.pending(store):
                counts["skipped"] += p.skipped
                if p.done_videos:
                    bar.update(p.done_videos)
                if p.task is not None:
                    yield p.task

        def commit(r: GroupResult) -> None:
            # the only writer: each result is one transaction, idempotent per unit key
            store.commit_unit(
                r.stem,
                r.setup,
                r.reference,
                r.group,
                r.settings_hash,
                r.inputs_hash,
                r.metrics,
                status=r.status,
                reason=r.reason,
                detail=r.detail,
                reasons=r.reasons,
            )
            if r.status == "ok":
                counts["scored"] += 1
            else:
                counts["failed"] += 1
                counts["failures"].append(f"{r.label}: {r.reason}")
                if not self.opts.quiet:
                    bar.write(f"failed: {r.label}: {r.message or r.reason}")
            if r.last:
                bar.update(1)

        self.executor.run(tasks(), commit)
        bar.close()
        return counts

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
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..io.audio import load_audio
from ..sync_video import SyncScorer, SyncSettings
from .dataset import CELLS, GT_REF, GT_SETUP, Layout, discover, gt_audio_source
from .planner import load_plan
from .results import ResultsStore, RunLock, inputs_hash

SYNC_METRICS = ("lse_c", "lse_d", "offset", "n_frames", "n_tracks")


def state_dir(root: Path) -> Path:
    return Path(root) / ".lipleak"


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


def features_path(root: Path, vhash: str, setup: str, ref: str, stem: str) -> Path:
    return state_dir(root) / "features" / vhash / f"{setup}_{ref}" / f"{stem}.npy"


def _save_npy(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part.npy")
    np.save(tmp, np.ascontiguousarray(arr, dtype=np.float32))
    tmp.replace(path)


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


class DirectoryScorer:
    """Scores the units of one protocol directory into its results store."""

    def __init__(self, root: Path, opts: ScoreOptions):
        self.root = Path(root)
        self.opts = opts
        self.plan = self._plan()
        planned = None if self.plan is None else {
            v["stem"]: Path(v["video"]) for v in self.plan[0]["videos"]}
        self.layout: Layout = discover(self.root, opts.gt, planned)
        self.db_path = Path(opts.db) if opts.db else self.root / "results.sqlite"
        self.driving = None if self.plan is None else {
            v["stem"]: self.plan[1] / v["audio"]["XM"] for v in self.plan[0]["videos"]}
        self._gt_audio: dict[str, np.ndarray | InputError] = {}
        self._gt_analysis: dict[str, object] = {}
        self.sync = SyncScorer(opts.sync)
        sync_desc = self.sync.describe()
        self.hashes = {"sync": group_hash(opts.sync.hashed_dict(), _model_shas(sync_desc))}
        self.provenance = {"sync": sync_desc}
        self.visual = None
        if opts.visual is not None:
            from ..visual import VisualScorer

            self.visual = VisualScorer(opts.visual)
            vdesc = self.visual.describe()
            self.hashes["visual"] = group_hash(opts.visual.hashed_dict(), _model_shas(vdesc))
            self.provenance["visual"] = vdesc

    # -- inputs ---------------------------------------------------------------------------
    def _plan(self) -> tuple[dict, Path] | None:
        path = self.opts.plan or (self.root / "plan.json")
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

    def gt_audio(self, stem: str) -> np.ndarray:
        if stem not in self._gt_audio:
            src = gt_audio_source(self.layout.gt[stem])
            try:
                self._gt_audio[stem] = load_audio(src)
            except InputError as exc:
                self._gt_audio[stem] = exc
        a = self._gt_audio[stem]
        if isinstance(a, InputError):
            raise InputError(a.path, f"GT audio: {a.cause}", a.status)
        return a

    def audio_files(self, u: Unit) -> list[Path | None]:
        """Files whose change must trigger a rescore of this unit."""
        gt = self.layout.gt[u.stem]
        files = [u.video, gt_audio_source(gt)]
        if u.setup == "XM" and self.driving is not None:
            files.append(self.driving.get(u.stem))
        if u.setup != GT_SETUP:
            files.append(gt)
        return files

    def sync_audio(self, u: Unit):
        if u.setup == "XM":
            if self.driving is None:
                return None  # the generated video's own track is the driving audio
            if u.stem not in self.driving:
                raise InputError(u.video, "the plan has no driving audio for this stem", "bad_input")
            return load_audio(self.driving[u.stem])
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

        if stem in self._gt_analysis:
            return self._gt_analysis[stem]
        cache = state_dir(self.root) / "gt" / self.hashes["visual"] / f"{stem}.npz"
        video = self.layout.gt[stem]
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
            gta.save(cache)
            cache.with_suffix(".key").write_text(key)
        self._gt_analysis = {stem: gta}  # keep one: work is ordered by stem
        return gta

    def score_visual(self, u: Unit) -> tuple[dict, dict, dict]:
        from ..metrics import mouth

        gta = self.gt_analysis(u.stem)
        if u.setup == GT_SETUP:
            feats = gta.features
            ap = mouth.aperture(gta.landmarks)
            am = mouth.audio_motion(ap, self.gt_audio(u.stem))
            metrics = {"mouth_audio_corr": am.corr,
                       "mouth_audio_lag": None if am.lag is None else float(am.lag),
                       "n_no_face_gt": gta.n_no_face}
            reasons = {} if am.lag is not None else {"mouth_audio_corr": am.reason,
                                                     "mouth_audio_lag": am.reason}
            detail = {"n_frames": gta.n_frames}
        else:
            r = self.visual.score(u.video, gta, self.layout.gt[u.stem], self.motion_audio(u),
                                  u.setup)
            feats, metrics, reasons, detail = r.features, dict(r.metrics), dict(r.reasons), {}
            for k, v in list(metrics.items()):
                if v is not None and not np.isfinite(v) and k != "psnr":
                    metrics[k] = None
            for k in reasons:
                metrics.setdefault(k, None)
        _save_npy(features_path(self.root, self.hashes["visual"], u.setup, u.reference, u.stem),
                  feats)
        return metrics, reasons, detail

    # -- the run --------------------------------------------------------------------------
    def run(self, argv: list[str] | None = None) -> dict:
        from tqdm import tqdm

        groups = [("sync", self.score_sync)]
        if self.visual is not None:
            groups.append(("visual", self.score_visual))
        with RunLock(self.db_path.with_name(self.db_path.name + ".lock")):
            store = ResultsStore(self.db_path)
            try:
                store.start_run(__version__, argv or sys.argv[1:], {
                    "hashes": self.hashes, **self.provenance,
                    "layout": {"not_run": [f"{s}/{r}" for s, r in self.layout.not_run],
                               "missing": {f"{s}/{r}": v for (s, r), v in
                                           self.layout.missing.items() if v}}})
                counts = self._loop(store, groups, tqdm)
                store.finish_run()
            finally:
                store.close()
        return counts

    def _loop(self, store: ResultsStore, groups, tqdm) -> dict:
        counts = {"scored": 0, "skipped": 0, "failed": 0, "failures": []}
        units = self.units()
        bar = tqdm(total=len(units), unit="video", disable=self.opts.quiet, desc="score",
                   dynamic_ncols=True)
        for u in units:
            in_hash = inputs_hash(*self.audio_files(u))
            for grp, fn in groups:
                h = self.hashes[grp]
                if store.is_done(u.stem, u.setup, u.reference, grp, h, in_hash) and not (
                        self.opts.retry_failed and self._failed(store, u, grp, h)):
                    counts["skipped"] += 1
                    continue
                try:
                    metrics, reasons, detail = fn(u)
                    store.commit_unit(u.stem, u.setup, u.reference, grp, h, in_hash, metrics,
                                      detail=detail, reasons=reasons)
                    counts["scored"] += 1
                except InputError as exc:
                    names = SYNC_METRICS if grp == "sync" else ()
                    store.commit_unit(u.stem, u.setup, u.reference, grp, h, in_hash,
                                      dict.fromkeys(names), status="failed",
                                      reason=f"{exc.status}: {exc.cause}")
                    counts["failed"] += 1
                    counts["failures"].append(f"{u.setup}/{u.reference}/{u.stem} [{grp}]: "
                                              f"{exc.status}: {exc.cause}")
                    if not self.opts.quiet:
                        bar.write(f"failed: {u.setup}/{u.reference}/{u.stem} [{grp}]: {exc}")
            bar.update(1)
        bar.close()
        return counts

    @staticmethod
    def _failed(store: ResultsStore, u: Unit, grp: str, h: str) -> bool:
        return any(x["status"] != "ok" for x in store.units(grp, h)
                   if (x["stem"], x["setup"], x["reference"]) == (u.stem, u.setup, u.reference))

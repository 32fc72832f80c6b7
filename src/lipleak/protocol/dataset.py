"""Where things are in a protocol directory, and which audio scores which cell (SPEC §1).

    DIR/AM/CR/<stem>.mp4   DIR/AM/AR/…   DIR/XM/CR/…   DIR/XM/AR/…   DIR/SI/CR/…   DIR/SI/AR/…
    DIR/gt/<stem>.mp4 (or --gt PATH)     DIR/plan.json (optional, or --plan PATH)
    DIR/jobs.jsonl                       DIR/audio/{AM,XM,SI}/ (written by `plan`)

and what scoring writes there (the scorer, the Ray workers and the report all find these
files through the functions below, so they agree on one layout):

    DIR/results.sqlite (or --db)         DIR/results.sqlite.lock
    DIR/.lipleak/features/<visual hash>/<setup>_<ref>/<stem>.npy   Inception features
    DIR/.lipleak/gt/<visual hash>/<stem>.npz (+ .key)               GT analysis cache
    DIR/.lipleak/fid_cache.json                                     cell FIDs
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, LipleakError
from ..files import lock_path as lock_path  # re-export: moved to files for lipleak.sync

SETUPS = ("AM", "XM", "SI")
REFERENCES = ("CR", "AR")
CELLS = tuple((s, r) for s in SETUPS for r in REFERENCES)
VIDEO_EXTS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv")
GT_SETUP, GT_REF = "GT", "-"


def results_db(root: Path) -> Path:
    """The default results store of ``root`` (``--db`` puts it elsewhere)."""
    return Path(root) / "results.sqlite"


def plan_path(root: Path) -> Path:
    return Path(root) / "plan.json"


def jobs_path(plan_dir: Path) -> Path:
    """The generator jobs, one JSON line each, beside the plan that made them."""
    return Path(plan_dir) / "jobs.jsonl"


def state_dir(root: Path) -> Path:
    """Scoring's own files: caches and per-video outputs that the results store points to."""
    return Path(root) / ".lipleak"


def features_path(root: Path, visual_hash: str, setup: str, ref: str, stem: str) -> Path:
    """Per-video Inception features (float32 frames×2048), pooled per cell for FID."""
    return state_dir(root) / "features" / visual_hash / f"{setup}_{ref}" / f"{stem}.npy"


def gt_cache_path(root: Path, visual_hash: str, stem: str) -> Path:
    """The cached GT analysis of ``stem``; its inputs hash is in the ``.key`` beside it."""
    return state_dir(root) / "gt" / visual_hash / f"{stem}.npz"


def fid_cache_path(root: Path) -> Path:
    return state_dir(root) / "fid_cache.json"


def scan_folder(folder: Path) -> tuple[dict[str, Path], list[tuple[Path, str]]]:
    """(stem -> video file, [(path, why it is not a video of this folder)]) of ``folder``,
    not recursive; two videos with one stem is an error.

    Every entry that is not taken is returned with its reason, so that callers can list
    what they leave out instead of skipping it silently.
    """
    out: dict[str, Path] = {}
    ignored: list[tuple[Path, str]] = []
    for p in sorted(folder.iterdir()):
        if p.is_dir():
            ignored.append((p, "a folder (subfolders are not searched)"))
        elif p.name.startswith("."):
            ignored.append((p, "hidden file"))
        elif p.suffix.lower() not in VIDEO_EXTS:
            ignored.append((p, f"not a video file (extensions: {' '.join(VIDEO_EXTS)})"))
        elif ".partial" in p.suffixes:
            ignored.append((p, "a generator output still being written (.partial)"))
        elif p.stem in out:
            raise LipleakError(
                f"{folder}: two videos named {p.stem!r} ({out[p.stem].name}, {p.name})"
            )
        else:
            out[p.stem] = p
    return out, ignored


def find_videos(folder: Path) -> dict[str, Path]:
    """stem -> video file in ``folder`` (not recursive); two files with one stem is an error."""
    return scan_folder(folder)[0]


def gt_audio_source(video: Path) -> Path:
    """The GT audio: a sibling <stem>.wav when there is one, else the video's own track."""
    wav = video.with_suffix(".wav")
    return wav if wav.is_file() else video


@dataclass
class Layout:
    root: Path
    gt_dir: Path
    gt: dict[str, Path]  # stem -> GT video
    cells: dict[tuple[str, str], dict[str, Path]]  # (setup, ref) -> stem -> generated video
    not_run: list[tuple[str, str]]  # cells whose folder does not exist
    missing: dict[tuple[str, str], list[str]]  # GT stems absent from a cell that was run
    extra: dict[tuple[str, str], list[str]]  # generated stems with no GT (not scored)
    # every file a scorer could expect to be scored but is not, with the reason
    ignored: list[tuple[Path, str]] = field(default_factory=list)


def discover(root: Path, gt: Path | None = None, planned: dict[str, Path] | None = None) -> Layout:
    """The protocol folders of ``root``. GT videos come from ``gt``, else DIR/gt/, else
    the plan's list (``planned``: stem -> GT video)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "not a directory", "missing")
    gt_dir = Path(gt) if gt else root / "gt"
    ignored: list[tuple[Path, str]] = []
    if not gt_dir.is_dir() and gt is None and planned:
        gt_videos = dict(planned)
        gt_dir = root
    elif not gt_dir.is_dir():
        raise InputError(
            gt_dir,
            "ground-truth folder not found (put the GT videos in DIR/gt/, "
            "pass --gt PATH, or score the folder `plan` wrote)",
            "missing",
        )
    else:
        gt_videos, gt_ignored = scan_folder(gt_dir)
        # a sibling <stem>.wav is that GT video's audio (gt_audio_source), not a stray file
        ignored += [
            (p, why)
            for p, why in gt_ignored
            if not (p.suffix.lower() == ".wav" and p.stem in gt_videos)
        ]
    if not gt_videos:
        raise InputError(gt_dir, "no ground-truth videos found", "missing")
    cells, not_run, missing, extra = {}, [], {}, {}
    for setup in SETUPS:
        if (root / setup).is_dir():
            ignored += [
                (p, "not in a reference folder (CR/ or AR/)")
                for p in sorted((root / setup).iterdir())
                if p.name not in REFERENCES
            ]
    for cell in CELLS:
        folder = root / cell[0] / cell[1]
        if not folder.is_dir():
            not_run.append(cell)
            continue
        videos, cell_ignored = scan_folder(folder)
        ignored += cell_ignored
        cells[cell] = {s: p for s, p in videos.items() if s in gt_videos}
        missing[cell] = sorted(set(gt_videos) - set(videos))
        extra[cell] = sorted(set(videos) - set(gt_videos))
        ignored += [(videos[s], "no GT video with this name") for s in extra[cell]]
    ignored.sort(key=lambda item: str(item[0]))
    return Layout(root, gt_dir, gt_videos, cells, not_run, missing, extra, ignored)

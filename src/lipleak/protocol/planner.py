"""`plan`: the audio, reference frames and jobs of every protocol generation.

For each GT video (sorted by stem) the plan writes, under OUT_DIR:

- ``audio/AM/<stem>.wav``: the GT's own audio, 16 kHz mono int16;
- ``audio/SI/<stem>.wav``: digital silence (exact zeros) of the same length;
- ``audio/XM/<stem>.wav``: the audio of another video, chosen by a seeded derangement (a
  random permutation with no fixed point, drawn by rejection from numpy's PCG64 with the
  seed), never the video's own, nor that of another video with identical audio (listed
  in the plan as ``identical_audio``). Length rule: the driving audio is cut to the GT's
  length when longer and repeated from its start when shorter, so every generation has
  the GT's length and frame count;
- AR reference frame indices: ``first`` → [0], ``random`` → one seeded index,
  ``multi:K`` → K distinct seeded indices (sorted); CR uses the current frame;
- ``jobs.jsonl``: one job per (video, setup, reference) and ``plan.json``.

Paths inside the plan are relative to OUT_DIR (GT videos are absolute), and nothing in it
depends on time or machine, so the same inputs and seed give byte-identical files. A file
whose bytes would not change is not rewritten (its mtime is kept), so planning an existing
run again with the same inputs and seed does not make `score` redo anything.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from ..errors import InputError, LipleakError
from ..files import atomic_write
from ..io.audio import load_audio
from ..io.video import probe
from .dataset import CELLS, find_videos, gt_audio_source, jobs_path, plan_path

PLAN_VERSION = 1


def derangement(n: int, rng: np.random.Generator, groups=None) -> np.ndarray:
    """A uniformly random permutation ``p`` of range(n) with no fixed point (n >= 2).

    With ``groups`` (one label per item), ``p[i]`` is also never in ``i``'s group: items
    with identical audio are one group, so XM never drives a video with its own audio
    under another name. Drawn by rejection, so without groups (or with all-distinct ones)
    the draws, and the plan, are exactly those of a plain derangement.
    """
    if n < 2:
        raise ValueError("a derangement needs at least 2 items")
    g = np.arange(n) if groups is None else np.asarray(groups)
    _, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
    m = int(counts.max())
    if 2 * m > n:
        raise ValueError(f"{m} of {n} items share a group: no pairing keeps them all apart")
    for _ in range(100_000):
        p = rng.permutation(n)
        if not np.any(g[p] == g):
            return p
    # Only a group near half of all items gets here: a fixed valid pairing instead. Items
    # sorted into contiguous group blocks, largest first; each points m places on, which
    # can never land in its own block since no block is longer than m and n >= 2m.
    order = np.lexsort((inverse, -counts[inverse]))
    p = np.empty(n, dtype=np.int64)
    p[order] = order[(np.arange(n) + m) % n]
    return p


def identical_audio(stems: list[str], audios: dict[str, np.ndarray]) -> list[list[str]]:
    """Groups (sorted, two or more stems each) of videos whose decoded audio is identical."""
    by_hash: dict[str, list[str]] = {}
    for s in stems:
        by_hash.setdefault(hashlib.sha256(audios[s].tobytes()).hexdigest(), []).append(s)
    return sorted(sorted(g) for g in by_hash.values() if len(g) > 1)


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """Cut ``audio`` to ``n`` samples, or repeat it from its start until it has ``n``."""
    if len(audio) == 0:
        return np.zeros(n, np.int16)
    reps = -(-n // len(audio))
    return np.tile(audio, reps)[:n].astype(np.int16)


def reference_frames(ar: str, n_frames: int, rng: np.random.Generator) -> list[int]:
    if ar == "first":
        return [0]
    if ar == "random":
        return [int(rng.integers(n_frames))]
    if ar.startswith("multi:"):
        try:
            k = int(ar.split(":", 1)[1])
        except ValueError:
            raise LipleakError(f"--ar {ar!r}: expected multi:K with an integer K") from None
        if k < 1:
            raise LipleakError(f"--ar {ar!r}: K must be at least 1")
        return sorted(int(i) for i in rng.choice(n_frames, size=min(k, n_frames), replace=False))
    raise LipleakError(f"--ar {ar!r}: choose first, random or multi:K")


def _wav_bytes(samples: np.ndarray) -> bytes:
    """The bytes ``write_wav`` would write (mono int16 PCM_16 WAV at 16 kHz)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, 16000, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def _write_if_changed(path: Path, data: bytes | str) -> None:
    """Write ``path`` only if its bytes would change.

    Scoring identifies its inputs by size and mtime (``results.inputs_hash``): rewriting an
    identical XM driving wav would make a rerun of `plan` rescore every XM video.
    """
    blob = data.encode() if isinstance(data, str) else data
    try:
        if path.is_file() and path.stat().st_size == len(blob) and path.read_bytes() == blob:
            return
    except OSError:
        pass  # unreadable: write it again
    atomic_write(path, blob)


def make_plan(gt_dir: Path, out_dir: Path, seed: int = 0, ar: str = "first") -> dict:
    gt_dir, out_dir = Path(gt_dir), Path(out_dir)
    if not gt_dir.is_dir():
        raise InputError(gt_dir, "not a directory", "missing")
    videos = find_videos(gt_dir)
    if len(videos) < 2:
        raise LipleakError(
            f"{gt_dir}: {len(videos)} video(s) found; the mismatched-audio setup (XM) needs at "
            "least 2 videos, since a video is never driven by its own audio"
        )
    stems = sorted(videos)
    rng = np.random.default_rng(seed)
    audios, n_frames = {}, {}
    for s in stems:
        audios[s] = load_audio(gt_audio_source(videos[s]))
        n_frames[s] = probe(videos[s]).n_frames
    same = identical_audio(stems, audios)
    label = {s: i for i, group in enumerate(same) for s in group}
    try:
        perm = derangement(
            len(stems), rng, [label.get(s, len(same) + i) for i, s in enumerate(stems)]
        )
    except ValueError:
        raise LipleakError(
            f"{gt_dir}: too many videos share the same audio ({', '.join(max(same, key=len))}): "
            "XM needs, for every video, another video with different audio"
        ) from None
    items, jobs = [], []
    for i, s in enumerate(stems):
        driver = stems[perm[i]]
        n = len(audios[s])
        files = {"AM": audios[s], "SI": np.zeros(n, np.int16), "XM": fit_length(audios[driver], n)}
        rel = {}
        for setup, samples in files.items():
            rel[setup] = f"audio/{setup}/{s}.wav"
            _write_if_changed(out_dir / rel[setup], _wav_bytes(samples))
        ar_frames = reference_frames(ar, max(1, n_frames[s]), rng)
        items.append(
            {
                "stem": s,
                "video": str(videos[s].resolve()),
                "n_frames": n_frames[s],
                "n_samples": n,
                "xm_driver": driver,
                "audio": rel,
                "ar_frames": ar_frames,
            }
        )
        for setup, ref in CELLS:
            jobs.append(
                {
                    "stem": s,
                    "video": str(videos[s].resolve()),
                    "setup": setup,
                    "reference": ref,
                    "audio": rel[setup],
                    "reference_frames": "current" if ref == "CR" else ar_frames,
                    "output": f"{setup}/{ref}/{s}.mp4",
                }
            )
    plan = {
        "version": PLAN_VERSION,
        "seed": seed,
        "ar": ar,
        "xm_length_rule": "cut to the GT length, or repeated from the start when shorter",
        "videos": items,
    }
    if same:  # recorded only when there are any, so other plans stay byte-identical
        plan["identical_audio"] = same
    out_dir.mkdir(parents=True, exist_ok=True)
    # jobs first: a plan.json on disk means its jobs file is complete too
    _write_if_changed(
        jobs_path(out_dir), "".join(json.dumps(j, sort_keys=True) + "\n" for j in jobs)
    )
    _write_if_changed(plan_path(out_dir), json.dumps(plan, indent=1, sort_keys=True) + "\n")
    return plan


def load_plan(path: Path) -> tuple[dict, Path]:
    """The plan and its folder (paths in it are relative to that folder)."""
    path = Path(path)
    if path.is_dir():
        path = plan_path(path)
    if not path.is_file():
        raise InputError(path, "plan not found (make one with `lipleak-fast plan`)", "missing")
    try:
        plan = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not a plan file: {exc}", "bad_input") from None
    if plan.get("version") != PLAN_VERSION:
        raise InputError(
            path, f"plan version {plan.get('version')} is not {PLAN_VERSION}", "bad_input"
        )
    return plan, path.parent

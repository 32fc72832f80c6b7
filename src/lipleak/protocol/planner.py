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

Audio is streamed, never held whole: a first pass hashes and counts each GT audio, a second
writes each stem's three files chunk by chunk (the XM driver is decoded again, as often as
the length rule repeats it), so memory does not grow with the clips' length or number.
"""

from __future__ import annotations

import filecmp
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError, LipleakError, UsageError
from ..files import atomic_path, atomic_write
from ..io.audio import iter_audio
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


def audio_digest(chunks: Iterable[np.ndarray]) -> tuple[str, int]:
    """(sha256 of the int16 samples' bytes, number of samples) of a chunked signal."""
    h, n = hashlib.sha256(), 0
    for c in chunks:
        c = np.ascontiguousarray(c, np.int16)
        h.update(c.tobytes())
        n += len(c)
    return h.hexdigest(), n


def identical_audio(stems: list[str], digests: dict[str, str]) -> list[list[str]]:
    """Groups (sorted, two or more stems each) of videos whose decoded audio is identical,
    from the sha256 of each stem's samples (``audio_digest``)."""
    by_hash: dict[str, list[str]] = {}
    for s in stems:
        by_hash.setdefault(digests[s], []).append(s)
    return sorted(sorted(g) for g in by_hash.values() if len(g) > 1)


def zeros(n: int, size: int = 1 << 16) -> Iterator[np.ndarray]:
    """``n`` samples of digital silence, in chunks of at most ``size``."""
    block = np.zeros(min(n, size), np.int16)
    for i in range(0, n, size):
        yield block[: min(size, n - i)]


def fit_length(chunks: Callable[[], Iterable[np.ndarray]], n: int) -> Iterator[np.ndarray]:
    """The signal ``chunks()`` cut to ``n`` samples, or repeated from its start until it has
    ``n`` (silence when it is empty); ``chunks`` gives a fresh pass over it each call."""
    left = n
    while left > 0:
        got = 0
        for c in chunks():
            c = c[:left]
            got += len(c)
            left -= len(c)
            if len(c):
                yield c
            if left == 0:
                return
        if got == 0:  # nothing to repeat
            yield from zeros(left)
            return


def reference_frames(ar: str, n_frames: int, rng: np.random.Generator) -> list[int]:
    if ar == "first":
        return [0]
    if ar == "random":
        return [int(rng.integers(n_frames))]
    if ar.startswith("multi:"):
        try:
            k = int(ar.split(":", 1)[1])
        except ValueError:
            raise UsageError(f"--ar {ar!r}: expected multi:K with an integer K") from None
        if k < 1:
            raise UsageError(f"--ar {ar!r}: K must be at least 1")
        return sorted(int(i) for i in rng.choice(n_frames, size=min(k, n_frames), replace=False))
    raise UsageError(f"--ar {ar!r}: choose first, random or multi:K")


def _wav_bytes(samples: np.ndarray) -> bytes:
    """The bytes ``write_wav`` would write (mono int16 PCM_16 WAV at 16 kHz)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, 16000, subtype="PCM_16", format="WAV")
    return buf.getvalue()


class _Unchanged(Exception):
    """The new file's bytes are the old file's: keep the old one (and its mtime)."""


def write_wav_if_changed(path: Path, chunks: Iterable[np.ndarray]) -> None:
    """Stream ``chunks`` into ``path`` as ``write_wav`` would write their concatenation;
    the file is replaced whole, and only if its bytes change (see ``_write_if_changed``)."""
    import soundfile as sf

    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as raw:
                with sf.SoundFile(raw, "w", 16000, 1, "PCM_16", format="WAV") as f:
                    for c in chunks:
                        f.write(np.ascontiguousarray(c, np.int16))
                raw.flush()
                os.fsync(raw.fileno())
            if path.is_file() and filecmp.cmp(tmp, path, shallow=False):
                raise _Unchanged  # atomic_path removes the temporary file
    except _Unchanged:
        pass


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


def make_plan(
    gt_dir: Path,
    out_dir: Path,
    seed: int = 0,
    ar: str = "first",
    progress: Callable[[str], None] = lambda message: None,
) -> dict:
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
    source = {s: gt_audio_source(videos[s]) for s in stems}
    digests, n_samples, n_frames = {}, {}, {}
    for i, s in enumerate(stems):
        progress(f"reading audio {i + 1}/{len(stems)}: {s}")
        digests[s], n_samples[s] = audio_digest(iter_audio(source[s]))
        n_frames[s] = probe(videos[s]).n_frames
    same = identical_audio(stems, digests)
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
        progress(f"writing audio {i + 1}/{len(stems)}: {s}")
        driver = stems[perm[i]]
        n = n_samples[s]
        files = {  # generators: each is decoded while its file is written
            "AM": iter_audio(source[s]),
            "SI": zeros(n),
            "XM": fit_length(lambda d=driver: iter_audio(source[d]), n),
        }
        rel = {}
        for setup, chunks in files.items():
            rel[setup] = f"audio/{setup}/{s}.wav"
            write_wav_if_changed(out_dir / rel[setup], chunks)
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

"""Issue 13 benchmark: many videos through one ``sync`` run.

Clips: the shared 25-fps clips (about 5 s each) copied round-robin into ``--short`` files,
and ``--long`` 30-s clips made by repeating one shared clip six times (re-encoded).

Measured, all in this script on this machine:

A. the pipeline over all clips (``VolumeRun`` + ``LocalExecutor``, what ``sync DIR`` runs
   after its start-up): videos/min, frames/s and windows/s end to end, and SyncNet
   utilisation = end-to-end windows/s ÷ the lip tower's windows/s measured alone (full
   batches of the same size, the best of five trials right before and five after A, in
   this process);
B. ``lipleak-fast sync DIR`` as a process on ``--compare`` of the 5-s clips;
C. the same clips as separate ``lipleak-fast sync VIDEO`` processes, one after the other;
D. the reference workflow (``bench_sync.baseline_score``: syncnet_python's evaluate with
   JPEG frames on disk and PyTorch SyncNet, one process for all) on ``--baseline`` clips.

    python bench/bench_volume.py [--short 90] [--long 10] [--compare 24] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CLIPS_DIR, ROOT, model_env, write_result  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))  # the test suite's media writer


def make_clips(folder: Path, n_short: int, n_long: int) -> tuple[list[Path], list[Path]]:
    from lipleak.io.audio import load_audio
    from lipleak.io.frames import iter_frames
    from lipleak.io.video import probe
    from media import write_video

    sources = [c for c in sorted(CLIPS_DIR.glob("*.mp4")) if abs(probe(c).src_fps - 25) < 1e-3]
    short = []
    for i in range(n_short):
        src = sources[i % len(sources)]
        dst = folder / "short" / f"{i:03d}_{src.name}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
        short.append(dst)
    long = []
    for i in range(n_long):
        src = sources[i % len(sources)]
        frames = list(iter_frames(src, fps=25.0))
        audio = load_audio(src)[: len(frames) * 640]
        audio = np.pad(audio, (0, len(frames) * 640 - len(audio)))
        dst = folder / "long" / f"{i:03d}_{src.stem}_x6.mp4"
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_video(dst, frames * 6, audio=np.tile(audio, 6))
        long.append(dst)
    return short, long


def tower_alone(syncnet, batch_size: int, trials: int = 5, batches: int = 3) -> list[float]:
    """Windows/s of the lip tower on full batches, nothing else running in this process:
    one rate per trial of ``batches`` batches. Other work on the machine can only slow a
    trial down, so the best trial is the tower's rate (a single longer average, as this
    bench took before 2026-12-01's second run, moved by 10 % between runs)."""
    rng = np.random.default_rng(0)
    x = (rng.random((batch_size, 3, 5, 224, 224)) * 255).astype(np.float32)
    syncnet.embed_lips(x)
    rates = []
    for _ in range(trials):
        t = time.perf_counter()
        for _ in range(batches):
            syncnet.embed_lips(x)
        rates.append(batches * batch_size / (time.perf_counter() - t))
    return rates


def cli(*args, env) -> float:
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "lipleak", "sync", *map(str, args)],
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short", type=int, default=90)
    ap.add_argument("--long", type=int, default=10)
    ap.add_argument("--compare", type=int, default=24, help="5-s clips for B, C")
    ap.add_argument("--baseline", type=int, default=8, help="5-s clips for D (0: skip)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--name", default="volume", help="result file: bench/results/NAME_<date>.json")
    args = ap.parse_args()

    from lipleak.sync import SyncScorer, SyncSettings
    from lipleak.sync.inputs import VideoJob
    from lipleak.sync.results import SyncStore
    from lipleak.sync.volume import LocalExecutor, VolumeRun

    tmp = Path(tempfile.mkdtemp(prefix="lipleak-volume-"))
    model_env(tmp / "models")
    env = {**os.environ, "LIPLEAK_MODEL_DIR": str(tmp / "models")}
    short, long = make_clips(tmp / "clips", args.short, args.long)
    clips = short + long
    load_before = os.getloadavg()

    # -- A: the pipeline over every clip, with the tower alone before and after ---------
    settings = SyncSettings(syncnet="syncnet_v2_random", batch_size=args.batch_size)
    scorer = SyncScorer(settings)
    alone = tower_alone(scorer.syncnet, args.batch_size)
    store = SyncStore(tmp / "a.sqlite")
    executor = LocalExecutor(scorer, workers=args.workers)
    run = VolumeRun([VideoJob(c, None) for c in clips], store, executor)
    run.start()
    t = time.perf_counter()
    counts = run.run(["bench_volume"])
    wall_a = time.perf_counter() - t
    stats = executor.pipeline.stats if executor.pipeline else None
    rows = run.rows()
    store.close()
    alone += tower_alone(scorer.syncnet, args.batch_size)
    assert counts.failed == 0, counts.failures
    windows = sum(t["n_windows"] for r in rows for t in r["tracks"])
    frames = sum(r["n_frames"] for r in rows)
    alone_rate = float(max(alone))  # the best trial, before or after A
    a = {
        "videos": len(rows),
        "short_videos": len(short),
        "long_videos": len(long),
        "wall_s": wall_a,
        "videos_per_min": 60 * len(rows) / wall_a,
        "frames_per_s": frames / wall_a,
        "windows_per_s": windows / wall_a,
        "tower_alone_windows_per_s": alone,  # every trial, 5 before A and 5 after
        "tower_alone_best_windows_per_s": alone_rate,
        "utilisation": windows / wall_a / alone_rate,
        "tower_busy_share": stats.busy_s / wall_a if stats else None,
        "tower_batches": stats.batches if stats else None,
        "mixed_batches": stats.mixed_batches if stats else None,
        "mean_batch": stats.windows / stats.batches if stats else None,
    }
    print(
        f"A pipeline: {len(rows)} videos in {wall_a:.1f} s = {a['videos_per_min']:.1f} videos/min, "
        f"{a['windows_per_s']:.1f} windows/s; tower alone {alone_rate:.1f} windows/s; "
        f"utilisation {a['utilisation']:.3f}",
        flush=True,
    )

    # -- B, C: sync DIR vs separate processes on the same 5-s clips ---------------------
    subset = tmp / "subset"
    subset.mkdir()
    chosen = short[: args.compare]
    for c in chosen:
        os.link(c, subset / c.name)
    common = ["--syncnet", "syncnet_v2_random", "--batch-size", str(args.batch_size)]
    wall_b = cli(
        subset, "--db", tmp / "b.sqlite", "--workers", args.workers, "--quiet", *common, env=env
    )
    wall_c = sum(cli(c, *common, env=env) for c in chosen)
    b = {"videos": len(chosen), "wall_s": wall_b, "videos_per_min": 60 * len(chosen) / wall_b}
    c = {"videos": len(chosen), "wall_s": wall_c, "videos_per_min": 60 * len(chosen) / wall_c}
    print(
        f"B sync DIR: {b['videos_per_min']:.1f} videos/min; C separate processes: "
        f"{c['videos_per_min']:.1f} videos/min; B/C {wall_c / wall_b:.2f}x",
        flush=True,
    )

    # -- D: the reference workflow ------------------------------------------------------
    d = None
    if args.baseline:
        import torch
        from bench_sync import baseline_score

        from lipleak.export.syncnet import load_syncnet
        from lipleak.models import store as model_store

        torch.set_num_threads(os.cpu_count() or 1)
        net = load_syncnet(model_store.locate("syncnet_v2_random"))
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            import imageio_ffmpeg

            ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
        few = short[: args.baseline]
        t = time.perf_counter()
        for v in few:
            baseline_score(v, net, ffmpeg, tmp)
        wall_d = time.perf_counter() - t
        d = {"videos": len(few), "wall_s": wall_d, "videos_per_min": 60 * len(few) / wall_d}
        print(f"D reference workflow: {d['videos_per_min']:.1f} videos/min", flush=True)

    result = {
        "batch_size": args.batch_size,
        "workers": args.workers,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "A_pipeline_all_clips": a,
        "B_sync_dir_5s": b,
        "C_separate_processes_5s": c,
        "D_reference_workflow_5s": d,
        "sync_dir_vs_separate_processes": wall_c / wall_b,
        "sync_dir_vs_reference_workflow": (b["videos_per_min"] / d["videos_per_min"])
        if d
        else None,
        "targets": {"utilisation": 0.9, "sync_dir_vs_separate_processes": 1.5},
    }
    print("wrote", write_result(args.name, result))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

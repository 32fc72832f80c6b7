"""Models shared by worker threads, opened ``concurrent`` (one onnxruntime CPU thread per
call) against every session on onnxruntime's default pool (``pooled_sessions.py``).

``sync DIR --mode detect --workers 2`` over copies of the shared 25-fps clips: SCRFD runs
on every frame in the two worker threads beside the lip tower. The two variants alternate,
``--rounds`` times each, each in a fresh results store; the stores' rows are compared
(they must be equal: the thread count changes no bit). All metrics of ``score`` are
``bench_score.py --pooled-sessions``.

    python bench/bench_sessions.py [--clips 12] [--rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import CLIPS_DIR, model_env, store_rows, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    from lipleak.io.video import probe

    tmp = Path(tempfile.mkdtemp(prefix="lipleak-sessions-bench-"))
    model_env(tmp / "models")
    sources = [c for c in sorted(CLIPS_DIR.glob("*.mp4")) if abs(probe(c).src_fps - 25) < 1e-3]
    clips = tmp / "clips"
    clips.mkdir()
    n_frames = 0
    for i in range(args.clips):
        src = sources[i % len(sources)]
        shutil.copy(src, clips / f"{i:03d}_{src.name}")
        n_frames += probe(src).n_frames
    variants = {
        "pooled": [sys.executable, str(HERE / "pooled_sessions.py")],
        "concurrent": [sys.executable, "-m", "lipleak"],
    }
    common = ["sync", str(clips), "--mode", "detect", "--syncnet", "syncnet_v2_random"]
    common += ["--workers", "2", "--quiet"]
    # warm-up: the SyncNet ONNX export and the page cache, outside the timed runs
    subprocess.run([*variants["concurrent"], *common, "--db", str(tmp / "warm.sqlite")], check=True)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.rounds):
        for name, cmd in variants.items():
            db = tmp / f"{name}{r}.sqlite"
            t = time.perf_counter()
            subprocess.run([*cmd, *common, "--db", str(db)], check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - t)
            print(f"round {r} {name:>10}: {times[name][-1]:.1f} s", flush=True)
    skip = ("created", "seq", "run_id")
    first = store_rows(tmp / "pooled0.sqlite", "videos", skip)
    identical = all(
        store_rows(tmp / f"{name}{r}.sqlite", "videos", skip) == first
        for name in variants
        for r in range(args.rounds)
    )
    best = {k: min(v) for k, v in times.items()}
    speedup = best["pooled"] / best["concurrent"]
    print(
        f"best: pooled {best['pooled']:.1f} s, concurrent {best['concurrent']:.1f} s: "
        f"{speedup:.2f}x; rows identical: {identical}"
    )
    assert identical
    print(
        "wrote",
        write_result(
            "sessions",
            {
                "command": "sync DIR --mode detect --workers 2 (SCRFD 500m, random SyncNet)",
                "clips": args.clips,
                "frames": n_frames,
                "seconds": times,
                "frames_per_s_best": {k: n_frames / v for k, v in best.items()},
                "speedup_concurrent_vs_pooled": speedup,
                "rows_identical": identical,
                "backend": "cpu (onnxruntime)",
            },
        ),
    )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Issue 24, item 7: ``sync DIR --retry-failed`` time against the number of failed rows.

A folder of N files that fail at once (text named .mp4: ``not_a_video``), scored once (the
first run), then retried with ``--retry-failed`` against the same store: every row is
failed, so every video is handed out again. Deciding each job is one indexed look-up, so
the retry grows linearly with N (before: a scan of the whole store per job, N²).
``--compare-src DIR`` runs the same with another source tree on PYTHONPATH (e.g. an export
of the previous commit with its ``_core`` module) for the before numbers.

    python bench/bench_retry.py [--sizes 1000 5000] [--compare-src /tmp/old/src]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, model_env, write_result  # noqa: E402


def timed_sync(env: dict, folder: Path, db: Path, *extra: str) -> float:
    cmd = [sys.executable, "-m", "lipleak", "sync", str(folder), "--db", str(db), "--quiet"]
    cmd += ["--syncnet", "syncnet_v2_random", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if proc.returncode != 4:  # every video fails: the run ends with exit 4
        raise SystemExit(f"unexpected exit {proc.returncode}: {proc.stderr[-2000:]}")
    return took


def measure(src: Path, sizes: list[int], tmp: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = []
    for n in sizes:
        folder = tmp / f"{src.parent.name}_{n}"
        folder.mkdir()
        for i in range(n):
            (folder / f"v{i:06d}.mp4").write_text("not a video\n")
        db = tmp / f"{src.parent.name}_{n}.sqlite"
        first = timed_sync(env, folder, db)
        retry = timed_sync(env, folder, db, "--retry-failed")
        row = {"failed_rows": n, "first_run_s": round(first, 2), "retry_s": round(retry, 2)}
        row["retry_ms_per_row"] = round(1000 * retry / n, 3)
        print(src, row, flush=True)
        out.append(row)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--compare-src", type=Path, help="another source tree (before numbers)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model_env(tmp / "models")
        result = {"sizes": args.sizes, "now": measure(ROOT / "src", args.sizes, tmp)}
        if args.compare_src is not None:
            result["compare_src"] = str(args.compare_src)
            result["before"] = measure(args.compare_src, args.sizes, tmp)
    now = result["now"]
    result["retry_growth"] = round(now[-1]["retry_s"] / now[0]["retry_s"], 2)
    result["size_growth"] = round(now[-1]["failed_rows"] / now[0]["failed_rows"], 2)
    print(write_result("retry", result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

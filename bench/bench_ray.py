"""Issue 5 benchmark: `score DIR` in one process vs on 1 and 2 Ray workers (videos/s).

Builds a synthetic protocol directory (tests/synth.py talking faces, the "leaky"
generator over the whole plan), then scores copies of it: in process, then with a local
Ray instance and 1, then 2, CPU workers. Startup (Ray, actors, model loading) is timed
apart from scoring. The rows of every run are compared with the in-process rows.

Caveat: this machine has 2 cores, shared with whatever else runs on it (the load average
is recorded). Two CPU workers split the cores (one onnxruntime thread each) rather than
adding hardware, so the 2-worker number shows the overhead and the parallel share of the
pipeline, not the scaling of a GPU cluster; see docs/ray.md for that.

    python bench/bench_ray.py [--videos 6] [--seconds 2.0] [--visual]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import SHARED, write_result  # noqa: E402


def rows(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return sorted(
            con.execute(
                "SELECT stem, setup, reference, metric, settings_hash, value, status FROM results"
            ).fetchall(),
            key=lambda r: tuple(map(str, r)),
        )
    finally:
        con.close()


def build(base: Path, n: int, seconds: float) -> Path:
    import synth

    synth.make_set(base / "gt", n, seconds=seconds)
    run = base / "run"
    py = sys.executable
    gen = (
        f"{py} {Path(synth.__file__)} leaky --video {{video}} --audio {{audio}} "
        "--out {out} --ref-frames {ref_frames}"
    )
    for args in (
        ["plan", base / "gt", run, "--seed", "7"],
        ["generate", run, "--cmd", gen, "--jobs", "2", "--quiet"],
    ):
        subprocess.run([py, "-m", "lipleak", *map(str, args)], check=True)
    return run


def score(src: Path, dst: Path, opts, executor=None) -> dict:
    from lipleak.protocol.scoring import DirectoryScorer

    shutil.copytree(src, dst)
    load = os.getloadavg()[0]  # other jobs on the machine move these numbers
    t0 = time.perf_counter()
    scorer = DirectoryScorer(dst, opts, executor=executor)
    scorer.start()  # Ray's actors and their models: startup is timed apart from scoring
    t1 = time.perf_counter()
    counts = scorer.run([])
    t2 = time.perf_counter()
    n = counts["scored"] // len(scorer.groups)
    return {
        "startup_s": round(t1 - t0, 2),
        "score_s": round(t2 - t1, 2),
        "videos": n,
        "videos_per_s": round(n / (t2 - t1), 3),
        "failed": counts["failed"],
        "load_average_1min_before": round(load, 2),
        "rows": rows(dst / "results.sqlite"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=6, help="GT clips (x7 videos scored)")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--visual", action="store_true", help="also the visual group")
    args = ap.parse_args()

    import ray

    from lipleak.models import store
    from lipleak.protocol.distributed import RayExecutor
    from lipleak.protocol.scoring import ScoreOptions
    from lipleak.sync import SyncSettings

    tmp = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    os.environ["LIPLEAK_MODEL_DIR"] = str(tmp / "models")  # Ray workers inherit it
    for name in ("syncnet_v2_random", "scrfd_500m", "pfld_68", "fid_inception"):
        store.fetch(name, source=SHARED / "models")
    visual = None
    if args.visual:
        from lipleak.visual import VisualSettings

        visual = VisualSettings(arcface=str(tmp / "absent.onnx"))  # CSIM not computed
    opts = ScoreOptions(sync=SyncSettings(syncnet="syncnet_v2_random"), visual=visual, quiet=True)
    try:
        run = build(tmp / "set", args.videos, args.seconds)
        load = os.getloadavg()
        out = {"local": score(run, tmp / "local", opts)}
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
        try:
            for w in (1, 2):
                ex = RayExecutor(opts.sync, visual, workers=w)
                out[f"ray_{w}"] = score(run, tmp / f"ray{w}", opts, ex)
        finally:
            ray.shutdown()
        same = {k: v.pop("rows") == out["local"]["rows"] for k, v in out.items() if k != "local"}
        out["local"].pop("rows")
        payload = {
            "set": {
                "gt_clips": args.videos,
                "seconds": args.seconds,
                "visual": args.visual,
                "videos_scored": out["local"]["videos"],
            },
            "runs": out,
            "rows_equal_to_local": same,
            "speedup_2_vs_1_workers": round(out["ray_1"]["score_s"] / out["ray_2"]["score_s"], 3),
            "load_average_at_start": [round(x, 2) for x in load],
            "ray_version": ray.__version__,
            "caveat": "2 shared cores: 2 CPU workers split them (1 onnxruntime thread each); "
            "not a model of GPU scaling (docs/ray.md)",
        }
        path = write_result("ray", payload)
        print(path.read_text())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""onnxruntime's CPU arena over a long run of odd-sized batches: the SyncNet lip tower
with its own default arena (grows by powers of two) against the shared one that
lipleak opens (``runtime.onnxrt.shared_cpu_arena``: grows by what is asked).

Each configuration runs in a process of its own, alternately ``--repeat`` times: batches
as detect mode makes them on a long cut video (tracks of 95-245 windows, cut into
batches of ``--batch-size`` with each track's odd-sized rest), on random input. Reports
windows/s, the RSS after the first two tracks and at the end (the growth between them is
the arena reaching for fresh pages), and the peak.

    python bench/bench_ort_arena.py [--tracks 30] [--batch-size 32] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import model_env, write_result  # noqa: E402

CHILD = """
import json, resource, sys, time
import numpy as np
import onnxruntime as ort
shared, path = sys.argv[1] == "shared", sys.argv[4]
tracks, batch = int(sys.argv[2]), int(sys.argv[3])
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
opts = ort.SessionOptions()
opts.intra_op_num_threads = 2
opts.inter_op_num_threads = 1
opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
if shared:
    from lipleak.runtime.onnxrt import shared_cpu_arena
    assert shared_cpu_arena(ort)
    opts.add_session_config_entry("session.use_env_allocators", "1")
sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (batch, 3, 5, 224, 224)).astype(np.float32)
t0, n, after2 = time.perf_counter(), 0, None
for k in range(tracks):
    left = int(rng.integers(95, 246))
    while left > 0:
        b = min(batch, left)
        left -= b
        sess.run(None, {name: x[:b]})
        n += b
    if k == 1:
        after2 = rss()
wall = time.perf_counter() - t0
print(json.dumps({"windows": n, "windows_per_s": round(n / wall, 1),
    "rss_after_2_tracks_mb": round(after2, 1), "rss_end_mb": round(rss(), 1),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracks", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--name", default="ort_arena")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LIPLEAK_MODEL_DIR": str(model_env(Path(tmp) / "models"))}
        from lipleak.models.syncnet import SyncNet

        lips = SyncNet.load("syncnet_v2_random").lips.path
        runs = []
        for i in range(args.repeat):
            for arena in ("own", "shared"):
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, arena, str(args.tracks), str(args.batch_size)]
                    + [str(lips)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                r = {"arena": arena, "round": i, **json.loads(out.stdout.strip().splitlines()[-1])}
                r["growth_mb"] = round(r["rss_end_mb"] - r["rss_after_2_tracks_mb"], 1)
                print(json.dumps(r), flush=True)
                runs.append(r)

    def best(arena, key, fn):
        return fn(r[key] for r in runs if r["arena"] == arena)

    summary = {
        "windows_per_s_shared_vs_own": round(
            best("shared", "windows_per_s", max) / best("own", "windows_per_s", max), 3
        ),
        "growth_mb": {a: best(a, "growth_mb", max) for a in ("own", "shared")},
        "peak_rss_mb": {a: best(a, "peak_rss_mb", max) for a in ("own", "shared")},
    }
    path = write_result(
        args.name,
        {"tracks": args.tracks, "batch_size": args.batch_size, "runs": runs, "summary": summary},
    )
    print(json.dumps(summary, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

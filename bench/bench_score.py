"""Issue 4 benchmark: end-to-end `score` of a protocol directory, LSE only vs all metrics.

Builds a protocol run from real clips (plan → a re-muxing generator → score), then times
`score --no-visual` and `score` with every visual metric on (SSIM, PSNR, FID features,
CSIM with a random-weight IResNet-50 of ArcFace's architecture and cost, LMD, mouth
motion), each in a fresh results store. Frames/s counts every decoded frame of every
scored video (GT + 6 cells).

With ``--pooled-sessions`` the all-metrics run is timed a second time as before the
visual models were opened for concurrent callers (``pooled_sessions.py``: every session on
onnxruntime's default pool, shared by the two worker threads), and the two stores' rows
are compared.

    python bench/bench_score.py [--clips real03_aoc real04_woman_glasses] [--frames 60]
        [--pooled-sessions]
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
sys.path.insert(0, str(HERE.parent / "tests"))
from common import CLIPS_DIR, SHARED, store_rows, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", nargs="+", default=["real03_aoc", "real04_woman_glasses"])
    ap.add_argument("--frames", type=int, default=60, help="frames kept of each clip")
    ap.add_argument(
        "--pooled-sessions",
        action="store_true",
        help="also time all metrics with pooled sessions (not the report) and compare rows",
    )
    args = ap.parse_args()

    import os

    from lipleak.export.arcface import export_random
    from lipleak.io.audio import load_audio
    from lipleak.io.video import iter_frames
    from lipleak.models import store
    from media import write_video

    tmp = Path(tempfile.mkdtemp(prefix="lipleak-score-bench-"))
    os.environ["LIPLEAK_MODEL_DIR"] = str(tmp / "models")
    for name in ("syncnet_v2_random", "scrfd_500m", "pfld_68", "fid_inception"):
        store.fetch(name, source=SHARED / "models")
    arcface = export_random(tmp / "iresnet50_random.onnx")
    gt = tmp / "gt"
    gt.mkdir()
    for name in args.clips:
        frames = [f for _, f in zip(range(args.frames), iter_frames(CLIPS_DIR / f"{name}.mp4"))]
        write_video(
            gt / f"{name}.mp4",
            frames,
            audio=load_audio(CLIPS_DIR / f"{name}.mp4")[: len(frames) * 640],
        )
    run = tmp / "run"
    py = [sys.executable, "-m", "lipleak"]
    subprocess.run(py + ["plan", str(gt), str(run)], check=True, capture_output=True)
    gen = (
        f"{sys.executable} {HERE.parent / 'tests' / 'synth.py'} remux --video {{video}} "
        "--audio {audio} --out {out}"
    )
    subprocess.run(py + ["generate", str(run), "--cmd", gen, "--quiet"], check=True)
    n_frames = 7 * len(args.clips) * args.frames
    # warm-up: exports the ONNX models into the model dir outside the timed runs
    subprocess.run(
        py + ["models", "export", "--syncnet", "syncnet_v2_random"], check=True, capture_output=True
    )
    rows = {}
    runs = [
        ("lse_only", py, ["--no-visual"]),
        ("all_metrics", py, ["--arcface", str(arcface)]),
    ]
    if args.pooled_sessions:
        wrapper = [sys.executable, str(HERE / "pooled_sessions.py")]
        runs.insert(1, ("all_metrics_pooled_sessions", wrapper, ["--arcface", str(arcface)]))
    for label, cmd, extra in runs:
        db = tmp / f"{label}.sqlite"
        t = time.perf_counter()
        subprocess.run(
            cmd
            + [
                "score",
                str(run),
                "--syncnet",
                "syncnet_v2_random",
                "--quiet",
                "--db",
                str(db),
                "--no-report",
                *extra,
            ],
            check=True,
        )
        score_s = time.perf_counter() - t
        report_s = None
        if cmd is py:  # the report's cell FIDs do not depend on the sessions' threads
            t = time.perf_counter()
            subprocess.run(
                py + ["report", str(run), "--db", str(db), "--out", str(tmp / label)],
                check=True,
                capture_output=True,
            )
            report_s = time.perf_counter() - t
        rows[label] = {
            "score_seconds": score_s,
            "report_seconds": report_s,
            "frames": n_frames,
            "frames_per_s": n_frames / score_s,
            "videos_per_min": 60 * 7 * len(args.clips) / score_s,
        }
        report = "" if report_s is None else f", report (cell FIDs) {report_s:.1f} s"
        print(f"{label:>12}: {n_frames / score_s:6.1f} frames/s, score {score_s:.1f} s{report}")
    ratio = rows["all_metrics"]["score_seconds"] / rows["lse_only"]["score_seconds"]
    print(f"all metrics cost {ratio:.2f}x the LSE-only run")
    pooled = rows.get("all_metrics_pooled_sessions")
    if pooled:
        pooled["speedup_of_concurrent_sessions"] = (
            pooled["score_seconds"] / rows["all_metrics"]["score_seconds"]
        )
        skip = ("run_id", "created")  # the settings hash too must be the same
        pooled["rows_identical"] = store_rows(
            tmp / "all_metrics.sqlite", "results", skip
        ) == store_rows(tmp / "all_metrics_pooled_sessions.sqlite", "results", skip)
        print(
            f"concurrent sessions: {pooled['speedup_of_concurrent_sessions']:.2f}x the pooled "
            f"speed; rows identical: {pooled['rows_identical']}"
        )
        assert pooled["rows_identical"]
    print(
        "wrote",
        write_result(
            "score",
            {
                "clips": args.clips,
                "frames_per_clip": args.frames,
                "runs": rows,
                "all_vs_lse_time_ratio": ratio,
                "backend": "cpu (onnxruntime)",
            },
        ),
    )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

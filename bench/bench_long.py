"""Issue 22 benchmark: long videos, frames/s and peak memory against length.

Videos of 10 s, 10 min and 60 min (by default) are cut together from the shared real
clips (hard cuts every 4-10 s between different people, as an interview or an episode
has them), at 320x320, with the clips' own audio. Each is scored by ``lipleak-fast sync
VIDEO``'s scorer (``SyncScorer``, default settings, the random-weight SyncNet) in a
process of its own, prealigned and detect mode; the process reports its peak RSS
(``ru_maxrss``) and the time ``score`` took: frames/s is the video's 25-fps frames over
that time (model loading excluded, reported as ``process_s``), hours of video per hour
over the whole process.

What it shows: memory does not grow with length (streaming decode and audio, flat
detections, only the 31 distances per window kept), speed does not fall with length,
and how many hours of video one machine scores per hour.

    python bench/bench_long.py [--lengths 10,600,3600] [--modes prealigned,detect]
        [--work DIR]   # keeps the generated videos between runs
    python bench/bench_long.py --dir-vs-single 30 [--repeat 3]

``--dir-vs-single S``: one S-second video scored by ``sync VIDEO`` and by ``sync DIR`` (a
folder holding only it: the volume pipeline's case of one long video), each as a whole
CLI process, alternately ``--repeat`` times; the best times and whether the numbers are
equal.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CLIPS_DIR, model_env, write_result  # noqa: E402

SIZE = 320
CLIPS = ["real05_cnn_anchor", "real07_reagan", "real08_feifeili", "real09_vox_rdj", "real03_aoc"]

# Runs in the child: load the models, score the video (timed), then one JSON line with
# the result's frame count and shots/tracks, the scoring time and the peak RSS.
CHILD = """
import json, resource, sys, time
from lipleak.malloc import limit_arenas
limit_arenas()  # as lipleak-fast does first
from lipleak.sync import SyncScorer, SyncSettings
t0 = time.perf_counter()
scorer = SyncScorer(SyncSettings(**json.loads(sys.argv[2])))
t1 = time.perf_counter()
r = scorer.score(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({"frames": r.n_frames, "shots": len(r.shots), "tracks": len(r.tracks),
    "load_s": t1 - t0, "score_s": t2 - t1,
    "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _clips():
    from lipleak.io.audio import load_audio
    from lipleak.io.frames import iter_frames

    out = []
    for name in CLIPS:
        path = CLIPS_DIR / f"{name}.mp4"
        frames = [
            cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
            for f in iter_frames(path, fps=25.0)
        ]
        audio = load_audio(path)
        n = min(len(frames), len(audio) // 640)
        out.append((frames[:n], audio[: n * 640]))
    return out


def make_video(path: Path, seconds: int, clips) -> Path:
    """``seconds`` of shots of 4-10 s taken in turn from the clips (each shot a stretch of
    one clip, so consecutive shots are different people), written with libx264 + AAC."""
    import av

    if path.exists():
        return path
    tmp = path.with_suffix(".part.mp4")
    rng = np.random.default_rng(seconds)
    n_total, done, k = seconds * 25, 0, 0
    with av.open(str(tmp), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width = vs.height = SIZE
        vs.pix_fmt = "yuv420p"
        vs.options = {"crf": "20", "preset": "veryfast"}
        aus = out.add_stream("aac", rate=16000)
        aus.layout = "mono"
        apts = 0
        while done < n_total:
            frames, audio = clips[k % len(clips)]
            k += 1
            n = min(int(rng.integers(100, 251)), len(frames), n_total - done)
            start = int(rng.integers(0, len(frames) - n + 1))
            for f in frames[start : start + n]:
                for pkt in vs.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                    out.mux(pkt)
            seg = audio[start * 640 : (start + n) * 640]
            for i in range(0, len(seg), 1024):
                fr = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(seg[i : i + 1024].reshape(1, -1)),
                    format="s16",
                    layout="mono",
                )
                fr.sample_rate, fr.pts = 16000, apts
                apts += fr.samples
                for pkt in aus.encode(fr):
                    out.mux(pkt)
            done += n
        for stream in (vs, aus):
            for pkt in stream.encode():
                out.mux(pkt)
    tmp.rename(path)
    return path


def score(video: Path, settings: dict, env: dict) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(video), json.dumps(settings)],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"scoring {video} failed:\n{proc.stderr[-2000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "frames": r["frames"],
        "shots": r["shots"],
        "tracks": r["tracks"],
        "score_s": round(r["score_s"], 2),
        "process_s": round(wall, 2),  # start-up and model loading included
        "frames_per_s": round(r["frames"] / r["score_s"], 2),
        "peak_rss_mb": round(r["peak_rss_kb"] / 1024, 1),
        # hours of video scored per hour of one process's wall time
        "hours_per_hour": round(r["frames"] / 25 / wall, 2),
    }


def _cli(args: list, env: dict) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "lipleak", *map(str, args)], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"lipleak-fast {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return time.perf_counter() - t0, proc


def dir_vs_single(seconds: int, repeat: int, work: Path, env: dict, clips) -> dict:
    folder = work / f"one_{seconds}s"
    folder.mkdir(exist_ok=True)
    video = make_video(folder / "episode.mp4", seconds, clips)
    common = ["--syncnet", "syncnet_v2_random"]
    single, volume = [], []
    for i in range(repeat):
        t, proc = _cli(["sync", video, "--json", "--no-progress", *common], env)
        single.append(t)
        one = json.loads(proc.stdout)["result"]
        db, rows = work / f"dir_{i}.sqlite", work / f"dir_{i}.jsonl"
        t, _ = _cli(["sync", folder, "--db", db, "--jsonl", rows, "--quiet", *common], env)
        volume.append(t)
        row = json.loads(rows.read_text())
        for f in (db, rows, db.with_name(db.name + ".lock")):
            f.unlink(missing_ok=True)
        same = (row["offset"], row["lse_c"], row["lse_d"]) == (
            one["offset"],
            one["lse_c"],
            one["lse_d"],
        )
        if not same:
            raise RuntimeError(f"sync DIR gave {row} and sync VIDEO {one}")
    return {
        "seconds": seconds,
        "sync_video_s": [round(t, 2) for t in single],
        "sync_dir_s": [round(t, 2) for t in volume],
        "dir_over_single_best": round(min(volume) / min(single), 3),
        "rows_equal": True,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lengths", default="10,600,3600", help="seconds, comma-separated")
    ap.add_argument("--modes", default="prealigned,detect")
    ap.add_argument("--work", type=Path, help="folder for the generated videos (kept)")
    ap.add_argument("--min-face-size", type=float, default=60, help="detect mode (320-px frames)")
    ap.add_argument("--dir-vs-single", type=int, metavar="SECONDS", help="see above")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--name", default="long", help="result file: bench/results/NAME_<date>.json")
    args = ap.parse_args(argv)
    lengths = [int(x) for x in args.lengths.split(",")]
    modes = args.modes.split(",")
    scratch = tempfile.TemporaryDirectory()
    work = args.work or Path(scratch.name)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LIPLEAK_MODEL_DIR": str(model_env(Path(scratch.name) / "models"))}
    # the ONNX export of the checkpoint happens once, here, not in the first measured run
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from lipleak.models.syncnet import SyncNet; SyncNet.load('syncnet_v2_random')",
        ],
        env=env,
        check=True,
    )
    clips = _clips()
    if args.dir_vs_single:
        r = dir_vs_single(args.dir_vs_single, args.repeat, work, env, clips)
        print(json.dumps(r, indent=1))
        print(f"wrote {write_result('long_dir_vs_single', r)}")
        return 0
    runs = []
    for seconds in lengths:
        video = make_video(work / f"long_{seconds}s.mp4", seconds, clips)
        for mode in modes:
            settings = {"syncnet": "syncnet_v2_random", "mode": mode}
            if mode == "detect":
                settings["min_face_size"] = args.min_face_size
            r = {"seconds": seconds, "mode": mode, **score(video, settings, env)}
            print(json.dumps(r), flush=True)
            runs.append(r)
    summary = {}
    for mode in modes:
        mine = sorted((r for r in runs if r["mode"] == mode), key=lambda r: r["seconds"])
        if len(mine) >= 2:
            short, long_ = mine[0], mine[-1]
            summary[mode] = {
                "rss_growth_mb": round(long_["peak_rss_mb"] - short["peak_rss_mb"], 1),
                "fps_ratio_long_vs_short": round(long_["frames_per_s"] / short["frames_per_s"], 3),
                "hours_of_video_per_hour": long_["hours_per_hour"],
            }
    path = write_result(
        args.name,
        {"size": SIZE, "syncnet": "syncnet_v2_random", "runs": runs, "summary": summary},
    )
    print(json.dumps(summary, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

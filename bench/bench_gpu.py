"""Latency and throughput of LSE scoring per backend, per stage (issue 7, acceptance 3).

    python bench/bench_gpu.py [--clips A.mp4 ...] [--repeat 3] [--backends tensorrt cpu]
                              [--metrics lse all] [--precision fp32 fp16] [--out FILE]

For each usable backend (default: every available one of tensorrt, ort-cuda, cpu):
- first open: model export + engine build (tensorrt) timed separately from scoring;
- per video: wall time of LSE scoring (p50 / p95 over clips × repeats), split into
  stages — decode+crop (what remains), audio load+MFCC, lip-tower inference, audio-tower
  inference, offset search — and throughput (videos/min, frames/s);
- decode alone (CPU decoder, and DALI when available) in frames/s, to check that decode
  is not the bottleneck (target: decode >= 2x the inference rate);
- ``--metrics all`` adds the FID Inception features of every frame's 224x224 crop (the
  heaviest per-frame model of the other metrics); SSIM/PSNR/CSIM/LMD are not timed here
  (their modules are CPU code or need models this workplace does not have) and the JSON
  says so.
The SyncNet weights are the shared random-weight checkpoint (same architecture and cost as
the real one). Results go to bench/results/gpu_<date>.json with GPU name, driver, CUDA,
TensorRT, DALI and onnxruntime versions; on a machine without a GPU only the CPU backend
runs and the JSON says that no GPU was measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIPLEAK_SHARED_DIR", ROOT.parent / "shared"))
CHECKPOINT = SHARED / "models" / "syncnet_v2_random.model"
INCEPTION_TS = SHARED / "models" / "fid_inception_torchscript.pt"


class Timer:
    """Accumulates seconds per stage name."""

    def __init__(self):
        self.t: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.t[name] = self.t.get(name, 0.0) + time.perf_counter() - t0

    def wrap(self, name: str, fn):
        def inner(*a, **k):
            with self.stage(name):
                return fn(*a, **k)

        return inner


def pct(xs, q) -> float | None:
    return float(np.percentile(xs, q)) if xs else None


def open_scorer(backend: str, precision: str):
    from lipleak.models.syncnet import SyncNet
    from lipleak.runtime import open_model
    from lipleak.sync import SyncScorer, SyncSettings

    t0 = time.perf_counter()
    if precision == "fp32":
        scorer = SyncScorer(SyncSettings(syncnet=str(CHECKPOINT), backend=backend))
    else:
        scorer = SyncScorer(SyncSettings(syncnet=str(CHECKPOINT), backend="cpu"))
        cpu = scorer.syncnet
        lips = open_model(cpu.lips.describe().model_path, backend, precision=precision)
        audio = open_model(cpu.audio.describe().model_path, backend, precision=precision)
        scorer.syncnet = SyncNet(cpu.checkpoint, cpu.sha256, cpu.name, lips, audio)
    open_s = time.perf_counter() - t0
    details = scorer.syncnet.lips.describe().details
    return (
        scorer,
        open_s,
        {
            "lips_build_seconds": details.get("build_seconds"),
            "engine_cache": details.get("engine_cache"),
        },
    )


def score_timed(scorer, clip: Path, timer: Timer):
    """One LSE score with its stages timed; decode+crop is the remainder."""
    from lipleak import _core

    net = scorer.syncnet
    orig = (
        net.embed_lip_frames,
        net.embed_audio,
        scorer._audio,
        _core.shift_distances,
        _core.sync_stats,
    )
    net.embed_lip_frames = timer.wrap("lip_inference", orig[0])
    net.embed_audio = timer.wrap("audio_inference", orig[1])
    scorer._audio = timer.wrap("audio_load_mfcc", orig[2])
    # the streaming search calls these two core functions batch by batch
    _core.shift_distances = timer.wrap("offset_search", orig[3])
    _core.sync_stats = timer.wrap("offset_search", orig[4])
    try:
        with timer.stage("total"):
            res = scorer.score(clip)
    finally:
        del net.embed_lip_frames, net.embed_audio, scorer._audio
        _core.shift_distances, _core.sync_stats = orig[3], orig[4]
    return res


def bench_decode(clips, repeat: int) -> dict:
    from lipleak.io import dali
    from lipleak.io import video as cpu_video
    from lipleak.runtime.probe import probe_gpu

    gpu = probe_gpu()
    out = {}
    decoders = ["cpu"] + (["dali"] if dali.dali_available(*gpu)[0] else [])
    for dec in decoders:
        frames, secs = 0, 0.0
        for _ in range(repeat):
            for clip in clips:
                choice = dali.choose_decoder(clip, gpu=gpu) if dec == "dali" else None
                if choice is not None and choice.decoder != "dali":
                    continue
                t0 = time.perf_counter()
                it = (
                    cpu_video.iter_frames(clip)
                    if dec == "cpu"
                    else dali.iter_frames(clip, size=(224, 224), decoder="dali", choice=choice)
                )
                frames += sum(1 for _ in it)
                secs += time.perf_counter() - t0
        out[dec] = {
            "frames": frames,
            "seconds": secs,
            "frames_per_s": frames / secs if secs else None,
            "note": "full frames, BGR to host"
            if dec == "cpu"
            else "NVDEC + resize to 224x224 on GPU, copied to host",
        }
    if not dali.dali_available(*gpu)[0]:
        out["dali_unavailable"] = dali.dali_available(*gpu)[1]
    return out


def bench_fid_features(backend: str, clips, tmp: Path, timer: Timer) -> dict:
    """Inception features for every frame's prealigned 224 crop (the all-metrics extra)."""
    try:
        from lipleak.export.inception_onnx import export
        from lipleak.faces.crop import prealigned_crop
        from lipleak.io.video import iter_frames
        from lipleak.models.inception import FIDInception
    except ImportError as exc:
        return {"skipped": f"FID modules unavailable: {exc}"}
    onnx_path = tmp / "inception.onnx"
    if not onnx_path.is_file():
        export(INCEPTION_TS, onnx_path)
    t0 = time.perf_counter()
    model = FIDInception(onnx_path, backend=backend)
    open_s = time.perf_counter() - t0
    frames = 0
    t0 = time.perf_counter()
    for clip in clips:
        crops = [prealigned_crop(f) for f in iter_frames(clip)]
        frames += len(crops)
        with timer.stage("fid_inception"):
            model.features(crops)
    # seconds: decode + crop + Inception for all clips (ONNX export and open excluded)
    return {"open_seconds": open_s, "frames": frames, "seconds": time.perf_counter() - t0}


def environment() -> dict:
    from lipleak.commands.doctor import collect

    rep = collect()
    comps = {c["name"]: c for c in rep["components"]}
    gpus = [c["detail"] for n, c in comps.items() if n.startswith("gpu ")]
    return {
        "gpus": gpus,
        "driver": comps.get("nvidia driver", {}).get("version"),
        "cuda_runtime": comps.get("cuda runtime", {}).get("version"),
        "tensorrt": comps["tensorrt"]["version"],
        "dali": comps["dali"]["version"],
        "onnxruntime": comps["onnxruntime"]["version"],
        "onnxruntime_providers": comps["onnxruntime"]["detail"],
        "backends": rep["backends"],
        "cpu_count": os.cpu_count(),
    }


def main(argv=None) -> int:
    from lipleak.runtime import available_backends

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--clips", nargs="*", type=Path, default=sorted((SHARED / "data" / "clips").glob("*.mp4"))
    )
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--backends", nargs="*", default=None)
    ap.add_argument("--metrics", nargs="*", default=["lse", "all"], choices=["lse", "all"])
    ap.add_argument("--precision", nargs="*", default=["fp32", "fp16"], choices=["fp32", "fp16"])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    clips = [
        c for c in args.clips if not c.name.startswith("raw_")
    ]  # VFR original: robustness only
    av = available_backends()
    wanted = args.backends or [b for b in ("tensorrt", "ort-cuda", "cpu") if av[b][0]]
    tmp = Path(tempfile.mkdtemp(prefix="lipleak-bench-"))
    os.environ.setdefault("LIPLEAK_MODEL_DIR", str(tmp / "models"))

    env = environment()
    result = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "environment": env,
        "gpu_measured": bool(env["gpus"]) and any(b != "cpu" for b in wanted),
        "clips": [c.name for c in clips],
        "repeat": args.repeat,
        "syncnet": "syncnet_v2_random.model (real architecture, random weights)",
        "decode": bench_decode(clips, 1),
        "runs": [],
        "not_measured": ["SSIM/PSNR, CSIM and LMD stages (not part of this benchmark)"],
    }
    if not result["gpu_measured"]:
        result["note"] = (
            "no GPU backend ran on this machine: CPU backend only; every GPU "
            "number of issue 7 remains unmeasured here"
        )

    for backend in wanted:
        if not av[backend][0]:
            result["runs"].append({"backend": backend, "skipped": av[backend][1]})
            continue
        for precision in args.precision:
            if precision == "fp16" and backend != "tensorrt":
                continue
            scorer, open_s, build = open_scorer(backend, precision)
            for metrics in args.metrics:
                timer = Timer()
                lat, frames = [], 0
                for _ in range(args.repeat):
                    for clip in clips:
                        t0 = time.perf_counter()
                        res = score_timed(scorer, clip, timer)
                        frames += res.n_frames
                        lat.append(time.perf_counter() - t0)
                extra = {}
                if metrics == "all":
                    extra = bench_fid_features(backend, clips * args.repeat, tmp, timer)
                    # per-video latency of "all" = LSE latency + its share of the FID pass
                    # (the FID pass decodes each clip again, as a separate metric would)
                    lat = [x + extra.get("seconds", 0.0) / len(lat) for x in lat]
                total = sum(lat)
                stages = dict(timer.t)
                stages["decode_crop_window"] = stages.get("total", 0.0) - sum(
                    v
                    for k, v in stages.items()
                    if k in ("lip_inference", "audio_inference", "audio_load_mfcc", "offset_search")
                )
                run = {
                    "backend": backend,
                    "precision": precision,
                    "metrics": metrics,
                    "open_seconds_first": open_s,
                    **build,
                    "videos": len(lat),
                    "frames": frames,
                    "latency_s": {"p50": pct(lat, 50), "p95": pct(lat, 95)},
                    "videos_per_min": 60 * len(lat) / total if total else None,
                    "frames_per_s": frames / total if total else None,
                    "stage_seconds": stages,
                    **({"fid": extra} if extra else {}),
                }
                dec = result["decode"].get("dali" if "dali" in result["decode"] else "cpu", {})
                if dec.get("frames_per_s") and run["frames_per_s"]:
                    # issue 7 target: decode at least 2x the rate the scorer consumes frames
                    run["decode_to_scoring_rate"] = dec["frames_per_s"] / run["frames_per_s"]
                result["runs"].append(run)
                print(
                    f"{backend:9} {precision} {metrics:3}: p50 {run['latency_s']['p50']:.3f} s "
                    f"p95 {run['latency_s']['p95']:.3f} s, {run['videos_per_min']:.1f} videos/min, "
                    f"{run['frames_per_s']:.0f} frames/s",
                    file=sys.stderr,
                )

    out = args.out or ROOT / "bench" / "results" / f"gpu_{dt.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

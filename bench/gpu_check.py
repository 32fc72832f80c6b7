"""The prepared GPU check (issue 14): agreement, precision drift and speed of the torch backend.

    python bench/gpu_check.py [--dry-run] [--budget-s S] [--carry .gpu_carry] [--out DIR]

Run by ``bench/gpu_check.sh`` on the lent GPU machine (docs/gpu.md, "The GPU check"). Every
stage is time-boxed inside ``--budget-s`` (what the shell script has left of its 8 minutes);
a stage that no longer fits is skipped with a note in the JSON. Stages:

0. setup: a model dir with the carried SCRFD and PFLD; seeded random SyncNet weights in the
   published checkpoint format (legacy ``torch.save`` of the 88-tensor state dict, BatchNorm
   statistics calibrated on real frames and MFCC as the shared fixture's were), scored with
   ``--syncnet PATH``; a seeded random FID Inception (torchvision's Inception-v3, the FID
   network's architecture and cost, exported to ONNX as ``lipleak.export.inception_onnx``
   exports the real one) for the all-metrics run; 10-s prealigned clips made by repeating
   the shared 25-fps clips.
1. agreement: both SyncNet towers on real lip windows and MFCC, torch (the GPU) at fp32,
   fp16 and bf16 against onnxruntime on the CPU (max |Δ| / max |ref|); LSE-C, LSE-D and the
   offset of every shared clip, torch at each precision against ``--backend cpu``. Pass:
   fp32 |ΔLSE-C|, |ΔLSE-D| <= 1e-3 with equal offsets.
2. LSE-only speed per precision: the volume pipeline (``VolumeRun`` + ``LocalExecutor``,
   what ``sync DIR`` runs) over 10-s clips for a fixed time: videos/min, frames/s, the lip
   tower's busy share of the wall time (``TowerStats.busy_s``), the GPU utilisation that
   nvidia-smi samples, the lip tower alone on full batches, and thread-seconds and
   frames/s per stage (decode, crop, MFCC, audio tower, lip tower, offset search).
3. all metrics: ``score`` of a protocol dir (``plan`` + a stream-copy remux generator, as
   README's demo) with ``--backend torch --no-report`` in a child process stopped at its
   time box; videos/min from the rows it committed.
4. CUDA graphs and channels-last: the lip tower on a device-resident batch, eager vs a
   captured graph vs channels-last windows, per precision (what is left of the budget, at
   most 40 s; not in the dry run).

``--dry-run``: the same code on the CPU (torch backend on the CPU, 2 clips of 1 s, tiny
counts, GPUs hidden), to prove the logic here; its JSON says so and is not a measurement.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # media.write_video (PyAV)

PRECISIONS = ("fp32", "fp16", "bf16")
TARGETS = {
    "lse_fp32_abs_diff_max": 1e-3,
    "lse_only_videos_per_min_fp32": 1000,
    "lse_only_videos_per_min_fp16_bf16": 3000,
    "all_metrics_videos_per_min": 500,
    "gpu_busy_share": 0.8,
}


class Budget:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def box(self, share: float, cap: float, floor: float) -> float | None:
        """A time box: ``share`` of what is left, at most ``cap``, at least ``floor`` while
        what is left holds it; None when it does not. Stages ask in order of importance,
        so with little time the first (fp32 before fp16/bf16) still runs."""
        left = self.left()
        b = min(cap, left * share)
        if b >= floor:
            return b
        return floor if left >= floor else None


def log(*a) -> None:
    print(*a, flush=True)


# --------------------------------------------------------------------------- environment


def environment(dry: bool) -> dict:
    import importlib.metadata as md

    import torch

    def version(d):
        try:
            return md.version(d)
        except md.PackageNotFoundError:
            return None

    env = {
        "dry_run": dry,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "packages": {
            d: version(d)
            for d in (
                "lipleak-fast",
                "onnx",
                "onnx2torch",
                "onnxruntime",
                "av",
                "numpy",
                "opencv-python-headless",
                "torchvision",
                "scipy",
            )
        },
    }
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env["device"] = torch.cuda.get_device_name(0)
        env["device_memory_gib"] = round(p.total_memory / 2**30, 1)
        env["compute_capability"] = f"{p.major}.{p.minor}"
    else:
        env["device"] = "cpu"
    try:
        q = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        env["nvidia_smi"] = q.stdout.strip() or q.stderr.strip()
        env["driver"] = q.stdout.split(",")[-1].strip() if q.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired) as exc:
        env["nvidia_smi"] = f"not run: {exc}"
        env["driver"] = None
    return env


# ----------------------------------------------------------------------------- setup


def real_inputs(clip: Path, n: int, frames: bool = False):
    """``n`` real lip windows (prealigned crops) and MFCC windows of ``clip``; with
    ``frames``, also the n + 4 uint8 crops they were made of."""
    from lipleak.faces.crop import prealigned_crop
    from lipleak.io.audio import load_audio
    from lipleak.io.frames import iter_frames
    from lipleak.metrics.sync import lip_window, mfcc_windows

    crops = []
    for f in iter_frames(clip):
        crops.append(prealigned_crop(f))
        if len(crops) == n + 4:
            break
    lips = np.empty((n, 3, 5, 224, 224), np.float32)
    for k in range(n):
        lip_window(crops[k : k + 5], lips[k])
    mfcc = mfcc_windows(load_audio(clip), n)
    return (lips, mfcc, np.stack(crops)) if frames else (lips, mfcc)


def make_syncnet(path: Path, clips: list[Path], seed: int = 0, windows: int = 16) -> Path:
    """Seeded random SyncNet v2 weights in the published checkpoint's format.

    torch's default initialisation (as the shared fixture's convolutions), BatchNorm running
    statistics calibrated on real lip windows and MFCC of ``clips`` (cumulative averages in
    training mode), and one shared vector added to the last bias of both towers (so real
    pairs are closer than the padding's zero rows), saved as a legacy ``torch.save`` of
    the ordered dict of 88 tensors (no ``num_batches_tracked``)."""
    import torch

    from lipleak.export.syncnet import SyncNetV2

    torch.manual_seed(seed)
    net = SyncNetV2()
    lips, mfcc = zip(*(real_inputs(c, windows) for c in clips), strict=True)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    net.train()
    with torch.no_grad():
        for x in lips:
            net.forward_lips(torch.from_numpy(x))
        for x in mfcc:
            net.forward_audio(torch.from_numpy(x))
        # Scale both towers' last layers so that matched windows lie ~8 apart, LSE-D's range
        # with the real weights (unscaled, random heads give LSE-D ~ 150, which would make
        # the 1e-3 bound a 1e-5 relative one and inflate the fp16/bf16 drift).
        net.eval()
        d = torch.cat(
            [
                (
                    net.forward_lips(torch.from_numpy(a)) - net.forward_audio(torch.from_numpy(b))
                ).norm(dim=1)
                for a, b in zip(lips, mfcc, strict=True)
            ]
        ).mean()
        for head in (net.netfclip, net.netfcaud):
            head[3].weight *= 8.0 / d
            head[3].bias *= 8.0 / d
        g = torch.Generator().manual_seed(seed + 1)
        shared = torch.randn(1024, generator=g)
        net.netfclip[3].bias += shared
        net.netfcaud[3].bias += shared
    state = OrderedDict(
        (k, v.detach().clone())
        for k, v in net.state_dict().items()
        if not k.endswith("num_batches_tracked")
    )
    assert len(state) == 88, len(state)
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


class _StandIn:
    """Built only where torchvision is missing (the CPU dry run): same I/O, not the cost."""

    @staticmethod
    def build():
        import torch
        from torch import nn

        return nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 2048, 3, stride=4),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        ).to(torch.float32)


def make_inception(path: Path, seed: int = 0) -> dict:
    """A seeded random FID-Inception stand-in as ONNX (``images`` N×3×299×299 → ``features``
    N×2048), exported as ``lipleak.export.inception_onnx`` exports the real TorchScript."""
    import warnings

    import torch

    from lipleak.export.inception_onnx import DIM, INPUT_NAME, OPSET, OUTPUT_NAME, SIZE

    torch.manual_seed(seed)
    try:
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=False, init_weights=True)
        net.fc = torch.nn.Identity()  # pool3: 2048 features, as the FID network gives
        what = "torchvision Inception-v3, seeded random weights (the FID network's cost)"
    except Exception as exc:  # noqa: BLE001 - absent, or built for another torch
        net = _StandIn.build()
        what = f"small stand-in, NOT the Inception's cost (torchvision unusable: {exc})"
    net.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        assert net(torch.zeros(2, 3, SIZE, SIZE)).shape == (2, DIM)
        torch.onnx.export(
            net,
            (torch.zeros(2, 3, SIZE, SIZE),),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return {"what": what, "path": str(path)}


def make_long_clips(sources: list[Path], folder: Path, frames: int) -> list[Path]:
    """Clips of exactly ``frames`` 25-fps frames, each a shared clip repeated (H.264 + AAC)."""
    from lipleak.io.audio import load_audio
    from lipleak.io.frames import iter_frames
    from media import write_video

    folder.mkdir(parents=True, exist_ok=True)

    def one(src: Path) -> Path:
        fr = list(iter_frames(src, fps=25.0))
        au = load_audio(src)[: len(fr) * 640]
        au = np.pad(au, (0, len(fr) * 640 - len(au)))
        reps = -(-frames // len(fr))
        dst = folder / f"{src.stem}_{frames}f.mp4"
        write_video(dst, (fr * reps)[:frames], audio=np.tile(au, reps)[: frames * 640])
        return dst

    with cf.ThreadPoolExecutor(min(8, len(sources))) as ex:
        return list(ex.map(one, sources))


# ---------------------------------------------------------------------- 1. agreement


def rel(a, ref) -> float:
    return float(np.abs(a - ref).max() / max(float(np.abs(ref).max()), 1e-30))


def agreement(ckpt: Path, clips: list[Path], budget: Budget, box: float, dry: bool) -> dict:
    from lipleak.models.syncnet import SyncNet
    from lipleak.runtime import open_model
    from lipleak.sync import SyncScorer, SyncSettings

    t_end = time.monotonic() + box
    out: dict = {"embeddings": {}, "lse": [], "notes": []}
    cpu = SyncNet.load(ckpt, backend="cpu")
    lips, mfcc, crops = real_inputs(clips[0], 8 if dry else 32, frames=True)
    ref = {"lips": cpu.embed_lips(lips), "audio": cpu.embed_audio(mfcc)}
    paths = {"lips": cpu.lips.describe().model_path, "audio": cpu.audio.describe().model_path}
    feeds = {"lips": {"lips": lips}, "audio": {"mfcc": mfcc}}
    for p in PRECISIONS:
        for tower in ("lips", "audio"):
            rt = open_model(paths[tower], "torch", precision=p, max_batch=64)
            got = rt.run(feeds[tower])["embedding"]
            out["embeddings"][f"{tower}_{p}_rel_maxdiff"] = rel(got, ref[tower])
            if tower == "lips":  # what the scorer does: uint8 crops up, windows made there
                got = SyncNet(ckpt, "", None, rt, rt).embed_lip_frames([crops])
                out["embeddings"][f"lips_from_frames_{p}_rel_maxdiff"] = rel(got, ref[tower])
        out["embeddings"]["device"] = rt.describe().details["device"]
    log("embeddings:", json.dumps(out["embeddings"]))
    scorers = {"cpu": SyncScorer(SyncSettings(syncnet=str(ckpt), backend="cpu", batch_size=64))}
    for p in PRECISIONS:
        scorers[p] = SyncScorer(
            SyncSettings(syncnet=str(ckpt), backend="torch", precision=p, batch_size=64)
        )
    for clip in clips:
        if time.monotonic() > t_end:
            out["notes"].append(f"time box ({box:.0f} s) reached: clips from {clip.name} skipped")
            break
        r = {p: s.score(clip) for p, s in scorers.items()}
        row = {
            "clip": clip.name,
            "n_frames": r["cpu"].n_frames,
            "cpu": [r["cpu"].lse_c, r["cpu"].lse_d, r["cpu"].offset],
        }
        for p in PRECISIONS:
            row[p] = {
                "lse_c": r[p].lse_c,
                "lse_d": r[p].lse_d,
                "offset": r[p].offset,
                "abs_d_lse_c": abs(r[p].lse_c - r["cpu"].lse_c),
                "abs_d_lse_d": abs(r[p].lse_d - r["cpu"].lse_d),
                "offset_equal": r[p].offset == r["cpu"].offset,
            }
        out["lse"].append(row)
        log(
            f"{clip.stem}: cpu C={row['cpu'][0]:.4f} D={row['cpu'][1]:.4f} off={row['cpu'][2]} | "
            + " | ".join(
                f"{p} ΔC={row[p]['abs_d_lse_c']:.1e} ΔD={row[p]['abs_d_lse_d']:.1e}"
                f"{'' if row[p]['offset_equal'] else ' OFFSET ' + str(row[p]['offset'])}"
                for p in PRECISIONS
            )
        )
    summary = {}
    for p in PRECISIONS:
        rows = [r[p] for r in out["lse"]]
        summary[p] = {
            "clips": len(rows),
            "max_abs_d_lse_c": max((r["abs_d_lse_c"] for r in rows), default=None),
            "max_abs_d_lse_d": max((r["abs_d_lse_d"] for r in rows), default=None),
            "offsets_equal": all(r["offset_equal"] for r in rows),
        }
    s = summary["fp32"]
    summary["fp32_pass"] = bool(
        s["clips"]
        and s["max_abs_d_lse_c"] <= TARGETS["lse_fp32_abs_diff_max"]
        and s["max_abs_d_lse_d"] <= TARGETS["lse_fp32_abs_diff_max"]
        and s["offsets_equal"]
    )
    out["summary"] = summary
    out["seconds"] = box - (t_end - time.monotonic())
    return out


# -------------------------------------------------------------------- 2. LSE-only speed


class StageTimer:
    """Thread-seconds per stage, summed over every thread that ran it."""

    def __init__(self):
        self.t: dict[str, float] = {}
        self.n: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, name: str, dt_: float, n: int = 1) -> None:
        with self._lock:
            self.t[name] = self.t.get(name, 0.0) + dt_
            self.n[name] = self.n.get(name, 0) + n

    def wrap(self, name: str, fn, count=lambda a, r: 1):
        def inner(*a, **k):
            t0 = time.perf_counter()
            r = fn(*a, **k)
            self.add(name, time.perf_counter() - t0, count(a, r))
            return r

        return inner


@contextmanager
def stage_patches(timer: StageTimer, syncnet):
    """Time decode, crop, MFCC, audio tower and offset search where the scorer calls them."""
    from lipleak import _core
    from lipleak.faces import crop as crop_mod
    from lipleak.sync import frames as frames_mod

    orig_decode = frames_mod.VideoFrames.decode

    def decode(self):
        it = orig_decode(self)
        while True:
            t0 = time.perf_counter()
            try:
                f = next(it)
            except StopIteration:
                timer.add("decode", time.perf_counter() - t0, 0)
                return
            timer.add("decode", time.perf_counter() - t0)
            yield f

    saved = {
        "crop": crop_mod.prealigned_crop,
        "mfcc": _core.mfcc,
        "shift": _core.shift_distances,
        "stats": _core.sync_stats,
        "audio": syncnet.embed_audio,
    }
    frames_mod.VideoFrames.decode = decode
    crop_mod.prealigned_crop = timer.wrap("crop", saved["crop"])
    _core.mfcc = timer.wrap("mfcc", saved["mfcc"])
    _core.shift_distances = timer.wrap("offset_search", saved["shift"])
    _core.sync_stats = timer.wrap("offset_search", saved["stats"], lambda a, r: 0)
    syncnet.embed_audio = timer.wrap("audio_tower", saved["audio"], lambda a, r: len(r))
    try:
        yield
    finally:
        frames_mod.VideoFrames.decode = orig_decode
        crop_mod.prealigned_crop = saved["crop"]
        _core.mfcc = saved["mfcc"]
        _core.shift_distances = saved["shift"]
        _core.sync_stats = saved["stats"]
        del syncnet.embed_audio  # the instance attribute; the method shows through again


class GpuSampler:
    """nvidia-smi's utilization.gpu every 200 ms while running (None without nvidia-smi)."""

    def __init__(self, enabled: bool):
        self.proc = None
        if enabled and shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(
                [
                    "nvidia-smi",
                    "--query-gpu=utilization.gpu,memory.used",
                    "--format=csv,noheader,nounits",
                    "-lms",
                    "200",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )

    def stop(self) -> dict | None:
        if self.proc is None:
            return None
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        util, mem = [], []
        for line in out.splitlines():
            try:
                u, m = (float(x) for x in line.split(",")[:2])
            except ValueError:
                continue
            util.append(u)
            mem.append(m)
        if not util:
            return None
        return {
            "samples": len(util),
            "utilization_mean_pct": float(np.mean(util)),
            "utilization_p50_pct": float(np.median(util)),
            "memory_used_max_mib": max(mem),
        }


class TimedJobs:
    """The jobs, handed out until the deadline; ``taken`` records those handed out."""

    def __init__(self, jobs, deadline: float):
        self.jobs, self.deadline, self.taken = jobs, deadline, []

    def __iter__(self):
        for j in self.jobs:
            if time.monotonic() > self.deadline:
                return
            self.taken.append(j)
            yield j


def tower_alone(syncnet, batch: int, seconds: float, frames: bool = False) -> float:
    """Windows/s of the lip tower on full batches of random frames (host in, host out):
    float32 windows made on the host (``embed_lips``), or with ``frames`` a run of
    batch + 4 uint8 crops whose windows the backend makes (``embed_lip_frames``, what the
    scorer sends)."""
    rng = np.random.default_rng(0)
    if frames:
        run = rng.integers(0, 256, (batch + 4, 224, 224, 3), dtype=np.uint8)
        call = lambda: syncnet.embed_lip_frames([run])  # noqa: E731
    else:
        x = (rng.random((batch, 3, 5, 224, 224)) * 255).astype(np.float32)
        call = lambda: syncnet.embed_lips(x)  # noqa: E731
    call()
    n, t0 = 0, time.perf_counter()
    while n < 2 or time.perf_counter() - t0 < seconds:
        call()
        n += 1
    return n * batch / (time.perf_counter() - t0)


def lse_speed(ckpt: Path, videos: list[Path], precision: str, box: float, args, tmp: Path) -> dict:
    from lipleak.sync import SyncScorer, SyncSettings
    from lipleak.sync.inputs import VideoJob
    from lipleak.sync.results import SyncStore
    from lipleak.sync.volume import LocalExecutor, VolumeRun

    t_open = time.perf_counter()
    scorer = SyncScorer(
        SyncSettings(
            syncnet=str(ckpt), backend="torch", precision=precision, batch_size=args.batch_size
        )
    )
    open_s = time.perf_counter() - t_open
    host_windows = tower_alone(scorer.syncnet, args.batch_size, min(5.0, box * 0.05))
    alone = tower_alone(scorer.syncnet, args.batch_size, min(5.0, box * 0.05), frames=True)
    scorer.score(videos[0])  # warm-up: every batch size a video ends with, allocator
    store = SyncStore(tmp / f"lse_{precision}.sqlite")
    timer = StageTimer()
    executor = LocalExecutor(scorer, workers=args.workers)
    jobs = TimedJobs([VideoJob(v, None) for v in videos], 0.0)
    run = VolumeRun(jobs, store, executor)
    run.start()
    sampler = GpuSampler(not args.dry_run)
    with stage_patches(timer, scorer.syncnet):
        t0 = time.perf_counter()
        jobs.deadline = time.monotonic() + box * 0.85  # the last videos finish after it
        counts = run.run(["gpu_check", precision])
        wall = time.perf_counter() - t0
    gpu = sampler.stop()
    stats = executor.pipeline.stats if executor.pipeline else None
    rows = store.rows(run.hash, keys=[j.key() for j in jobs.taken])
    store.close()
    ok = [r for r in rows if r["status"] == "ok"]
    frames = sum(r["n_frames"] for r in ok)
    windows = sum(t["n_windows"] for r in ok for t in r["tracks"])
    stage_s = dict(timer.t)
    if stats:
        stage_s["lip_tower"] = stats.busy_s
    per_stage = {
        k: {
            "thread_seconds": v,
            "frames_per_thread_second": frames / v if v else None,
            "share_of_wall": v / wall,
        }
        for k, v in sorted(stage_s.items())
    }
    res = {
        "precision": precision,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "open_seconds": open_s,
        "time_box_s": box,
        "videos": len(ok),
        "failed": counts.failed,
        "failures": counts.failures[:3],
        "frames": frames,
        "windows": windows,
        "wall_s": wall,
        "videos_per_min": 60 * len(ok) / wall if wall else None,
        "frames_per_s": frames / wall if wall else None,
        "windows_per_s": windows / wall if wall else None,
        "lip_tower_alone_windows_per_s": alone,  # from uint8 crops, as the scorer feeds it
        "lip_tower_alone_host_windows_per_s": host_windows,  # float32 windows from the host
        "pipeline_vs_tower_alone": windows / wall / alone if wall and alone else None,
        "lip_tower_busy_share": stats.busy_s / wall if stats and wall else None,
        "lip_tower_batches": stats.batches if stats else None,
        "mean_batch": stats.windows / stats.batches if stats and stats.batches else None,
        "nvidia_smi": gpu,
        "stages": per_stage,
    }
    log(
        f"LSE-only {precision}: {len(ok)} videos in {wall:.1f} s = "
        f"{res['videos_per_min']:.0f} videos/min, {res['frames_per_s']:.0f} frames/s; "
        f"tower alone {alone:.0f} windows/s, busy {res['lip_tower_busy_share'] or 0:.2f}; "
        f"nvidia-smi {gpu and round(gpu['utilization_mean_pct'])} %"
    )
    log(
        "  stages (thread-s, frames per thread-s): "
        + ", ".join(
            f"{k} {v['thread_seconds']:.1f} s {v['frames_per_thread_second'] or 0:.0f}"
            for k, v in per_stage.items()
        )
    )
    return res


# ------------------------------------------------------------------------ 3. all metrics


def remux(video: Path, wav: Path, out: Path) -> None:
    """``tests/synth.py remux`` with PyAV: the video stream copied, the wav as AAC."""
    import av
    import soundfile as sf

    samples, sr = sf.read(str(wav), dtype="int16", always_2d=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(video)) as src, av.open(str(out), "w") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream_from_template(vin)
        aout = dst.add_stream("aac", rate=sr)
        aout.layout = "mono"
        for pkt in src.demux(vin):
            if pkt.dts is None:
                continue
            pkt.stream = vout
            dst.mux(pkt)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = sr
        for pkt in aout.encode(frame):
            dst.mux(pkt)
        for pkt in aout.encode(None):
            dst.mux(pkt)


def make_protocol(long_clips: list[Path], n_gt: int, folder: Path) -> tuple[Path, int]:
    from lipleak.protocol.dataset import jobs_path
    from lipleak.protocol.planner import make_plan

    gt = folder / "gt"
    gt.mkdir(parents=True)
    for i in range(n_gt):
        src = long_clips[i % len(long_clips)]
        os.link(src, gt / f"g{i:03d}_{src.stem}.mp4")
    make_plan(gt, folder)
    jobs = [json.loads(line) for line in jobs_path(folder).read_text().splitlines()]
    with cf.ThreadPoolExecutor(min(16, os.cpu_count() or 1)) as ex:
        list(
            ex.map(
                lambda j: remux(Path(j["video"]), folder / j["audio"], folder / j["output"]), jobs
            )
        )
    return folder, n_gt + len(jobs)


def all_metrics(ckpt: Path, long_clips, inception: dict, box: float, args, tmp: Path) -> dict:
    t0 = time.perf_counter()
    run_dir, n_videos = make_protocol(long_clips, args.gt, tmp / "protocol")
    prep_s = time.perf_counter() - t0
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--score-child",
        inception["path"],
        "score",
        str(run_dir),
        "--backend",
        "torch",
        "--syncnet",
        str(ckpt),
        "--no-report",
        "--quiet",
        "--workers",
        str(args.score_workers),
        "--batch-size",
        str(args.batch_size),
    ]
    left = box - prep_s
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=max(left, 10))
        rc, tail = p.returncode, (p.stdout + p.stderr)[-1500:]
    except subprocess.TimeoutExpired as exc:
        rc = "stopped at its time box"
        tail = ((exc.stdout or b"").decode() + (exc.stderr or b"").decode())[-1500:]
    wall = time.perf_counter() - t0
    done, first, last, gt_videos, groups = 0, None, None, 0, []
    db = run_dir / "results.sqlite"
    if db.is_file():
        con = sqlite3.connect(db)
        try:
            # a video is done when every metric group of it (sync, visual) is committed ok
            rows = con.execute(
                "SELECT setup, MIN(status = 'ok'), MAX(created), COUNT(*) FROM units "
                "GROUP BY stem, setup, reference ORDER BY MAX(created)"
            ).fetchall()
            groups = [r[0] for r in con.execute("SELECT DISTINCT grp FROM units")]
        finally:
            con.close()
        ok = [r for r in rows if r[1]]
        done = len(ok)
        gt_videos = sum(1 for r in ok if r[0].lower() == "gt")
        if ok:
            first, last = ok[0][2], ok[-1][2]
    res = {
        "gt_videos": args.gt,
        "videos_planned": n_videos,
        "prepare_seconds": prep_s,
        "time_box_s": box,
        "child_exit": rc,
        "videos_ok": done,
        "gt_videos_ok": gt_videos,
        "metric_groups": groups,
        "wall_s": wall,
        "videos_per_min": 60 * done / wall if wall else None,
        "videos_per_min_steady": 60 * (done - 1) / (last - first)
        if done > 1 and last > first
        else None,
        "note": "wall includes the child's start-up (imports, onnx2torch conversions); "
        "steady = between the first and the last finished video. SSIM, PSNR, FID features "
        "(" + inception["what"] + "), LMD, mouth motion, LSE; CSIM not computed (no ArcFace "
        "model carried); the report's cell FIDs not computed (--no-report)",
        "output_tail": tail,
    }
    log(
        f"all metrics: {done} videos ok of {n_videos} in {wall:.1f} s = "
        f"{res['videos_per_min']:.0f} videos/min (steady {res['videos_per_min_steady']}); "
        f"exit {rc}"
    )
    if done == 0:
        log(tail)
    return res


# ------------------------------------------------------------------------ 4. CUDA graphs


def cuda_graphs(ckpt: Path, batch: int, box: float) -> dict:
    """The lip tower on a device-resident batch: eager vs replaying a captured CUDA graph,
    and eager on channels-last (NDHWC) windows, per precision (windows/s and the largest
    difference). Measured before the scorer uses either: with batches of 128 windows the
    kernels are long and launch overhead may not matter, and channels-last changes bits
    (it would be a hashed setting, like the precision). A capture that fails (an op that
    syncs with the host) is recorded as such."""
    import torch

    from lipleak.models.syncnet import SyncNet
    from lipleak.runtime.torch_backend import TorchRuntime

    if not torch.cuda.is_available():
        return {"skipped": "torch sees no CUDA device"}
    path = SyncNet.load(ckpt, backend="cpu").lips.describe().model_path
    each = box / (3 * len(PRECISIONS) + 1)
    out: dict = {"batch": batch}

    def rate(call) -> float:
        call()
        torch.cuda.synchronize()
        n, t0 = 0, time.perf_counter()
        while n < 3 or time.perf_counter() - t0 < each:
            call()
            n += 1
        torch.cuda.synchronize()
        return n * batch / (time.perf_counter() - t0)

    for p in PRECISIONS:
        rt = TorchRuntime(path, precision=p, max_batch=batch)
        gen = torch.Generator(device=rt.device).manual_seed(0)
        x = torch.randint(0, 256, (batch, 3, 5, 224, 224), generator=gen, device=rt.device)
        x = x.to(rt.dtype)
        res: dict = {}
        with torch.no_grad():
            res["eager_windows_per_s"] = rate(lambda rt=rt, x=x: rt.module(x))
            try:
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):  # warm-up off the capture stream, as documented
                    for _ in range(3):
                        rt.module(x)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    y = rt.module(x)
                res["graph_windows_per_s"] = rate(graph.replay)
                graph.replay()
                ref = rt.module(x)
                res["graph_max_abs_diff"] = float((y.float() - ref.float()).abs().max())
                res["speedup"] = res["graph_windows_per_s"] / res["eager_windows_per_s"]
            except Exception as exc:  # noqa: BLE001 - the finding itself
                res["graph_error"] = repr(exc)[:300]
            # channels-last windows: on the CPU torch's kernels for them ran the tower
            # 1.4x faster with other bits (bench/README); what cuDNN does with them
            try:
                cl = TorchRuntime(path, precision=p, max_batch=batch)
                cl.module = cl.module.to(memory_format=torch.channels_last_3d)
                xc = x.contiguous(memory_format=torch.channels_last_3d)
                res["channels_last_windows_per_s"] = rate(lambda cl=cl, xc=xc: cl.module(xc))
                ref = rt.module(x)
                got = cl.module(xc)
                res["channels_last_max_rel_diff"] = float(
                    (got.float() - ref.float()).abs().max() / ref.float().abs().max()
                )
            except Exception as exc:  # noqa: BLE001
                res["channels_last_error"] = repr(exc)[:300]
        out[p] = res
        log(f"CUDA graphs {p}: {json.dumps(res)}")
    return out


def score_child(argv: list[str]) -> int:
    """``score`` with the FID Inception replaced by the random ONNX ``argv[0]``."""
    from lipleak import cli
    from lipleak.files import file_sha256
    from lipleak.models import onnx_files

    path = Path(argv[0])
    sha = "random-" + file_sha256(path)[:16]
    onnx_files.inception_onnx = lambda name="fid_inception": (path, sha)
    return cli.main(argv[1:])


# ------------------------------------------------------------------------------- main


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--score-child":
        return score_child(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny counts: proves the logic")
    ap.add_argument(
        "--budget-s",
        type=float,
        default=float(os.environ.get("LIPLEAK_GPU_CHECK_BUDGET_S", 420)),
    )
    ap.add_argument("--carry", type=Path, default=ROOT / ".gpu_carry")
    out_default = Path(os.environ.get("OUT") or ROOT / "bench" / "results")
    ap.add_argument("--out", type=Path, default=out_default)
    ap.add_argument("--batch-size", type=int, default=None, help="default 128 (dry run 16)")
    ap.add_argument("--workers", type=int, default=None, help="default: cores - 2 (dry run 2)")
    ap.add_argument("--score-workers", type=int, default=None)
    ap.add_argument("--gt", type=int, default=None, help="GT videos of the all-metrics run")
    ap.add_argument("--seconds", type=int, default=None, help="clip length (default 10, dry 1)")
    args = ap.parse_args()
    dry = args.dry_run
    cores = os.cpu_count() or 1
    args.batch_size = args.batch_size or (16 if dry else 128)
    args.workers = args.workers or (2 if dry else max(2, cores - 2))
    args.score_workers = args.score_workers or (2 if dry else max(2, cores - 2))
    args.gt = args.gt or (2 if dry else 24)
    seconds = args.seconds or (1 if dry else 10)
    if dry:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the torch backend on the CPU

    budget = Budget(args.budget_s)
    date = dt.date.today().isoformat()
    name = f"gpu_check_cpu_dryrun_{date}.json" if dry else f"gpu_{date}.json"
    out_path = args.out / name
    result: dict = {
        "what": "bench/gpu_check.py (issue 14): torch backend agreement, drift and speed",
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "budget_s": args.budget_s,
        "targets": TARGETS,
        "skipped": [],
    }
    if dry:
        result["note"] = (
            "CPU DRY RUN: the torch backend on the CPU with tiny counts, to prove the script's "
            "logic; no number here is a GPU measurement"
        )

    def save() -> None:
        args.out.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=1, default=str) + "\n")

    result["environment"] = environment(dry)
    log("environment:", json.dumps(result["environment"]))
    if not dry and not result["environment"]["cuda_available"]:
        result["skipped"].append("torch sees no CUDA device: every GPU number is unmeasured")

    shared = Path(os.environ.get("LIPLEAK_SHARED_DIR") or args.carry / "shared")
    if not (shared / "models" / "scrfd_500m.onnx").is_file():
        shared = ROOT.parent / "shared"  # here, without a carry folder
    clips_dir = shared / "data" / "clips"
    tmp = Path(tempfile.mkdtemp(prefix="lipleak-gpucheck-"))
    os.environ["LIPLEAK_MODEL_DIR"] = str(tmp / "models")
    from lipleak.io.video import probe
    from lipleak.models import store

    # ---------------------------------------------------------------- 0. setup
    t0 = time.perf_counter()
    for m in ("scrfd_500m", "pfld_68"):
        store.fetch(m, source=shared / "models")
    clips = sorted(clips_dir.glob("*.mp4"))
    cfr = [c for c in clips if abs(probe(c).src_fps - 25) < 1e-3]
    if dry:
        clips = [c for c in clips if c.stem in ("real03_aoc", "real07_reagan")]
        cfr = clips
    ckpt = make_syncnet(tmp / "syncnet_v2_seeded.model", cfr[:2], windows=4 if dry else 16)
    from lipleak.models.syncnet import SyncNet

    SyncNet.load(ckpt, backend="cpu")  # the ONNX towers, exported once
    long_clips = make_long_clips(cfr, tmp / "long", 25 * seconds)
    inception = make_inception(tmp / "inception_random.onnx")
    result["setup"] = {
        "seconds": time.perf_counter() - t0,
        "syncnet": f"seeded random SyncNet v2 (seed 0), legacy torch.save at {ckpt.name}, "
        "BatchNorm calibrated on real clips: same architecture and cost as syncnet_v2",
        "fid_inception": inception["what"],
        "clips": [c.name for c in clips],
        "long_clips": {"seconds": seconds, "sources": [c.name for c in cfr]},
    }
    log("setup:", json.dumps(result["setup"]))
    save()

    # ------------------------------------------------------------ 1. agreement
    box = budget.box(0.2, 40 if dry else 90, 10)
    if box is None:
        result["skipped"].append("agreement: no time left")
    else:
        result["agreement"] = agreement(ckpt, clips, budget, box, dry)
    save()

    # ------------------------------------------------------ 2. LSE-only speed
    links = tmp / "videos"
    links.mkdir()
    n_max = 40 if dry else 6000
    videos = []
    for i in range(n_max):
        v = links / f"{i:05d}_{long_clips[i % len(long_clips)].name}"
        os.link(long_clips[i % len(long_clips)], v)
        videos.append(v)
    result["lse_only"] = {}
    for k, p in enumerate(PRECISIONS):
        # what is left, shared with the stages still to come (all metrics: about a third)
        box = budget.box(0.6 / (len(PRECISIONS) - k), 30 if dry else 75, 15)
        if box is None:
            result["skipped"].append(f"LSE-only speed {p}: no time left")
            continue
        try:
            result["lse_only"][p] = lse_speed(ckpt, videos, p, box, args, tmp)
        except Exception as exc:  # noqa: BLE001 - recorded, the other stages still run
            result["lse_only"][p] = {"error": repr(exc)}
            log(f"LSE-only {p} failed: {exc!r}")
        save()

    # --------------------------------------------------------- 3. all metrics
    box = budget.box(0.9, 120 if dry else 150, 30)
    if box is None:
        result["skipped"].append("all metrics: no time left")
    else:
        try:
            result["all_metrics"] = all_metrics(ckpt, long_clips, inception, box, args, tmp)
        except Exception as exc:  # noqa: BLE001
            result["all_metrics"] = {"error": repr(exc)}
            log(f"all metrics failed: {exc!r}")

    # ---------------------------------------------------------- 4. CUDA graphs
    box = budget.box(1.0, 40, 10)
    if box is None or dry:
        result["skipped"].append("CUDA graphs: " + ("dry run" if dry else "no time left"))
    else:
        try:
            result["cuda_graphs"] = cuda_graphs(ckpt, args.batch_size, box)
        except Exception as exc:  # noqa: BLE001
            result["cuda_graphs"] = {"error": repr(exc)}
            log(f"CUDA graphs failed: {exc!r}")

    # --------------------------------------------------------------- verdicts
    ag = result.get("agreement", {}).get("summary", {})
    lse = result["lse_only"]

    def vpm(p):
        return lse.get(p, {}).get("videos_per_min")

    busy = [lse[p].get("lip_tower_busy_share") for p in lse if "lip_tower_busy_share" in lse[p]]
    am = result.get("all_metrics", {}).get("videos_per_min")
    result["verdicts"] = {
        "lse_fp32_within_1e-3_of_cpu": ag.get("fp32_pass"),
        "lse_only_fp32_videos_per_min": [
            vpm("fp32"),
            vpm("fp32") is not None and vpm("fp32") >= 1000,
        ],
        "lse_only_fp16_bf16_videos_per_min": [
            max(filter(None, [vpm("fp16"), vpm("bf16")]), default=None),
            max(filter(None, [vpm("fp16"), vpm("bf16")]), default=0) >= 3000,
        ],
        "all_metrics_videos_per_min": [am, am is not None and am >= 500],
        "lip_tower_busy_share_fp32": [
            lse.get("fp32", {}).get("lip_tower_busy_share"),
            (lse.get("fp32", {}).get("lip_tower_busy_share") or 0) >= 0.8,
        ],
        "busy_shares_all_precisions": busy,
    }
    result["total_seconds"] = args.budget_s - budget.left()
    save()
    log("verdicts:", json.dumps(result["verdicts"]))
    log("wrote", out_path)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

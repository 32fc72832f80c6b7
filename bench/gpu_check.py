"""The prepared GPU check (issues 14, 25): agreement, precision drift, speed of the torch backend.

    python bench/gpu_check.py [--dry-run] [--budget-s S] [--carry .gpu_carry] [--out DIR]
                              [--fail NAME[,NAME]]

Run by ``bench/gpu_check.sh`` on the lent GPU machine (docs/gpu.md, "The GPU check"), where
one device call allows one run and no rerun: nothing here may lose it. So

- every stage runs guarded: an exception is recorded under ``failures`` (stage, error,
  traceback tail) and in the stage's own entry, and the stages after it still run;
- setup steps that can fail have a fallback (an uncalibrated seeded SyncNet, the shared
  clips as they are, a small Inception stand-in), each recorded when taken;
- the JSON is written (atomically) after setup and after every stage, so a run killed at
  its limit still leaves what it measured;
- the stages run in order of priority, each in a time box from ``PLAN`` (planned seconds,
  scaled up when time is left over, cut down or skipped when it runs short, never the
  stages before it), so the deliverables come first: agreement, fp32 LSE speed, all
  metrics, fp16, CUDA graphs, bf16.

Stages (``result`` keys):

setup: a model dir with the carried SCRFD and PFLD; seeded random SyncNet weights in the
   published checkpoint format (legacy ``torch.save`` of the 88-tensor state dict, BatchNorm
   statistics calibrated on real frames and MFCC as the shared fixture's were), scored with
   ``--syncnet PATH``; a seeded random FID Inception (torchvision's Inception-v3, the FID
   network's architecture and cost, exported to ONNX as ``lipleak.export.inception_onnx``
   exports the real one) for the all-metrics run; 10-s prealigned clips made by repeating
   the shared 25-fps clips.
agreement: both SyncNet towers on real lip windows and MFCC, torch (the GPU) at fp32,
   fp16 and bf16 against onnxruntime on the CPU (max |Δ| / max |ref|); LSE-C, LSE-D and the
   offset of every shared clip, torch at each precision against ``--backend cpu``. Pass:
   fp32 |ΔLSE-C|, |ΔLSE-D| <= 1e-3 with equal offsets.
lse_only (fp32, fp16, bf16): the volume pipeline (``VolumeRun`` + ``LocalExecutor``, what
   ``sync DIR`` runs) over 10-s clips for a fixed time: videos/min and frames/s over the
   steady state (between the moment every worker has finished a video and the first
   video finished after the jobs stop; the whole run's wall figures beside them), the lip
   tower's GPU busy share from CUDA events on its stream (``TorchRuntime.start_busy_clock``)
   beside nvidia-smi's utilisation, the lip tower alone on full batches, and
   thread-seconds and frames/s per stage (decode, crop, MFCC, audio tower, offset search).
all_metrics: ``score`` of a protocol dir (``plan`` + a stream-copy remux generator, as
   README's demo) with ``--backend torch --no-report`` in a child process stopped at its
   time box; videos/min between the first and the last committed video (the child's
   start-up excluded) and over its whole wall time.
cuda_graphs: the lip tower on a device-resident batch, eager vs a captured graph vs
   channels-last windows, per precision (on the CPU, in the dry run: eager and
   channels-last at fp32 only, no capture).

``--dry-run``: the same code on the CPU (torch backend on the CPU, 2 clips of 12 frames,
tiny counts, GPUs hidden), to prove the logic here; its JSON says so and is not a
measurement. ``--fail NAME[,NAME]`` (or LIPLEAK_GPU_CHECK_FAIL): make those steps fail at
their start (the rehearsal in tests/test_gpu_check_rehearsal.py): ``setup`` (each setup
step that has a fallback: ``setup.syncnet``, ``setup.long_clips``, ``setup.inception``),
``fallback`` (their fallbacks), ``setup_models``, ``setup_clips``, ``setup_towers``,
``setup_videos``, ``environment``, ``agreement``, ``lse_fp32``, ``lse_fp16``, ``lse_bf16``,
``all_metrics``, ``cuda_graphs``. SIGTERM (gpu_check.sh's ``timeout``) saves the JSON with
``stopped`` naming the stage that was running, then exits 124.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Planned:
    """One stage's place in the budget: ``seconds`` planned on the GPU machine (``dry``:
    in the CPU dry run), never run in less than ``floor`` seconds."""

    stage: str
    seconds: float
    floor: float
    dry: float


# In order of priority, which is the order they run in (docs/gpu.md, "The budget plan").
PLAN = (
    Planned("agreement", 45, 15, 60),
    Planned("lse_fp32", 75, 25, 15),
    Planned("all_metrics", 90, 35, 40),
    Planned("lse_fp16", 40, 20, 80),
    Planned("cuda_graphs", 30, 10, 10),
    Planned("lse_bf16", 40, 20, 15),
)
RESERVE_S = 5.0  # kept back for the verdicts and the last save


class Budget:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def box(self, stage: str, done: set[str], dry: bool) -> tuple[float | None, float]:
        """(time box, planned seconds) of ``stage``: its plan, times the spare share when
        what is left exceeds the plans of the stages still to run (this one included);
        what is left when it is less (the stages after it get what remains, the lowest
        priority first to go); None when that is under the stage's floor. The dry run
        is never scaled up (its plan is what the CPU needs; more proves nothing)."""
        rest = [p for p in PLAN if p.stage not in done]
        me = next(p for p in rest if p.stage == stage)
        plan = me.dry if dry else me.seconds
        floor = min(me.floor, plan)
        avail = self.left() - RESERVE_S
        total = sum(p.dry if dry else p.seconds for p in rest)
        spare = 1.0 if dry or not total else max(1.0, avail / total)
        box = min(avail, plan * spare)
        return (box if box >= floor else None), plan


class InjectedFailure(RuntimeError):
    """What ``--fail NAME`` raises at the start of stage NAME."""


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
        # how gpu_check.sh installed the project: built there, or the carried wheel
        "install": os.environ.get("LIPLEAK_GPU_CHECK_INSTALL"),
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


# ----------------------------------------------------------------------------------- setup


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


def plain_syncnet(path: Path, seed: int = 0) -> Path:
    """The fallback of ``make_syncnet``: seeded random SyncNet v2 weights in the same
    format, torch's default initialisation, no calibration (LSE-D then lies far from
    the real model's range, so the 1e-3 bound is looser in relative terms; same cost)."""
    import torch

    from lipleak.export.syncnet import SyncNetV2

    torch.manual_seed(seed)
    state = OrderedDict(
        (k, v.detach().clone())
        for k, v in SyncNetV2().state_dict().items()
        if not k.endswith("num_batches_tracked")
    )
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


def make_inception(path: Path, seed: int = 0, stand_in: bool = False) -> dict:
    """A seeded random FID-Inception stand-in as ONNX (``images`` N×3×299×299 → ``features``
    N×2048), exported as ``lipleak.export.inception_onnx`` exports the real TorchScript:
    torchvision's Inception-v3 where torchvision imports, else (or with ``stand_in``, the
    fallback when that export fails) a small network with the same inputs and outputs."""
    import warnings

    import torch

    from lipleak.export.inception_onnx import DIM, INPUT_NAME, OPSET, OUTPUT_NAME, SIZE

    torch.manual_seed(seed)
    net = None
    if not stand_in:
        try:
            from torchvision.models import inception_v3
        except Exception as exc:  # noqa: BLE001 - absent, or built for another torch
            what = f"small stand-in, NOT the Inception's cost (torchvision unusable: {exc})"
        else:
            net = inception_v3(weights=None, aux_logits=False, init_weights=True)
            net.fc = torch.nn.Identity()  # pool3: 2048 features, as the FID network gives
            what = "torchvision Inception-v3, seeded random weights (the FID network's cost)"
    else:
        what = "small stand-in, NOT the Inception's cost (the Inception-v3 export failed)"
    if net is None:
        net = _StandIn.build()
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


# ---------------------------------------------------------------------- agreement


def rel(a, ref) -> float:
    return float(np.abs(a - ref).max() / max(float(np.abs(ref).max()), 1e-30))


def agreement(out: dict, ckpt: Path, clips: list[Path], box: float, dry: bool) -> dict:
    """Fills ``out`` as it goes (what it holds survives a failure later on); a precision
    that fails is recorded under ``errors`` and the others still run."""
    from lipleak.models.syncnet import SyncNet
    from lipleak.runtime import open_model
    from lipleak.sync import SyncScorer, SyncSettings

    t_start = time.monotonic()
    t_end = t_start + box
    out.update({"embeddings": {}, "lse": [], "notes": [], "errors": {}})
    cpu = SyncNet.load(ckpt, backend="cpu")
    lips, mfcc, crops = real_inputs(clips[0], 4 if dry else 32, frames=True)
    ref = {"lips": cpu.embed_lips(lips), "audio": cpu.embed_audio(mfcc)}
    paths = {"lips": cpu.lips.describe().model_path, "audio": cpu.audio.describe().model_path}
    feeds = {"lips": {"lips": lips}, "audio": {"mfcc": mfcc}}
    emb = out["embeddings"]
    for p in PRECISIONS:
        try:
            for tower in ("lips", "audio"):
                rt = open_model(paths[tower], "torch", precision=p, max_batch=64)
                got = rt.run(feeds[tower])["embedding"]
                emb[f"{tower}_{p}_rel_maxdiff"] = rel(got, ref[tower])
                if tower == "lips":  # what the scorer does: uint8 crops up, windows made there
                    got = SyncNet(ckpt, "", None, rt, rt).embed_lip_frames([crops])
                    emb[f"lips_from_frames_{p}_rel_maxdiff"] = rel(got, ref[tower])
            emb["device"] = rt.describe().details["device"]
        except Exception as exc:  # noqa: BLE001 - recorded; the other precisions still run
            out["errors"][f"embeddings_{p}"] = repr(exc)[:500]
    log("embeddings:", json.dumps(emb))
    scorers = {"cpu": SyncScorer(SyncSettings(syncnet=str(ckpt), backend="cpu", batch_size=64))}
    for p in PRECISIONS:
        try:
            scorers[p] = SyncScorer(
                SyncSettings(syncnet=str(ckpt), backend="torch", precision=p, batch_size=64)
            )
        except Exception as exc:  # noqa: BLE001
            out["errors"][f"scorer_{p}"] = repr(exc)[:500]
    for clip in clips:
        if time.monotonic() > t_end:
            out["notes"].append(f"time box ({box:.0f} s) reached: clips from {clip.name} skipped")
            break
        r = {}
        for p, s in scorers.items():
            try:
                r[p] = s.score(clip)
            except Exception as exc:  # noqa: BLE001
                out["errors"][f"lse_{p}_{clip.name}"] = repr(exc)[:500]
        if "cpu" not in r:
            continue
        row = {
            "clip": clip.name,
            "n_frames": r["cpu"].n_frames,
            "cpu": [r["cpu"].lse_c, r["cpu"].lse_d, r["cpu"].offset],
        }
        for p in PRECISIONS:
            if p in r:
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
                if p in row
            )
        )
    out["summary"] = agreement_summary(out["lse"])
    out["seconds"] = time.monotonic() - t_start
    return out


def agreement_summary(rows: list[dict]) -> dict:
    summary: dict = {}
    for p in PRECISIONS:
        got = [r[p] for r in rows if p in r]
        summary[p] = {
            "clips": len(got),
            "max_abs_d_lse_c": max((g["abs_d_lse_c"] for g in got), default=None),
            "max_abs_d_lse_d": max((g["abs_d_lse_d"] for g in got), default=None),
            "offsets_equal": all(g["offset_equal"] for g in got),
        }
    s = summary["fp32"]
    summary["fp32_pass"] = bool(
        s["clips"]
        and s["max_abs_d_lse_c"] <= TARGETS["lse_fp32_abs_diff_max"]
        and s["max_abs_d_lse_d"] <= TARGETS["lse_fp32_abs_diff_max"]
        and s["offsets_equal"]
    )
    return summary


# ------------------------------------------------------------------------- LSE-only speed


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
    """The jobs, handed out until the deadline (the first ``at_least`` whatever the time:
    a stage that started late still measures something); ``taken`` records those."""

    def __init__(self, jobs, deadline: float, at_least: int = 0):
        self.jobs, self.deadline, self.at_least, self.taken = jobs, deadline, at_least, []

    def __iter__(self):
        for j in self.jobs:
            if len(self.taken) >= self.at_least and time.monotonic() > self.deadline:
                return
            self.taken.append(j)
            yield j


def tower_alone(
    syncnet, batch: int, seconds: float, frames: bool = False, min_calls: int = 2
) -> float:
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
    while n < min_calls or time.perf_counter() - t0 < seconds:
        call()
        n += 1
    return n * batch / (time.perf_counter() - t0)


def steady_window(done: list[tuple[float, int]], workers: int, stop: float) -> dict | None:
    """The steady state of a run from its completions ``done`` = [(time, frames)], in
    order: from the moment every worker has finished a video (the ``workers``-th
    completion: start-up, model warm-up and the first decodes are behind it) to the first
    completion after ``stop``, when the jobs stopped being handed out (after it workers
    fall idle one by one). None when fewer than two completions lie in that window."""
    times = [t for t, _ in done]
    if len(times) < 2:
        return None
    a = min(max(workers, 1), len(times)) - 1
    after = [i for i, t in enumerate(times) if t >= stop]
    b = after[0] if after else len(times) - 1
    if b <= a:
        a = 0  # a short run: from the first completion
    if b <= a or times[b] <= times[a]:
        return None
    n = b - a
    frames = sum(f for _, f in done[a + 1 : b + 1])
    seconds = times[b] - times[a]
    return {"t0": times[a], "t1": times[b], "seconds": seconds, "videos": n, "frames": frames}


def tower_busy(clock, wall: tuple[float, float], steady: dict | None) -> dict:
    """The lip tower's device-busy figures from its busy clock (``TorchRuntime.
    start_busy_clock``: CUDA events on the model's stream, one interval per batch): the
    busy seconds and their share of the run's wall time, and of the steady window (the
    batches that finished in it). One stream runs one batch at a time, so a share above
    1 cannot be a measurement: it is flagged, not clipped."""
    if clock is None:
        return {"gpu_busy_s": None, "gpu_busy_share": None, "gpu_busy_share_steady": None}
    t0, t1 = wall
    res = {
        "gpu_busy_s": clock.seconds,
        "gpu_busy_calls": clock.calls,
        "gpu_busy_share": clock.seconds / (t1 - t0) if t1 > t0 else None,
        "gpu_busy_share_steady": None,
        "clock": clock.device,
    }
    if steady is not None:
        busy = clock.seconds_between(steady["t0"], steady["t1"])
        res["gpu_busy_share_steady"] = busy / steady["seconds"]
    if any((res[k] or 0) > 1.0 + 1e-6 for k in ("gpu_busy_share", "gpu_busy_share_steady")):
        res["warning"] = "busy share above 1: intervals overlap, so not one stream's timing"
    return res


def lse_speed(
    out: dict, ckpt: Path, videos: list[Path], precision: str, box: float, args, tmp: Path
) -> dict:
    """Fills ``out``; every figure over the steady state first (``steady_window``), the
    whole run's wall time beside it."""
    from lipleak.sync import SyncScorer, SyncSettings
    from lipleak.sync.inputs import VideoJob
    from lipleak.sync.results import SyncStore
    from lipleak.sync.volume import LocalExecutor, VolumeRun

    t_end = time.monotonic() + box
    t_open = time.perf_counter()
    scorer = SyncScorer(
        SyncSettings(
            syncnet=str(ckpt), backend="torch", precision=precision, batch_size=args.batch_size
        )
    )
    out.update(
        precision=precision,
        batch_size=args.batch_size,
        workers=args.workers,
        time_box_s=box,
        open_seconds=time.perf_counter() - t_open,
    )
    # the dry run (the CPU: fp16 there runs about 1 window/s) measures one tiny batch
    alone_s, batch, calls = (
        (0.0, 2, 1) if args.dry_run else (min(5.0, box * 0.05), args.batch_size, 2)
    )
    out["lip_tower_alone_host_windows_per_s"] = tower_alone(  # float32 windows from the host
        scorer.syncnet, batch, alone_s, min_calls=calls
    )
    out["lip_tower_alone_windows_per_s"] = alone = tower_alone(  # uint8 crops, as the scorer
        scorer.syncnet, batch, alone_s, frames=True, min_calls=calls
    )
    t0 = time.perf_counter()
    if not args.dry_run:
        scorer.score(videos[0])  # warm-up: every batch size a video ends with, allocator
    out["warm_up_video_s"] = warm = time.perf_counter() - t0
    store = SyncStore(tmp / f"lse_{precision}.sqlite")
    timer = StageTimer()
    executor = LocalExecutor(scorer, workers=args.workers)
    jobs = TimedJobs([VideoJob(v, None) for v in videos], 0.0, at_least=args.workers)
    run = VolumeRun(jobs, store, executor)
    run.start()
    done: list[tuple[float, int]] = []

    def on_row(row: dict) -> None:
        if row["status"] == "ok":
            done.append((time.perf_counter(), int(row.get("n_frames") or 0)))

    lips = scorer.syncnet.lips
    clock = lips.start_busy_clock() if hasattr(lips, "start_busy_clock") else None
    sampler = GpuSampler(not args.dry_run)
    try:
        with stage_patches(timer, scorer.syncnet):
            t0 = time.perf_counter()
            # hand out jobs until the box less the drain (the videos in flight finish
            # after it): about two videos' time in the full pipeline
            left = t_end - time.monotonic()
            drain = min(0.3 * left, max(3.0, 2.0 * warm))
            jobs.deadline = time.monotonic() + left - drain
            stop = t0 + (left - drain)
            counts = run.run(["gpu_check", precision], on_row=on_row)
            t1 = time.perf_counter()
    finally:
        if clock is not None:
            lips.stop_busy_clock()
        gpu = sampler.stop()
    wall = t1 - t0
    stats = executor.pipeline.stats if executor.pipeline else None
    rows = store.rows(run.hash, keys=[j.key() for j in jobs.taken])
    store.close()
    ok = [r for r in rows if r["status"] == "ok"]
    frames = sum(r["n_frames"] for r in ok)
    windows = sum(t["n_windows"] for r in ok for t in r["tracks"])
    steady = steady_window(done, args.workers, stop)
    busy = tower_busy(clock, (t0, t1), steady)
    stage_s = dict(timer.t)
    if stats:
        stage_s["lip_tower_host_summed"] = stats.busy_s
    per_stage = {
        k: {
            "thread_seconds": v,
            "frames_per_thread_second": frames / v if v else None,
            "share_of_wall": v / wall,
        }
        for k, v in sorted(stage_s.items())
    }
    vpm_wall = 60 * len(ok) / wall if wall else None
    out.update(
        videos=len(ok),
        failed=counts.failed,
        failures=counts.failures[:3],
        frames=frames,
        windows=windows,
        wall_s=wall,
        steady=steady and {k: steady[k] for k in ("seconds", "videos", "frames")},
        # the figures: the steady state where there is one, else the whole run
        videos_per_min=60 * steady["videos"] / steady["seconds"] if steady else vpm_wall,
        frames_per_s=steady["frames"] / steady["seconds"] if steady else frames / wall,
        videos_per_min_wall=vpm_wall,
        frames_per_s_wall=frames / wall if wall else None,
        windows_per_s_wall=windows / wall if wall else None,
        pipeline_vs_tower_alone=windows / wall / alone if wall and alone else None,
        lip_tower_gpu_busy=busy,
        lip_tower_busy_share=busy["gpu_busy_share_steady"] or busy["gpu_busy_share"],
        # TowerStats.busy_s: host time inside the model, summed over both serving threads
        # (lock waits and the other thread's queued GPU time included): up to 2x the wall,
        # so never the busy figure (issue 25); kept to compare
        lip_tower_host_busy_share_summed=stats.busy_s / wall if stats and wall else None,
        lip_tower_batches=stats.batches if stats else None,
        mean_batch=stats.windows / stats.batches if stats and stats.batches else None,
        nvidia_smi=gpu,
        stages=per_stage,
    )
    log(
        f"LSE-only {precision}: {len(ok)} videos in {wall:.1f} s; steady "
        f"{out['videos_per_min']:.0f} videos/min, {out['frames_per_s']:.0f} frames/s "
        f"(wall {vpm_wall or 0:.0f} videos/min); tower alone {alone:.0f} windows/s, "
        f"GPU busy {out['lip_tower_busy_share'] or 0:.2f} (host summed "
        f"{out['lip_tower_host_busy_share_summed'] or 0:.2f}); "
        f"nvidia-smi {gpu and round(gpu['utilization_mean_pct'])} %"
    )
    log(
        "  stages (thread-s, frames per thread-s): "
        + ", ".join(
            f"{k} {v['thread_seconds']:.1f} s {v['frames_per_thread_second'] or 0:.0f}"
            for k, v in per_stage.items()
        )
    )
    return out


# ---------------------------------------------------------------------------- all metrics


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


def all_metrics(out: dict, ckpt: Path, long_clips, inception: dict, box: float, args, tmp) -> dict:
    t_end = time.monotonic() + box
    t0 = time.perf_counter()
    run_dir, n_videos = make_protocol(long_clips, args.gt, tmp / "protocol")
    out.update(gt_videos=args.gt, videos_planned=n_videos, time_box_s=box)
    out["prepare_seconds"] = time.perf_counter() - t0
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
    left = t_end - time.monotonic()
    sampler = GpuSampler(not args.dry_run)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=max(left, 10))
        rc, tail = p.returncode, (p.stdout + p.stderr)[-1500:]
    except subprocess.TimeoutExpired as exc:
        rc = "stopped at its time box"
        tail = ((exc.stdout or b"").decode() + (exc.stderr or b"").decode())[-1500:]
    finally:
        out["nvidia_smi"] = sampler.stop()
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
    steady = 60 * (done - 1) / (last - first) if done > 1 and last > first else None
    vpm_wall = 60 * done / wall if wall else None
    out.update(
        child_exit=rc,
        videos_ok=done,
        gt_videos_ok=gt_videos,
        metric_groups=groups,
        wall_s=wall,
        steady_s=(last - first) if done > 1 else None,
        # the figure: between the first and the last committed video (the child's start-up,
        # imports and onnx2torch conversions, excluded); the wall figure includes it
        videos_per_min=steady if steady is not None else vpm_wall,
        videos_per_min_steady=steady,
        videos_per_min_wall=vpm_wall,
        note="steady = between the first and the last finished video; wall includes the "
        "child's start-up (imports, onnx2torch conversions). SSIM, PSNR, FID features "
        "(" + inception["what"] + "), LMD, mouth motion, LSE; CSIM not computed (no ArcFace "
        "model carried); the report's cell FIDs not computed (--no-report)",
        output_tail=tail,
    )
    log(
        f"all metrics: {done} videos ok of {n_videos} in {wall:.1f} s: steady "
        f"{steady or 0:.0f} videos/min, wall {vpm_wall or 0:.0f}; exit {rc}"
    )
    if done == 0:
        log(tail)
    return out


# ---------------------------------------------------------------------------- CUDA graphs


def cuda_graphs(out: dict, ckpt: Path, batch: int, box: float, dry: bool) -> dict:
    """The lip tower on a device-resident batch: eager vs replaying a captured CUDA graph,
    and eager on channels-last (NDHWC) windows, per precision (windows/s and the largest
    difference). Measured before the scorer uses either: with batches of 128 windows the
    kernels are long and launch overhead may not matter, and channels-last changes bits
    (it would be a hashed setting, like the precision). A capture that fails (an op that
    syncs with the host) is recorded as such, and so is a precision that fails. On the
    CPU (the dry run) the same code at fp32 only, without the capture."""
    import torch

    from lipleak.models.syncnet import SyncNet
    from lipleak.runtime.torch_backend import TorchRuntime

    cuda = torch.cuda.is_available()
    if not cuda and not dry:
        out["skipped"] = "torch sees no CUDA device"
        return out
    precisions = PRECISIONS if cuda else ("fp32",)
    path = SyncNet.load(ckpt, backend="cpu").lips.describe().model_path
    each = box / (3 * len(precisions) + 1)
    out.update(batch=batch, device="cuda" if cuda else "cpu (dry run: no capture)")
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def rate(call) -> float:
        call()
        sync()
        n, t0 = 0, time.perf_counter()
        while n < (3 if cuda else 1) or time.perf_counter() - t0 < each:
            call()
            n += 1
        sync()
        return n * batch / (time.perf_counter() - t0)

    for p in precisions:
        res: dict = {}
        out[p] = res
        try:
            rt = TorchRuntime(path, precision=p, max_batch=batch)
            gen = torch.Generator(device=rt.device).manual_seed(0)
            x = torch.randint(0, 256, (batch, 3, 5, 224, 224), generator=gen, device=rt.device)
            x = x.to(rt.dtype)
            with torch.no_grad():
                res["eager_windows_per_s"] = rate(lambda rt=rt, x=x: rt.module(x))
                if cuda:
                    try:
                        side = torch.cuda.Stream()
                        side.wait_stream(torch.cuda.current_stream())
                        with torch.cuda.stream(side):  # warm-up off the capture stream
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
                # channels-last: on the CPU torch's kernels for them ran the tower 1.4x
                # faster with other bits (bench/README); what cuDNN does with them. The
                # exported tower is 2-D (export.syncnet.planar_lip_cnn): its weights go
                # channels-last, the 5-D windows are flattened inside the graph
                try:
                    cl = TorchRuntime(path, precision=p, max_batch=batch)
                    cl.module = cl.module.to(memory_format=torch.channels_last)
                    xc = x
                    res["channels_last_windows_per_s"] = rate(lambda cl=cl, xc=xc: cl.module(xc))
                    ref = rt.module(x)
                    got = cl.module(xc)
                    res["channels_last_max_rel_diff"] = float(
                        (got.float() - ref.float()).abs().max() / ref.float().abs().max()
                    )
                except Exception as exc:  # noqa: BLE001
                    res["channels_last_error"] = repr(exc)[:300]
        except Exception as exc:  # noqa: BLE001 - recorded; the other precisions still run
            res["error"] = repr(exc)[:500]
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


# ------------------------------------------------------------------------------ the stages


class Stages:
    """The check's steps as the driver (``run_check``) calls them. The CPU rehearsal
    (tests/test_gpu_check_rehearsal.py) runs the driver on a subclass whose steps are
    tiny fakes; everything else (guards, fallbacks, budget, saving, verdicts) is the same
    code."""

    def __init__(self, args, tmp: Path, shared: Path):
        self.args, self.tmp, self.shared = args, tmp, shared
        self.dry = args.dry_run

    def environment(self) -> dict:
        return environment(self.dry)

    def models(self) -> list[str]:
        from lipleak.models import store

        names = ["scrfd_500m", "pfld_68"]
        for m in names:
            store.fetch(m, source=self.shared / "models")
        return names

    def clips(self) -> tuple[list[Path], list[Path]]:
        """(the shared clips, those at 25 fps: the sources of the SyncNet calibration and
        of the 10-s clips)."""
        from lipleak.io.video import probe

        clips = sorted((self.shared / "data" / "clips").glob("*.mp4"))
        if self.dry:
            clips = [c for c in clips if c.stem in ("real03_aoc", "real07_reagan")]
        cfr = [c for c in clips if abs(probe(c).src_fps - 25) < 1e-3]
        if not cfr:
            raise RuntimeError(f"no 25-fps .mp4 clip in {self.shared / 'data' / 'clips'}")
        return clips, cfr

    def syncnet(self, sources: list[Path]) -> Path:
        return make_syncnet(
            self.tmp / "syncnet_v2_seeded.model", sources[:2], windows=4 if self.dry else 16
        )

    def syncnet_fallback(self, sources: list[Path]) -> Path:
        return plain_syncnet(self.tmp / "syncnet_v2_plain.model")

    def towers(self, ckpt: Path) -> None:
        from lipleak.models.syncnet import SyncNet

        SyncNet.load(ckpt, backend="cpu")  # the ONNX towers, exported once

    def long_clips(self, sources: list[Path]) -> list[Path]:
        return make_long_clips(sources, self.tmp / "long", self.args.frames)

    def long_clips_fallback(self, sources: list[Path]) -> list[Path]:
        return list(sources)

    def inception(self) -> dict:
        return make_inception(self.tmp / "inception_random.onnx")

    def inception_fallback(self) -> dict:
        return make_inception(self.tmp / "inception_stand_in.onnx", stand_in=True)

    def videos(self, long_clips: list[Path]) -> list[Path]:
        """Many names for the clips (hard links; symbolic where a link fails): the LSE
        stages' jobs, each a video of its own to the store."""
        links = self.tmp / "videos"
        links.mkdir(exist_ok=True)
        out = []
        for i in range(40 if self.dry else 6000):
            src = long_clips[i % len(long_clips)]
            v = links / f"{i:05d}_{src.name}"
            try:
                os.link(src, v)
            except OSError:
                v.symlink_to(src.resolve())
            out.append(v)
        return out

    def agreement(self, out: dict, ckpt: Path, clips: list[Path], box: float) -> dict:
        return agreement(out, ckpt, clips, box, self.dry)

    def lse_speed(self, out: dict, ckpt: Path, videos, precision: str, box: float) -> dict:
        return lse_speed(out, ckpt, videos, precision, box, self.args, self.tmp)

    def all_metrics(self, out: dict, ckpt: Path, long_clips, inception, box: float) -> dict:
        return all_metrics(out, ckpt, long_clips, inception, box, self.args, self.tmp)

    def cuda_graphs(self, out: dict, ckpt: Path, box: float) -> dict:
        return cuda_graphs(out, ckpt, 2 if self.dry else self.args.batch_size, box, self.dry)


# ------------------------------------------------------------------------------ the driver


class Check:
    """One run of the check: the result, its file, the budget and the guards."""

    def __init__(self, args, stages: Stages, out_path: Path):
        self.args, self.stages, self.out_path = args, stages, out_path
        self.dry = args.dry_run
        self.budget = Budget(args.budget_s)
        self.fail = {n.strip() for n in (args.fail or "").split(",") if n.strip()}
        self.done: set[str] = set()
        self.result: dict = {
            "what": "bench/gpu_check.py (issues 14, 25): torch backend agreement, drift, speed",
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "budget_s": args.budget_s,
            "plan": [
                {
                    "stage": p.stage,
                    "planned_s": p.dry if self.dry else p.seconds,
                    "floor_s": p.floor,
                }
                for p in PLAN
            ],
            "targets": TARGETS,
            "failures": [],
            "skipped": [],
            "stages": {},
        }
        if self.dry:
            self.result["note"] = (
                "CPU DRY RUN: the torch backend on the CPU with tiny counts, to prove the "
                "script's logic; no number here is a GPU measurement"
            )
        if self.fail:
            self.result["injected_failures"] = sorted(self.fail)

    def save(self) -> None:
        """The result as it stands, written whole (a temporary file renamed over it)."""
        try:
            self.out_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.out_path.with_name(self.out_path.name + ".tmp")
            tmp.write_text(json.dumps(self.result, indent=1, default=str) + "\n")
            os.replace(tmp, self.out_path)
        except (OSError, RuntimeError, ValueError) as exc:  # the run goes on; the log has it
            log(f"could not save {self.out_path}: {exc!r}")

    def attempt(self, point: str, fn, *a):
        """``(True, fn(*a))``, or ``(False, None)`` with the exception recorded under
        ``failures`` (``--fail`` names raise here, at the start)."""
        try:
            if any(point == n or point.startswith(n + ".") for n in self.fail):
                raise InjectedFailure(f"{point}: failure injected by --fail")
            return True, fn(*a)
        except Exception as exc:  # noqa: BLE001 - the one shot goes on
            self.result["failures"].append(
                {
                    "stage": point,
                    "error": repr(exc)[:500],
                    "traceback": traceback.format_exc(limit=-8)[-2500:],
                }
            )
            log(f"FAILED {point}: {exc!r}")
            return False, None

    def with_fallback(self, name: str, primary, fallback, *a):
        """``primary(*a)`` (point ``setup.NAME``), else ``fallback(*a)`` (``fallback.NAME``);
        None when both fail. Which one gave the value is in ``setup.fallbacks``."""
        ok, value = self.attempt(f"setup.{name}", primary, *a)
        if ok:
            return value
        ok, value = self.attempt(f"fallback.{name}", fallback, *a)
        self.result["setup"]["fallbacks"][name] = "taken" if ok else "failed too"
        return value if ok else None

    # ---------------------------------------------------------------- the run

    def setup(self) -> dict:
        s = self.stages
        setup = self.result["setup"] = {"fallbacks": {}}
        t0 = time.perf_counter()
        self.attempt("setup_models", s.models)
        ok, got = self.attempt("setup_clips", s.clips)
        clips, sources = got if ok else ([], [])
        ckpt = self.with_fallback("syncnet", s.syncnet, s.syncnet_fallback, sources)
        if ckpt is not None and not self.attempt("setup_towers", s.towers, ckpt)[0]:
            ckpt = None
        long_clips = self.with_fallback("long_clips", s.long_clips, s.long_clips_fallback, sources)
        inception = self.with_fallback("inception", s.inception, s.inception_fallback)
        videos = None
        if long_clips:
            videos = self.attempt("setup_videos", s.videos, long_clips)[1]
        setup.update(
            seconds=time.perf_counter() - t0,
            syncnet=(
                None
                if ckpt is None
                else f"seeded random SyncNet v2 (seed 0), legacy torch.save at {ckpt.name}"
                + (
                    ", BatchNorm calibrated on real clips"
                    if "syncnet" not in setup["fallbacks"]
                    else ", NOT calibrated (the fallback)"
                )
                + ": same architecture and cost as syncnet_v2"
            ),
            fid_inception=inception and inception["what"],
            clips=[c.name for c in clips],
            long_clips={
                "seconds": self.args.seconds if "long_clips" not in setup["fallbacks"] else None,
                "sources": [c.name for c in sources],
            },
            videos=len(videos) if videos else 0,
        )
        log("setup:", json.dumps(setup, default=str))
        self.save()
        return {
            "ckpt": ckpt,
            "clips": clips,
            "long_clips": long_clips,
            "inception": inception,
            "videos": videos,
        }

    def stage(self, name: str, needs: dict, store, fn, *a) -> None:
        """Run stage ``name`` in its time box, guarded; ``needs`` names what it needs from
        setup (a missing one skips it, saying so); ``store(out)`` puts its result dict in
        place before it runs, so that what it filled in survives its failure."""
        entry = self.result["stages"][name] = {}
        box, planned = self.budget.box(name, self.done, self.dry)
        entry["planned_s"] = planned
        self.done.add(name)
        missing = [k for k, v in needs.items() if not v]
        if missing:
            why = f"needs {', '.join(missing)}, which setup could not make (see failures)"
        elif box is None:
            why = f"no time left ({self.budget.left():.0f} s)"
        else:
            why = None
        if why:
            entry.update(status="skipped", why=why)
            self.result["skipped"].append(f"{name}: {why}")
            log(f"SKIPPED {name}: {why}")
            self.save()
            return
        out: dict = {}
        store(out)
        entry.update(box_s=box, status="running")
        log(f"== {name}: box {box:.0f} s (planned {planned:.0f}, {self.budget.left():.0f} s left)")
        t0 = time.monotonic()
        ok, _ = self.attempt(name, fn, out, *a, box)
        if not ok:
            out["error"] = self.result["failures"][-1]["error"]
        seconds = time.monotonic() - t0
        entry.update(status="ok" if ok else "failed", seconds=seconds)
        if seconds > box + 1:
            entry["overran_s"] = seconds - box
        self.save()

    def run(self) -> dict:
        r = self.result
        ok, env = self.attempt("environment", self.stages.environment)
        r["environment"] = env if ok else {"error": r["failures"][-1]["error"]}
        log("environment:", json.dumps(r["environment"], default=str))
        if not self.dry and ok and not env.get("cuda_available"):
            r["skipped"].append("torch sees no CUDA device: every GPU number is unmeasured")
        self.save()
        got = self.setup()
        ckpt, s = got["ckpt"], self.stages
        need_ckpt = {"the SyncNet checkpoint": ckpt}
        r["lse_only"] = {}
        for p in PLAN:
            name = p.stage
            if name == "agreement":
                clips = got["long_clips"] if self.dry else got["clips"]
                self.stage(
                    name,
                    {**need_ckpt, "clips": clips},
                    lambda o: r.__setitem__("agreement", o),
                    s.agreement,
                    ckpt,
                    clips,
                )
            elif name.startswith("lse_"):
                prec = name[4:]
                self.stage(
                    name,
                    {**need_ckpt, "videos": got["videos"]},
                    lambda o, prec=prec: r["lse_only"].__setitem__(prec, o),
                    s.lse_speed,
                    ckpt,
                    got["videos"],
                    prec,
                )
            elif name == "all_metrics":
                self.stage(
                    name,
                    {
                        **need_ckpt,
                        "10-s clips": got["long_clips"],
                        "an Inception": got["inception"],
                    },
                    lambda o: r.__setitem__("all_metrics", o),
                    s.all_metrics,
                    ckpt,
                    got["long_clips"],
                    got["inception"],
                )
            elif name == "cuda_graphs":
                self.stage(
                    name,
                    need_ckpt,
                    lambda o: r.__setitem__("cuda_graphs", o),
                    s.cuda_graphs,
                    ckpt,
                )
        r["verdicts"] = verdicts(r)
        r["total_seconds"] = self.args.budget_s - self.budget.left()
        self.save()
        log("verdicts:", json.dumps(r["verdicts"]))
        if r["failures"]:
            log("failures:", ", ".join(f["stage"] for f in r["failures"]))
        log("wrote", self.out_path)
        return r


def verdicts(r: dict) -> dict:
    ag = (r.get("agreement") or {}).get("summary", {})
    lse = r.get("lse_only") or {}

    def vpm(p):
        return (lse.get(p) or {}).get("videos_per_min")

    low = max(filter(None, [vpm("fp16"), vpm("bf16")]), default=None)
    am = (r.get("all_metrics") or {}).get("videos_per_min")
    busy = (lse.get("fp32") or {}).get("lip_tower_busy_share")
    return {
        "lse_fp32_within_1e-3_of_cpu": ag.get("fp32_pass"),
        "lse_only_fp32_videos_per_min": [vpm("fp32"), (vpm("fp32") or 0) >= 1000],
        "lse_only_fp16_bf16_videos_per_min": [low, (low or 0) >= 3000],
        "all_metrics_videos_per_min": [am, (am or 0) >= 500],
        # from CUDA events on the lip tower's stream, over the steady state
        "lip_tower_gpu_busy_share_fp32": [busy, (busy or 0) >= TARGETS["gpu_busy_share"]],
        "gpu_busy_shares_all_precisions": {
            p: (lse.get(p) or {}).get("lip_tower_busy_share") for p in PRECISIONS
        },
        "stages": {k: v.get("status") for k, v in r.get("stages", {}).items()},
        "failed": [f["stage"] for f in r.get("failures", [])],
    }


def parse_args(argv: list[str] | None = None):
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
    ap.add_argument(
        "--seconds", type=float, default=None, help="clip length (default 10, dry run 0.48)"
    )
    ap.add_argument(
        "--fail",
        default=os.environ.get("LIPLEAK_GPU_CHECK_FAIL", ""),
        help="make these stages fail (comma-separated; the rehearsal of the guards)",
    )
    args = ap.parse_args(argv)
    dry = args.dry_run
    cores = os.cpu_count() or 1
    args.batch_size = args.batch_size or (16 if dry else 128)
    args.workers = args.workers or (2 if dry else max(2, cores - 2))
    args.score_workers = args.score_workers or (2 if dry else max(2, cores - 2))
    args.gt = args.gt or (2 if dry else 24)
    args.seconds = args.seconds or (0.48 if dry else 10)  # the dry run: 12 frames, 8 windows
    args.frames = max(5, round(25 * args.seconds))
    return args


def out_path(args) -> Path:
    date = dt.date.today().isoformat()
    return args.out / (
        f"gpu_check_cpu_dryrun_{date}.json" if args.dry_run else f"gpu_check_{date}.json"
    )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--score-child":
        return score_child(sys.argv[2:])
    args = parse_args()
    if args.dry_run:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the torch backend on the CPU
    shared = Path(os.environ.get("LIPLEAK_SHARED_DIR") or args.carry / "shared")
    if not (shared / "models" / "scrfd_500m.onnx").is_file():
        shared = ROOT.parent / "shared"  # here, without a carry folder
    tmp = Path(tempfile.mkdtemp(prefix="lipleak-gpucheck-"))
    os.environ["LIPLEAK_MODEL_DIR"] = str(tmp / "models")  # the ONNX towers go there too
    check = Check(args, Stages(args, tmp, shared), out_path(args))

    def stopped(signum, frame):  # gpu_check.sh's timeout: save what there is, then go
        check.result["stopped"] = f"signal {signum} (the script's time limit) during: " + ", ".join(
            k for k, v in check.result["stages"].items() if v.get("status") == "running"
        )
        check.save()
        shutil.rmtree(tmp, ignore_errors=True)
        os._exit(124)

    signal.signal(signal.SIGTERM, stopped)
    try:
        check.run()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of lipleak._core against the Python ways of computing the same numbers.

Offset search (SPEC §2) for N = 250 (10 s at 25 fps) and 1500 (1 min) frames of 1024-d
embeddings, against: (a) a pure-Python loop over frames and shifts (one numpy distance per
(frame, shift) pair, the reference tool's "Python loop of distances" shape), (b) the
reference tool's per-frame loop (syncnet_python's calc_pdist: one pairwise_distance call per
frame, in torch and in numpy), (c) numpy vectorised over frames (a loop over the 31 shifts).
The core is timed with its default threads and, in a child process, with OMP_NUM_THREADS=1
(the baselines are single-threaded). Also MFCC vs python_speech_features, SSIM vs skimage
and PSNR vs numpy.

    python bench/bench_core.py [--out bench/results/core_<date>.json] [--repeat 5]

Times are the best of --repeat runs (wall clock, seconds; the core's offset search the
best of 4x as many). Writes a JSON with machine info and the load average before and after
each offset task, and prints a table. Target (issue 2): core >= 50x the Python loop (a).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lipleak import _core

ROOT = Path(__file__).resolve().parents[1]
VSHIFT = 15
TARGET_VS_PYTHON_LOOP = 50.0
PYTHON_LOOP = "python loop over frames and shifts (numpy)"


def best_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def padded(audio, vshift=VSHIFT):
    z = np.zeros((vshift, audio.shape[1]), audio.dtype)
    return np.concatenate([z, audio, z])


def python_loop(video, audio):
    apad, n, S = padded(audio), len(video), 2 * VSHIFT + 1
    d = np.empty((n, S))
    for i in range(n):
        for s in range(S):
            d[i, s] = np.linalg.norm(video[i] - apad[i + s] + 1e-6)
    return d


def per_frame_numpy(video, audio):
    # calc_pdist: one call per frame over all shifts.
    apad, S = padded(audio), 2 * VSHIFT + 1
    return [
        np.linalg.norm(np.repeat(video[[i]], S, 0) - apad[i : i + S] + 1e-6, axis=1)
        for i in range(len(video))
    ]


def per_frame_torch(video, audio):
    import torch

    F = torch.nn.functional
    v, S = torch.from_numpy(video), 2 * VSHIFT + 1
    apad = F.pad(torch.from_numpy(audio), (0, 0, VSHIFT, VSHIFT))
    with torch.no_grad():
        return [F.pairwise_distance(v[[i], :].repeat(S, 1), apad[i : i + S]) for i in range(len(v))]


def vectorised_numpy(video, audio):
    apad, n = padded(audio).astype(np.float64), len(video)
    v = video.astype(np.float64)
    d = np.stack(
        [np.linalg.norm(v - apad[s : s + n] + 1e-6, axis=1) for s in range(2 * VSHIFT + 1)], 1
    )
    mdist = d.mean(0)
    return mdist, d


def offset_inputs(n):
    rng = np.random.default_rng(n)
    video = rng.standard_normal((n, 1024)).astype(np.float32)
    audio = rng.standard_normal((n, 1024)).astype(np.float32)
    return video, audio


def core_offset_time(n, repeat):
    video, audio = offset_inputs(n)
    _core.offset_search(video, audio, VSHIFT)  # warm-up: pages, thread pool
    return best_time(lambda: _core.offset_search(video, audio, VSHIFT), repeat * 4)


def core_offset_time_one_thread(n, repeat):
    """core_offset_time in a child process with OMP_NUM_THREADS=1."""
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_core; "
        f"print(bench_core.core_offset_time({n}, {repeat}))"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def loadavg():
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def bench_offset(n, repeat, rows):
    load_before = loadavg()
    video, audio = offset_inputs(n)
    core = core_offset_time(n, repeat)
    core1 = core_offset_time_one_thread(n, repeat)
    base = {
        PYTHON_LOOP: best_time(lambda: python_loop(video, audio), repeat),
        "per-frame loop, calc_pdist style (numpy)": best_time(
            lambda: per_frame_numpy(video, audio), repeat
        ),
        "numpy vectorised over frames": best_time(lambda: vectorised_numpy(video, audio), repeat),
    }
    try:
        base["per-frame loop, calc_pdist (torch CPU)"] = best_time(
            lambda: per_frame_torch(video, audio), repeat
        )
    except ImportError:
        pass
    load_after = loadavg()
    for name, t in base.items():
        rows.append(
            {
                "task": f"offset search N={n}",
                "baseline": name,
                "baseline_s": t,
                "core_s": core,
                "core_1thread_s": core1,
                "speedup_1thread": t / core1,
                "loadavg_before": load_before,
                "loadavg_after": load_after,
            }
        )
    items = 8
    rng = np.random.default_rng(n + 1)
    videos = [rng.standard_normal((n, 1024)).astype(np.float32) for _ in range(items)]
    audios = [rng.standard_normal((n, 1024)).astype(np.float32) for _ in range(items)]
    batch = best_time(lambda: _core.offset_search_batch(videos, audios, VSHIFT), repeat)
    single = best_time(
        lambda: [_core.offset_search(v, a, VSHIFT) for v, a in zip(videos, audios, strict=True)],
        repeat,
    )
    rows.append(
        {
            "task": f"offset search batch of {items}, N={n}",
            "baseline": "core offset_search one by one",
            "baseline_s": single,
            "core_s": batch,
        }
    )


def bench_mfcc(repeat, rows):
    import python_speech_features as psf

    wavs = sorted((ROOT.parent / "shared" / "data" / "clips").glob("*.wav"))
    if wavs:
        import soundfile as sf

        signal, sr = sf.read(wavs[0], dtype="int16")
        signal = signal[: 10 * sr]
    else:
        sr = 16000
        signal = np.random.default_rng(0).integers(-8000, 8000, 10 * sr).astype(np.int16)
    core = best_time(lambda: _core.mfcc(signal, sr), repeat * 4)
    ref = best_time(lambda: psf.mfcc(signal, sr), repeat)
    rows.append(
        {
            "task": f"MFCC {len(signal) / sr:.1f} s",
            "baseline": "python_speech_features",
            "baseline_s": ref,
            "core_s": core,
        }
    )


def bench_quality(repeat, rows):
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (25, 224, 224, 3), dtype=np.uint8)
    b = np.clip(a + rng.normal(0, 10, a.shape), 0, 255).astype(np.uint8)
    kw = dict(
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=-1,
    )
    core = best_time(lambda: _core.ssim(a, b), repeat)
    ref = best_time(
        lambda: [structural_similarity(x, y, **kw) for x, y in zip(a, b, strict=True)], 1
    )
    rows.append(
        {"task": "SSIM 25x224x224x3", "baseline": "skimage", "baseline_s": ref, "core_s": core}
    )

    def psnr_np():
        mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=(1, 2, 3))
        return 10 * np.log10(255.0**2 / mse)

    rows.append(
        {
            "task": "PSNR 25x224x224x3",
            "baseline": "numpy float64",
            "baseline_s": best_time(psnr_np, repeat),
            "core_s": best_time(lambda: _core.psnr(a, b), repeat),
        }
    )


def machine_info():
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    info["offset_kernels"] = [isa for isa in ("avx512", "avx2", "scalar") if kernel_available(isa)]
    info["loadavg_at_start"] = loadavg()
    return info


def kernel_available(isa):
    one = np.ones((1, 1), np.float32)
    try:
        _core._shift_distances_isa(one, one, 0, 0, isa)
    except ValueError:
        return False
    return True


def target_summary(rows):
    """Issue 2's target: core >= 50x the pure-Python loop, per N, default and one thread."""
    out = []
    for r in rows:
        if r["baseline"] == PYTHON_LOOP:
            out.append(
                {
                    "task": r["task"],
                    "target_speedup": TARGET_VS_PYTHON_LOOP,
                    "speedup": r["speedup"],
                    "speedup_1thread": r["speedup_1thread"],
                    "met": r["speedup"] >= TARGET_VS_PYTHON_LOOP,
                    "met_1thread": r["speedup_1thread"] >= TARGET_VS_PYTHON_LOOP,
                }
            )
    return out


def main(argv=None):
    today = dt.date.today().isoformat()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / f"core_{today}.json")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    info = machine_info()
    rows = []
    for n in (250, 1500):
        bench_offset(n, args.repeat, rows)
    bench_mfcc(args.repeat, rows)
    bench_quality(args.repeat, rows)
    for r in rows:
        r["speedup"] = r["baseline_s"] / r["core_s"]

    print(f"{'task':36} {'baseline':44} {'baseline s':>11} {'core s':>10} {'x':>8} {'x 1 thr':>8}")
    for r in rows:
        one = f"{r['speedup_1thread']:8.1f}" if "speedup_1thread" in r else ""
        print(
            f"{r['task']:36} {r['baseline']:44} {r['baseline_s']:11.5f} {r['core_s']:10.5f} "
            f"{r['speedup']:8.1f} {one}"
        )
    targets = target_summary(rows)
    for t in targets:
        print(
            f"target >= {t['target_speedup']:.0f}x the Python loop, {t['task']}: "
            f"{t['speedup']:.1f}x ({'met' if t['met'] else 'NOT met'}), one thread "
            f"{t['speedup_1thread']:.1f}x ({'met' if t['met_1thread'] else 'NOT met'})"
        )
    info["loadavg_at_end"] = loadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"date": today, "machine": info, "targets": targets, "results": rows}, indent=2)
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Issue 13 analysis: the highest SyncNet utilisation ``sync DIR`` could reach on this
machine without changing a number.

``bench_volume.py`` defines utilisation as end-to-end windows/s ÷ the lip tower's
windows/s alone (one session on all cores, full batches). Every window also needs work
that cannot be dropped: its frame decoded and converted to BGR (the frames must be
libswscale's), the 224×224 crop, the float window, its MFCC and the audio tower (part of
LSE). Measured here in core-seconds per window (process CPU time), with the lip tower as
the pipeline runs it (one single-threaded session per core, all at once), the best any
schedule of that work on C cores can do is

    windows/s ≤ C / (C / lip_rate_all_cores + Σ other core-s per window)

and the utilisation ceiling is that ÷ the lip tower alone. Best of ``--repeats`` for every
rate (other work on the machine only slows a trial down).

    python bench/volume_ceiling.py [--batch-size 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import CLIPS_DIR, model_env, write_result  # noqa: E402


def best(call, repeats: int, clock=time.perf_counter) -> float:
    """Seconds of the fastest of ``repeats`` calls, after one warm-up. ``clock``
    ``time.process_time`` gives core-seconds (every thread of the process: FFmpeg's
    decoder threads too)."""
    call()
    times = []
    for _ in range(repeats):
        t = clock()
        call()
        times.append(clock() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    model_env(Path(tempfile.mkdtemp(prefix="lipleak-ceiling-")) / "models")

    from lipleak import _core
    from lipleak.faces.crop import prealigned_crop
    from lipleak.io.audio import load_audio
    from lipleak.io.frames import iter_frames
    from lipleak.io.video import probe
    from lipleak.metrics.sync import mfcc_windows
    from lipleak.models.syncnet import SyncNet, lip_windows
    from lipleak.runtime import open_model
    from lipleak.runtime.probe import cpu_threads

    cores = cpu_threads()
    b, reps = args.batch_size, args.repeats
    net = SyncNet.load("syncnet_v2_random", backend="cpu", max_batch=b)
    lips_path = net.lips.describe().model_path
    audio_path = net.audio.describe().model_path
    rng = np.random.default_rng(0)
    x = (rng.random((b, 3, 5, 224, 224)) * 255).astype(np.float32)
    res: dict = {"cores": cores, "batch_size": b, "repeats": reps}

    # the lip tower alone, as bench_volume measures it: one session on all cores
    res["lip_alone_windows_per_s"] = b / best(lambda: net.embed_lips(x), reps)

    # the lip tower as the pipeline runs it: one single-threaded session per core, at once
    sessions = [open_model(lips_path, "cpu", threads=1) for _ in range(cores)]

    def all_at_once():
        ts = [threading.Thread(target=s.run, args=({"lips": x},)) for s in sessions]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    res["lip_replicas_windows_per_s"] = cores * b / best(all_at_once, reps)

    # everything else, in core-seconds per window (process CPU time)
    cpu = time.process_time
    one = {}
    audio1 = open_model(audio_path, "cpu", threads=1)
    clip = next(c for c in sorted(CLIPS_DIR.glob("*.mp4")) if abs(probe(c).src_fps - 25) < 1e-3)
    samples = load_audio(clip)
    n = len(samples) // 640 - 5
    mfcc = mfcc_windows(samples, n)[:b]
    one["audio_tower"] = best(lambda: audio1.run({"mfcc": mfcc}), reps, cpu) / b
    one["mfcc"] = best(lambda: _core.mfcc(samples), reps, cpu) / n

    frames: list[np.ndarray] = []

    def decode():
        frames.clear()
        frames.extend(iter_frames(clip, fps=25.0))

    one["decode_bgr"] = best(decode, reps, cpu) / len(frames)
    crops = np.stack([prealigned_crop(f) for f in frames[: b + 4]])
    one["crop"] = best(lambda: [prealigned_crop(f) for f in frames], reps, cpu) / len(frames)
    buf = np.empty((b, 3, 5, 224, 224), np.float32)
    one["window"] = best(lambda: lip_windows(crops, buf), reps, cpu) / b
    res["other_core_s_per_window"] = one

    lip_core_s = cores / res["lip_replicas_windows_per_s"]
    bound = cores / (lip_core_s + sum(one.values()))
    res["max_windows_per_s"] = bound
    res["utilisation_ceiling"] = bound / res["lip_alone_windows_per_s"]
    res["utilisation_ceiling_without_decode"] = (
        cores / (lip_core_s + sum(v for k, v in one.items() if k != "decode_bgr"))
    ) / res["lip_alone_windows_per_s"]
    print(
        f"lip tower alone {res['lip_alone_windows_per_s']:.1f} w/s, as {cores} single-thread "
        f"replicas {res['lip_replicas_windows_per_s']:.1f} w/s; other work per window "
        + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in one.items())
        + f"; ceiling {bound:.1f} w/s = utilisation {res['utilisation_ceiling']:.3f}",
        flush=True,
    )
    write_result("volume_ceiling", res)


if __name__ == "__main__":
    main()

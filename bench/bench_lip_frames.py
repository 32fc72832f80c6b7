"""Issue 14 benchmark: SyncNet's lip tower fed uint8 crops (the model makes the windows)
against fed float32 windows built on the host, as the scorer did before.

Per backend available here (onnxruntime CPU; the torch backend, on CUDA when torch sees a
GPU, else on the CPU), on full batches of random crops, in this process:

- ``host windows, per window``: the old scorer's path, each window written frame by frame
  (``metrics.sync.lip_window``) into a batch buffer, then ``embed_lips``;
- ``from frames``: ``SyncNet.embed_lip_frames`` on one run of ``batch`` + 4 crops (what
  ``WindowStream`` sends now: host windows in a reused buffer on onnxruntime, windows
  made on the device by ``TorchRuntime.run_prepared`` on torch);
- ``inference only``: ``embed_lips`` on windows built beforehand (the tower's ceiling).

Also the bytes handed to the runtime per window on each path. Embeddings of the two paths
are compared (they must be equal bit for bit).

    python bench/bench_lip_frames.py [--batch-size 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import model_env, write_result  # noqa: E402


def best_rate(call, windows: int, repeats: int) -> float:
    call()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t)
    return windows / best


def measure(backend: str, batch: int, repeats: int) -> dict:
    from lipleak.metrics.sync import lip_window
    from lipleak.models.syncnet import SyncNet

    net = SyncNet.load("syncnet_v2_random", backend=backend, max_batch=batch)
    run = np.random.default_rng(0).integers(0, 256, (batch + 4, 224, 224, 3), dtype=np.uint8)
    buf = np.empty((batch, 3, 5, 224, 224), np.float32)

    def per_window():
        for k in range(batch):
            lip_window(list(run[k : k + 5]), buf[k])
        return net.embed_lips(buf)

    def from_frames():
        return net.embed_lip_frames([run])

    equal = bool(np.array_equal(per_window(), from_frames()))
    prebuilt = buf.copy()
    res = {
        "backend": backend,
        "device": net.lips.describe().details.get("device", "cpu"),
        "batch": batch,
        "host_windows_per_window_windows_per_s": best_rate(per_window, batch, repeats),
        "from_frames_windows_per_s": best_rate(from_frames, batch, repeats),
        "inference_only_windows_per_s": best_rate(lambda: net.embed_lips(prebuilt), batch, repeats),
        "bytes_per_window_host_windows": int(buf[0].nbytes),
        "bytes_per_window_from_frames": run.nbytes / batch,
        "embeddings_equal": equal,
    }
    res["from_frames_vs_host_windows"] = (
        res["from_frames_windows_per_s"] / res["host_windows_per_window_windows_per_s"]
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    model_env(Path(tempfile.mkdtemp(prefix="lipleak-frames-")) / "models")
    backends = ["cpu"]
    if importlib.util.find_spec("torch") and importlib.util.find_spec("onnx2torch"):
        backends.append("torch")
    rows = [measure(b, args.batch_size, args.repeats) for b in backends]
    for r in rows:
        print(
            f"{r['backend']:>6} ({r['device']}): per-window host windows "
            f"{r['host_windows_per_window_windows_per_s']:.1f} w/s, from frames "
            f"{r['from_frames_windows_per_s']:.1f} w/s "
            f"({r['from_frames_vs_host_windows']:.3f}x), inference only "
            f"{r['inference_only_windows_per_s']:.1f} w/s; bytes/window "
            f"{r['bytes_per_window_host_windows']} -> {r['bytes_per_window_from_frames']:.0f}; "
            f"equal {r['embeddings_equal']}",
            flush=True,
        )
        assert r["embeddings_equal"], r
    write_result("lip_frames", {"batch_size": args.batch_size, "backends": rows})


if __name__ == "__main__":
    main()

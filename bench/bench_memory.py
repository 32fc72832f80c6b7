"""Issue 6 benchmark: peak RSS of `sync` on 10-s, 60-s and 10-min synthetic clips.

Frames and audio both stream into fixed-size SyncNet batches (the audio is decoded in
chunks and its MFCC computed only for the windows about to be embedded), and the offset
search keeps only the N x 31 distance rows (248 bytes per frame, 3.7 MB for 10 min), so
peak memory should stay flat as the video gets longer. Each clip is scored in a fresh
subprocess and its peak RSS read from the kernel (the child's VmHWM).

    python bench/bench_memory.py [--durations 10 60 600]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from common import model_env, write_result  # noqa: E402

# Peak RSS is the child's own VmHWM (/proc/self/status): ru_maxrss is not, on Linux, since
# the kernel carries the parent's high-water mark into a vforked child across exec (the
# parent here has just encoded a 10-min clip), which once made a flat curve look growing.
CHILD = r"""
import json, resource, sys, time
from lipleak.sync import SyncScorer, SyncSettings
scorer = SyncScorer(SyncSettings(syncnet="syncnet_v2_random", batch_size=int(sys.argv[2])))
t = time.perf_counter()
r = scorer.score(sys.argv[1])
hwm = [int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM")]
print(json.dumps({"seconds": time.perf_counter() - t, "n_frames": r.n_frames,
                  "lse_c": r.lse_c, "lse_d": r.lse_d, "peak_rss_mb": hwm[0] / 1024,
                  "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_clip(path: Path, seconds: float) -> Path:
    """A 128x128 talking-blob clip: a dark ellipse whose height follows the audio."""
    import av
    import numpy as np

    from media import speech_like

    audio = speech_like(seconds, seed=1)
    env = np.abs(audio[: len(audio) // 640 * 640].reshape(-1, 640)).mean(1)
    env = env / (env.max() + 1e-9)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width = vs.height = 128
        vs.pix_fmt = "yuv420p"
        vs.options = {"preset": "ultrafast"}
        ast = out.add_stream("aac", rate=16000)
        ast.layout = "mono"
        import cv2

        for e in env:
            img = np.full((128, 128, 3), 170, np.uint8)
            cv2.ellipse(img, (64, 84), (22, int(2 + 14 * e)), 0, 0, 360, (40, 30, 90), -1)
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
        for i in range(0, len(audio), 1024):
            fr = av.AudioFrame.from_ndarray(
                audio[None, i : i + 1024].copy(), format="s16", layout="mono"
            )
            fr.sample_rate, fr.pts = 16000, i
            for pkt in ast.encode(fr):
                out.mux(pkt)
        for pkt in ast.encode():
            out.mux(pkt)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--durations", type=float, nargs="+", default=[10, 60, 600])
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lipleak-mem-"))
    model_env(tmp / "models")
    from lipleak.models.syncnet import SyncNet

    SyncNet.load("syncnet_v2_random")  # export once, outside the measured children
    rows = []
    for seconds in args.durations:
        t = time.perf_counter()
        clip = make_clip(tmp / f"clip_{int(seconds)}s.mp4", seconds)
        made = time.perf_counter() - t
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(clip), str(args.batch_size)],
            capture_output=True,
            text=True,
            check=True,
        )
        row = {
            "duration_s": seconds,
            "clip_bytes": clip.stat().st_size,
            "make_clip_s": made,
            **json.loads(out.stdout.strip().splitlines()[-1]),
        }
        rows.append(row)
        print(
            f"{seconds:>6.0f} s clip: peak RSS {row['peak_rss_mb']:7.1f} MB, "
            f"{row['n_frames']} frames in {row['seconds']:.1f} s",
            flush=True,
        )
        clip.unlink()
    growth = rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]
    print(
        f"peak RSS growth from {rows[0]['duration_s']:.0f} s to "
        f"{rows[-1]['duration_s']:.0f} s: {growth:+.1f} MB"
    )
    print(
        "wrote",
        write_result(
            "memory", {"batch_size": args.batch_size, "runs": rows, "peak_rss_growth_mb": growth}
        ),
    )


if __name__ == "__main__":
    main()

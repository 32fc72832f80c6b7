"""Issue 24, item 2: ``sync --audio-stream all`` on a dubbing master with three audio
streams against three separate scorings (one per stream), same process, same scorer.

The master: a real clip's video with three audio streams (its own audio, another clip's,
its own 0.2 s late), muxed by the ffmpeg binary. ``all`` decodes the video and runs the
lip tower once (``sync.streams.score_streams``); the baseline runs ``SyncScorer.score``
three times, i.e. three decodes and three lip passes. Numbers must be equal.

    python bench/bench_streams.py [--frames 250] [--repeat 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import CLIPS_DIR, model_env, write_result  # noqa: E402


def master(tmp: Path, frames: int) -> Path:
    import imageio_ffmpeg

    from media import cut_clip

    clip = cut_clip(CLIPS_DIR / "real03_aoc.mp4", tmp / "a.mp4", 0, frames)
    other = cut_clip(CLIPS_DIR / "real11_suit_man.mp4", tmp / "b.mp4", 0, frames)
    out = tmp / "master.mkv"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", clip, "-i", other]
        + ["-itsoffset", "0.2", "-i", clip, "-map", "0:v", "-map", "0:a", "-map", "1:a"]
        + ["-map", "2:a", "-c", "copy", str(out)],
        check=True,
    )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=250)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model_env(tmp / "models")
        from lipleak.io.streams import audio_streams
        from lipleak.sync import SyncScorer, SyncSettings
        from lipleak.sync.streams import score_streams

        path = master(tmp, args.frames)
        streams = audio_streams(path)
        scorer = SyncScorer(SyncSettings(syncnet="syncnet_v2_random"))
        windows = {"all": 0, "separate": 0}
        embed = scorer.syncnet.embed_lip_frames
        mode = ["all"]

        def counted(runs):
            out = embed(runs)
            windows[mode[0]] += len(out)
            return out

        scorer.syncnet.embed_lip_frames = counted
        best = {"all": float("inf"), "separate": float("inf")}
        for _ in range(args.repeat):
            mode[0], windows["all"] = "all", 0
            t0 = time.perf_counter()
            together = score_streams(scorer, path, streams)
            best["all"] = min(best["all"], time.perf_counter() - t0)
            mode[0], windows["separate"] = "separate", 0
            t0 = time.perf_counter()
            apart = [scorer.score(path, stream=s) for s in streams]
            best["separate"] = min(best["separate"], time.perf_counter() - t0)
        equal = all(
            (a.offset, a.lse_c, a.lse_d) == (b.offset, b.lse_c, b.lse_d)
            for a, b in zip(together, apart, strict=True)
        )
    result = {
        "frames_asked": args.frames,
        "frames_scored": together[0].n_frames,  # the clip may be shorter
        "streams": len(streams),
        "all_s": round(best["all"], 2),
        "separate_s": round(best["separate"], 2),
        "speedup": round(best["separate"] / best["all"], 2),
        "lip_windows_all": windows["all"],
        "lip_windows_separate": windows["separate"],
        "rows_equal": equal,
    }
    print(result)
    print(write_result("streams", result))
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())

"""AV-HuBERT (issue 15): frames/s of each stage of AVS and its share of a protocol run.

    python bench/bench_avhubert.py [--frames 250] [--sizes base,large] [--repeat 2] [--out FILE]

Stages, per 25-fps frame of one clip of --frames frames (250: 10 s):
- ``prep_video``: decode + SCRFD + PFLD + mouth ROI (``lipleak.avs.inputs.video_input``)
  on a real clip cut to --frames frames;
- ``prep_audio``: filterbank, stacking, normalisation (``lipleak.avs.inputs.audio_input``);
- the encoder per mode (audio, video, av) and backend (onnxruntime CPU, the torch
  backend on CPU), whole-clip window, for the base and large architectures with seeded
  random weights (``lipleak.export.avhubert_fixture``; the published weights are not
  downloadable here, and the cost does not depend on them).
A generated video of ``score --avs`` costs prep_video + prep_audio + the three modes
(its GT's features are computed once per stem); the share is against bench_score.py's
all-metrics rate (2.3 frames/s, 2026-11-21, same machine type).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import (  # noqa: E402
    CLIPS_DIR,
    SCORE_ALL_METRICS_FPS,
    SHARED,
    best_seconds,
    write_result,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=250)
    ap.add_argument("--sizes", default="base,large")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    from lipleak.avs.inputs import audio_input, video_input
    from lipleak.export.avhubert_fixture import make_fixture
    from lipleak.faces.landmarks import PFLD
    from lipleak.faces.scrfd import SCRFD
    from lipleak.io.audio import load_audio
    from lipleak.models import store
    from lipleak.models.avhubert import AVHubert
    from media import cut_clip

    t_n = args.frames
    out: dict = {"frames": t_n, "load_average_before": os.getloadavg()[0], "stages": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["LIPLEAK_MODEL_DIR"] = str(tmp / "models")
        for name in ("scrfd_500m", "pfld_68"):
            store.fetch(name, source=SHARED / "models")
        clip = cut_clip(CLIPS_DIR / "real05_cnn_anchor.mp4", tmp / "clip.mp4", 0, t_n, width=640)
        det = SCRFD(store.locate("scrfd_500m"), backend="cpu")
        pfld = PFLD(store.locate("pfld_68"), backend="cpu")
        video = video_input(clip, det, pfld)  # warm-up, and the inputs below
        t = best_seconds(lambda: video_input(clip, det, pfld), args.repeat)
        out["stages"]["prep_video"] = {"seconds": t, "frames_per_s": len(video) / t}
        samples = load_audio(clip)
        audio = audio_input(samples, len(video))
        t = best_seconds(lambda: audio_input(samples, len(video)), args.repeat)
        out["stages"]["prep_audio"] = {"seconds": t, "frames_per_s": len(video) / t}
        for size in args.sizes.split(","):
            ckpt = make_fixture(tmp / f"{size}.pt", size, seed=0)
            for backend in ("cpu", "torch"):
                try:
                    model = AVHubert.load(ckpt, backend=backend, onnx_root=tmp / "onnx")
                except Exception as exc:  # noqa: BLE001 - e.g. no onnx2torch: reported
                    out["stages"][f"{size}/{backend}"] = {"error": str(exc)}
                    continue
                row = {}
                for mode in ("audio", "video", "av"):
                    kw = {
                        "audio": {"audio": audio},
                        "video": {"video": video},
                        "av": {"video": video, "audio": audio},
                    }[mode]
                    model.features(mode, **kw)  # warm-up
                    t = best_seconds(lambda m=model, mode=mode, kw=kw: m.features(mode, **kw), 1)
                    row[mode] = {"seconds": t, "frames_per_s": len(video) / t}
                    print(f"{size} {backend} {mode}: {len(video) / t:.1f} frames/s", flush=True)
                out["stages"][f"{size}/{backend}"] = row
            ckpt.unlink()
    s = out["stages"]
    for key, row in list(s.items()):
        if "/" not in key or "error" in row:
            continue
        per_frame = (
            1 / s["prep_video"]["frames_per_s"]
            + 1 / s["prep_audio"]["frames_per_s"]
            + sum(1 / row[m]["frames_per_s"] for m in ("audio", "video", "av"))
        )
        row["avs_frames_per_s"] = 1 / per_frame
        # share of a protocol run's time per generated frame when --avs is added
        row["share_of_score"] = per_frame / (per_frame + 1 / SCORE_ALL_METRICS_FPS)
    path = Path(args.out) if args.out else None
    if path:
        import json

        path.write_text(json.dumps(out, indent=1) + "\n")
    else:
        path = write_result("avhubert", out)
    for k, v in s.items():
        print(
            k,
            {m: round(x["frames_per_s"], 1) if isinstance(x, dict) else x for m, x in v.items()}
            if "/" in k
            else round(v["frames_per_s"], 1),
        )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

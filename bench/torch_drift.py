"""How far the torch backend's numbers are from onnxruntime fp32, per model and precision.

    python bench/torch_drift.py [--precision fp32 fp16 bf16] [--device cpu|cuda] [--out FILE]

For every model (SCRFD on real frames of two sizes, PFLD on real face crops, the FID
Inception on real crops, a random-weight IResNet-50 ArcFace on real aligned faces, both
SyncNet towers on real lip windows and MFCC) it runs the ONNX file on onnxruntime's CPU
provider (fp32, the reference) and on the torch backend at each precision, and reports
max |torch - ort| / max |ort| over each model's outputs. Then LSE-C, LSE-D and the offset
of two shared clips (prealigned, the random-weight SyncNet) on the torch backend at each
precision against the CPU backend. Writes bench/results/torch_drift_<date>.json and prints
a markdown table (docs/gpu.md has the latest).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import CLIPS_DIR, SHARED, model_env, write_result  # noqa: E402
from media import read_frames  # noqa: E402


def rel(a, ref) -> float:
    return float(np.abs(a - ref).max() / max(float(np.abs(ref).max()), 1e-30))


def inputs(tmp: Path) -> dict[str, tuple[Path, list[dict]]]:
    """{model: (onnx path, feeds)} on real inputs."""
    from lipleak.export.arcface import export_random
    from lipleak.faces.align import norm_crop
    from lipleak.faces.landmarks import crop_square, square_box
    from lipleak.faces.landmarks import preprocess as pfld_pre
    from lipleak.faces.scrfd import SCRFD
    from lipleak.io.audio import load_audio
    from lipleak.metrics.sync import lip_window, mfcc_windows
    from lipleak.models import onnx_files, store
    from lipleak.models.arcface import preprocess as arc_pre
    from lipleak.models.inception import preprocess as inc_pre
    from lipleak.models.syncnet import LIPS_INPUT, MFCC_INPUT, SyncNet
    from lipleak.runtime import open_model

    store.fetch("fid_inception", source=SHARED / "models")
    frames = read_frames(CLIPS_DIR / "real03_aoc.mp4", [0, 40])
    frames += read_frames(CLIPS_DIR / "real07_reagan.mp4", [0, 60])
    det_path = SHARED / "models" / "scrfd_500m.onnx"
    det = SCRFD(det_path, backend="cpu")
    faces = []
    for f in frames:
        boxes, scores, kps = det.detect(f)
        i = int(np.argmax(scores))
        faces.append((f, boxes[i], kps[i]))
    net = SyncNet.load("syncnet_v2_random", backend="cpu")
    fr = [cv2.resize(f, (224, 224)) for f in read_frames(CLIPS_DIR / "real03_aoc.mp4", range(20))]
    lips = np.empty((8, 3, 5, 224, 224), np.float32)
    for k in range(8):
        lip_window(fr[k : k + 5], lips[k])
    mfcc = mfcc_windows(load_audio(CLIPS_DIR / "real03_aoc.wav"), 32)
    pfld = pfld_pre([cv2.resize(crop_square(f, *square_box(b)), (112, 112)) for f, b, _ in faces])
    inc, _ = onnx_files.inception_onnx("fid_inception")
    arc = export_random(tmp / "iresnet50_random.onnx", seed=0)
    arc_name = open_model(arc, "cpu").inputs[0].name
    arc_x = arc_pre([norm_crop(f, k) for f, _, k in faces])
    return {
        "SCRFD-500M": (det_path, [{det.input_name: det.preprocess(f)[0]} for f in frames]),
        "PFLD-68": (SHARED / "models" / "pfld_68.onnx", [{"input": pfld}]),
        "FID Inception": (inc, [{"images": inc_pre([f[40:-40, 40:-40] for f in frames])}]),
        "ArcFace IResNet-50 (random)": (arc, [{arc_name: arc_x}]),
        "SyncNet lip tower": (Path(net.lips.describe().model_path), [{LIPS_INPUT: lips}]),
        "SyncNet audio tower": (Path(net.audio.describe().model_path), [{MFCC_INPUT: mfcc}]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--precision", nargs="+", default=["fp32", "fp16", "bf16"])
    ap.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    ap.add_argument("--clips", nargs="+", default=["real03_aoc", "real07_reagan"])
    args = ap.parse_args()

    import torch

    from lipleak.runtime import open_model
    from lipleak.sync import SyncScorer, SyncSettings

    opts = {} if args.device is None else {"device": args.device}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        model_env(tmp)
        models = {}
        for name, (path, feeds) in inputs(tmp).items():
            ort = open_model(path, "cpu")
            refs = [ort.run(f) for f in feeds]
            models[name] = {}
            for p in args.precision:
                rt = open_model(path, "torch", precision=p, **opts)
                got = [rt.run(f) for f in feeds]
                models[name][p] = max(
                    rel(g[k], r[k]) for g, r in zip(got, refs, strict=True) for k in r
                )
            print(name, models[name], flush=True)
        lse = {}
        base = {
            c: SyncScorer(SyncSettings(syncnet="syncnet_v2_random", backend="cpu")).score(
                CLIPS_DIR / f"{c}.mp4"
            )
            for c in args.clips
        }
        for p in args.precision:
            scorer = SyncScorer(
                SyncSettings(syncnet="syncnet_v2_random", backend="torch", precision=p)
            )
            rows = {c: scorer.score(CLIPS_DIR / f"{c}.mp4") for c in args.clips}
            lse[p] = {
                "max_abs_d_lse_c": max(abs(rows[c].lse_c - base[c].lse_c) for c in args.clips),
                "max_abs_d_lse_d": max(abs(rows[c].lse_d - base[c].lse_d) for c in args.clips),
                "offsets_equal": all(rows[c].offset == base[c].offset for c in args.clips),
            }
            print("LSE", p, lse[p], flush=True)
        device = rt.describe().details["device"]
    path = write_result(
        "torch_drift",
        {
            "norm": "max |torch - onnxruntime fp32| / max |onnxruntime fp32| per model",
            "device": device,
            "torch": torch.__version__,
            "models": models,
            "lse_vs_cpu_backend": lse,
            "clips": args.clips,
        },
    )
    print(f"\n| model | {' | '.join(args.precision)} |")
    print("|---|" + "---|" * len(args.precision))
    for name, r in models.items():
        print(f"| {name} | " + " | ".join(f"{r[p]:.1e}" for p in args.precision) + " |")
    for key in ("max_abs_d_lse_c", "max_abs_d_lse_d"):
        print(f"| {key} | " + " | ".join(f"{lse[p][key]:.1e}" for p in args.precision) + " |")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

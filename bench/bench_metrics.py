"""Per-stage cost of the visual metrics (issue 4) on real clip frames, and FeatureStats memory.

    python bench/bench_metrics.py [--frames 64] [--repeat 2] [--out FILE]

Frames: the first --frames frames of real11_suit_man (GT, 700x700) and of
gen01_suitman_wav2lip (its Wav2Lip output, same geometry). SCRFD boxes per GT frame; the
face crop is the 1.1x square around the box (lipleak.faces.landmarks.square_box), with
the first frame's square for every frame where a fixed shape is needed (SSIM/PSNR).
Stages (frames/s, best of --repeat, on this machine's CPU with onnxruntime):
  inception   FIDInception.features (preprocess + ONNX exported from the shared TorchScript)
  ssim / psnr lipleak._core on face crops and on full frames (gen vs GT pairs)
  arcface     norm_crop + ArcFace.embed with a random-weight IResNet-50 graph (the real
              w600k_r50 architecture and cost; the real weights are not downloadable here)
  pfld        square crop + PFLD landmarks
  mouth       aperture + RMS envelope + ±5-frame lagged correlation (per video, given landmarks)
  frechet     one 2048-d Fréchet distance (the once-per-cell cost; scipy sqrtm until
              2026-12, the eigh path since: bench_fid.py compares the two)
  detect      SCRFD-500M (context: shared by every metric, not a metric itself)
Memory: tracemalloc peak of streaming N and 10·N synthetic 2048-d feature rows through
FeatureStats in batches of 32 (flat), next to keeping all rows for np.cov (grows).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CLIPS_DIR, SHARED, write_result  # noqa: E402
from lipleak.faces.align import norm_crop  # noqa: E402
from lipleak.faces.landmarks import PFLD, crop_square, square_box  # noqa: E402
from lipleak.faces.scrfd import SCRFD  # noqa: E402
from lipleak.metrics import fid as fidmod  # noqa: E402
from lipleak.metrics.fid import FeatureStats  # noqa: E402
from lipleak.metrics.mouth import aperture, audio_motion  # noqa: E402
from lipleak.metrics.quality import frame_psnr, frame_ssim  # noqa: E402
from lipleak.models.arcface import ArcFace  # noqa: E402
from lipleak.models.inception import FIDInception  # noqa: E402

MODELS = SHARED / "models"


def read(name, n):
    cap = cv2.VideoCapture(str(CLIPS_DIR / f"{name}.mp4"))
    out = []
    while len(out) < n:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def stats_peak(n_rows: int, keep_all: bool, batch: int = 32) -> float:
    """Peak traced MiB while n_rows 2048-d rows stream through (generated batch by batch)."""
    rng = np.random.default_rng(0)
    tracemalloc.start()
    st, kept = FeatureStats(), []
    for i in range(0, n_rows, batch):
        x = rng.random((min(batch, n_rows - i), 2048), dtype=np.float32)
        if keep_all:
            kept.append(x)
        else:
            st.update(x)
    if keep_all:
        np.cov(np.concatenate(kept).astype(np.float64), rowvar=False)
    else:
        st.mean_cov()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--stats-rows", type=int, default=2000)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    load_start = os.getloadavg()
    gt, gen = read("real11_suit_man", args.frames), read("gen01_suitman_wav2lip", args.frames)
    n = min(len(gt), len(gen))
    gt, gen = gt[:n], gen[:n]
    audio, _ = sf.read(CLIPS_DIR / "real11_suit_man.wav", dtype="int16")
    tmp = Path(tempfile.mkdtemp(prefix="lipleak_bench_metrics_"))
    rows = {}

    det = SCRFD(MODELS / "scrfd_500m.onnx", backend="cpu")
    dets = []
    t = best(lambda: dets.__setitem__(slice(None), [det.detect(f) for f in gt]), 1)
    rows["detect (SCRFD-500M, context)"] = n / t
    boxes = [d[0][int(np.argmax(d[1]))] for d in dets]
    kps = [d[2][int(np.argmax(d[1]))] for d in dets]
    squares = [square_box(b) for b in boxes]
    gt_crops = [crop_square(f, *sq) for f, sq in zip(gt, squares, strict=True)]
    fixed = squares[0]
    gt_fixed = np.stack([crop_square(f, *fixed) for f in gt])
    gen_fixed = np.stack([crop_square(f, *fixed) for f in gen])
    side = fixed[2]

    from lipleak.export.inception_onnx import export

    inc = FIDInception(export(MODELS / "fid_inception_torchscript.pt", tmp / "inc.onnx"), "cpu")
    rows["inception features (face crops, batch 32)"] = n / best(
        lambda: inc.features(gt_crops), args.repeat
    )
    rows[f"ssim (face crops {side}x{side})"] = n / best(
        lambda: frame_ssim(gen_fixed, gt_fixed), args.repeat
    )
    rows[f"psnr (face crops {side}x{side})"] = n / best(
        lambda: frame_psnr(gen_fixed, gt_fixed), args.repeat
    )
    full_a, full_b = np.stack(gen), np.stack(gt)
    hw = f"{full_a.shape[2]}x{full_a.shape[1]}"
    rows[f"ssim (full frames {hw})"] = n / best(lambda: frame_ssim(full_a, full_b), args.repeat)
    rows[f"psnr (full frames {hw})"] = n / best(lambda: frame_psnr(full_a, full_b), args.repeat)

    from lipleak.export.arcface import export_random

    arc = ArcFace(export_random(tmp / "r50.onnx"), "cpu")
    rows["arcface (norm_crop + IResNet-50)"] = n / best(
        lambda: arc.embed([norm_crop(f, k) for f, k in zip(gt, kps, strict=True)]), args.repeat
    )
    pfld = PFLD(MODELS / "pfld_68.onnx", "cpu")
    lm = pfld.landmarks(gt, boxes)
    rows["pfld (crop + 68 landmarks)"] = n / best(lambda: pfld.landmarks(gt, boxes), args.repeat)
    rows["mouth motion (given landmarks)"] = n / best(
        lambda: audio_motion(aperture(lm), audio), args.repeat
    )

    feats = np.random.default_rng(1).gamma(0.5, 0.4, (2300, 2048))
    s = FeatureStats().update(feats)
    mu, cov = s.mean_cov()
    frechet_s = best(lambda: fidmod.frechet_distance(mu, cov, mu + 0.01, cov), 1)
    update_rate = 2300 / best(lambda: FeatureStats().update(feats), args.repeat)
    rows["FeatureStats.update (2048-d rows)"] = update_rate

    mem = {
        "rows": [args.stats_rows, 10 * args.stats_rows],
        "streaming_peak_mib": [
            stats_peak(args.stats_rows, False),
            stats_peak(10 * args.stats_rows, False),
        ],
        "keep_all_np_cov_peak_mib": [
            stats_peak(args.stats_rows, True),
            stats_peak(10 * args.stats_rows, True),
        ],
    }
    mem["streaming_ratio_10x"] = mem["streaming_peak_mib"][1] / mem["streaming_peak_mib"][0]

    print(f"{'stage':48s} {'frames/s':>10s}")
    for k, v in rows.items():
        print(f"{k:48s} {v:10.1f}")
    print(f"{'frechet distance, 2048-d (once per cell)':48s} {frechet_s:9.2f}s")
    print(
        f"FeatureStats peak MiB, {mem['rows'][0]} vs {mem['rows'][1]} rows: "
        f"{mem['streaming_peak_mib'][0]:.1f} vs {mem['streaming_peak_mib'][1]:.1f} "
        f"(keep-all + np.cov: {mem['keep_all_np_cov_peak_mib'][0]:.1f} vs "
        f"{mem['keep_all_np_cov_peak_mib'][1]:.1f})"
    )
    payload = {
        "frames": n,
        "clips": ["real11_suit_man", "gen01_suitman_wav2lip"],
        "backend": "cpu (onnxruntime)",
        "frames_per_s": rows,
        "frechet_2048_seconds": frechet_s,
        "feature_stats_memory": mem,
        "loadavg_start_end": [load_start, os.getloadavg()],
        "notes": "other jobs share this 2-core machine (see loadavg); arcface uses a "
        "random-weight IResNet-50 graph (same cost as w600k_r50)",
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        import json

        args.out.write_text(json.dumps(payload, indent=1) + "\n")
        print(args.out)
    else:
        print(write_result("metrics", payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""LPIPS v0.1 throughput (issue 15): crop pairs/s per backend at the typical crop size.

    python bench/bench_lpips.py [--size 224] [--pairs 32] [--repeat 2] [--out FILE]

The graph is ``lipleak.export.lpips_onnx``'s (img0, img1 → distance) with a seeded random
trunk and random heads: the same architecture and arithmetic as the published weights
(which are not downloadable here), so the same cost. Inputs: BGR uint8 noise crops of
--size² (224: ``score``'s default face crop), fed through ``lipleak.models.lpips.LPIPS``
in batches of 16 pairs (its default). Backends: onnxruntime CPU ("cpu"), the torch
backend (onnx2torch, CPU), and the eager PyTorch module the ONNX file is exported from.
VGG16 costs ~20× AlexNet, so it runs a quarter of the pairs. The share of a protocol run
is estimated against bench_score.py's all-metrics rate (2.3 frames/s, 2026-11-21).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SCORE_ALL_METRICS_FPS, best_seconds, write_result  # noqa: E402
from lipleak.export import lpips_onnx  # noqa: E402
from lipleak.models.lpips import LPIPS, to_input  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    torch.set_num_threads(torch.get_num_threads())
    rng = np.random.default_rng(0)
    results: dict = {"size": args.size, "batch_pairs": 16, "nets": {}}
    results["load_average_before"] = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for net in lpips_onnx.NETS:
            n = args.pairs if net == "alex" else max(4, args.pairs // 4)
            a = [rng.integers(0, 256, (args.size, args.size, 3), np.uint8) for _ in range(n)]
            b = [rng.integers(0, 256, (args.size, args.size, 3), np.uint8) for _ in range(n)]
            trunk = lpips_onnx.random_trunk(net, Path(tmp) / f"{net}.pth", seed=0)
            heads = {
                f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1)
                for k, c in enumerate(lpips_onnx.CHANNELS[net])
            }
            torch.save(heads, Path(tmp) / f"{net}_heads.pth")
            onnx = lpips_onnx.export(
                net, trunk, Path(tmp) / f"{net}_heads.pth", Path(tmp) / f"{net}.onnx"
            )
            row: dict = {"pairs": n}
            ref = None
            for backend in ("cpu", "torch"):
                try:
                    model = LPIPS(onnx, backend=backend)
                except Exception as exc:  # noqa: BLE001 - a missing onnx2torch is reported
                    row[backend] = {"error": str(exc)}
                    continue
                d = model.distance(a[:2], b[:2])  # warm-up (and torch's conversion)
                t = best_seconds(lambda m=model, a=a, b=b: m.distance(a, b), args.repeat)
                ref = d if ref is None else ref
                row[backend] = {
                    "pairs_per_s": n / t,
                    "ms_per_pair": 1e3 * t / n,
                    "max_abs_diff_vs_cpu": float(np.abs(d - ref).max()),
                }
            eager = lpips_onnx.build(net, trunk, Path(tmp) / f"{net}_heads.pth")

            def run_eager(m=eager, a=a, b=b, n=n):
                with torch.no_grad():
                    for s in range(0, n, 16):
                        m(
                            torch.from_numpy(to_input(a[s : s + 16])),
                            torch.from_numpy(to_input(b[s : s + 16])),
                        )

            run_eager()
            t = best_seconds(run_eager, args.repeat)
            row["torch_eager"] = {"pairs_per_s": n / t, "ms_per_pair": 1e3 * t / n}
            per_frame = 1.0 / row["cpu"]["pairs_per_s"]
            row["share_of_score_all_metrics"] = per_frame / (1 / SCORE_ALL_METRICS_FPS + per_frame)
            results["nets"][net] = row
            print(net, {k: v for k, v in row.items()}, flush=True)
    results["load_average_after"] = os.getloadavg()[0]
    path = Path(args.out) if args.out else None
    if path is None:
        path = write_result("lpips", results)
    else:
        import json

        path.write_text(json.dumps(results, indent=1) + "\n")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

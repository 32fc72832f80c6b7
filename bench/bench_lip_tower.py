"""Issue 2 benchmark: where SyncNet's lip tower spends its arithmetic, and how close the
CPU runtime runs to it.

Counts multiply-accumulates per window for every layer of the real architecture (forward
hooks on the random-weight model; weights do not change the count), measures the
onnxruntime lip tower's windows/s and the GMAC/s that implies, and writes the arithmetic
bound of exact fast-convolution algorithms (FFT for the two strided convolutions,
Winograd F(2x2, 3x3) for the 3x3 ones) on the tower's time: the ceiling on what any
fp32 CPU implementation could gain over plain GEMM convolution.

It also times the shipped 2-D graph of the tower against the checkpoint's 3-D layers
exported as they are (same process, alternated).

    python bench/bench_lip_tower.py [--batch-size 8] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import model_env, write_result  # noqa: E402


def layer_macs() -> list[dict]:
    """MACs per window of each conv/linear layer of the lip tower (one 5-frame window)."""
    import torch
    from torch import nn

    from lipleak.export.syncnet import SyncNetV2

    net = SyncNetV2().eval()
    rows: list[dict] = []

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv3d | nn.Conv2d):
            per_out = mod.in_channels // mod.groups * int(np.prod(mod.kernel_size))
            rows.append(
                {
                    "layer": f"conv{len(rows) + 1}",
                    "in": mod.in_channels,
                    "out": mod.out_channels,
                    "kernel": list(mod.kernel_size),
                    "stride": list(mod.stride),
                    "in_hw": list(inp[0].shape[-2:]),
                    "out_hw": list(out.shape[-2:]),
                    "macs": out[0].numel() * per_out,
                }
            )
        elif isinstance(mod, nn.Linear):
            rows.append(
                {
                    "layer": f"fc{len(rows) + 1}",
                    "in": mod.in_features,
                    "out": mod.out_features,
                    "macs": mod.in_features * mod.out_features,
                }
            )

    handles = [
        m.register_forward_hook(hook)
        for m in net.modules()
        if isinstance(m, nn.Conv3d | nn.Conv2d | nn.Linear)
    ]
    with torch.no_grad():
        net.forward_lips(torch.zeros(1, 3, 5, 224, 224))
    for h in handles:
        h.remove()
    return rows


def fast_algorithm_bound(rows: list[dict]) -> dict:
    """Arithmetic of exact fast algorithms, in real multiply-adds per window.

    Strided convolutions: split into 4 polyphase stride-1 convolutions (input planes x4),
    FFT size the next power of two above the phase plane; one forward FFT per input plane
    is shared by all output channels, one inverse FFT per output channel; a complex
    multiply-add counts as 4 real ones, an FFT of n points as 2.5 n log2 n flops = 1.25 n
    log2 n MAC-equivalents. 3x3 stride-1 convolutions: Winograd F(2x2, 3x3), 16 multiplies
    per 2x2 output tile instead of 36 (transforms not counted: a lower bound on its cost).
    """
    out = {}
    for r in rows:
        if not r["layer"].startswith("conv"):
            continue
        k = r["kernel"][-2:]
        if r["stride"][-1] == 2:
            frames = r["kernel"][0] if len(r["kernel"]) == 3 else 1
            planes = r["in"] * frames * 4
            n = 1 << int(np.ceil(np.log2(r["in_hw"][0] / 2 + k[0])))
            bins = n * (n // 2 + 1)
            spectral = 4 * r["out"] * planes * bins
            ffts = 1.25 * (planes + r["out"]) * n * n * np.log2(n * n)
            out[r["layer"]] = {"method": f"FFT {n}x{n} (polyphase)", "macs": float(spectral + ffts)}
        elif k == [3, 3]:
            out[r["layer"]] = {"method": "Winograd F(2x2,3x3)", "macs": r["macs"] * 16 / 36}
    return out


def measure_tower(batch: int, repeats: int) -> dict:
    from lipleak.models.syncnet import SyncNet

    net = SyncNet.load("syncnet_v2_random", backend="cpu", max_batch=batch)
    x = np.random.default_rng(0).uniform(0, 255, (batch, 3, 5, 224, 224)).astype(np.float32)
    net.embed_lips(x)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        net.embed_lips(x)
        times.append(time.perf_counter() - t)
    best = min(times)
    return {
        "batch": batch,
        "repeats": repeats,
        "seconds_best": best,
        "seconds_median": float(np.median(times)),
        "windows_per_s": batch / best,
    }


def planar_vs_3d(batch: int, repeats: int, work: Path) -> dict:
    """The shipped lip tower graph (2-D layers, ``export.syncnet.planar_lip_cnn``) against
    the checkpoint's 3-D layers exported as they are, same weights, same runtime settings,
    alternated in one process: windows/s of each (best of ``repeats``) and the largest
    embedding difference relative to the embeddings' scale."""
    import torch

    from lipleak.export.syncnet import LipTower, load_syncnet
    from lipleak.export.trace import trace_to_onnx
    from lipleak.models.store import locate
    from lipleak.runtime.onnxrt import OrtRuntime

    class Tower3d(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.netcnnlip, self.netfclip = net.netcnnlip, net.netfclip

        def forward(self, lips):
            return self.netfclip(torch.flatten(self.netcnnlip(lips), 1))

    net = load_syncnet(locate("syncnet_v2_random")).eval()
    example = (torch.zeros(2, 3, 5, 224, 224),)
    dyn = {"lips": {0: "batch"}, "embedding": {0: "batch"}}
    runtimes = {}
    for name, module in (("3d", Tower3d(net)), ("2d", LipTower(net))):
        path = work / f"lips_{name}.onnx"
        with torch.no_grad():
            trace_to_onnx(module.eval(), example, path, ["lips"], ["embedding"], dyn, 17)
        runtimes[name] = OrtRuntime(path)
    x = np.random.default_rng(0).uniform(0, 255, (batch, 3, 5, 224, 224)).astype(np.float32)
    out = {n: rt.run({"lips": x})["embedding"] for n, rt in runtimes.items()}  # warm-up
    times: dict[str, list[float]] = {n: [] for n in runtimes}
    for _ in range(repeats):
        for n, rt in runtimes.items():
            t = time.perf_counter()
            rt.run({"lips": x})
            times[n].append(time.perf_counter() - t)
    wps = {n: batch / min(t) for n, t in times.items()}
    scale = float(np.abs(out["3d"]).max())
    return {
        "batch": batch,
        "repeats": repeats,
        "windows_per_s_3d": wps["3d"],
        "windows_per_s_2d": wps["2d"],
        "speedup_2d_over_3d": wps["2d"] / wps["3d"],
        "max_rel_difference": float(np.abs(out["2d"] - out["3d"]).max()) / scale,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    model_env(Path(tempfile.mkdtemp(prefix="lipleak-tower-")) / "models")

    rows = layer_macs()
    total = sum(r["macs"] for r in rows)
    for r in rows:
        r["share"] = r["macs"] / total
    fast = fast_algorithm_bound(rows)
    fast_total = sum(fast.get(r["layer"], {"macs": r["macs"]})["macs"] for r in rows)
    tower = measure_tower(args.batch_size, args.repeats)
    planar = planar_vs_3d(args.batch_size, args.repeats, Path(tempfile.mkdtemp()))
    tower["gmac_per_s"] = total * tower["windows_per_s"] / 1e9

    for r in rows:
        f = fast.get(r["layer"])
        extra = f"  -> {f['method']}: {f['macs'] / 1e6:7.1f} M" if f else ""
        print(f"{r['layer']:>6}: {r['macs'] / 1e6:8.1f} M MAC ({r['share']:5.1%}){extra}")
    print(
        f" total: {total / 1e9:.3f} G MAC per window; exact fast algorithms "
        f"{fast_total / 1e9:.3f} G = at most {total / fast_total:.2f}x less arithmetic"
    )
    print(
        f"onnxruntime lip tower: {tower['windows_per_s']:.1f} windows/s = "
        f"{tower['gmac_per_s']:.1f} GMAC/s (batch {args.batch_size}, best of "
        f"{args.repeats})"
    )
    print(
        f"2-D graph (shipped) {planar['windows_per_s_2d']:.1f} vs the checkpoint's 3-D layers "
        f"{planar['windows_per_s_3d']:.1f} windows/s = {planar['speedup_2d_over_3d']:.2f}x; "
        f"embeddings within {planar['max_rel_difference']:.1e} of their scale"
    )
    print(
        "wrote",
        write_result(
            "lip_tower",
            {
                "layers": rows,
                "total_macs_per_window": total,
                "fast_algorithms": fast,
                "fast_total_macs_per_window": fast_total,
                "max_arithmetic_saving": total / fast_total,
                "onnxruntime": tower,
                "planar_vs_3d": planar,
            },
        ),
    )


if __name__ == "__main__":
    main()

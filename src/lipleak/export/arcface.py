"""ArcFace IResNet-50 (insightface arcface_torch ``iresnet50``) with random weights → ONNX.

The real ``w600k_r50.onnx`` cannot be downloaded here, so tests build this graph of the
same architecture (input N×3×112×112 RGB in [−1, 1], output N×512) with seeded random
weights. BatchNorm statistics are calibrated on one batch of noise so that activations
stay O(1) through the 24 residual blocks and the embedding depends on the input.

    python -m lipleak.export.arcface OUT.onnx [--seed 0] [--fixed-batch]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from lipleak.files import atomic_path

from .trace import trace_to_onnx

SIZE = 112
DIM = 512
LAYERS_R50 = (3, 4, 14, 3)


class IBasicBlock(nn.Module):
    """Pre-activation-style block: BN → conv3×3 → BN → PReLU → conv3×3(stride) → BN, + shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=1e-5)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """Stem conv3×3 → 4 stages (64/128/256/512, stride 2 each) → BN → FC → BN1d (512-d)."""

    def __init__(self, layers: tuple[int, ...] = LAYERS_R50, num_features: int = DIM):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        stages, cin = [], 64
        for planes, blocks in zip((64, 128, 256, 512), layers, strict=True):
            stage = [IBasicBlock(cin, planes, 2)] + [
                IBasicBlock(planes, planes, 1) for _ in range(blocks - 1)
            ]
            stages.append(nn.Sequential(*stage))
            cin = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.fc = nn.Linear(512 * 7 * 7, num_features)  # 112 / 2⁴ = 7
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(self.fc(torch.flatten(self.bn2(x), 1)))


def iresnet50(seed: int = 0, layers: tuple[int, ...] = LAYERS_R50) -> IResNet:
    """IResNet-50 with seeded random weights and noise-calibrated BatchNorm, in eval mode.

    ``layers`` other than (3, 4, 14, 3) give smaller IResNets (tests of the wrapper only).
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # module initialisers draw from the global generator
    model = IResNet(layers)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            m.momentum = None  # cumulative average: one batch sets the statistics
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(torch.rand(16, 3, SIZE, SIZE, generator=gen) * 2 - 1)
    return model.eval()


def export_random(
    onnx_path: str | Path,
    seed: int = 0,
    dynamic_batch: bool = True,
    opset: int = 17,
    layers: tuple[int, ...] = LAYERS_R50,
) -> Path:
    """Write a random-weight IResNet-50 ArcFace graph (input ``input.1`` like w600k_r50)."""
    dst = Path(onnx_path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    model = iresnet50(seed, layers)
    example = torch.zeros(1, 3, SIZE, SIZE)
    dyn = {"input.1": {0: "batch"}, "embedding": {0: "batch"}} if dynamic_batch else None
    with atomic_path(dst) as tmp, torch.no_grad():
        trace_to_onnx(model, (example,), tmp, ["input.1"], ["embedding"], dyn, opset)
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lipleak.export.arcface", description=__doc__.splitlines()[0]
    )
    ap.add_argument("onnx", help="output .onnx path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fixed-batch", action="store_true", help="batch axis fixed at 1")
    args = ap.parse_args(argv)
    print(export_random(args.onnx, args.seed, dynamic_batch=not args.fixed_batch))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

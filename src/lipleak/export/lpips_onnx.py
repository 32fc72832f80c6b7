"""LPIPS v0.1 (Zhang et al. 2018, the ``lpips`` package 0.1.4) in PyTorch → one ONNX graph.

The network: torchvision's ImageNet AlexNet or VGG16 ``features`` (the trunk, layer layout
and state-dict keys ``features.N.weight/bias`` exactly as torchvision's, so
``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth`` load strictly into it), tapped after
the ReLUs the package taps; each tapped map unit-normalised over channels
(x / (‖x‖₂ + 1e-10), the package's ``normalize_tensor``); squared difference; the v0.1
linear head (1×1 conv, no bias, keys ``lin{k}.model.1.weight`` as in the wheel's
``weights/v0.1/{alex,vgg}.pth``); spatial mean; sum over layers.

The graph takes RGB in [0, 1] (the package's ``normalize=True``: 2x − 1, then its scaling
layer) and is one graph ``img0, img1 (N×3×H×W) → distance (N)`` with N, H, W dynamic: both
images go through the trunk as one 2N batch, which is what the package computes and needs
no second pass for the heads. (Trunk-once-per-image would only pay off if one image were
compared with many; scoring compares each generated crop with its own GT crop.)

    python -m lipleak.export.lpips_onnx random-trunk {alex,vgg} OUT.pth [--seed 0]
    python -m lipleak.export.lpips_onnx export {alex,vgg} TRUNK.pth HEADS.pth OUT.onnx
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from lipleak.errors import ModelError
from lipleak.files import atomic_path

from .refusal import refusal
from .trace import trace_to_onnx

# The package's ScalingLayer constants (ImageNet mean/std mapped into [−1, 1]).
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # lpips.normalize_tensor's eps
NETS = ("alex", "vgg")

# torchvision's ``features`` as ("conv", cin, cout, kernel, stride, pad) / ("relu",) /
# ("pool", kernel, stride); indices are the state-dict indices.
_ALEX = [
    ("conv", 3, 64, 11, 4, 2),
    ("relu",),
    ("pool", 3, 2),
    ("conv", 64, 192, 5, 1, 2),
    ("relu",),
    ("pool", 3, 2),
    ("conv", 192, 384, 3, 1, 1),
    ("relu",),
    ("conv", 384, 256, 3, 1, 1),
    ("relu",),
    ("conv", 256, 256, 3, 1, 1),
    ("relu",),
    ("pool", 3, 2),
]
_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M"] + [512, 512, 512, "M"] * 2


def _vgg16_layers() -> list[tuple]:
    layers: list[tuple] = []
    cin = 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(("pool", 2, 2))
        else:
            layers += [("conv", cin, v, 3, 1, 1), ("relu",)]
            cin = v
    return layers


LAYERS = {"alex": _ALEX, "vgg": _vgg16_layers()}
# Index of the last ``features`` module of each tapped slice (the package's slice bounds
# 2/5/8/10/12 for AlexNet and 4/9/16/23/30 for VGG16, minus one): relu1..relu5.
TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}


def features(net: str) -> nn.Sequential:
    """torchvision's ``alexnet().features`` / ``vgg16().features`` layout, randomly initialised."""
    mods: list[nn.Module] = []
    for spec in LAYERS[net]:
        if spec[0] == "conv":
            _, cin, cout, k, s, p = spec
            mods.append(nn.Conv2d(cin, cout, k, s, p))
        elif spec[0] == "relu":
            mods.append(nn.ReLU(inplace=False))
        else:
            mods.append(nn.MaxPool2d(spec[1], spec[2]))
    return nn.Sequential(*mods)


class LPIPS(nn.Module):
    """img0, img1 RGB in [0, 1], N×3×H×W → LPIPS v0.1 distance, N."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in NETS:
            raise ValueError(f"LPIPS trunk must be one of {NETS}, got {net!r}")
        self.net_name = net
        self.features = features(net)
        self.taps = TAPS[net]
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS[net])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))

    def load_trunk(self, state: dict[str, torch.Tensor]) -> None:
        """Load a torchvision state dict (``features.*`` strictly; ``classifier.*`` ignored)."""
        feats = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        other = [k for k in state if not k.startswith(("features.", "classifier."))]
        if other:
            raise KeyError(f"unexpected keys in the trunk state dict: {other[:5]}")
        self.features.load_state_dict(feats, strict=True)

    def load_heads(self, state: dict[str, torch.Tensor]) -> None:
        """Load the package's ``weights/v0.1/<net>.pth`` (``lin{k}.model.1.weight``), strictly."""
        want = {f"lin{k}.model.1.weight" for k in range(len(self.heads))}
        if set(state) != want:
            raise KeyError(f"LPIPS heads: expected keys {sorted(want)}, got {sorted(state)}")
        for k, head in enumerate(self.heads):
            head.weight.data.copy_(state[f"lin{k}.model.1.weight"])

    def forward(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        n = img0.shape[0]
        x = torch.cat([img0, img1], 0)
        x = ((2 * x - 1) - self.shift) / self.scale
        total = None
        head = 0
        for idx, mod in enumerate(self.features):
            if head == len(self.taps):
                break
            x = mod(x)
            if idx == self.taps[head]:
                f = x / (torch.sqrt(torch.sum(x * x, dim=1, keepdim=True)) + EPS)
                d = (f[:n] - f[n:]) ** 2
                term = self.heads[head](d).mean(dim=(2, 3))[:, 0]
                total = term if total is None else total + term
                head += 1
        return total


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state dict of tensors (weights_only: the published files are plain dicts)."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle/zip/runtime errors for foreign files
        raise ModelError(f"{path}: not an LPIPS weights file ({refusal(exc)})") from None
    if not isinstance(state, dict):
        raise TypeError(f"{path}: not a state dict")
    return state


def build(net: str, trunk: str | Path, heads: str | Path) -> LPIPS:
    """The LPIPS module with the trunk and head files loaded strictly, in eval mode."""
    model = LPIPS(net)
    model.load_trunk(read_state(trunk))
    model.load_heads(read_state(heads))
    return model.eval()


def random_trunk(net: str, out: str | Path, seed: int = 0, classifier: bool = True) -> Path:
    """Write a seeded random trunk in torchvision's .pth layout (test fixture).

    The conv weights are scaled (He init) so that activations neither vanish nor blow up
    through the trunk; a small ``classifier.*`` tensor stands in for torchvision's head so
    that loaders prove they ignore it."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for idx, spec in enumerate(LAYERS[net]):
        if spec[0] != "conv":
            continue
        _, cin, cout, k, _, _ = spec
        std = (2.0 / (cin * k * k)) ** 0.5
        state[f"features.{idx}.weight"] = torch.randn(cout, cin, k, k, generator=gen) * std
        state[f"features.{idx}.bias"] = torch.randn(cout, generator=gen) * 0.01
    if classifier:
        state["classifier.1.weight"] = torch.randn(4, 8, generator=gen)
    dst = Path(out)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        torch.save(state, str(tmp))
    return dst


def export(
    net: str, trunk: str | Path, heads: str | Path, onnx_path: str | Path, opset: int = 17
) -> Path:
    """Write the LPIPS graph ``img0, img1 → distance`` (N, H, W dynamic)."""
    dst = Path(onnx_path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    model = build(net, trunk, heads)
    example = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    dyn = {
        "img0": {0: "batch", 2: "height", 3: "width"},
        "img1": {0: "batch", 2: "height", 3: "width"},
        "distance": {0: "batch"},
    }
    with atomic_path(dst) as tmp, torch.no_grad():
        trace_to_onnx(
            model, (example, example.flip(0)), tmp, ["img0", "img1"], ["distance"], dyn, opset
        )
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lipleak.export.lpips_onnx", description=__doc__.splitlines()[0]
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("random-trunk", help="seeded random trunk in torchvision's layout")
    r.add_argument("net", choices=NETS)
    r.add_argument("out")
    r.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("export", help="trunk + heads → ONNX")
    e.add_argument("net", choices=NETS)
    e.add_argument("trunk")
    e.add_argument("heads")
    e.add_argument("out")
    args = ap.parse_args(argv)
    if args.cmd == "random-trunk":
        print(random_trunk(args.net, args.out, args.seed))
    else:
        print(export(args.net, args.trunk, args.heads, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

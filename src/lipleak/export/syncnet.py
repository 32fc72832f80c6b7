"""SyncNet v2 (Chung & Zisserman 2016) in PyTorch, and a strict loader for its checkpoints.

The layer layout follows the reference implementation (joonson/syncnet_python,
``SyncNetModel.S``) so that the published ``syncnet_v2.model`` — a legacy ``torch.save`` of
an ordered dict of 88 tensors — loads by name: the ``nn.Sequential`` indices below are part
of the checkpoint format (``netcnnaud.18.weight`` …) and must not be renumbered.

Inputs (SPEC §2):
- lips: B×3×5×224×224 float32, five consecutive BGR frames, values 0..255, no normalisation;
- audio: B×1×13×20 float32 MFCC (13 coefficients × 20 steps of 10 ms).
Both towers give B×1024 embeddings that are NOT L2-normalised.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import torch
from torch import nn

from lipleak.errors import ModelError
from lipleak.files import sha256_of

from .refusal import refusal
from .syncnet_shapes import EMBED_DIM, WINDOW_FRAMES


def _audio_cnn() -> nn.Sequential:
    # 13×20 MFCC → 512×1×1. The (1,1) max-pool is a no-op kept only so that indices match.
    return nn.Sequential(
        nn.Conv2d(1, 64, kernel_size=3, stride=1, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=1, stride=1),
        nn.Conv2d(64, 192, kernel_size=3, stride=1, padding=1),
        nn.BatchNorm2d(192),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=(1, 2)),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.BatchNorm2d(384),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.BatchNorm2d(256),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.BatchNorm2d(256),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 512, kernel_size=(5, 4), padding=0),
        nn.BatchNorm2d(512),
        nn.ReLU(),
    )


def _lip_cnn() -> nn.Sequential:
    # 3×5×224×224 frames → 512×1×1×1; only the first convolution mixes the 5 frames.
    return nn.Sequential(
        nn.Conv3d(3, 96, kernel_size=(5, 7, 7), stride=(1, 2, 2), padding=0),
        nn.BatchNorm3d(96),
        nn.ReLU(inplace=True),
        nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
        nn.Conv3d(96, 256, kernel_size=(1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),
        nn.BatchNorm3d(256),
        nn.ReLU(inplace=True),
        nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
        nn.BatchNorm3d(256),
        nn.ReLU(inplace=True),
        nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
        nn.BatchNorm3d(256),
        nn.ReLU(inplace=True),
        nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
        nn.BatchNorm3d(256),
        nn.ReLU(inplace=True),
        nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
        nn.Conv3d(256, 512, kernel_size=(1, 6, 6), padding=0),
        nn.BatchNorm3d(512),
        nn.ReLU(inplace=True),
    )


def _head(out_dim: int = EMBED_DIM) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(512, 512),
        nn.BatchNorm1d(512),
        nn.ReLU(),
        nn.Linear(512, out_dim),
    )


class SyncNetV2(nn.Module):
    """Both towers of SyncNet v2; attribute names are the checkpoint's key prefixes."""

    def __init__(self) -> None:
        super().__init__()
        self.netcnnaud = _audio_cnn()
        self.netfcaud = _head()
        self.netfclip = _head()
        self.netcnnlip = _lip_cnn()

    def forward_audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        """B×1×13×20 MFCC → B×1024."""
        return self.netfcaud(torch.flatten(self.netcnnaud(mfcc), 1))

    def forward_lips(self, lips: torch.Tensor) -> torch.Tensor:
        """B×3×5×224×224 BGR 0..255 → B×1024."""
        return self.netfclip(torch.flatten(self.netcnnlip(lips), 1))


def planar_lip_cnn(cnn: nn.Sequential) -> nn.Sequential:
    """The lip CNN with every 3-D layer as the 2-D layer it equals.

    The first convolution spans all 5 frames without temporal padding (depth 5 -> 1) and
    every later layer has temporal extent 1, so on the frames flattened into 15 channels
    (BGR-major, as ``torch.flatten(lips, 1, 2)`` orders them) the tower is a 2-D CNN. Same
    weights, same sums; only the order of float additions differs (embeddings within ~2e-6
    relative of the 3-D graph). CPU runtimes run 2-D convolutions about 1.5x faster
    (bench/bench_lip_tower.py): onnxruntime has no tuned Conv3d kernel.
    """
    layers: list[nn.Module] = []
    depth = WINDOW_FRAMES
    for m in cnn:
        if isinstance(m, nn.Conv3d | nn.MaxPool3d):
            k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,) * 3
            p = m.padding if isinstance(m.padding, tuple) else (m.padding,) * 3
            if k[0] != depth or p[0]:  # guards the equivalence, not this architecture
                raise ValueError(f"{m}: spans {k[0]} of {depth} frames; not a 2-D layer")
            depth = 1
        if isinstance(m, nn.Conv3d):
            w = m.weight.detach()
            conv = nn.Conv2d(
                w.shape[1] * w.shape[2], w.shape[0], tuple(w.shape[3:]), m.stride[1:], m.padding[1:]
            )
            conv.weight.data = w.reshape(w.shape[0], -1, *w.shape[3:]).clone()
            conv.bias.data = m.bias.detach().clone()
            layers.append(conv)
        elif isinstance(m, nn.BatchNorm3d):
            bn = nn.BatchNorm2d(m.num_features, eps=m.eps, momentum=m.momentum)
            bn.load_state_dict(m.state_dict())
            layers.append(bn)
        elif isinstance(m, nn.MaxPool3d):
            pad = m.padding if isinstance(m.padding, int) else m.padding[1:]
            layers.append(nn.MaxPool2d(m.kernel_size[1:], m.stride[1:], pad))
        else:
            layers.append(m)
    return nn.Sequential(*layers)


class LipTower(nn.Module):
    """The lip tower alone, as a module with one input (for ONNX export): B×3×5×224×224
    in, as the checkpoint's tower takes it, run as its 2-D equivalent (``planar_lip_cnn``)."""

    def __init__(self, net: SyncNetV2) -> None:
        super().__init__()
        self.netcnnlip = planar_lip_cnn(net.netcnnlip)
        self.netfclip = net.netfclip

    def forward(self, lips: torch.Tensor) -> torch.Tensor:
        return self.netfclip(torch.flatten(self.netcnnlip(torch.flatten(lips, 1, 2)), 1))


class AudioTower(nn.Module):
    """The audio tower alone, as a module with one input (for ONNX export)."""

    def __init__(self, net: SyncNetV2) -> None:
        super().__init__()
        self.netcnnaud = net.netcnnaud
        self.netfcaud = net.netfcaud

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        return self.netfcaud(torch.flatten(self.netcnnaud(mfcc), 1))


def _is_published(path: Path, published: Collection[str]) -> bool:
    """Whether ``path`` is byte for byte one of the ``published`` files (their sha256s)."""
    return bool(published) and sha256_of(path) in published


def read_state_dict(
    path: str | Path, published: Collection[str] = (), what: str = "SyncNet checkpoint"
) -> Mapping[str, torch.Tensor]:
    """Read a SyncNet checkpoint file (legacy or zip ``torch.save`` of a name → tensor dict).

    ``weights_only=True`` unpickles only tensors and plain containers, so a checkpoint
    cannot run code; the fixture (and, by its format, the published file) loads that way.
    Should an old pickle need more, the full unpickler is used only for a file whose
    sha256 is in ``published`` (the caller passes the registry's; this package sits below
    lipleak.models and does not read the registry itself).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: {what} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle/zip/runtime errors for foreign files
        if not _is_published(path, published):
            raise ModelError(f"{path}: not a {what} ({refusal(exc)})") from exc
        state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ModelError(f"{path}: not a {what} (expected a dict of named tensors)")
    return state


def load_state_strict(net: nn.Module, state: Mapping[str, torch.Tensor], source: str = "") -> None:
    """Copy every tensor of ``state`` into ``net`` by name, or raise ModelError.

    Unknown keys, missing parameters/running statistics and shape mismatches are errors;
    only BatchNorm ``num_batches_tracked`` counters may be absent (the published file has
    none, and they play no part in eval mode).
    """
    own = net.state_dict()
    where = f"{source}: " if source else ""
    unknown = sorted(set(state) - set(own))
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
        for k in set(state) & set(own)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    not_float = sorted(
        k
        for k in set(state) & set(own)
        if own[k].is_floating_point() and not state[k].is_floating_point()
    )
    problems = []
    if unknown:
        problems.append(f"unknown keys: {', '.join(unknown)}")
    if missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if wrong:
        problems.append(f"shape mismatch: {', '.join(wrong)}")
    if not_float:
        problems.append(f"non-float tensors: {', '.join(not_float)}")
    if problems:
        raise ModelError(f"{where}not a SyncNet v2 checkpoint: {'; '.join(problems)}")
    with torch.no_grad():
        for name, tensor in state.items():
            own[name].copy_(tensor)


def load_syncnet(path: str | Path, published: Collection[str] = ()) -> SyncNetV2:
    """Build SyncNet v2 with the weights of checkpoint ``path``, in eval mode."""
    net = SyncNetV2()
    load_state_strict(net, read_state_dict(path, published), str(path))
    return net.eval()

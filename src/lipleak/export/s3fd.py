"""S3FD (Zhang et al. 2017), the face detector of syncnet_python's in-the-wild pipeline.

Two published checkpoints share one set of tensor shapes but not the network around them;
the key layout of the file says which it is, and the network is built to match:

- ``syncnet_python``: ``sfd_face.pth`` (sha256 d54a87c2…c491; S3FD.pytorch's training,
  what syncnet_python and MoChaBench run; passed as a path, not in the registry), keys
  ``vgg.0.weight`` .., ``L2Norm3_3.weight``, ``extras.N``, ``loc.N``, ``conf.N``; fc6 is
  3×3 with dilation 6 (padding 6), the pool after conv3_3 uses ``ceil_mode``, and the
  network reads RGB less (123, 117, 104).
- ``face_alignment``: ``s3fd-619a316812.pth`` (registry ``s3fd``; face-alignment's port
  of the Caffe model, Wav2Lip's detector), keys ``conv1_1.weight`` .., ``fc6``, ``fc7``,
  ``conv6_1`` .., ``conv3_3_norm.weight``, ``conv3_3_norm_mbox_conf`` ..; fc6 is 3×3 with
  padding 3 and no dilation (as face-alignment's ``net_s3fd.py`` builds it), plain pools,
  and the network reads BGR less (104, 117, 123).

Both: a VGG16 trunk (conv1_1 .. conv5_3), fc6/fc7 (1024), conv6_1/6_2 and conv7_1/7_2
(stride 2), L2Norm on conv3_3 (scale 10), conv4_3 (8) and conv5_3 (5), and six loc/conf
heads at strides 4 .. 128. conv3_3's conf head has 4 channels: the background score is the
max of the first three (max-out background), so every head gives 2 class logits.

The exported graph always reads RGB less (123, 117, 104), syncnet_python's input; for the
face-alignment flavour it swaps the channels itself (BGR less (104, 117, 123) is the same
numbers in the other order). Tensors are kept under face-alignment's names either way.
The graph ends at the heads: softmax, prior boxes, decoding and NMS run in numpy
(``lipleak.faces.s3fd``), which keeps the ONNX graph free of data-dependent shapes.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .syncnet import load_state_strict, read_state_dict

# (name, in, out) of the 3×3 VGG16 convolutions; a 2×2 max-pool follows each block
VGG = (
    ("conv1_1", 3, 64),
    ("conv1_2", 64, 64),
    ("conv2_1", 64, 128),
    ("conv2_2", 128, 128),
    ("conv3_1", 128, 256),
    ("conv3_2", 256, 256),
    ("conv3_3", 256, 256),
    ("conv4_1", 256, 512),
    ("conv4_2", 512, 512),
    ("conv4_3", 512, 512),
    ("conv5_1", 512, 512),
    ("conv5_2", 512, 512),
    ("conv5_3", 512, 512),
)
BLOCK_ENDS = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")
# the six detection sources in order (stride 4 · 2^k, anchor 16 · 2^k) and their channels
SOURCES = (
    ("conv3_3_norm", 256),
    ("conv4_3_norm", 512),
    ("conv5_3_norm", 512),
    ("fc7", 1024),
    ("conv6_2", 512),
    ("conv7_2", 256),
)
STRIDES = (4, 8, 16, 32, 64, 128)
ANCHORS = (16, 32, 64, 128, 256, 512)
NORM_SCALES = {"conv3_3_norm": 10.0, "conv4_3_norm": 8.0, "conv5_3_norm": 5.0}
OUTPUT_NAMES = tuple(f"{kind}{k}" for k in range(len(SOURCES)) for kind in ("conf", "loc"))
INPUT_NAME = "image"


class L2Norm(nn.Module):
    def __init__(self, channels: int, scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x):
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10
        return x / norm * self.weight.view(1, -1, 1, 1)


FLAVOURS = ("syncnet_python", "face_alignment")


class S3FDNet(nn.Module):
    """Input 1×3×H×W (RGB minus (123, 117, 104)); output per source k, in
    ``OUTPUT_NAMES`` order: conf_k 1×2×h×w (background, face logits) and loc_k 1×4×h×w."""

    def __init__(self, flavour: str = "syncnet_python"):
        super().__init__()
        if flavour not in FLAVOURS:
            raise ValueError(f"unknown S3FD flavour {flavour!r}")
        self.flavour = flavour
        for name, cin, cout in VGG:
            setattr(self, name, nn.Conv2d(cin, cout, 3, 1, 1))
        if flavour == "syncnet_python":
            self.fc6 = nn.Conv2d(512, 1024, 3, 1, padding=6, dilation=6)
        else:
            self.fc6 = nn.Conv2d(512, 1024, 3, 1, padding=3)
        self.fc7 = nn.Conv2d(1024, 1024, 1)
        self.conv6_1 = nn.Conv2d(1024, 256, 1)
        self.conv6_2 = nn.Conv2d(256, 512, 3, 2, 1)
        self.conv7_1 = nn.Conv2d(512, 128, 1)
        self.conv7_2 = nn.Conv2d(128, 256, 3, 2, 1)
        for name, scale in NORM_SCALES.items():
            setattr(self, name, L2Norm(dict(SOURCES)[name], scale))
        for k, (name, ch) in enumerate(SOURCES):
            setattr(self, f"{name}_mbox_conf", nn.Conv2d(ch, 4 if k == 0 else 2, 3, 1, 1))
            setattr(self, f"{name}_mbox_loc", nn.Conv2d(ch, 4, 3, 1, 1))

    def forward(self, x):
        if self.flavour == "face_alignment":
            x = x[:, [2, 1, 0]]  # the Caffe model reads BGR
        feats = {}
        for name, _, _ in VGG:
            x = F.relu(getattr(self, name)(x))
            if name in BLOCK_ENDS:
                feats[name] = x
                # syncnet_python pools conv3_3 with ceil_mode (odd sizes keep their edge)
                ceil = name == "conv3_3" and self.flavour == "syncnet_python"
                x = F.max_pool2d(x, 2, 2, ceil_mode=ceil)
        x = F.relu(self.fc7(F.relu(self.fc6(x))))
        feats["fc7"] = x
        x = F.relu(self.conv6_2(F.relu(self.conv6_1(x))))
        feats["conv6_2"] = x
        feats["conv7_2"] = F.relu(self.conv7_2(F.relu(self.conv7_1(x))))
        for name in NORM_SCALES:
            feats[name] = getattr(self, name)(feats[name.removesuffix("_norm")])
        outs = []
        for k, (name, _) in enumerate(SOURCES):
            conf = getattr(self, f"{name}_mbox_conf")(feats[name])
            if k == 0:  # max-out background: 3 background logits, then the face logit
                conf = torch.cat([conf[:, :3].amax(dim=1, keepdim=True), conf[:, 3:]], dim=1)
            outs += [conf, getattr(self, f"{name}_mbox_loc")(feats[name])]
        return tuple(outs)


def syncnet_python_names() -> dict[str, str]:
    """syncnet_python's key prefix → this module's (face-alignment's) prefix."""
    names = {}
    vgg_index = 0
    for name, _, _ in VGG:
        names[f"vgg.{vgg_index}"] = name
        # each conv is followed by a ReLU, each block end also by a pool
        vgg_index += 3 if name in BLOCK_ENDS else 2
    names[f"vgg.{vgg_index}"] = "fc6"
    names[f"vgg.{vgg_index + 2}"] = "fc7"
    for i, name in enumerate(("conv6_1", "conv6_2", "conv7_1", "conv7_2")):
        names[f"extras.{i}"] = name
    for name in NORM_SCALES:
        names[f"L2Norm{name[4:7]}"] = name
    for k, (name, _) in enumerate(SOURCES):
        names[f"loc.{k}"] = f"{name}_mbox_loc"
        names[f"conf.{k}"] = f"{name}_mbox_conf"
    return names


def to_face_alignment_layout(state) -> tuple[dict, str]:
    """(``state`` under face-alignment's key names, the flavour its layout says).

    A dict that is not wholly in syncnet_python's layout is taken as face-alignment's, so
    that the strict load names the keys that do not belong."""
    names = syncnet_python_names()
    renamed = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        if prefix not in names:
            return dict(state), "face_alignment"
        renamed[f"{names[prefix]}.{leaf}"] = value
    return renamed, "syncnet_python"


def load_s3fd(path: str | Path, published: Collection[str] = ()) -> S3FDNet:
    """S3FD with the weights of checkpoint ``path`` (either layout), in eval mode."""
    state, flavour = to_face_alignment_layout(
        read_state_dict(path, published, what="S3FD checkpoint")
    )
    net = S3FDNet(flavour)
    load_state_strict(net, state, str(path))
    return net.eval()

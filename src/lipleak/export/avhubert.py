"""AV-HuBERT (Shi et al. 2022) in PyTorch, a strict loader for its fairseq checkpoints, and
its ONNX export, one file per modality mode.

Written from facebookresearch/av_hubert (``avhubert/hubert.py``: ``AVHubertModel``,
``SubModel``, ``AVHubertConfig``; ``avhubert/resnet.py``: ``ResEncoder``) and fairseq's
wav2vec 2.0 ``TransformerEncoder`` / ``TransformerSentenceEncoderLayer`` and
``MultiheadAttention``. Module attribute names are the checkpoint's key prefixes
(``feature_extractor_video.resnet.trunk.layer1.0.conv1.weight``, ``encoder.pos_conv.0.weight_g``,
``encoder.layers.3.self_attn.q_proj.weight`` …) and must not be renamed.

Inputs (as av_hubert's dataset hands them to the model; SPEC §9):
- video: B×1×T×88×88 float32, grayscale mouth ROI, already normalised;
- audio: B×104×T float32, 26 log-mel filterbanks × 4 stacked 10-ms frames per 25-fps frame.
Output: B×T×D, the last transformer layer after the encoder's final layer norm, exactly as
``AVHubertModel.extract_finetune(source, output_layer=None)`` returns it in eval mode. A
missing modality is replaced by zero *features* (not zero input), as av_hubert does.

Checkpoint weights the feature path does not use (``mask_emb``, ``final_proj``,
``label_embs_concat``, ``target_glu``) are still modules here so that loading is strict: a
checkpoint loads only if every key is used and every parameter is given.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lipleak.errors import ModelError
from lipleak.files import sha256_of

from .avhubert_shapes import (  # noqa: F401  (re-exported: the exporter's names)
    AUDIO_INPUT,
    FEATURES_OUTPUT,
    MODES,
    ROI_SIZE,
    VIDEO_INPUT,
    mode_inputs,
)
from .refusal import refusal

RESNET_OUT = 512  # ResEncoder.backend_out

_ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_accurate": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "tanh": torch.tanh,
    "linear": lambda x: x,
}


@dataclass(frozen=True)
class AVHubertArch:
    """The parts of av_hubert's ``AVHubertConfig`` that decide the architecture.

    Defaults are ``AVHubertConfig``'s (the base model); the published pretraining configs
    (``conf/pretrain/{base,large}_vox_iter5.yaml``) set layer_norm_first, final_dim 256,
    untie_final_proj, audio_feat_dim 104, and for large 24 layers of 1024 with 16 heads.
    """

    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_norm_first: bool = False
    conv_pos: int = 128
    conv_pos_groups: int = 16
    final_dim: int = 0
    untie_final_proj: bool = False
    target_glu: bool = False
    resnet_relu_type: str = "prelu"
    sub_encoder_layers: int = 0
    audio_feat_dim: int = -1
    modality_fuse: str = "concat"
    masking_type: str = "input"
    # Not in the model config: the number of label sets (task.labels) and the total number
    # of label classes (rows of label_embs_concat; 0: no label embeddings, as when a model
    # is built without dictionaries). The class count is only recorded by the weights.
    num_label_sets: int = 1
    num_label_classes: int = 0

    @property
    def embed(self) -> int:
        """Width of the fused features (concat doubles it)."""
        return self.encoder_embed_dim * (2 if self.modality_fuse == "concat" else 1)

    @property
    def proj_dim(self) -> int:
        return self.final_dim if self.final_dim > 0 else self.encoder_embed_dim

    def check(self) -> None:
        problems = []
        if self.modality_fuse not in ("concat", "add"):
            problems.append(f"modality_fuse {self.modality_fuse!r} (concat or add)")
        if self.resnet_relu_type not in ("relu", "prelu"):
            problems.append(f"resnet_relu_type {self.resnet_relu_type!r} (relu or prelu)")
        if self.activation_fn not in _ACTIVATIONS:
            problems.append(f"activation_fn {self.activation_fn!r}")
        if self.audio_feat_dim <= 0:
            problems.append(f"audio_feat_dim {self.audio_feat_dim}")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            problems.append("encoder_embed_dim not a multiple of encoder_attention_heads")
        if self.encoder_embed_dim % self.conv_pos_groups:
            problems.append("encoder_embed_dim not a multiple of conv_pos_groups")
        if problems:
            raise ModelError(f"unsupported AV-HuBERT configuration: {'; '.join(problems)}")


# --- visual front end (avhubert/resnet.py) -------------------------------------------------


def _act(relu_type: str, channels: int) -> nn.Module:
    return nn.PReLU(num_parameters=channels) if relu_type == "prelu" else nn.ReLU()


class BasicBlock(nn.Module):
    """ResNet basic block; the activation after the sum is a second (own) PReLU."""

    def __init__(self, inplanes: int, planes: int, stride: int, relu_type: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = _act(relu_type, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = _act(relu_type, planes)
        # av_hubert's default downsample: 1×1 strided conv + BN (not the avg-pool variant)
        self.downsample = (
            nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
            if stride != 1 or inplanes != planes
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu2(out + residual)


class ResNetTrunk(nn.Module):
    """ResNet-18 layers 1–4 and global average pooling (the stem is the 3-D front end)."""

    def __init__(self, relu_type: str) -> None:
        super().__init__()
        inplanes = 64
        for i, (planes, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), 1):
            blocks = [BasicBlock(inplanes, planes, stride, relu_type)]
            blocks.append(BasicBlock(planes, planes, 1, relu_type))
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            inplanes = planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))


class ResEncoder(nn.Module):
    """B×1×T×H×W → B×512×T: a 3-D conv over 5 frames, then a 2-D ResNet-18 per frame."""

    def __init__(self, relu_type: str) -> None:
        super().__init__()
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, 64, (5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False),
            nn.BatchNorm3d(64),
            _act(relu_type, 64),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
        self.trunk = ResNetTrunk(relu_type)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        x = self.frontend3D(x)  # B×64×T×h×w, T kept by the temporal padding
        c, h, w = x.shape[1], x.shape[3], x.shape[4]
        x = x.transpose(1, 2).reshape(-1, c, h, w)  # every frame through the 2-D trunk
        x = self.trunk(x)
        return x.reshape(b, -1, RESNET_OUT).transpose(1, 2)


# --- fairseq wav2vec 2.0 transformer encoder ---------------------------------------------


class WeightNormConv1d(nn.Module):
    """fairseq's ``weight_norm(Conv1d, name="weight", dim=2)`` with the checkpoint's own
    parameter names ``weight_g`` (1×1×K) and ``weight_v``, whatever torch's weight-norm
    implementation would call them: weight = g · v / ‖v‖, the norm over all axes but the
    kernel axis."""

    def __init__(self, channels: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        self.padding = kernel // 2
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel))
        self.bias = nn.Parameter(torch.zeros(channels))
        nn.init.normal_(self.weight_v, std=math.sqrt(4.0 / (kernel * channels)))
        # see freeze(): a buffer, so that an export holds it as an initializer (the ONNX
        # exporter makes a plain attribute or a non-persistent buffer a Constant node); None
        # except while freeze() holds it, so it is never in a checkpoint's state dict
        self.register_buffer("frozen", None)

    def weight(self) -> torch.Tensor:
        if self.frozen is not None:
            return self.frozen
        norm = torch.sqrt((self.weight_v * self.weight_v).sum(dim=(0, 1), keepdim=True))
        return self.weight_v * (self.weight_g / norm)

    def freeze(self, on: bool = True) -> None:
        """Compute g · v / ‖v‖ once and use it as a plain weight (``on=False`` undoes it).

        For export: the ONNX graph then holds the conv weight as an initializer instead of
        the ops that make it, which converters such as onnx2torch need (its Conv takes
        only constant weights) and which saves the same arithmetic on every run."""
        self.frozen = None
        if on:
            with torch.no_grad():
                self.frozen = self.weight().detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.weight(), self.bias, padding=self.padding, groups=self.groups)


class SamePad(nn.Module):
    """Drop the one extra output step an even kernel with padding K//2 produces."""

    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.remove = 1 if kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : -self.remove] if self.remove else x


class SelfAttention(nn.Module):
    """fairseq ``MultiheadAttention(self_attention=True)`` without padding, in eval mode."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scaling = self.head_dim**-0.5
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # B×T×D → B×H×T×d
        return x.reshape(x.shape[0], -1, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # fairseq scales q after its projection (bias included)
        q = self._split(self.q_proj(x) * self.scaling)
        k = self._split(self.k_proj(x))
        v = self._split(self.v_proj(x))
        attn = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(x.shape[0], -1, self.heads * self.head_dim)
        return self.out_proj(out)


class EncoderLayer(nn.Module):
    """``TransformerSentenceEncoderLayer``: pre-norm if layer_norm_first, else post-norm."""

    def __init__(self, arch: AVHubertArch) -> None:
        super().__init__()
        d = arch.encoder_embed_dim
        self.layer_norm_first = arch.layer_norm_first
        self.activation = _ACTIVATIONS[arch.activation_fn]
        self.self_attn = SelfAttention(d, arch.encoder_attention_heads)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, arch.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(arch.encoder_ffn_embed_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.self_attn(self.self_attn_layer_norm(x))
            return x + self._ffn(self.final_layer_norm(x))
        x = self.self_attn_layer_norm(x + self.self_attn(x))
        return self.final_layer_norm(x + self._ffn(x))


class TransformerEncoder(nn.Module):
    """wav2vec 2.0's encoder: convolutional relative position, layers, one layer norm
    (before the layers if post-norm, after the last one if layer_norm_first)."""

    def __init__(self, arch: AVHubertArch, layers: int) -> None:
        super().__init__()
        d = arch.encoder_embed_dim
        self.layer_norm_first = arch.layer_norm_first
        self.pos_conv = nn.Sequential(
            WeightNormConv1d(d, arch.conv_pos, arch.conv_pos_groups),
            SamePad(arch.conv_pos),
            nn.GELU(),
        )
        self.layers = nn.ModuleList(EncoderLayer(arch) for _ in range(layers))
        self.layer_norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B×T×D → B×T×D
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        for layer in self.layers:
            x = layer(x)
        return self.layer_norm(x) if self.layer_norm_first else x


# --- AV-HuBERT -----------------------------------------------------------------------------


class SubModel(nn.Module):
    """One modality's feature extractor: (ResNet), a linear projection to D, and a
    modality-specific encoder when sub_encoder_layers > 0 (none in the published models)."""

    def __init__(self, arch: AVHubertArch, input_dim: int, resnet: nn.Module | None) -> None:
        super().__init__()
        self.resnet = resnet
        self.proj = nn.Linear(input_dim, arch.encoder_embed_dim)
        self.encoder = (
            TransformerEncoder(arch, arch.sub_encoder_layers) if arch.sub_encoder_layers else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B×F×T → B×D×T
        if self.resnet is not None:
            x = self.resnet(x)
        x = self.proj(x.transpose(1, 2))
        if self.encoder is not None:
            x = self.encoder(x)
        return x.transpose(1, 2)


class AVHubert(nn.Module):
    """``AVHubertModel`` with the state-dict layout of its checkpoints; eval-mode features."""

    def __init__(self, arch: AVHubertArch) -> None:
        super().__init__()
        arch.check()
        self.arch = arch
        d = arch.encoder_embed_dim
        self.feature_extractor_audio = SubModel(arch, arch.audio_feat_dim, None)
        self.feature_extractor_video = SubModel(arch, RESNET_OUT, ResEncoder(arch.resnet_relu_type))
        self.post_extract_proj = nn.Linear(arch.embed, d) if arch.embed != d else None
        # Used only in pretraining (input masking, prediction heads); kept for strictness.
        self.mask_emb = nn.Parameter(
            torch.zeros(arch.audio_feat_dim if arch.masking_type == "input" else d)
        )
        self.encoder = TransformerEncoder(arch, arch.encoder_layers)
        self.layer_norm = nn.LayerNorm(arch.embed)
        p = arch.proj_dim
        self.target_glu = nn.Sequential(nn.Linear(p, 2 * p), nn.GLU()) if arch.target_glu else None
        n = arch.num_label_sets if arch.untie_final_proj else 1
        self.final_proj = nn.Linear(d, p * n)
        if arch.num_label_classes:
            self.label_embs_concat = nn.Parameter(torch.zeros(arch.num_label_classes, p))

    def features(
        self, video: torch.Tensor | None = None, audio: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``extract_finetune`` in eval mode: B×T×D from video B×1×T×88×88 and/or audio
        B×104×T; the missing modality's features are zeros."""
        if video is None and audio is None:
            raise ValueError("AV-HuBERT needs video, audio or both")
        fa = None if audio is None else self.feature_extractor_audio(audio)
        fv = None if video is None else self.feature_extractor_video(video)
        if fa is None:
            fa = torch.zeros_like(fv)
        if fv is None:
            fv = torch.zeros_like(fa)
        if fa.shape[-1] != fv.shape[-1]:
            raise ValueError(f"audio has {fa.shape[-1]} frames, video {fv.shape[-1]}")
        x = torch.cat([fa, fv], dim=1) if self.arch.modality_fuse == "concat" else fa + fv
        x = self.layer_norm(x.transpose(1, 2))
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        return self.encoder(x)

    def forward(
        self, video: torch.Tensor | None = None, audio: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.features(video, audio)


class ModeFeatures(nn.Module):
    """One modality mode as a module with only that mode's inputs (for ONNX export)."""

    def __init__(self, model: AVHubert, mode: str) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.model = model
        self.mode = mode

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.mode == "audio":
            return self.model.features(audio=inputs[0])
        if self.mode == "video":
            return self.model.features(video=inputs[0])
        return self.model.features(video=inputs[0], audio=inputs[1])


# --- checkpoints ---------------------------------------------------------------------------

_ARCH_KEYS = {f.name for f in fields(AVHubertArch)} - {"num_label_sets", "num_label_classes"}
_KINDS = {"av_hubert"}


def _as_dict(obj: Any) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, argparse.Namespace):
        return vars(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise ModelError(f"checkpoint config is a {type(obj).__name__}, not a dict")


def checkpoint_config(ckpt: Mapping) -> tuple[dict, dict]:
    """(model config, task config) of a fairseq checkpoint: ``cfg["model"]``/``cfg["task"]``
    as fairseq saves them (plain dicts), else the old single ``args`` Namespace."""
    cfg = ckpt.get("cfg")
    if cfg is not None:
        cfg = _as_dict(cfg)
        return _as_dict(cfg.get("model")), _as_dict(cfg.get("task"))
    args = _as_dict(ckpt.get("args"))
    return args, args


def arch_from_checkpoint(ckpt: Mapping, state: Mapping[str, torch.Tensor]) -> AVHubertArch:
    """The architecture a checkpoint describes: its model config over AVHubertConfig's
    defaults; the label-class count (which no config records) from its label embeddings."""
    model_cfg, task_cfg = checkpoint_config(ckpt)
    name = model_cfg.get("_name", model_cfg.get("arch"))
    if name is not None and name not in _KINDS:
        raise ModelError(f"the checkpoint is a {name!r} model, not an AV-HuBERT (av_hubert) one")
    kwargs: dict[str, Any] = {}
    for key in _ARCH_KEYS:
        if model_cfg.get(key) is not None:
            try:
                kwargs[key] = type(getattr(AVHubertArch, key))(model_cfg[key])
            except (TypeError, ValueError):  # e.g. an unresolved "${...}" interpolation
                raise ModelError(
                    f"the checkpoint's model config has {key}={model_cfg[key]!r}, "
                    f"not a {type(getattr(AVHubertArch, key)).__name__}"
                ) from None
    labels = task_cfg.get("labels")
    if isinstance(labels, (list, tuple)) and labels:
        kwargs["num_label_sets"] = len(labels)
    emb = state.get("label_embs_concat")
    kwargs["num_label_classes"] = int(emb.shape[0]) if emb is not None and emb.ndim == 2 else 0
    return AVHubertArch(**kwargs)


def _safe_globals() -> list:
    # What a fairseq checkpoint may hold besides tensors and plain containers: the old
    # ``args`` Namespace and numpy scalars in its training state. None of them runs code.
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1
        from numpy.core.multiarray import scalar
    found: list = [argparse.Namespace, np.dtype, scalar]
    # a numpy-1 pickle names the scalar constructor by its old module
    found.append((scalar, "numpy.core.multiarray.scalar"))
    for name in ("Float64DType", "Float32DType", "Int64DType", "Int32DType", "BoolDType"):
        if hasattr(np, "dtypes") and hasattr(np.dtypes, name):
            found.append(getattr(np.dtypes, name))
    return found


def read_checkpoint(path: str | Path, published: Collection[str] = ()) -> dict:
    """Unpickle a fairseq checkpoint so that the file cannot run code.

    First ``weights_only=True`` (tensors, plain containers and the few harmless globals
    above). A training checkpoint often holds more (task dictionaries, meters, an
    omegaconf config): then the full unpickler for a file whose sha256 is in ``published``
    (the registry's pinned files; this floor does not read the registry itself), and for
    any other file ``lipleak.export.inert_pickle``, which keeps such objects as inert data
    and rebuilds an omegaconf config as plain dicts.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: AV-HuBERT checkpoint not found")
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle/zip/runtime errors for foreign files
        if published and sha256_of(path) in published:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        else:
            from . import inert_pickle

            try:
                ckpt = inert_pickle.load(path)
            except Exception as exc2:  # noqa: BLE001 - not a torch file at all, damaged...
                raise ModelError(
                    f"{path}: not an AV-HuBERT checkpoint that loads safely "
                    f"({refusal(exc)}; "
                    f"{type(exc2).__name__}: {str(exc2).splitlines()[0] if str(exc2) else ''})"
                ) from exc2
            if isinstance(ckpt, Mapping):
                ckpt = {**ckpt, "cfg": inert_pickle.plain(ckpt.get("cfg"))}
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("model"), Mapping):
        raise ModelError(f"{path}: not an AV-HuBERT checkpoint (no fairseq 'model' weights)")
    if ckpt.get("cfg") is None and ckpt.get("args") is None:
        raise ModelError(f"{path}: not an AV-HuBERT checkpoint (no 'cfg' or 'args' config)")
    return dict(ckpt)


def load_state_strict(net: nn.Module, state: Mapping[str, Any], source: str = "") -> None:
    """Copy every tensor of ``state`` into ``net`` by name (cast to its dtype), or raise
    ModelError listing unknown keys, missing keys and shape mismatches."""
    own = net.state_dict()
    where = f"{source}: " if source else ""
    bad = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    unknown = sorted(set(state) - set(own))
    missing = sorted(set(own) - set(state))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
        for k in set(state) & set(own)
        if k not in bad and tuple(state[k].shape) != tuple(own[k].shape)
    )
    problems = []
    for label, items in (
        ("not tensors", bad),
        ("unknown keys", unknown),
        ("missing keys", missing),
        ("shape mismatch", wrong),
    ):
        if items:
            shown = ", ".join(items[:8]) + (f" … ({len(items)} in all)" if len(items) > 8 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise ModelError(
            f"{where}not an AV-HuBERT checkpoint of its own config: {'; '.join(problems)}"
        )
    with torch.no_grad():
        for name, tensor in state.items():
            own[name].copy_(tensor)


def model_from_checkpoint(ckpt: Mapping, source: str = "") -> AVHubert:
    """Build the model a (read) checkpoint describes and load its weights strictly."""
    state = ckpt["model"]
    if not any(str(k).startswith("feature_extractor_video.resnet.") for k in state):
        raise ModelError(
            f"{source + ': ' if source else ''}not an AV-HuBERT pretraining checkpoint "
            "(no feature_extractor_video.resnet weights)"
        )
    net = AVHubert(arch_from_checkpoint(ckpt, state))
    load_state_strict(net, state, source)
    return net.eval()


def load_checkpoint(path: str | Path, published: Collection[str] = ()) -> AVHubert:
    """The AV-HuBERT model of fairseq checkpoint ``path`` (e.g. ``large_vox_iter5.pt``),
    configured from the checkpoint's own config, every weight loaded, in eval mode."""
    return model_from_checkpoint(read_checkpoint(path, published), str(path))

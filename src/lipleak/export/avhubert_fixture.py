"""Random-weight AV-HuBERT checkpoints in the published fairseq layout, for tests.

    python -m lipleak.export.avhubert_fixture OUT.pt [--size tiny|base|large] [--seed 0]

The file is what fairseq's ``save_checkpoint`` writes for an av_hubert pretraining run:
{"args": None, "cfg": {"model": {...}, "task": {...}, ...}, "model": state dict,
"optimizer_history": [...], "extra_state": {...}, ...}, with the model config of
av_hubert's ``conf/pretrain/{base,large}_vox_iter5.yaml``. "tiny" keeps the architecture
(the ResNet-18 front end is fixed by av_hubert) with a small transformer, for fast tests.
Numbers made with it mean nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from lipleak.files import atomic_path

from .avhubert import AVHubert, arch_from_checkpoint

# av_hubert's k-means targets of iteration 5 have 2000 clusters; fairseq dictionaries add
# 4 special symbols (an assumption: the real count is read from the checkpoint's weights).
LABEL_CLASSES = 2004

_PRETRAIN = {  # conf/pretrain/base_vox_iter5.yaml, model section
    "_name": "av_hubert",
    "label_rate": 25,
    "input_modality": "image",
    "skip_masked": False,
    "skip_nomask": False,
    "modality_dropout": 0.5,
    "audio_dropout": 0.5,
    "modality_fuse": "concat",
    "selection_type": "same_seq",
    "masking_type": "input",
    "mask_prob_image": 0.3,
    "mask_length_image": 5,
    "mask_prob_audio": 0.8,
    "mask_length_audio": 10,
    "extractor_mode": "default",
    "final_dim": 256,
    "encoder_layerdrop": 0.05,
    "dropout_input": 0.1,
    "dropout_features": 0.1,
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "feature_grad_mult": 0.1,
    "untie_final_proj": True,
    "activation_dropout": 0.0,
    "layer_norm_first": True,
    "audio_feat_dim": 104,
    # AVHubertConfig defaults a saved config spells out
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "target_glu": False,
    "resnet_relu_type": "prelu",
    "resnet_weights": None,
    "sim_type": "cosine",
    "sub_encoder_layers": 0,
}

SIZES = {
    "base": {},
    "large": {
        "encoder_layers": 24,
        "encoder_embed_dim": 1024,
        "encoder_ffn_embed_dim": 4096,
        "encoder_attention_heads": 16,
    },
    "tiny": {
        "encoder_layers": 2,
        "encoder_embed_dim": 32,
        "encoder_ffn_embed_dim": 64,
        "encoder_attention_heads": 4,
        "conv_pos": 8,
        "conv_pos_groups": 4,
        "final_dim": 16,
    },
}

_TASK = {
    "_name": "av_hubert_pretraining",
    "data": "",
    "label_dir": "",
    "labels": ["km"],
    "label_rate": 25,
    "sample_rate": 25,
    "max_sample_size": 2000,
    "min_sample_size": 5,
    "pad_audio": False,
    "random_crop": True,
    "normalize": True,
    "stack_order_audio": 4,
    "input_modality": "image",
    "image_aug": True,
    "max_trim_sample_size": 400,
}


def model_config(size: str = "base") -> dict:
    """The ``cfg["model"]`` dict of a published-layout checkpoint of ``size``."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    return _PRETRAIN | SIZES[size]


def task_config() -> dict:
    return dict(_TASK)


def _randomise(model: AVHubert, seed: int) -> None:
    """Seeded weights with no trivial tensor: normalisation statistics and affine
    parameters away from 0/1, biases non-zero, so every tensor affects the output."""
    g = torch.Generator().manual_seed(seed)

    def rand(t: torch.Tensor) -> torch.Tensor:
        return torch.rand(t.shape, generator=g)

    def randn(t: torch.Tensor) -> torch.Tensor:
        return torch.randn(t.shape, generator=g)

    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "running_var":
                t.copy_(0.5 + rand(t))
            elif leaf == "running_mean":
                t.copy_(0.1 * randn(t))
            elif t.ndim == 1 and leaf == "weight":  # norm scales, PReLU slopes
                t.copy_(0.25 + 0.1 * randn(t) if "relu" in name else 1 + 0.1 * randn(t))
            elif leaf == "bias":
                t.copy_(0.02 * randn(t))
            elif leaf == "weight_g":
                v = model.state_dict()[name[: -len("g")] + "v"]
                t.copy_(torch.sqrt((v * v).sum(dim=(0, 1), keepdim=True)) * (1 + 0.1 * rand(t)))
            elif t.ndim >= 2 and leaf == "weight":
                fan_in = t[0].numel()
                t.copy_(randn(t) / fan_in**0.5)
            else:  # mask_emb, label_embs_concat (av_hubert: uniform init)
                t.copy_(rand(t))


def make_checkpoint(size: str = "base", seed: int = 0) -> dict:
    """A checkpoint dict in fairseq's saved layout with seeded random weights."""
    cfg = {"model": model_config(size), "task": task_config()}
    state_like = {"label_embs_concat": torch.empty(LABEL_CLASSES, 0)}
    arch = arch_from_checkpoint({"cfg": cfg}, state_like)
    torch.manual_seed(seed)
    model = AVHubert(arch)
    _randomise(model, seed)
    return {
        "args": None,
        "cfg": {
            "_name": None,
            "common": {"fp16": True, "seed": 1337},
            "model": cfg["model"],
            "task": cfg["task"],
            "criterion": {"_name": "av_hubert", "pred_masked_weight": 1.0},
        },
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "criterion": None,
        "optimizer_history": [
            {
                "criterion_name": "AVHubertCriterion",
                "optimizer_name": "FairseqAdam",
                "lr_scheduler_state": {"best": None},
                "num_updates": 0,
            }
        ],
        "task_state": {},
        "extra_state": {"metrics": {}, "previous_training_time": 0.0},
        "last_optimizer_state": None,
    }


def make_fixture(path: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Write a random-weight AV-HuBERT checkpoint of ``size`` to ``path`` (atomically)."""
    path = Path(path)
    ckpt = make_checkpoint(size, seed)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lipleak.export.avhubert_fixture",
        description="Write a random-weight AV-HuBERT checkpoint (published layout) for tests.",
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(make_fixture(args.out, args.size, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Export AV-HuBERT features to ONNX, one file per modality mode (dynamic batch and time).

    python -m lipleak.export.avhubert_onnx CHECKPOINT OUTDIR

writes OUTDIR/avhubert_{audio,video,av}.onnx: inputs "video" B×1×T×88×88 and/or "audio"
B×104×T float32 → "features" B×T×D float32. The TorchScript-based exporter
(``dynamo=False``) is used, as for SyncNet.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Collection
from pathlib import Path

import torch

from lipleak.errors import LipleakError, ModelError
from lipleak.files import atomic_path

from .avhubert import (
    AUDIO_INPUT,
    FEATURES_OUTPUT,
    MODES,
    ROI_SIZE,
    VIDEO_INPUT,
    AVHubert,
    ModeFeatures,
    WeightNormConv1d,
    load_checkpoint,
    mode_inputs,
)
from .avhubert_shapes import mode_file
from .trace import trace_to_onnx

OPSET = 17


def example_inputs(model: AVHubert, mode: str, batch: int = 2, frames: int = 7):
    """Zero inputs of ``mode`` (batch 2, 7 frames: no axis of size 1 to be specialised)."""
    shapes = {
        VIDEO_INPUT: (batch, 1, frames, ROI_SIZE, ROI_SIZE),
        AUDIO_INPUT: (batch, model.arch.audio_feat_dim, frames),
    }
    return tuple(torch.zeros(shapes[name]) for name in mode_inputs(mode))


def export_onnx(model: AVHubert, path: str | Path, mode: str) -> Path:
    """Write ``model``'s ``mode`` features graph to ``path`` (atomically, checked)."""
    path = Path(path)
    module = ModeFeatures(model.eval(), mode).eval()
    frozen = [m for m in model.modules() if isinstance(m, WeightNormConv1d)]
    names = list(mode_inputs(mode))
    axes = {VIDEO_INPUT: {0: "batch", 2: "time"}, AUDIO_INPUT: {0: "batch", 2: "time"}}
    dynamic = {n: axes[n] for n in names} | {FEATURES_OUTPUT: {0: "batch", 1: "time"}}
    with atomic_path(path) as tmp, torch.no_grad():
        for m in frozen:
            m.freeze()
        try:
            trace_to_onnx(
                module,
                example_inputs(model, mode),
                tmp,
                names,
                [FEATURES_OUTPUT],
                dynamic,
                OPSET,
            )
        finally:
            for m in frozen:
                m.freeze(False)
        import onnx

        # Shapes inferred with data propagation and stored: the missing modality's zero
        # features take their shape from the other's (ConstantOfShape of a Shape), which
        # plain inference leaves unknown; converters that size LayerNorm from the stored
        # shapes (onnx2torch, the torch backend) then see the feature width.
        onnx.save(onnx.shape_inference.infer_shapes(onnx.load(str(tmp)), data_prop=True), str(tmp))
        # full_check infers shapes; models over 2 GB (none here) would need the path form
        onnx.checker.check_model(str(tmp), full_check=True)
    return path


def export_modes(
    checkpoint: Path, out_dir: Path, published: Collection[str] = (), modes=MODES
) -> dict[str, Path]:
    """Export every mode of AV-HuBERT checkpoint ``checkpoint`` into ``out_dir``."""
    model = load_checkpoint(checkpoint, published)
    out_dir = Path(out_dir)
    return {mode: export_onnx(model, out_dir / mode_file(mode), mode) for mode in modes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lipleak.export.avhubert_onnx",
        description="Export the AV-HuBERT feature extractor of a checkpoint to ONNX.",
    )
    parser.add_argument("checkpoint", type=Path, help="e.g. large_vox_iter5.pt")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--mode", choices=MODES, action="append", help="default: all")
    args = parser.parse_args(argv)
    try:
        paths = export_modes(args.checkpoint, args.out_dir, modes=args.mode or MODES)
    except LipleakError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"error: {ModelError(f'cannot write ONNX files: {exc}')}", file=sys.stderr)
        return ModelError.exit_code
    for mode, path in paths.items():
        print(f"{mode}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

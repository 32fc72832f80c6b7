"""Export the two SyncNet towers to ONNX (dynamic batch axis).

    python -m lipleak.export.syncnet_onnx CHECKPOINT OUTDIR

writes OUTDIR/syncnet_lips.onnx (input "lips" B×3×5×224×224 float32 → "embedding" B×1024)
and OUTDIR/syncnet_audio.onnx (input "mfcc" B×1×13×20 float32 → "embedding" B×1024).
The TorchScript-based exporter is used (``dynamo=False``): it handles this plain
convolutional graph directly and gives a stable, small graph.

This command trusts no checkpoint with the full unpickler (it cannot see the model
registry); ``lipleak-fast models export`` passes the registry's published sha256s.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Collection
from pathlib import Path

import torch

from lipleak.errors import LipleakError, ModelError
from lipleak.files import atomic_path

from .syncnet import AudioTower, LipTower, load_syncnet
from .syncnet_shapes import (
    EMBEDDING_OUTPUT,
    LIPS_INPUT,
    LIPS_SHAPE,
    MFCC_INPUT,
    MFCC_SHAPE,
    TOWER_FILES,
)
from .trace import trace_to_onnx

OPSET = 17


def _export_one(module: torch.nn.Module, example: torch.Tensor, input_name: str, out: Path) -> None:
    """Export ``module`` to ``out``; the file appears only once it is whole and checked."""
    dyn = {input_name: {0: "batch"}, EMBEDDING_OUTPUT: {0: "batch"}}
    with atomic_path(out) as tmp:
        trace_to_onnx(module, (example,), tmp, [input_name], [EMBEDDING_OUTPUT], dyn, OPSET)
        import onnx

        onnx.checker.check_model(str(tmp), full_check=True)


def export_towers(
    checkpoint: Path, out_dir: Path, published: Collection[str] = ()
) -> dict[str, Path]:
    """Export the lip and audio towers of SyncNet checkpoint ``checkpoint`` into ``out_dir``.

    Returns {"lips": path, "audio": path}. Each file appears atomically, so a concurrent
    reader sees either nothing or a complete, checked model. ``published``: sha256s of
    files known to come from their publisher (see ``lipleak.export.syncnet.read_state_dict``).
    """
    net = load_syncnet(checkpoint, published)
    out_dir = Path(out_dir)
    paths = {tower: out_dir / name for tower, name in TOWER_FILES.items()}
    with torch.no_grad():
        # Batch 2 as the example so that no size-1 axis gets specialised away.
        _export_one(LipTower(net).eval(), torch.zeros(2, *LIPS_SHAPE), LIPS_INPUT, paths["lips"])
        _export_one(AudioTower(net).eval(), torch.zeros(2, *MFCC_SHAPE), MFCC_INPUT, paths["audio"])
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lipleak.export.syncnet_onnx",
        description="Export the SyncNet v2 lip and audio towers of a checkpoint to ONNX.",
    )
    parser.add_argument("checkpoint", type=Path, help="syncnet_v2.model (or a file in its format)")
    parser.add_argument(
        "out_dir", type=Path, help="folder for syncnet_lips.onnx and syncnet_audio.onnx"
    )
    args = parser.parse_args(argv)
    try:
        paths = export_towers(args.checkpoint, args.out_dir)
    except LipleakError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"error: {ModelError(f'cannot write ONNX files: {exc}')}", file=sys.stderr)
        return ModelError.exit_code
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

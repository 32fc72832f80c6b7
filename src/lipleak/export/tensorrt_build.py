"""Command line: ONNX -> serialised TensorRT engine with a dynamic-batch profile.

    python -m lipleak.export.tensorrt_build MODEL.onnx OUT.engine [--fp16] [--max-batch 64]

The builder itself (precision rules, timing cache) is ``lipleak.runtime.trt_build``, which
the TensorRT backend uses for its engine cache; this is the same build for engines made
by hand. Needs the ``gpu`` extra (tensorrt) and an NVIDIA GPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lipleak.errors import LipleakError, ModelError
from lipleak.runtime.trt_build import build_engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lipleak.export.tensorrt_build",
        description="Build a TensorRT engine from an ONNX model with a dynamic-batch profile.",
    )
    parser.add_argument("onnx", type=Path, help="ONNX model (batch on axis 0 of every input)")
    parser.add_argument("engine", type=Path, help="where to write the serialised engine")
    parser.add_argument("--fp16", action="store_true", help="build an fp16 engine (default fp32)")
    parser.add_argument("--min-batch", type=int, default=1)
    parser.add_argument("--opt-batch", type=int, default=None, help="default: --max-batch")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument(
        "--timing-cache", type=Path, default=None, help="timing cache file to read and update"
    )
    parser.add_argument("--workspace-gb", type=float, default=None)
    args = parser.parse_args(argv)
    try:
        rep = build_engine(
            args.onnx,
            args.engine,
            "fp16" if args.fp16 else "fp32",
            args.min_batch,
            args.opt_batch,
            args.max_batch,
            args.timing_cache,
            args.workspace_gb,
        )
    except LipleakError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"error: cannot write the engine: {exc}", file=sys.stderr)
        return ModelError.exit_code
    shapes = ", ".join(f"{n}: {list(a)}..{list(c)}" for n, (a, _, c) in rep.profile.items())
    tf32 = {True: "on", False: "off", None: "not settable here"}[rep.tf32]
    print(
        f"{rep.engine_path}: TensorRT {rep.trt_version} {rep.precision} "
        f"({rep.fp16_method or 'ieee fp32'}, tf32 {tf32}), {shapes}, built in {rep.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

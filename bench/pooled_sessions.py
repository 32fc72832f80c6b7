"""Run ``python -m lipleak ARGS`` with every onnxruntime session on its default thread
pool, as before models called by several threads were opened ``concurrent``: the
baseline of ``bench_score.py --pooled-sessions``."""

from __future__ import annotations

import sys

from lipleak.runtime import select

_open_one = select._open_one


def _pooled(name, onnx_path, precision, max_batch, opts, concurrent):
    return _open_one(name, onnx_path, precision, max_batch, opts, False)


select._open_one = _pooled

if __name__ == "__main__":
    from lipleak.cli import main

    sys.exit(main(sys.argv[1:]))

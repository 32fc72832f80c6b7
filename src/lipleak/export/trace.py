"""The one ``torch.onnx.export`` call every exporter here makes."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch


def trace_to_onnx(
    model: torch.nn.Module,
    example: tuple,
    path: str | Path,
    inputs: Sequence[str],
    outputs: Sequence[str],
    dynamic_axes: dict | None,
    opset: int,
) -> None:
    """Write ``model`` traced on ``example`` to ``path`` as ONNX.

    The TorchScript-based exporter (``dynamo=False``: the dynamo one cannot trace a
    ScriptModule, which the FID Inception is), with constant folding; its deprecation
    notice and tracer warnings are silenced (they repeat on every call). Callers write
    through ``lipleak.files.atomic_path`` and check the file themselves.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            example,
            str(path),
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )

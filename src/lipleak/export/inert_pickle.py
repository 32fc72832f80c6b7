"""Unpickle a torch checkpoint without running its code: unknown objects become inert data.

Training checkpoints (fairseq's among them) carry objects next to their weights that
``torch.load(weights_only=True)`` refuses: task dictionaries, meters, omegaconf configs.
The full unpickler would import and call whatever the file names, so a file that is not
pinned by sha256 must never reach it. This unpickler resolves only an allowlist of globals
(the tensor rebuild functions, the storage types torch maps itself, ordered dicts, sets,
numpy scalars and arrays, ``argparse.Namespace``, ``_codecs.encode`` for bytes); every
other global is replaced by ``Inert``, which takes any arguments and state and keeps them
as data, so constructing it runs nothing. The weights come back as tensors; the rest as
plain containers and ``Inert`` objects, which ``plain`` turns back into dicts and lists
where they held omegaconf-style containers.
"""

from __future__ import annotations

import pickle
import types
from pathlib import Path
from typing import Any

import torch

__all__ = ["Inert", "load", "plain"]


class Inert:
    """Stands for an object of a class the loader does not import: its name, the
    arguments it was made with and its pickled state, kept as data."""

    name = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.__dict__["_args"] = args
        return obj

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        self.__dict__["_state"] = state

    def __repr__(self) -> str:
        return f"<inert {self.name}>"


def _inert(module: str, name: str) -> type:
    # a subclass per name, so that what a placeholder stood for is still known
    return type("Inert", (Inert,), {"name": f"{module}.{name}"})


def _allowed() -> dict[tuple[str, str], Any]:
    import _codecs
    import argparse
    import collections

    import numpy as np

    ok: dict[tuple[str, str], Any] = {
        # protocol-2 pickles (torch.save's) write bytes as _codecs.encode(str, "latin1")
        ("_codecs", "encode"): _codecs.encode,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "bytearray"): bytearray,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("argparse", "Namespace"): argparse.Namespace,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
    }
    for name in ("_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state"):
        if hasattr(torch._utils, name):
            ok[("torch._utils", name)] = getattr(torch._utils, name)
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            ok[("torch", name)] = getattr(torch, name)
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1
        from numpy.core import multiarray
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        ok[(mod, "scalar")] = multiarray.scalar
        ok[(mod, "_reconstruct")] = multiarray._reconstruct
    if hasattr(np, "dtypes"):
        for name in dir(np.dtypes):
            if name.endswith("DType"):
                ok[("numpy.dtypes", name)] = getattr(np.dtypes, name)
    return ok


class _Unpickler(pickle.Unpickler):
    allowed: dict[tuple[str, str], Any] = {}

    def find_class(self, module: str, name: str):
        found = self.allowed.get((module, name))
        return found if found is not None else _inert(module, name)


def _pickle_module() -> types.ModuleType:
    _Unpickler.allowed = _allowed()
    mod = types.ModuleType("lipleak_inert_pickle")
    mod.Unpickler = _Unpickler  # type: ignore[attr-defined]
    mod.load = lambda f, **kw: _Unpickler(f, **kw).load()  # type: ignore[attr-defined]
    mod.__name__ = "lipleak_inert_pickle"
    return mod


def load(path: str | Path) -> Any:
    """``torch.load`` of ``path`` on the CPU with the allowlist above (see the module doc).

    torch resolves its storage types itself before asking this unpickler; everything it
    asks for goes through the allowlist, so no global outside it is imported or called."""
    return torch.load(
        Path(path), map_location="cpu", weights_only=False, pickle_module=_pickle_module()
    )


def plain(x: Any) -> Any:
    """``x`` with omegaconf-style inert containers turned into dicts/lists and inert value
    nodes into their values (omegaconf pickles a config as its ``_content`` of nodes,
    each holding ``_val``); other inert objects stay as they are."""
    if isinstance(x, Inert):
        state = x.__dict__.get("_state")
        if isinstance(state, dict):
            if "_content" in state:
                return plain(state["_content"])
            if "_val" in state:
                return plain(state["_val"])
        return x
    if isinstance(x, dict):
        return {plain(k): plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [plain(v) for v in x]
    if isinstance(x, tuple):
        return tuple(plain(v) for v in x)
    return x

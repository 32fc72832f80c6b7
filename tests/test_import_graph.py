"""The import graph of ``lipleak`` runs one way: decode → faces → embeddings → metrics →
results store → report, each floor importing only the floors below it.

Every ``import`` statement counts, the ones inside functions too (a lazy import is still a
dependency: it only moves the failure to run time). The graph is read from the installed
package's source with ``ast``, so nothing is imported to build it.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lipleak
from conftest import ROOT

PKG = Path(lipleak.__file__).resolve().parent

# Floors, lowest first. A module may import its own floor (the graph must still be acyclic)
# and any floor below; never a floor above.
FLOORS = {
    "lipleak": 0,
    "lipleak.errors": 0,
    "lipleak.paths": 0,
    "lipleak.files": 0,
    "lipleak.names": 0,
    "lipleak.settings": 0,
    "lipleak.timecode": 0,
    "lipleak.malloc": 0,
    "lipleak._core": 0,
    "lipleak.html": 0,  # templates and embedded plotly.js: report and review pages
    "lipleak.io": 1,  # decode
    "lipleak.runtime": 2,  # models behind one interface
    "lipleak.export": 3,  # checkpoint -> ONNX (torch), used lazily by models
    "lipleak.models": 4,  # registry, store, model wrappers (embeddings)
    "lipleak.faces": 5,
    "lipleak.metrics": 5,
    "lipleak.visual": 6,
    "lipleak.sync": 6,  # one video -> its numbers
    "lipleak.avs": 6,  # one video (+ its GT) -> AVS_u/m/v
    "lipleak.protocol": 7,  # a run dir -> results store -> report
    "lipleak.commands": 8,
    "lipleak.cli": 8,
    "lipleak.__main__": 8,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    base = PKG.parent / rel
    return (
        base.with_suffix(".py").is_file()
        or (base / "__init__.py").is_file()
        or any(base.parent.glob(base.name + ".*.so"))
        or base.with_suffix(".pyi").is_file()
    )


def _imports(path: Path) -> set[str]:
    """Every lipleak module ``path`` imports, resolved to module names."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import mod` depends on pkg.mod, `from mod import name` on mod.
            subs = [f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}")]
            out |= set(subs) if subs else {target}
    return {m for m in out if m == "lipleak" or m.startswith("lipleak.")}


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) - {_module_name(p)} for p in sorted(PKG.rglob("*.py"))}


def _floor(module: str) -> str:
    """The floor key of ``module``: its subpackage, or the top-level module itself."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_graph_is_read():
    graph = _graph()
    assert len(graph) > 40
    # A known edge, so that a parser that finds nothing cannot pass the tests below.
    assert "lipleak.errors" in graph["lipleak.cli"]


def test_no_module_import_cycle():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_no_package_import_cycle():
    packages: dict[str, set[str]] = {}
    for mod, deps in _graph().items():
        packages.setdefault(_floor(mod), set()).update(_floor(d) for d in deps)
    for k in packages:
        packages[k].discard(k)
    assert _cycle(packages) is None, " -> ".join(_cycle(packages))


def test_every_module_has_a_floor():
    unknown = sorted({_floor(m) for m in _graph()} - set(FLOORS))
    assert not unknown, f"add these to FLOORS: {unknown}"


@pytest.mark.parametrize("floor", sorted(set(FLOORS.values())))
def test_imports_only_go_down(floor):
    up = [
        f"{m} -> {d}"
        for m, deps in _graph().items()
        if FLOORS.get(_floor(m)) == floor
        for d in deps
        if FLOORS.get(_floor(d), -1) > floor
    ]
    assert not up, "imports from a higher floor:\n" + "\n".join(up)


def test_io_does_not_import_runtime():
    bad = [
        f"{m} -> {d}"
        for m, deps in _graph().items()
        if _floor(m) == "lipleak.io"
        for d in deps
        if _floor(d) == "lipleak.runtime"
    ]
    assert not bad, bad


def test_installed_package_needs_no_path_hacks():
    """From the repository root (where Ray and `python -m` put the cwd first on sys.path),
    ``lipleak``, ``lipleak.export`` and the compiled core all import from the install: the
    src layout leaves no source tree there to shadow it, and nothing edits sys.path."""
    code = "import lipleak, lipleak._core, lipleak.export.syncnet_shapes; print(lipleak.__file__)"
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert Path(res.stdout.strip()).resolve().parent == PKG
    hacks = [str(p) for p in PKG.rglob("*.py") if re.search(r"sys\.path|__path__", p.read_text())]
    assert not hacks, hacks

"""lipleak-fast: lip-sync (LSE-C/LSE-D) and lip-leakage scoring of talking-face videos."""

import os as _os
import sys as _sys
from importlib.machinery import EXTENSION_SUFFIXES as _SUFFIXES
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lipleak-fast")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"


def _add_installed_package_dir() -> None:
    """Let a source checkout on sys.path find what `pip install .` built.

    Some launchers put the current directory first on sys.path (Ray does for its workers),
    so from the repository root ``import lipleak`` can resolve to the source tree, which has
    neither the compiled ``_core`` nor ``lipleak.export``. Appending the installed package
    directory to ``__path__`` makes both resolve to the installed files.
    """
    here = _os.path.dirname(_os.path.realpath(__file__))
    if any(_os.path.exists(_os.path.join(here, "_core" + s)) for s in _SUFFIXES):
        return
    for entry in _sys.path:
        cand = _os.path.realpath(_os.path.join(entry or _os.getcwd(), "lipleak"))
        if cand != here and any(_os.path.exists(_os.path.join(cand, "_core" + s))
                                for s in _SUFFIXES):
            __path__.append(cand)
            return


_add_installed_package_dir()

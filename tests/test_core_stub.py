"""``_core.pyi`` says what the compiled module really has: every function, argument name,
default and class the stub declares exists at run time and nothing the module exports is
missing from the stub (mypy's stubtest, run against the installed extension)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ALLOWLIST = Path(__file__).with_name("stubtest_allowlist.txt")


def test_stub_matches_the_compiled_module(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "lipleak._core", "--allowlist", str(ALLOWLIST)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout + res.stderr

"""lipleak.malloc: the CLI limits glibc's malloc arenas, unless the user chose a count."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from lipleak import malloc


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_limits_arenas_on_glibc_and_leaves_a_users_choice(monkeypatch):
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert malloc.limit_arenas() is True
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert malloc.limit_arenas() is False


def test_the_cli_sets_it_before_any_command(monkeypatch):
    """``main`` calls it first (a command's threads would otherwise have made their
    arenas already); checked by replacing it in a fresh interpreter."""
    code = textwrap.dedent(
        """
        import lipleak.cli as cli
        calls = []
        cli.limit_arenas = lambda: calls.append(1) or True
        cli.main([])  # no command: prints the help
        print(calls)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[1]"


def test_elsewhere_it_does_nothing(monkeypatch):
    monkeypatch.setattr(malloc.sys, "platform", "darwin")
    assert malloc.limit_arenas() is False


def test_trim_runs_where_glibc_is():
    import platform

    assert malloc.trim() is (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc")

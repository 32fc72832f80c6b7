"""The ``lipleak-fast`` command line: one subcommand per module in lipleak/commands/."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import threading

from . import __version__
from .errors import LipleakError
from .malloc import limit_arenas
from .names import shown

# Each module defines add_parser(subparsers) and run(args) -> int.
COMMANDS = ["sync", "review", "score", "plan", "generate", "report", "models", "doctor"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lipleak-fast",
        description=(
            "Score talking-face (lip-sync) videos: SyncNet LSE-C/LSE-D, the lip-leakage "
            "protocol of Yaman et al. 2025 (SI/AM/XM x CR/AR), and visual quality metrics. "
            "Numbers follow SPEC.md; every result records the models, versions and settings "
            "that produced it."
        ),
    )
    parser.add_argument("--version", action="version", version=f"lipleak-fast {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show full tracebacks instead of one-line errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".commands.{name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(f"{__package__}.commands."):
                continue  # command not built yet in this checkout
            raise
        module.add_parser(sub)
    return parser


class _LevelPrefix(logging.Formatter):
    """``warning: <message>``, the form the CLI's own messages take."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {super().format(record)}"


def _show_library_warnings() -> None:
    # Library modules log instead of printing; this is where their warnings reach the user
    # (stderr). A no-op when the host already configured logging (an embedding app, pytest).
    handler = logging.StreamHandler()
    handler.setFormatter(_LevelPrefix("%(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])


def _stop_if_workers_alive(code: int) -> int:
    """``code``, or end the process at once with it when a run stopped on an error while
    its worker threads (``lipleak.sync.pipeline``) are still inside native code (a decoder,
    onnxruntime): finalising the interpreter under them aborts it ("terminate called
    without an active exception", SIGABRT) instead of exiting with ``code``. Every finished
    result is committed by then; SQLite's WAL is safe against an exit at any point."""
    alive = [
        t
        for t in threading.enumerate()
        if t.is_alive() and t.name.startswith(("lipleak-worker", "lip-tower"))
    ]
    if code and alive:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def main(argv: list[str] | None = None) -> int:
    limit_arenas()  # long runs: memory stays flat (lipleak.malloc)
    _show_library_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except LipleakError as exc:
        if args.debug:
            raise
        # a file name in the message must not split the line or act on the terminal
        print(f"lipleak-fast: error: {shown(exc)}", file=sys.stderr)
        return _stop_if_workers_alive(exc.exit_code)
    except BrokenPipeError:  # output piped into `head` and friends
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("lipleak-fast: interrupted; finished results are kept", file=sys.stderr)
        return _stop_if_workers_alive(130)
    except Exception as exc:  # noqa: BLE001 - last resort: one line, details with --debug
        if args.debug or os.environ.get("LIPLEAK_DEBUG"):
            raise
        print(
            f"lipleak-fast: internal error: {type(exc).__name__}: {shown(exc)} "
            "(rerun with --debug)",
            file=sys.stderr,
        )
        return _stop_if_workers_alive(70)


if __name__ == "__main__":
    sys.exit(main())

"""Option values checked when the command line is parsed, before anything runs.

``type=int_in(lo, hi)`` makes argparse refuse a value out of range with its usage message
and exit status 2, the status of every usage error (``lipleak.errors.UsageError``), so a
bad value never fails late, after a whole video was scored.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

# The offset search keeps N x (2*vshift+1) distances per video: ±1000 frames (40 s at 25
# fps) keeps 16 KB per window, so an hour of video still fits in the core's limit (2^28).
VSHIFT_LIMIT = 1000
# One SyncNet batch holds batch_size 5-frame windows of 224x224x3 floats (3 MB each).
BATCH_LIMIT = 1024
# Each worker holds one video in flight (its decoder, crops and audio, ~40 MB at 720p);
# more workers than this only add memory, never speed (one SyncNet serves them all).
WORKERS_LIMIT = 32

__all__ = ["BATCH_LIMIT", "VSHIFT_LIMIT", "WORKERS_LIMIT", "float_at_least", "int_in"]


def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in lo..hi (no upper bound with ``hi`` None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            span = f"at least {lo}" if hi is None else f"{lo}..{hi}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value

    parse.__name__ = "int"  # argparse names the type in some messages
    return parse


def float_at_least(lo: float, strict: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite number >= lo (> lo with ``strict``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (value > lo if strict else value >= lo) or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(
                f"must be {'more than' if strict else 'at least'} {lo:g}, got {text}"
            )
        return value

    parse.__name__ = "float"
    return parse

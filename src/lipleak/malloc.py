"""glibc's malloc, kept from holding on to freed memory over a long run.

glibc gives each thread that allocates its own arena (up to 8 per core). The scoring
threads (decoding, cropping, the lip tower's sessions, the audio tower) each free
megabyte-sized buffers into their own arena, where the holes left between live blocks
are kept rather than returned: over an hour of detect-mode video (hundreds of face
tracks, each with its own buffers) the process grew ~35 MB beyond what it holds. Two
arenas measured 13 MB less on a 10-minute cut video, at the same frames/s
(``bench/bench_long.py``, README "Long videos").
"""

from __future__ import annotations

import ctypes
import os
import sys

ARENAS = 2
_M_ARENA_MAX = -8  # malloc.h


def limit_arenas(n: int = ARENAS) -> bool:
    """At most ``n`` malloc arenas in this process from now on (glibc on Linux; nothing
    elsewhere, nor when the user set ``MALLOC_ARENA_MAX``). True when it was set."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(_M_ARENA_MAX, int(n)) == 1


def trim() -> bool:
    """Give the heap's free pages back to the system (glibc's ``malloc_trim``).

    Detect mode's first pass over a long video (every frame's detections, then tracking
    shot by shot) leaves tens of MB free in the heap, in holes that the second pass's
    buffers do not fit: kept, they add to that pass's peak. True when it ran."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    malloc_trim(0)
    return True

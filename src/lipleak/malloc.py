"""glibc's malloc arenas, limited for a long run.

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

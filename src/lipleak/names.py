"""File names as text that is safe to store and to show.

A POSIX file name is bytes; Python decodes the bytes that are not UTF-8 as lone surrogates
(``os.fsdecode``). Such a string cannot be written as UTF-8 (SQLite TEXT, a CSV, the
terminal), and a valid name can still hold a newline or an escape sequence that splits a
printed row or acts on the terminal. Two views, both one line:

* ``storable(name)``: the name with each undecodable byte written ``\\xNN``; a valid UTF-8
  name is returned unchanged, so stored keys of such names keep their value.
* ``shown(text)``: ``storable`` plus every control or format character (newline, ESC,
  bidi overrides) written as ``\\xNN`` / ``\\uNNNN``: what a terminal may print.
"""

from __future__ import annotations

import os
import re
import unicodedata

__all__ = ["as_path", "shown", "storable"]

_BYTE = re.compile(r"\\x([89a-f][0-9a-f])")


def storable(name: object) -> str:
    """``name`` as valid UTF-8 text: undecodable bytes (lone surrogates) become ``\\xNN``."""
    return str(name).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(text: object) -> str:
    """``text`` with nothing a terminal acts on: undecodable bytes, control and format
    characters escaped (``\\n``, ``\\x1b``, ``\\u202e``); everything else as it is."""
    s = storable(text)
    if s.isprintable():  # the common case: nothing to escape (space counts as printable)
        return s
    return "".join(
        _escape(ch) if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in s
    )


def as_path(text: str) -> str:
    """The file a ``storable`` name stands for: ``text`` itself when it exists or holds no
    ``\\xNN`` of a non-ASCII byte, else the name with those bytes put back, if that
    file exists (a name may hold a literal backslash-x)."""
    if "\\x" not in text or os.path.lexists(text):
        return text
    raw = _BYTE.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)), text)
    return raw if os.path.lexists(raw) else text

"""Why ``torch.load(weights_only=True)`` refused a file, in one line.

torch's message is several paragraphs and advises ``weights_only=False``, which "will likely
succeed": for a file that was refused because it calls a function on load (a pickle of
``os.system``) that advice is how code gets run. The user needs the cause only: "unsafe
pickle: global posix.system".
"""

from __future__ import annotations

import re

__all__ = ["refusal"]

# torch 2.x words it "Unsupported global: GLOBAL posix.system was not an allowed global"
# or "Trying to load unsupported GLOBAL posix.system whose module posix is blocked"
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_OPCODE = re.compile(r"Unsupported operand (\d+)")
_ADVICE = ("weights_only", "documentation", "trusted source", "torch.serialization")


def refusal(exc: BaseException) -> str:
    """One line saying why ``exc`` (raised by ``torch.load``) refused the file."""
    text = str(exc)
    if m := _GLOBAL.search(text):
        return f"unsafe pickle: global {m.group(1)}"
    if m := _OPCODE.search(text):
        return f"unsafe pickle: opcode {m.group(1)}"
    # anything else (a zip or pickle error of a file that is no checkpoint): torch's first
    # line that is not its advice
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not any(a in ln for a in _ADVICE)]
    first = (useful or lines or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__

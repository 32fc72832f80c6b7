"""Exceptions that the CLI turns into one-line messages (never a traceback).

InputError means "this input cannot be scored" (missing file, not a video, no audio, too
short, no face): batch commands record it as a failed row and go on. Everything else
derived from LipleakError is a setup problem (missing model, bad option) that stops a run.
"""

from __future__ import annotations

from pathlib import Path


class LipleakError(Exception):
    """A problem the user can act on; ``str()`` is the whole message."""

    exit_code = 1


class InputError(LipleakError):
    """One input file cannot be scored. ``status`` is a short machine-readable cause."""

    exit_code = 2

    def __init__(self, path: str | Path | None, cause: str, status: str = "bad_input"):
        self.path = None if path is None else str(path)
        self.cause = cause
        self.status = status
        super().__init__(f"{self.path}: {cause}" if self.path else cause)

    def __reduce__(self):
        # pickled with its own fields (Ray hands it from a worker to the driver)
        return (type(self), (self.path, self.cause, self.status))


class ModelError(LipleakError):
    """A model file is missing, corrupt (wrong sha256) or cannot be loaded."""

    exit_code = 3


class UsageError(InputError):
    """An option value out of its range, or options that do not go together: the run
    never starts. Exit status 2, the status argparse gives its own usage errors, so that
    every usage error of every command exits alike."""

    def __init__(self, cause: str):
        super().__init__(None, cause, "bad_option")

    def __reduce__(self):
        return (type(self), (self.cause,))

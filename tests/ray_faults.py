"""A Ray worker that dies on cue, for the worker-death tests of test_ray.py.

An empty file DIR/.lipleak/kill-worker-<stem> makes the worker that picks up that stem exit
at once, exactly once (it removes the file first), so a test does not have to race the run
with a signal. The module is pickled by value: the workers do not have tests/ on their path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import ray.cloudpickle

from lipleak.protocol.dataset import state_dir
from lipleak.protocol.distributed import StemWorker, SyncWorker

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def kill_file(root: Path, stem: str) -> Path:
    return state_dir(root) / f"kill-worker-{stem}"


class KillFileWorker(StemWorker):
    def score_stem(self, task):
        try:
            kill_file(task.root, task.stem).unlink()
        except FileNotFoundError:
            pass
        else:
            os._exit(1)
        return super().score_stem(task)


class KillFileSyncWorker(SyncWorker):
    """``sync --ray``'s worker that exits when a video of its batch has ``<video>.kill``
    beside it (removed first, so it happens once)."""

    def score_jobs(self, jobs):
        for job in jobs:
            try:
                Path(f"{job.video}.kill").unlink()
            except FileNotFoundError:
                continue
            os._exit(1)
        return super().score_jobs(jobs)

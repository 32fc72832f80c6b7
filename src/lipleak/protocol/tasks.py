"""The work of ``score DIR`` as plain data: what the driver hands out and what comes back.

A *unit* of the results store is one video of one cell scored by one metric group. The
driver groups the pending units by video (``PendingVideo``: the groups still to do) and by
stem (``StemTask``: a GT video and its generations, the granularity of a worker's task);
a worker answers with one ``GroupResult`` per unit. Everything here pickles, so the same
objects travel to Ray workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SYNC_METRICS = ("lse_c", "lse_d", "offset", "n_frames", "n_tracks")


@dataclass
class CellVideo:
    """One video of one protocol cell (the GT videos form the cell ``GT/-``)."""

    stem: str
    setup: str
    reference: str
    path: Path


@dataclass(frozen=True)
class PendingVideo:
    """A cell video with the metric groups still to score and the inputs hash to commit
    them with."""

    cell_video: CellVideo
    groups: tuple[str, ...]
    inputs_hash: str


@dataclass(frozen=True)
class StemTask:
    """The pending videos of one stem (its GT first), with every path a worker reads.

    ``absolute()`` makes the paths mean the same on every node of a shared filesystem.
    """

    root: Path
    stem: str
    gt_video: Path
    has_plan: bool
    driving: Path | None  # the plan's XM driving audio of this stem
    videos: tuple[PendingVideo, ...]

    def absolute(self) -> StemTask:
        def a(p):
            return None if p is None else Path(p).absolute()

        videos = tuple(
            PendingVideo(
                CellVideo(
                    v.cell_video.stem,
                    v.cell_video.setup,
                    v.cell_video.reference,
                    a(v.cell_video.path),
                ),
                v.groups,
                v.inputs_hash,
            )
            for v in self.videos
        )
        return StemTask(
            a(self.root), self.stem, a(self.gt_video), self.has_plan, a(self.driving), videos
        )


@dataclass(frozen=True)
class PendingStem:
    """What discovery found for one stem: the work left (None: nothing) and what is done."""

    stem: str
    task: StemTask | None
    done_videos: int  # cell videos whose every group is done
    skipped: int  # units (video × group) already done


@dataclass
class GroupResult:
    """What the driver commits for one unit: a cell video's numbers of one metric group
    (``status`` "failed": no numbers)."""

    stem: str
    setup: str
    reference: str
    group: str
    settings_hash: str
    inputs_hash: str
    metrics: dict
    reasons: dict = field(default_factory=dict)
    detail: dict = field(default_factory=dict)
    status: str = "ok"
    reason: str | None = None  # "<status>: <cause>" of a failed unit
    message: str | None = None  # the one-line error shown on the progress bar
    last: bool = False  # the video's last pending group: the progress bar moves on

    @property
    def label(self) -> str:
        return f"{self.setup}/{self.reference}/{self.stem} [{self.group}]"

    @classmethod
    def failed(
        cls,
        pending: PendingVideo,
        group: str,
        settings_hash: str,
        status: str,
        cause: str,
        message: str,
        last: bool,
    ) -> GroupResult:
        v = pending.cell_video
        names = SYNC_METRICS if group == "sync" else ()
        return cls(
            v.stem,
            v.setup,
            v.reference,
            group,
            settings_hash,
            pending.inputs_hash,
            dict.fromkeys(names),
            status="failed",
            reason=f"{status}: {cause}",
            message=message,
            last=last,
        )

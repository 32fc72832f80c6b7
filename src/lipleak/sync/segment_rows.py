"""``sync --segments FILE``: one line per SPEC §11 segment, CSV or JSONL by the suffix.

A line names its video, audio ("" = the video's own track) and track (0, 1, ... ; empty
for a detect-mode ``no_face`` stretch, which belongs to no track), then the segment's
fields (``lipleak.sync.segments.Segment``). ``av_offset_ms`` > 0: the audio leads.
Floats are written as their repr (they read back exactly); numbers a segment does not have
are empty (CSV) or null (JSONL). Written atomically, like the run's other files.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..errors import InputError
from ..files import atomic_write
from .rows import _cell, _finite

SEGMENT_COLUMNS = (
    "video",
    "audio",
    "track",
    "first_window",
    "last_window",
    "start_frame",
    "end_frame",
    "start_s",
    "end_s",
    "start_tc",
    "end_tc",
    "offset",
    "av_offset_ms",
    "lse_c",
    "lse_d",
    "rms_dbfs",
    "status",
)
FORMATS = {".csv": "csv", ".jsonl": "jsonl"}


def segments_format(path: Path) -> str:
    """ "csv" or "jsonl" from the file's suffix; a usage error for anything else (checked
    before anything is scored)."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(
            None, f"--segments {path}: the file name must end in .csv or .jsonl", "bad_option"
        )
    return fmt


def row_segments(row: dict) -> list[dict]:
    """The segment lines of one stored row (``lipleak.sync.results``): each track's
    segments in order, then the no_face stretches; none for a failed row."""
    if row["status"] != "ok":
        return []
    head = {"video": row["video"], "audio": row.get("audio") or ""}
    out = [
        head | {"track": k} | seg
        for k, t in enumerate(row.get("tracks") or [])
        for seg in t.get("segments") or []
    ]
    no_face = (row.get("detail") or {}).get("no_face") or []
    return out + [head | {"track": None} | seg for seg in no_face]


def write_segments(path: Path, rows: list[dict]) -> None:
    lines = [line for row in rows for line in row_segments(row)]
    if segments_format(path) == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(SEGMENT_COLUMNS)
        w.writerows([_cell(line.get(c)) for c in SEGMENT_COLUMNS] for line in lines)
        atomic_write(path, buf.getvalue().encode("utf-8", "surrogateescape"))
        return
    text = "".join(
        json.dumps(_finite({c: line.get(c) for c in SEGMENT_COLUMNS}), ensure_ascii=True) + "\n"
        for line in lines
    )
    atomic_write(path, text)

"""Sync results-store rows built from chosen segment offsets, for the review page's test
and bench (no model run): the segments follow SPEC §11's arithmetic
(``segments.segment_ranges``, ``timecode``) so the page sees what ``sync`` stores."""

from __future__ import annotations

from pathlib import Path

from lipleak.errors import InputError
from lipleak.sync.results import SyncStore, row_from_error
from lipleak.sync.segments import segment_ranges
from lipleak.timecode import timecode

PROVENANCE = {
    "package": "lipleak-fast",
    "settings": {
        "gate": "itu-bt1359",
        "max_lead_ms": None,
        "max_lag_ms": None,
        "min_segment_lse_c": 3.0,
    },
    "settings_hash": "0123abcd",
    "models": {"syncnet": {"checkpoint": {"name": "syncnet_v2_random", "sha256": "4e3e00"}}},
    "libraries": {"av": "test"},
}


def segments(offsets, lse_c, n_windows, length, hop, src_fps=25.0, start=0) -> list[dict]:
    """One segment per (first, last) window run; ``offsets``/``lse_c``: one per segment."""
    out = []
    for j, (a, b) in enumerate(segment_ranges(n_windows, length, hop)):
        sf, ef = start + a, start + b + 4
        off = int(offsets[j % len(offsets)])
        out.append(
            {
                "first_window": a,
                "last_window": b,
                "start_frame": sf,
                "end_frame": ef,
                "start_s": sf / 25,
                "end_s": (ef + 1) / 25,
                "start_tc": timecode(sf, src_fps),
                "end_tc": timecode(ef, src_fps),
                "offset": off,
                "av_offset_ms": 40.0 * off,
                "lse_c": float(lse_c[j % len(lse_c)]),
                "lse_d": 7.5,
                "rms_dbfs": -20.0,
                "status": "ok",
            }
        )
    return out


def row(video, offsets, lse_c=(6.0,), seconds=3.0, length=25, hop=12, cuts=()) -> dict:
    """A scored row of one face track over the whole video; ``cuts`` (frames) become the
    shots of detect mode."""
    n_frames = round(seconds * 25)
    segs = segments(offsets, lse_c, n_frames - 4, length, hop)
    bounds = [0, *cuts, n_frames]
    shots = [
        {"index": k, "start_frame": a, "end_frame": b - 1, "start_s": a / 25, "end_s": b / 25}
        for k, (a, b) in enumerate(zip(bounds, bounds[1:]))
    ]
    track = {
        "start_frame": 0,
        "end_frame": n_frames - 1,
        "n_windows": n_frames - 4,
        "offset": int(sorted(offsets)[len(offsets) // 2]),
        "lse_c": float(lse_c[0]),
        "lse_d": 7.5,
        "shot": 0,
        "segments": segs,
    }
    return {
        "video": str(video),
        "audio": "",
        "settings_hash": PROVENANCE["settings_hash"],
        "inputs_hash": "x",
        "status": "ok",
        "reason": "",
        "offset": track["offset"],
        "lse_c": track["lse_c"],
        "lse_d": 7.5,
        "n_frames": n_frames,
        "n_tracks": 1,
        "tracks": [track],
        "detail": {"src_fps": 25.0, "shots": shots, "no_face": []},
    }


def failed_row(video, status="decode_error", reason="cannot decode") -> dict:
    """The row ``sync`` stores for a video it could not score (``row_from_error``)."""
    row = row_from_error((str(video), ""), InputError(Path(video), reason, status))
    return {**row, "settings_hash": PROVENANCE["settings_hash"], "inputs_hash": "x"}


def make_store(db: Path, rows: list[dict]) -> Path:
    with SyncStore(db) as store:
        store.start_run("0.1.0", ["sync", "DIR", "--db", str(db)], PROVENANCE)
        for r in rows:
            store.commit(r)
        store.finish_run()
    return db

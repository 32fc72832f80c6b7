"""The review page of a ``sync`` results store (``lipleak-fast review DB``): what it shows,
assembled from the stored rows; ``lipleak.html`` renders it.

Verdicts, statuses and failing ranges are re-derived from the stored segment numbers
(``timeline.row_timeline``) under the gate asked for, or else the gate of the store's
latest run: nothing is rescored. The store is opened read-only (a review never writes
to it, and a file that is not a sync store is refused untouched).

Per video the page gets compact columns (one list per field, per track) rather than a
list of segment objects: a 1,000-video store with ~60 segments each stays a few MB of
JSON, parsed once; the browser builds each chart when its section scrolls into view.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

from .. import __version__
from ..errors import InputError
from ..names import as_path, shown
from .results import COLUMNS, SyncStore
from .segments import MS_PER_FRAME
from .timeline import DEFAULT_GATE, VERDICTS, TimelineRule, parse_gate, row_timeline

# Table order when sorting by verdict: the worst first, in sync last.
VERDICT_RANK = {
    v: k
    for k, v in enumerate(
        ("global_offset", "drift_early", "drift_late", "local_errors", "not_measurable", "in_sync")
    )
}
assert set(VERDICT_RANK) == set(VERDICTS)
FAILED_RANK = -1  # videos that could not be scored sort before every verdict
STATUS_CODES = {"ok": 0, "silent": 1, "low_confidence": 2, "no_face": 3}


def read_store(db: Path) -> tuple[list[dict], list[dict]]:
    """(rows, runs) of a sync results store, read-only; the latest row of each (video,
    audio) key, in commit order. InputError (exit 2) when ``db`` is missing or is not a
    sync store."""
    db = Path(db)
    if not db.is_file():
        raise InputError(
            db, "no such results store (make one with `sync DIR --db FILE`)", "missing"
        )
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise InputError(db, f"cannot open it: {exc}", "bad_input") from None
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        cols = (
            {r[1] for r in con.execute("PRAGMA table_info(videos)")}
            if "videos" in tables
            else set()
        )
        needed = set(COLUMNS) - {"avs_u", "lpips"}
        if not ({"runs", "videos"} <= tables and needed <= cols):
            raise InputError(
                db,
                "not a sync results store (written by `lipleak-fast sync ... --db`)",
                "bad_input",
            )
        names = ", ".join(f'"{c}"' if c in cols else f'NULL AS "{c}"' for c in COLUMNS)
        found = [
            SyncStore._decode(r) for r in con.execute(f"SELECT {names} FROM videos ORDER BY seq")
        ]
        runs = [
            {
                "run_id": r[0],
                "started": r[1],
                "finished": r[2],
                "version": r[3],
                "argv": r[4],
                "provenance": r[5],
            }
            for r in con.execute(
                "SELECT run_id, started, finished, version, argv, provenance FROM runs "
                "ORDER BY run_id"
            )
        ]
    except sqlite3.DatabaseError as exc:
        raise InputError(db, f"not a readable SQLite store: {exc}", "bad_input") from None
    finally:
        con.close()
    for r in runs:
        r["argv"] = json.loads(r["argv"] or "[]")
        r["provenance"] = json.loads(r["provenance"] or "{}")
    latest: dict[tuple[str, str], dict] = {}
    for r in found:
        latest.pop((r["video"], r["audio"]), None)  # re-inserted: keeps commit order
        latest[(r["video"], r["audio"])] = r
    return list(latest.values()), runs


def store_rule(runs: list[dict]) -> TimelineRule:
    """The gate and threshold of the store's latest run (the defaults without one)."""
    s = (runs[-1]["provenance"].get("settings") or {}) if runs else {}
    gate = parse_gate(s.get("gate") or DEFAULT_GATE, s.get("max_lead_ms"), s.get("max_lag_ms"))
    return TimelineRule(gate, float(s.get("min_segment_lse_c", 3.0)))


def video_url(video: str, out_dir: Path) -> str:
    """The video's path relative to the page's folder, percent-encoded for ``src``: every
    character but letters, digits, ``/`` and ``_.-~`` is escaped, so a name can be
    neither markup nor a scheme."""
    rel = os.path.relpath(os.path.abspath(video), os.path.abspath(out_dir))
    return quote(Path(rel).as_posix().encode("utf-8", "surrogateescape"), safe="/")


def _track_columns(segs: list[dict], rule: TimelineRule) -> dict:
    return {
        "t0": [s["start_s"] for s in segs],
        "t1": [s["end_s"] for s in segs],
        "tc0": [s["start_tc"] for s in segs],
        "tc1": [s["end_tc"] for s in segs],
        "ms": [s["av_offset_ms"] for s in segs],
        # the page shows 3 decimals; 4 keep the JSON of a long run a third smaller
        "c": [_r4(s["lse_c"]) for s in segs],
        "d": [_r4(s["lse_d"]) for s in segs],
        "st": [STATUS_CODES.get(s["status"], 3) for s in segs],
        # a failing segment: ok and outside the gate (the ones the verdict counts)
        "f": [int(s["status"] == "ok" and rule.gate.fails(s["av_offset_ms"])) for s in segs],
    }


def _r4(x):
    return None if x is None else round(x, 4)


def _gate_band(rule: TimelineRule) -> list[float]:
    """[low, high] in ms of the passing offsets, for the chart's shaded band."""
    g = rule.gate
    if g.frames is not None:
        # |offset| >= K frames fails: the band ends half a frame beyond the last passing one
        half = (g.frames - 0.5) * MS_PER_FRAME
        return [-half, half]
    return [-g.max_lag_ms, g.max_lead_ms]


def video_entry(i: int, row: dict, rule: TimelineRule, out_dir: Path) -> dict:
    """One video of the page: the table's numbers and the chart's columns."""
    video = row["video"]
    path = as_path(video)
    exists = os.path.isfile(path)
    entry = {
        "i": i,
        "path": path,  # for the thumbnails' decoder; never written into the page
        "name": shown(video),
        "base": shown(os.path.basename(video)),
        "audio": shown(row["audio"]) if row["audio"] else "",
        "src": video_url(path, out_dir) if exists else None,
        "exists": exists,
        "status": row["status"],
        "reason": row.get("reason") or "",
        "offset": row["offset"],
        "lse_c": row["lse_c"],
        "lse_d": row["lse_d"],
        "settings_hash": row["settings_hash"],
    }
    t = row_timeline(row, rule) if row["status"] == "ok" else None
    if t is None:
        entry.update(
            verdict="failed" if row["status"] != "ok" else "no timeline",
            rank=FAILED_RANK if row["status"] != "ok" else VERDICT_RANK["not_measurable"],
            global_offset_ms=None,
            drift=None,
            failing=[],
            tracks=[],
            cuts=[],
            noface=[],
            n_segments=0,
        )
        return entry
    detail = row.get("detail") or {}
    shots = detail.get("shots") or []
    tracks = [t_["segments"] for t_ in row["tracks"]]
    entry.update(
        verdict=t["verdict"],
        rank=VERDICT_RANK[t["verdict"]],
        global_offset_ms=t["global_offset_ms"],
        drift=t["drift_ms_per_min"],
        failing=[
            [r["start_s"], r["end_s"], r["start_tc"], r["end_tc"], r["worst_av_offset_ms"]]
            for r in t["failing"]
        ],
        tracks=[_track_columns(segs, rule) for segs in tracks],
        # detect mode's cuts: where every shot but the first starts
        cuts=[s["start_s"] for s in shots[1:] if "start_s" in s],
        noface=[[s["start_s"], s["end_s"]] for s in detail.get("no_face") or []],
        n_segments=sum(len(s) for s in tracks),
        src_fps=detail.get("src_fps"),
    )
    return entry


def review_page(
    db: Path,
    out_html: Path,
    rule: TimelineRule | None = None,
    thumbnails: bool = True,
    progress=lambda done, total: None,
) -> dict:
    """Everything the page shows; ``rule`` None: the store's latest run's gate."""
    rows, runs = read_store(db)
    rule_from = "this review's options" if rule is not None else "the store's latest run"
    rule = rule or store_rule(runs)
    out_dir = Path(out_html).resolve().parent
    videos = [video_entry(i, r, rule, out_dir) for i, r in enumerate(rows)]
    notes = []
    if thumbnails:
        from .thumbnails import add_thumbnails

        missing = add_thumbnails(videos, progress)
        if missing:
            notes.append(
                f"{missing} video file(s) not found: no thumbnails or player for them "
                "(the page links each video by its path relative to this page)"
            )
    else:
        notes.append("thumbnails left out (--no-thumbnails)")
    for v in videos:
        v.setdefault("thumbs", [])
    counts = {}
    for v in videos:
        counts[v["verdict"]] = counts.get(v["verdict"], 0) + 1
    last = runs[-1] if runs else {}
    prov = last.get("provenance") or {}
    return {
        "title": f"lipleak-fast review: {shown(Path(db).name)}",
        "store": shown(Path(db).resolve()),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "version": __version__,
        "rule": rule.to_dict(),
        "rule_from": rule_from,
        "band": _gate_band(rule),
        "counts": sorted(counts.items(), key=lambda kv: VERDICT_RANK.get(kv[0], FAILED_RANK)),
        "runs": [
            {
                "run_id": r["run_id"],
                "started": _when(r["started"]),
                "finished": _when(r["finished"]),
                "version": r["version"],
                "argv": " ".join(map(shown, r["argv"])),
            }
            for r in runs
        ],
        "settings": prov.get("settings") or {},
        "settings_hash": prov.get("settings_hash", ""),
        "models": _models(prov.get("models") or {}),
        "libraries": prov.get("libraries") or {},
        "notes": notes,
        "videos": videos,
    }


def _models(models: dict) -> list[tuple[str, str]]:
    out = []

    def walk(d, path):
        if not isinstance(d, dict):
            return
        if isinstance(d.get("sha256"), str):
            out.append((".".join(path), f"{d.get('name') or ''} sha256 {d['sha256']}".strip()))
        for k, v in d.items():
            walk(v, path + [k])

    walk(models, [])
    return out


def _when(t) -> str:
    return "not finished" if t is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


# what the page's script needs per video; names and paths stay in the escaped markup
_SCRIPT_KEYS = ("i", "tracks", "failing", "cuts", "noface", "global_offset_ms")


def render_review(page: dict) -> str:
    """The page's HTML (one self-contained file; ``lipleak.html``)."""
    from ..html import plotly_version, render

    page_data = {
        "band": page["band"],
        "min_lse_c": page["rule"]["min_segment_lse_c"],
        "videos": [{k: v.get(k) for k in _SCRIPT_KEYS} for v in page["videos"]],
    }
    return render(
        "review.html.j2",
        charts=any(v["tracks"] for v in page["videos"]),
        plotly_version=plotly_version(),
        page_data=page_data,
        **page,
    )


def write_review(
    db: Path,
    out_html: Path,
    rule: TimelineRule | None = None,
    thumbnails: bool = True,
    progress=lambda done, total: None,
) -> dict:
    """Write the review page of ``db`` at ``out_html`` (atomically); returns its data."""
    from ..errors import LipleakError
    from ..files import atomic_write

    page = review_page(db, out_html, rule, thumbnails, progress)
    text = render_review(page)
    try:
        atomic_write(Path(out_html), text.encode("utf-8", "surrogateescape"))
    except OSError as exc:
        raise LipleakError(
            f"{out_html}: cannot write the review page: {exc.strerror or exc}"
        ) from None
    return page

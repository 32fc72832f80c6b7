"""What a batch ``sync`` run prints and writes from its rows (``lipleak.sync.results``).

* ``format_header``/``format_row``: one fixed-width line per video.
* ``write_csv``: one line per video (``track`` = "video") followed by one per face track
  (``track`` = 0, 1, ...; ``shot`` = the shot it lies in) and one per shot (``track`` =
  "shot", its frames in ``start_frame``/``end_frame``); ``write_jsonl``: one JSON object per
  video, tracks and shots nested.
* ``summarize``/``format_summary``: count, means, spread and range over the scored videos.
* ``keep``/``write_keep_list``: the videos passing thresholds, as a list ``collect_jobs``
  reads back (``@LIST``).

Every file is written atomically (``lipleak.files``): a reader or a killed run sees the old
file or the whole new one.

**Means, as Wav2Lip computes them.** Wav2Lip's ``evaluation/scores_LSE/
calculate_scores_LRS.py`` starts ``avg_confidence = 0.`` and ``avg_min_distance = 0.``,
adds each video's SyncNet ``conf`` and ``minval`` (0-d float32 arrays) in the order it
scores the videos, and prints ``avg_confidence / len(all_videos)``. Under the NumPy 1.x it
ran with, ``python float + float32`` is promoted to float64, so the sum is a sequential
float64 sum of float32 values (NumPy 2 keeps float32 there, NEP 50; the script's numbers
come from 1.x). ``summarize`` does the same: the rows' per-video numbers are Python floats
(float64, made from SyncNet's float32 outputs), added one after the other in the order of
``rows`` (the caller passes them in input order), then divided by the count. Its order is
``glob.glob``'s (directory order), so to reproduce one of its printouts to the last bit,
pass the videos in that order.

**Failed videos.** That script has no failure handling: one video it cannot score stops
it, so its averages exist only when every video scored, and then ours equal them. Here a
failed video is counted in ``failed`` (by status) and left out of every mean, spread and
range, which are over the ``ok`` rows only.

**Spread.** ``std_*`` is the population standard deviation (ddof = 0, NumPy's ``np.std``
default): sqrt(sum((x - mean)^2) / n) with the mean above, two passes in float64; 0.0 for
one video, None for none.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import LipleakError
from ..files import atomic_write
from ..names import as_path, shown
from .timeline import VERDICTS

CSV_COLUMNS = (
    "video",
    "audio",
    "track",
    "status",
    "reason",
    "offset",
    "lse_c",
    "lse_d",
    "n_frames",
    "n_tracks",
    "start_frame",
    "end_frame",
    "shot",  # a track line: the shot it lies in; a shot line: its index
    "settings_hash",
    "avs_u",  # only with --avs (empty otherwise)
    "lpips",  # only with --gt-dir (empty otherwise)
    "verdict",  # the video's timeline verdict under the run's gate (SPEC §11)
    "audio_stream",  # the video's own audio stream scored: "a:N (language, codec)"
)
# detail fields (VideoSync.to_dict) that a JSONL line carries besides the row's own
JSONL_DETAIL = (
    "audio_source",
    "audio_shift_s",
    "audio_stream",
    "src_fps",
    "resampled",
    "frame_path",
    "decoder",
    "track_rule",
)

_W = (12, 6, 8, 8, 7, 6)  # status, offset, LSE-C, LSE-D, frames, tracks


# --- printed lines -------------------------------------------------------------------------


def format_header() -> str:
    w = _W
    return (
        f"{'status':<{w[0]}} {'offset':>{w[1]}} {'LSE-C':>{w[2]}} {'LSE-D':>{w[3]}} "
        f"{'frames':>{w[4]}} {'tracks':>{w[5]}}  video"
    )


def format_row(row: dict) -> str:
    """One line: status, offset, LSE-C, LSE-D, frames, tracks, then the path (and audio);
    a failed video shows dashes for the numbers and its reason after the path."""
    w = _W
    # names are escaped: a newline must not split the row, an escape sequence not act
    audio = stream_label(row) or row.get("audio")
    where = shown(row["video"]) + (f"  (audio {shown(audio)})" if audio else "")
    if row["status"] != "ok":
        dashes = " ".join(f"{'-':>{n}}" for n in w[1:])
        return f"{row['status']:<{w[0]}} {dashes}  {where}: {shown(row.get('reason') or '')}"
    return (
        f"{'ok':<{w[0]}} {_int(row['offset']):>{w[1]}} {_num(row['lse_c']):>{w[2]}} "
        f"{_num(row['lse_d']):>{w[3]}} {_int(row['n_frames']):>{w[4]}} "
        f"{_int(row['n_tracks']):>{w[5]}}  {where}"
        + ("" if row.get("avs_u") is None else f"  AVS_u {row['avs_u']:.4f}")
        + ("" if row.get("lpips") is None else f"  LPIPS {row['lpips']:.4f}")
        + (f"  ({shown(row['reason'])})" if row.get("reason") else "")
    )


def stream_label(row: dict) -> str:
    """``a:N (language, codec)`` of the audio stream a row's numbers come from, "" when
    none was chosen (a file, or the stream ffmpeg picks of a video with one)."""
    st = (row.get("detail") or {}).get("audio_stream")
    if not st or not str(row.get("audio") or "").startswith("#a:"):
        return ""
    return f"a:{st['number']} ({st.get('language') or 'und'}, {st.get('codec', '')})"


def _num(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def _int(x) -> str:
    return "-" if x is None else str(int(x))


# --- CSV and JSONL -------------------------------------------------------------------------


def _cell(x) -> str:
    # repr of a float is the shortest text that reads back to the same float
    if x is None:
        return ""
    return repr(float(x)) if isinstance(x, float) else str(x)


def csv_lines(row: dict) -> list[list[str]]:
    """The CSV lines of one row: the video, then each of its tracks."""
    ok = row["status"] == "ok"
    video = {
        "video": row["video"],
        "audio": row.get("audio") or "",
        "track": "video",
        "status": row["status"],
        "reason": row.get("reason") or "",
        "offset": row.get("offset") if ok else None,
        "lse_c": row.get("lse_c") if ok else None,
        "lse_d": row.get("lse_d") if ok else None,
        "n_frames": row.get("n_frames") if ok else None,
        "n_tracks": row.get("n_tracks") if ok else None,
        "start_frame": None,
        "end_frame": None,
        "shot": None,
        "settings_hash": row.get("settings_hash") or "",
        "avs_u": row.get("avs_u") if ok else None,
        "lpips": row.get("lpips") if ok else None,
        "verdict": (row.get("timeline") or {}).get("verdict"),
        "audio_stream": stream_label(row),
    }
    out = [[_cell(video[c]) for c in CSV_COLUMNS]]
    for i, t in enumerate((row.get("tracks") or []) if ok else []):
        line = video | {
            "track": i,
            "reason": "",
            "offset": t["offset"],
            "lse_c": t["lse_c"],
            "lse_d": t["lse_d"],
            "n_frames": t["end_frame"] - t["start_frame"] + 1,  # frames of this track
            "n_tracks": None,
            "start_frame": t["start_frame"],
            "end_frame": t["end_frame"],
            "shot": t.get("shot", 0),
            "avs_u": None,
            "lpips": None,
        }
        out.append([_cell(line[c]) for c in CSV_COLUMNS])
    for shot in _shots(row) if ok else []:
        line = video | {
            "track": "shot",
            "reason": "" if shot["tracked"] else "shorter than --min-track: not tracked",
            "offset": None,
            "lse_c": None,
            "lse_d": None,
            "n_frames": shot["end_frame"] - shot["start_frame"] + 1,
            "n_tracks": sum(t.get("shot", 0) == shot["index"] for t in row.get("tracks") or []),
            "start_frame": shot["start_frame"],
            "end_frame": shot["end_frame"],
            "shot": shot["index"],
            "avs_u": None,
            "lpips": None,
            "verdict": None,
        }
        out.append([_cell(line[c]) for c in CSV_COLUMNS])
    return out


def _shots(row: dict) -> list[dict]:
    """The shots of a scored row (rows stored before shots existed: none)."""
    return list((row.get("detail") or {}).get("shots") or [])


def write_csv(path: Path, rows: list[dict]) -> None:
    """CSV_COLUMNS, one line per video then one per track; failures have empty numbers.

    Floats are written as their repr (they read back exactly); a track line's ``n_frames``
    is its own length, ``end_frame`` inclusive. File names that are not UTF-8 are written
    as the store keeps them (``lipleak.names.storable``: each such byte as ``\\xNN``).
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for row in rows:
        w.writerows(csv_lines(row))
    _write(path, buf.getvalue().encode("utf-8", "surrogateescape"))


def _finite(x):
    """``x`` with every NaN and ±inf replaced by None (JSON has no such numbers)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def json_object(row: dict) -> dict:
    """The JSONL object of one row: its fields, its tracks, a few detail fields."""
    obj = {
        k: row.get(k)
        for k in (
            "video",
            "audio",
            "status",
            "reason",
            "offset",
            "lse_c",
            "lse_d",
            "n_frames",
            "n_tracks",
            "settings_hash",
            "inputs_hash",
            "avs_u",
            "lpips",
        )
    }
    obj["audio"] = obj["audio"] or ""
    obj["reason"] = obj["reason"] or ""
    obj["tracks"] = list(row.get("tracks") or [])
    obj["shots"] = _shots(row)
    obj["timeline"] = row.get("timeline")
    detail = row.get("detail") or {}
    obj |= {k: detail.get(k) for k in JSONL_DETAIL}
    return _finite(obj)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """One JSON object per line and video (``audio`` "" = its own track; NaN/inf → null)."""
    lines = []
    for row in rows:
        obj = json_object(row)
        text = json.dumps(obj, allow_nan=False, ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a name that is not UTF-8: escaped, still valid JSON
            text = json.dumps(obj, allow_nan=False, ensure_ascii=True)
        lines.append(text + "\n")
    _write(path, "".join(lines))


# --- summary -------------------------------------------------------------------------------


@dataclass
class Summary:
    """Counts over all rows; every other field over the ok rows only (None without one)."""

    count: int = 0
    ok: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # status -> videos
    mean_lse_c: float | None = None
    mean_lse_d: float | None = None
    std_lse_c: float | None = None  # population std, ddof = 0
    std_lse_d: float | None = None
    min_lse_c: float | None = None
    max_lse_c: float | None = None
    min_lse_d: float | None = None
    max_lse_d: float | None = None
    mean_offset: float | None = None
    mean_abs_offset: float | None = None
    in_sync: int = 0  # ok videos with offset 0
    frames: int = 0  # frames scored, over the ok videos
    avs_u_n: int = 0  # ok videos with an AVS_u (sync --avs)
    mean_avs_u: float | None = None
    std_avs_u: float | None = None
    lpips_n: int = 0  # ok videos with an LPIPS (sync --gt-dir)
    mean_lpips: float | None = None
    std_lpips: float | None = None
    verdicts: dict[str, int] = field(default_factory=dict)  # timeline verdict -> videos
    gate: str | None = None  # the gate of those verdicts

    def to_dict(self) -> dict:
        return _finite(asdict(self))


def _mean(values: list[float]) -> float:
    # Sequential float64 sum in the given order, then one division: Wav2Lip's loop.
    acc = 0.0
    for v in values:
        acc += v
    return acc / len(values)


def _std(values: list[float], mean: float) -> float:
    acc = 0.0
    for v in values:
        acc += (v - mean) ** 2
    return math.sqrt(acc / len(values))


def summarize(rows: list[dict]) -> Summary:
    """Counts, and means/std/min/max over the ok rows in the order given (module doc)."""
    s = Summary(count=len(rows))
    ok = [r for r in rows if r["status"] == "ok"]
    for r in rows:
        if r["status"] != "ok":
            s.failures[r["status"]] = s.failures.get(r["status"], 0) + 1
    s.ok, s.failed = len(ok), len(rows) - len(ok)
    s.failures = dict(sorted(s.failures.items()))
    for r in ok:
        if r.get("timeline"):
            v = r["timeline"]["verdict"]
            s.verdicts[v] = s.verdicts.get(v, 0) + 1
            s.gate = r["timeline"]["gate"]["name"]
    if not ok:
        return s
    c = [float(r["lse_c"]) for r in ok]
    d = [float(r["lse_d"]) for r in ok]
    off = [int(r["offset"]) for r in ok]
    s.mean_lse_c, s.mean_lse_d = _mean(c), _mean(d)
    s.std_lse_c, s.std_lse_d = _std(c, s.mean_lse_c), _std(d, s.mean_lse_d)
    s.min_lse_c, s.max_lse_c = min(c), max(c)
    s.min_lse_d, s.max_lse_d = min(d), max(d)
    s.mean_offset = _mean([float(o) for o in off])
    s.mean_abs_offset = _mean([float(abs(o)) for o in off])
    s.in_sync = sum(o == 0 for o in off)
    s.frames = sum(int(r["n_frames"] or 0) for r in ok)
    u = [float(r["avs_u"]) for r in ok if r.get("avs_u") is not None]
    if u:
        s.avs_u_n, s.mean_avs_u = len(u), _mean(u)
        s.std_avs_u = _std(u, s.mean_avs_u)
    lp = [float(r["lpips"]) for r in ok if r.get("lpips") is not None]
    if lp:
        s.lpips_n, s.mean_lpips = len(lp), _mean(lp)
        s.std_lpips = _std(lp, s.mean_lpips)
    return s


def format_summary(s: Summary) -> str:
    failed = ""
    if s.failed:
        failed = " (" + ", ".join(f"{k} {n}" for k, n in s.failures.items()) + ")"
    head = f"{s.count} videos: {s.ok} scored, {s.failed} failed{failed}"
    if not s.ok:
        return head
    return "\n".join(
        [
            head,
            f"LSE-C  mean {s.mean_lse_c:.4f}  std {s.std_lse_c:.4f}  "
            f"min {s.min_lse_c:.4f}  max {s.max_lse_c:.4f}",
            f"LSE-D  mean {s.mean_lse_d:.4f}  std {s.std_lse_d:.4f}  "
            f"min {s.min_lse_d:.4f}  max {s.max_lse_d:.4f}",
            f"offset mean {s.mean_offset:+.3f}  mean |offset| {s.mean_abs_offset:.3f} frames; "
            f"{s.in_sync} of {s.ok} at offset 0",
            *(
                [f"AVS_u  mean {s.mean_avs_u:.4f}  std {s.std_avs_u:.4f}  (over {s.avs_u_n})"]
                if s.avs_u_n
                else []
            ),
            *(
                [f"LPIPS  mean {s.mean_lpips:.4f}  std {s.std_lpips:.4f}  (over {s.lpips_n})"]
                if s.lpips_n
                else []
            ),
            *(
                [
                    f"timeline ({s.gate}): "
                    + ", ".join(f"{k} {s.verdicts[k]}" for k in VERDICTS if k in s.verdicts)
                ]
                if s.verdicts
                else []
            ),
            # full precision, as Wav2Lip's calculate_scores_LRS.py prints its two means
            f"Average Confidence: {s.mean_lse_c!r}  Average Minimum Distance: {s.mean_lse_d!r}",
            f"(over the {s.ok} scored videos, failed ones left out; std with ddof=0)",
        ]
    )


# --- keep lists ----------------------------------------------------------------------------


def keep(
    rows: list[dict],
    min_lse_c: float | None = None,
    max_lse_d: float | None = None,
    max_abs_offset: int | None = None,
) -> list[dict]:
    """The ok rows passing every given threshold, in order. Inclusive: LSE-C ≥ min_lse_c,
    LSE-D ≤ max_lse_d, |offset| ≤ max_abs_offset; None skips that check. A missing or NaN
    value fails any check made on it."""

    def passes(r: dict) -> bool:
        if r["status"] != "ok":
            return False
        checks = (
            (min_lse_c, r.get("lse_c"), lambda v, t: v >= t),
            (max_lse_d, r.get("lse_d"), lambda v, t: v <= t),
            (max_abs_offset, r.get("offset"), lambda v, t: abs(v) <= t),
        )
        # NaN compares False, so a NaN value fails like a missing one
        return all(t is None or (v is not None and ok(v, t)) for t, v, ok in checks)

    return [r for r in rows if passes(r)]


def _list_field(path: str) -> str:
    if not path or any(c in path for c in "\t\n\r"):
        raise LipleakError(f"{path!r}: cannot be written to a list file (empty, tab or newline)")
    if not path.strip() or path.lstrip().startswith("#"):
        return "./" + path  # would read back as a blank or comment line
    return path


def write_keep_list(path: Path, rows: list[dict]) -> None:
    """One line per row: ``video``, or ``video<TAB>audio`` when an audio file was given;
    the ``@LIST`` format ``collect_jobs`` reads (the rows' paths are absolute)."""
    lines = []
    for r in rows:
        fields = [_list_field(as_path(r["video"]))]
        if r.get("audio"):
            fields.append(_list_field(as_path(r["audio"])))
        lines.append("\t".join(fields) + "\n")
    _write(path, "".join(lines).encode("utf-8", "surrogateescape"))


def _write(path: Path, data: bytes | str) -> None:
    """``atomic_write``, with a full disk or a folder that cannot be written as one line
    naming the file (the rows are in the results store already: nothing is lost)."""
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise LipleakError(
            f"{path}: cannot write ({exc.strerror or exc}); every row is in the results "
            "store: free space or pick another path and rerun (nothing is rescored)"
        ) from None

"""`report DIR`: report.md, a self-contained report.html, results.csv, results.json and PNG
plots, all from the results store (the rows of the latest settings of each group)."""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import logging
import math
from pathlib import Path

from .. import __version__
from ..errors import LipleakError
from ..files import atomic_write
from . import charts
from .dataset import (
    CELLS,
    GT_REF,
    GT_SETUP,
    REFERENCES,
    SETUPS,
    features_path,
    fid_cache_path,
    results_db,
)
from .leakage import cell_means, leakage, per_video
from .results import ResultsStore

METRICS = [
    "lse_c",
    "lse_d",
    "offset",
    "ssim",
    "psnr",
    "fid",
    "csim",
    "lmd",
    "mouth_audio_corr",
    "mouth_audio_lag",
    "mouth_open_fraction",
    "mouth_aperture_std",
]
LABELS = {
    "lse_c": "LSE-C ↑",
    "lse_d": "LSE-D ↓",
    "offset": "offset (frames)",
    "ssim": "SSIM ↑",
    "psnr": "PSNR ↑",
    "fid": "FID ↓",
    "csim": "CSIM ↑",
    "lmd": "LMD ↓",
    "mouth_audio_corr": "mouth–audio corr",
    "mouth_audio_lag": "mouth–audio lag",
    "mouth_open_fraction": "mouth open fraction",
    "mouth_aperture_std": "mouth aperture std",
}
SETUP_NAMES = {"AM": "AM — audio-matched", "XM": "XM — audio-mismatched", "SI": "SI — silent input"}

log = logging.getLogger(__name__)


def _fmt(v, digits=3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _write(path: Path, data: bytes | str) -> None:
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise LipleakError(
            f"{path}: cannot write the report: {exc.strerror or exc}; the "
            "results database is intact (rerun `lipleak-fast report`)"
        ) from None


def _fid_cache_key(visual_hash: str, setup: str, ref: str, pairs: list[tuple[Path, Path]]) -> str:
    """The cell's FID depends on nothing but these feature files' bytes (and the code)."""
    h = hashlib.sha256(f"{__version__}|{visual_hash}|{setup}|{ref}".encode())
    for g, t in pairs:
        for path in (g, t):
            h.update(path.name.encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _load_fid_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # absent or damaged: recompute


def cell_fids(root: Path, visual_hash: str | None, videos: dict) -> dict[tuple[str, str], float]:
    """FID per cell: all generated crops of the cell's videos vs the GT crops of the same
    videos (the talking-face convention of SPEC §3).

    Each cell's FID (a 2048² matrix square root, 10-30 s on 2 cores) is cached in
    DIR/.lipleak/fid_cache.json under a hash of the exact feature files it was computed
    from, so rewriting a report, or a rerun that changed other cells, costs nothing here.
    """
    if not visual_hash:
        return {}
    from ..metrics import fid

    cache_path = fid_cache_path(root)
    cache = _load_fid_cache(cache_path)
    used = {}
    out = {}
    for setup, ref in CELLS:
        stems = sorted(s for (s, st, rf) in videos if (st, rf) == (setup, ref))
        pairs = [
            (
                features_path(root, visual_hash, setup, ref, s),
                features_path(root, visual_hash, GT_SETUP, GT_REF, s),
            )
            for s in stems
        ]
        pairs = [(g, t) for g, t in pairs if g.is_file() and t.is_file()]
        if not pairs:
            continue
        key = _fid_cache_key(visual_hash, setup, ref, pairs)
        if isinstance(cache.get(key), float | int):
            out[(setup, ref)] = used[key] = float(cache[key])
            continue
        try:
            out[(setup, ref)] = used[key] = fid.feature_files_fid(
                [g for g, _ in pairs], [t for _, t in pairs]
            )
        except Exception as exc:  # noqa: BLE001 - a degenerate set must not kill the report
            out[(setup, ref)] = float("nan")
            log.warning("FID of %s/%s not computed: %s", setup, ref, exc)
    if used != cache:
        try:  # only the current cells are kept: the cache never grows past six entries
            _write(cache_path, json.dumps(used, indent=0))
        except LipleakError:
            pass  # a read-only DIR: the report is still written where it can be
    return out


def build(root: Path, db: Path | None = None, fid: bool = True) -> dict:
    """Everything the report shows, as one JSON-able dict; ``fid=False`` leaves the cell
    FIDs out (``--no-fid``) and says so in the report."""
    root = Path(root)
    store = ResultsStore(db or results_db(root))
    try:
        hashes = store.latest_hashes()
        rows = store.results(hashes)
        units = [u for g, h in hashes.items() for u in store.units(g, h)]
        runs = store.provenance()
    finally:
        store.close()
    videos = per_video(rows)
    fids = (
        cell_fids(
            root,
            hashes.get("visual"),
            {k: v for k, v in videos.items() if "ssim" in v or "psnr" in v},
        )
        if fid
        else {}
    )
    cells = cell_means(videos, [m for m in METRICS if m != "fid"])
    for cell, f in fids.items():
        cells[cell]["fid"] = f
    failures = [u for u in units if u["status"] != "ok"]
    last = runs[-1] if runs else {}
    return {
        "package": "lipleak-fast",
        "version": __version__,
        "settings_hashes": hashes,
        "fid_computed": fid,
        "cells": {f"{s}/{r}": v for (s, r), v in cells.items()},
        "leakage": leakage(videos),
        "videos": [
            {"stem": s, "setup": st, "reference": rf, **m}
            for (s, st, rf), m in sorted(videos.items())
        ],
        "failures": [
            {k: u[k] for k in ("stem", "setup", "reference", "grp", "reason")} for u in failures
        ],
        "layout": last.get("provenance", {}).get("layout", {}),
        "provenance": last.get("provenance", {}),
        "runs": [
            {k: r[k] for k in ("run_id", "started", "finished", "version", "argv")} for r in runs
        ],
    }


def _plots(data: dict) -> dict[str, bytes]:
    by = {(v["stem"], v["setup"], v["reference"]): v for v in data["videos"]}
    plots = {}
    series = {}
    for ref in REFERENCES:
        pts = [
            (by[(s, "AM", ref)]["lse_c"], by[(s, "XM", ref)]["lse_c"])
            for (s, st, rf) in by
            if (st, rf) == ("AM", ref)
            and (s, "XM", ref) in by
            and "lse_c" in by[(s, "XM", ref)]
            and "lse_c" in by[(s, "AM", ref)]
        ]
        if pts:
            series[ref] = pts
    if series:
        plots["lse_c_am_vs_xm.png"] = charts.scatter(
            series,
            "LSE-C per video: AM vs XM (on the line: lips ignore the audio)",
            "LSE-C, AM",
            "LSE-C, XM",
        )
    si = {
        ref: [
            v["lse_c"]
            for v in data["videos"]
            if (v["setup"], v["reference"]) == ("SI", ref) and "lse_c" in v
        ]
        for ref in REFERENCES
    }
    if any(si.values()):
        plots["si_lse_c.png"] = charts.histogram(
            si, "SI: LSE-C under silence (low is leak-free)", "LSE-C"
        )
    offs = {
        ref: [v["offset"] for v in data["videos"] if v["reference"] == ref and "offset" in v]
        for ref in REFERENCES
    }
    offs["GT"] = [v["offset"] for v in data["videos"] if v["setup"] == GT_SETUP and "offset" in v]
    if any(offs.values()):
        plots["offsets.png"] = charts.histogram(
            {k: v for k, v in offs.items() if v},
            "Audio-visual offset (frames)",
            "offset",
            integer=True,
        )
    return plots


def _tables(data: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for the markdown and HTML renderers."""
    cells = data["cells"]
    tables = []
    for setup in SETUPS:
        metrics = [
            m
            for m in METRICS
            if any(cells.get(f"{setup}/{r}", {}).get(m) is not None for r in REFERENCES)
        ]
        if not metrics:
            continue
        rows = [
            [LABELS[m]]
            + [_fmt(cells.get(f"{setup}/{r}", {}).get(m)) for r in REFERENCES]
            + [_fmt(cells.get(f"{GT_SETUP}/{GT_REF}", {}).get(m))]
            for m in metrics
        ]
        rows.append(
            ["videos"]
            + [str(cells.get(f"{setup}/{r}", {}).get("n", 0)) for r in REFERENCES]
            + [str(cells.get(f"{GT_SETUP}/{GT_REF}", {}).get("n", 0))]
        )
        tables.append((SETUP_NAMES[setup], ["metric", "CR", "AR", "GT (real)"], rows))
    lk = data["leakage"]
    tables.append(
        (
            "Leakage (paper Table 1 / Table 6)",
            [
                "reference",
                "LSE-C_S ↓",
                "LSE-D_S ↑",
                "LSD ↓ (|mean−mean|)",
                "LSD per video (mean |Δ|)",
                "SI videos",
                "AM/XM pairs",
            ],
            [
                [
                    r,
                    _fmt(lk[r]["lse_c_s"]),
                    _fmt(lk[r]["lse_d_s"]),
                    _fmt(lk[r]["lsd"]),
                    _fmt(lk[r]["lsd_per_video"]),
                    str(lk[r]["n_si"]),
                    str(lk[r]["n_pairs"]),
                ]
                for r in REFERENCES
            ],
        )
    )
    per = {}
    for v in data["videos"]:
        per.setdefault(v["stem"], {})[f"{v['setup']}/{v['reference']}"] = v
    cols = [f"{GT_SETUP}/{GT_REF}"] + [f"{s}/{r}" for s, r in CELLS]
    rows = [
        [stem]
        + [
            (
                f"{_fmt(c['lse_c'], 2)} / {_fmt(c['lse_d'], 2)} / {c.get('offset', '–'):.0f}"
                if c and "lse_c" in c
                else "–"
            )
            for c in (per[stem].get(k) for k in cols)
        ]
        for stem in sorted(per)
    ]
    tables.append(("Per video: LSE-C / LSE-D / offset", ["video", "GT"] + cols[1:], rows))
    if data["failures"]:
        tables.append(
            (
                "Failed",
                ["video", "cell", "group", "reason"],
                [
                    [f["stem"], f"{f['setup']}/{f['reference']}", f["grp"], f["reason"] or ""]
                    for f in data["failures"]
                ],
            )
        )
    return tables


def _provenance_lines(data: dict) -> list[str]:
    p = data["provenance"]
    lines = [
        f"lipleak-fast {data['version']}; settings hashes: "
        + ", ".join(f"{k} {v}" for k, v in data["settings_hashes"].items())
    ]
    for group in ("sync", "visual"):
        if group in p:
            for part in ("settings", "models", "libraries"):
                lines.append(
                    f"{group} {part}: {json.dumps(p[group].get(part, {}), sort_keys=True)}"
                )
    lay = data.get("layout", {})
    if lay.get("not_run"):
        lines.append("cells not run: " + ", ".join(lay["not_run"]))
    for cell, stems in (lay.get("missing") or {}).items():
        lines.append(f"missing from {cell}: " + ", ".join(stems))
    return lines


_NO_FID = "FID not computed: the report was written with --no-fid."


def _markdown(data: dict, plots: dict) -> str:
    out = ["# lipleak-fast report", ""]
    if not data.get("fid_computed", True):
        out += [_NO_FID, ""]
    for title, header, rows in _tables(data):
        out += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        out.append("")
    out += ["## Plots", ""] + [f"![{n}](plots/{n})" for n in plots] + [""]
    out += ["## Provenance", ""] + [f"- {line}" for line in _provenance_lines(data)] + [""]
    return "\n".join(out)


def _html(data: dict, plots: dict) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>lipleak-fast report</title>",
        "<style>body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:"
        "collapse;margin:8px 0 24px}td,th{border:1px solid #bbb;padding:4px 10px;text-align:"
        "right}th{background:#eef}td:first-child{text-align:left}img{margin:6px;border:1px "
        "solid #ddd}code{font-size:12px}</style></head><body>",
        "<h1>lipleak-fast report</h1>",
    ]
    if not data.get("fid_computed", True):
        parts.append(f"<p>{esc(_NO_FID)}</p>")
    for title, header, rows in _tables(data):
        parts.append(
            f"<h2>{esc(title)}</h2><table><tr>"
            + "".join(f"<th>{esc(h)}</th>" for h in header)
            + "</tr>"
        )
        parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows]
        parts.append("</table>")
    parts.append("<h2>Plots</h2>")
    for name, png in plots.items():
        parts.append(
            f"<img alt='{esc(name)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        )
    parts.append("<h2>Provenance</h2><ul>")
    parts += [f"<li><code>{esc(line)}</code></li>" for line in _provenance_lines(data)]
    parts.append("</ul></body></html>")
    return "\n".join(parts)


def write_report(
    root: Path, db: Path | None = None, out: Path | None = None, fid: bool = True
) -> dict:
    root = Path(root)
    out = Path(out) if out else root
    data = build(root, db, fid)
    plots = _plots(data)
    try:
        (out / "plots").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LipleakError(
            f"{out / 'plots'}: cannot write the report: {exc.strerror or exc}"
        ) from None
    for name, png in plots.items():
        _write(out / "plots" / name, png)
    _write(out / "report.md", _markdown(data, plots))
    _write(out / "report.html", _html(data, plots))
    _write(out / "results.json", json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    cols = ["stem", "setup", "reference"] + METRICS
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for v in data["videos"]:
        w.writerow([v.get(c, "") for c in cols])
    for f in data["failures"]:
        w.writerow(
            [f["stem"], f["setup"], f["reference"]]
            + [""] * len(METRICS)
            + [f"failed ({f['grp']}): {f['reason']}"]
        )
    _write(out / "results.csv", buf.getvalue())
    return data

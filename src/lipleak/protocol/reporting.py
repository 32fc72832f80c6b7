"""`report DIR`: report.md, a self-contained report.html, results.csv, results.json and PNG
plots, all from the results store (the rows of the latest settings of each group)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

from .. import __version__
from ..errors import LipleakError
from ..files import atomic_write
from ..models import registry
from . import charts, figures
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
    "lpips",
    "fid",
    "csim",
    "lmd",
    "mouth_audio_corr",
    "mouth_audio_lag",
    "mouth_open_fraction",
    "mouth_aperture_std",
    "avs_u",
    "avs_m",
    "avs_v",
]
LABELS = {
    "lse_c": "LSE-C ↑",
    "lse_d": "LSE-D ↓",
    "offset": "offset (frames)",
    "ssim": "SSIM ↑",
    "psnr": "PSNR ↑",
    "lpips": "LPIPS ↓",
    "fid": "FID ↓",
    "csim": "CSIM ↑",
    "lmd": "LMD ↓",
    "mouth_audio_corr": "mouth–audio corr",
    "mouth_audio_lag": "mouth–audio lag",
    "mouth_open_fraction": "mouth open fraction",
    "mouth_aperture_std": "mouth aperture std",
    "avs_u": "AVS_u ↑",
    "avs_m": "AVS_m ↑",
    "avs_v": "AVS_v ↑",
}
SETUP_NAMES = {"AM": "AM — audio-matched", "XM": "XM — audio-mismatched", "SI": "SI — silent input"}

log = logging.getLogger(__name__)


def _fmt(v, digits=3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if not isinstance(v, float):
        return str(v)
    out = f"{v:.{digits}f}"
    # a value that rounds to zero from below (an FID of -1e-9 from round-off) is shown
    # as 0, not "-0.000"; the stored number is untouched
    return out[1:] if out.startswith("-") and float(out) == 0 else out


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


def cell_fids(
    root: Path,
    visual_hash: str | None,
    videos: dict,
    reasons: dict | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> dict[tuple[str, str], float]:
    """FID per cell: all generated crops of the cell's videos vs the GT crops of the same
    videos (the talking-face convention of SPEC §3). A cell whose FID cannot be computed is
    NaN, with the reason in ``reasons`` (cell -> message) when given.

    Each cell's FID (~1 s on 2 cores at 2048-d; pytorch-fid's sqrtm took 10-20 s) is cached in
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
        progress(f"FID of cell {setup}/{ref} ({len(pairs)} videos)")
        try:
            out[(setup, ref)] = used[key] = fid.feature_files_fid(
                [g for g, _ in pairs], [t for _, t in pairs]
            )
        except Exception as exc:  # noqa: BLE001 - a degenerate set must not kill the report
            out[(setup, ref)] = float("nan")
            log.warning("FID of %s/%s not computed: %s", setup, ref, exc)
            if reasons is not None:
                reasons[(setup, ref)] = str(exc) or type(exc).__name__
    if used != cache:
        try:  # only the current cells are kept: the cache never grows past six entries
            _write(cache_path, json.dumps(used, indent=0))
        except LipleakError:
            pass  # a read-only DIR: the report is still written where it can be
    return out


def build(
    root: Path,
    db: Path | None = None,
    fid: bool = True,
    progress: Callable[[str], None] = lambda message: None,
) -> dict:
    """Everything the report shows, as one JSON-able dict; ``fid=False`` leaves the cell
    FIDs out (``--no-fid``) and says so in the report. ``progress`` hears of each step
    that takes time (a cell FID not yet cached)."""
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
    fid_reasons: dict[tuple[str, str], str] = {}
    fids = (
        cell_fids(
            root,
            hashes.get("visual"),
            {k: v for k, v in videos.items() if "ssim" in v or "psnr" in v},
            reasons=fid_reasons,
            progress=progress,
        )
        if fid
        else {}
    )
    cells = cell_means(videos, [m for m in METRICS if m != "fid"])
    for cell, f in fids.items():
        cells[cell]["fid"] = f
    failures = [u for u in units if u["status"] != "ok"]
    not_computed: dict[str, dict[str, set]] = {}
    for r in rows:
        if r["status"] == "not_computed":
            not_computed.setdefault(f"{r['setup']}/{r['reference']}", {}).setdefault(
                r["metric"], set()
            ).add(r["reason"] or "no reason recorded")
    for (setup, ref), why in fid_reasons.items():
        not_computed.setdefault(f"{setup}/{ref}", {})["fid"] = {why}
    last = runs[-1] if runs else {}
    provenance = last.get("provenance", {})
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
        "not_computed": {
            cell: {m: sorted(why) for m, why in sorted(ms.items())}
            for cell, ms in sorted(not_computed.items())
        },
        "warnings": registry.fixture_warnings(provenance),
        "layout": provenance.get("layout", {}),
        "provenance": provenance,
        "runs": [
            {k: r[k] for k in ("run_id", "started", "finished", "version", "argv")} for r in runs
        ],
    }


GLOSSARY = [
    ("SI — silent input", "driven by digital silence; scored against the GT audio"),
    ("AM — audio-matched", "driven by the video's own audio; scored against it"),
    (
        "XM — audio-mismatched",
        "driven by another test video's audio (seeded pairing); scored against that driving audio",
    ),
    ("CR — current reference", "identity reference = the frame being inpainted (its real lips)"),
    (
        "AR — alternative reference",
        "identity reference = the generator's own choice, else the first frame (plan --ar)",
    ),
    ("LSE-C ↑", "SyncNet confidence with the audio it is scored against: higher is better sync"),
    ("LSE-D ↓", "SyncNet distance at the best offset: lower is better sync"),
    (
        "LSE-C_S ↓, LSE-D_S ↑",
        "LSE-C / LSE-D of SI generations against the GT audio: lips that still speak the "
        "original words under silence came from the reference, so lower C and higher D are "
        "better (less leakage)",
    ),
    (
        "LSD ↓ (LSD-CR, LSD-AR)",
        "0.5·(|LSE-C_AM − LSE-C_XM| + |LSE-D_AM − LSE-D_XM|): how much sync changes when "
        "the video's own audio is swapped for another's. A model that follows whichever "
        "audio drives it scores alike in AM and XM (0, best); lips that follow the original "
        "video score well in AM and badly in XM (large LSD). Headline: of the cell means; "
        "beside it: the mean of per-video values",
    ),
    (
        "LPIPS ↓",
        "learned perceptual distance (Zhang et al. 2018, lpips v0.1, AlexNet trunk by "
        "default) of each generated face crop to its GT crop, per frame, averaged: 0 for "
        "identical crops",
    ),
    ("GT (real)", "the real videos scored against their own audio: what real data gives"),
    ("↑ / ↓", "higher / lower is better"),
]

CAPTIONS = {
    "lse_c_am_vs_xm.png": (
        "LSE-C of each video with its own audio (AM, x) and with another video's audio (XM, "
        "y). On the line y = x the sync is as good with the swapped audio as with the "
        "original: the lips follow whichever audio drives them (LSD ≈ 0, no leakage). Below "
        "the line the sync drops when the audio is swapped: the lips follow the original "
        "video, not the driving audio (leakage, large LSD). Points low on the line follow no "
        "audio at all (check AM's LSE-C)."
    ),
    "si_lse_c.png": (
        "LSE-C of silent-input generations against the GT audio. Lips that still move with "
        "the original speech under silence came from the reference: lower is better."
    ),
    "offsets.png": (
        "SyncNet's best audio-visual offset per video, in frames (search ±15); real "
        "audio-visual pairs scored with a trained SyncNet sit near 0."
    ),
}


def _plots(data: dict) -> dict[str, bytes]:
    """report.md's PNG charts, drawn from the same series as report.html's figures."""
    s = figures.series(data)
    plots = {}
    if s["am_vs_xm"]:
        plots["lse_c_am_vs_xm.png"] = charts.scatter(
            {ref: [(a, b) for _, a, b in pts] for ref, pts in s["am_vs_xm"].items()},
            "LSE-C per video, AM vs XM (on the line: no leakage)",
            "LSE-C, AM",
            "LSE-C, XM",
        )
    if s["si"]:
        plots["si_lse_c.png"] = charts.histogram(
            {ref: [v for _, v in s["si"].get(ref, [])] for ref in REFERENCES},
            "SI: LSE-C under silence (low is leak-free)",
            "LSE-C",
        )
    if s["offsets"]:
        plots["offsets.png"] = charts.histogram(
            {ref: [v for _, v in pts] for ref, pts in s["offsets"].items()},
            "Audio-visual offset (frames)",
            "offset",
            integer=True,
        )
    return plots


def _cell_text(data: dict, cell: str, metric: str) -> str:
    """One metric of one cell as the tables show it: the number, or why there is none."""
    c = data["cells"].get(cell, {})
    v = c.get(metric)
    if v is None or (metric == "fid" and isinstance(v, float) and math.isnan(v)):
        why = data.get("not_computed", {}).get(cell, {}).get(metric)
        if why:
            return "not computed: " + "; ".join(why)
        return _fmt(v)
    if metric == "psnr" and v == math.inf:
        return "∞ (identical)"
    if metric == "psnr" and c.get("psnr_identical"):
        return f"{_fmt(v)} (+{c['psnr_identical']} identical: ∞)"
    return _fmt(v)


def _tables(data: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for the markdown and HTML renderers."""
    cells = data["cells"]
    nc = data.get("not_computed", {})
    gt_cell = f"{GT_SETUP}/{GT_REF}"
    tables = []
    for setup in SETUPS:
        shown = [f"{setup}/{r}" for r in REFERENCES] + [gt_cell]
        metrics = [
            m
            for m in METRICS
            if any(cells.get(f"{setup}/{r}", {}).get(m) is not None for r in REFERENCES)
            or any(m in nc.get(c, {}) for c in shown[:-1])
        ]
        if not metrics:
            continue
        rows = [[LABELS[m]] + [_cell_text(data, c, m) for c in shown] for m in metrics]
        rows.append(["videos"] + [str(cells.get(c, {}).get("n", 0)) for c in shown])
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
                "LSD ↓ per video (mean |Δ|)",
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
    cols = [gt_cell] + [f"{s}/{r}" for s, r in CELLS]
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
    ignored = data.get("layout", {}).get("ignored") or []
    if ignored:
        tables.append(
            (
                "Not scored",
                ["file", "why it was left out"],
                [[i["path"], i["reason"]] for i in ignored],
            )
        )
    return tables


def _summary(data: dict) -> str:
    """One paragraph: what was scored and the leakage numbers, in words."""
    stems = {v["stem"] for v in data["videos"]} | {f["stem"] for f in data["failures"]}
    not_run = data.get("layout", {}).get("not_run") or []
    n_cells = len(CELLS) - len(not_run)
    out = [f"{len(stems)} videos, {n_cells} of {len(CELLS)} protocol cells scored"]
    if not_run:
        out[-1] += f" ({', '.join(not_run)} not run)"
    ckpt = data["provenance"].get("sync", {}).get("models", {}).get("syncnet", {})
    name = ckpt.get("checkpoint", {}).get("name")
    if name:
        out[-1] += f", SyncNet checkpoint {name}"
    out[-1] += "."
    lk = data["leakage"]
    parts = [
        f"{r}: LSE-C_S {_fmt(lk[r]['lse_c_s'])}, LSE-D_S {_fmt(lk[r]['lse_d_s'])}, "
        f"LSD {_fmt(lk[r]['lsd'])}"
        for r in REFERENCES
    ]
    out.append(
        "Leakage — "
        + "; ".join(parts)
        + " (less leakage: lower LSE-C_S, higher LSE-D_S, LSD nearer 0)."
    )
    lsd = {r: lk[r]["lsd"] for r in REFERENCES}
    if all(v is not None for v in lsd.values()) and lsd["CR"] != lsd["AR"]:
        hi, lo = ("CR", "AR") if lsd["CR"] > lsd["AR"] else ("AR", "CR")
        out.append(
            f"LSD is larger with {hi} than with {lo}: with {hi} the sync depends more on "
            "whether the driving audio is the video's own, i.e. more leakage."
        )
    if data["failures"]:
        out.append(f"{len(data['failures'])} scoring units failed (table Failed).")
    n_ignored = len(data.get("layout", {}).get("ignored") or [])
    if n_ignored:
        out.append(f"{n_ignored} files in the run folder were not scored (table Not scored).")
    if data.get("warnings"):
        out.append(
            "Scored with a test fixture model: none of these numbers judges lip sync (see the "
            "warning above)."
        )
    return " ".join(out)


def _coverage_lines(data: dict) -> list[str]:
    lay = data.get("layout", {})
    lines = []
    if lay.get("not_run"):
        lines.append("cells not run: " + ", ".join(lay["not_run"]))
    for cell, stems in (lay.get("missing") or {}).items():
        lines.append(f"missing from {cell}: " + ", ".join(stems))
    return lines


def _models_rows(group: str, models: dict) -> list[list[str]]:
    """One row per model file of a describe() tree: where it sits and its sha256."""
    rows = []

    def walk(d, path):
        if not isinstance(d, dict):
            return
        if isinstance(d.get("sha256"), str):
            label = d.get("name") or (Path(d["path"]).name if d.get("path") else "")
            rows.append([f"{group} model: {'.'.join(path)}", f"{label} sha256 {d['sha256']}"])
        for k, v in d.items():
            walk(v, path + [k])

    walk(models, [])
    return rows


def _when(t) -> str:
    if t is None:
        return "not finished"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _provenance_table(data: dict) -> tuple[str, list[str], list[list[str]]]:
    p = data["provenance"]
    rows = [["lipleak-fast", data["version"]]]
    rows += [[f"{g} settings hash", h] for g, h in data["settings_hashes"].items()]
    for group in ("sync", "visual"):
        if group not in p:
            continue
        settings = p[group].get("settings", {})
        rows.append(
            [
                f"{group} settings",
                ", ".join(
                    f"{k}={v if isinstance(v, str) else json.dumps(v)}"
                    for k, v in sorted(settings.items())
                ),
            ]
        )
        rows += _models_rows(group, p[group].get("models", {}))
        libs = p[group].get("libraries", {})
        if libs:
            rows.append(
                [f"{group} libraries", ", ".join(f"{k} {v}" for k, v in sorted(libs.items()))]
            )
    for r in data["runs"]:
        rows.append(
            [
                f"run {r['run_id']}",
                f"{_when(r['started'])} → {_when(r['finished'])}; lipleak-fast {r['version']}; "
                f"argv: {' '.join(map(str, r['argv']))}",
            ]
        )
    return ("Provenance", ["what", "value"], rows)


_NO_FID = "FID not computed: the report was written with --no-fid."


def _md_cell(text: str) -> str:
    # a bare "|" would end the cell early and break the table's column count
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return out


def _markdown(data: dict, plots: dict) -> str:
    out = ["# lipleak-fast report", ""]
    for w in data.get("warnings", []):
        out += [f"> **WARNING — test fixture model.** {w}.", ""]
    out += ["## Summary", "", _summary(data), ""]
    if not data.get("fid_computed", True):
        out += [_NO_FID, ""]
    out += ["## Glossary", ""] + _md_table(["term", "meaning"], [list(g) for g in GLOSSARY])
    out.append("")
    coverage = _coverage_lines(data)
    if coverage:
        out += ["## Coverage", ""] + [f"- {line}" for line in coverage] + [""]
    for title, header, rows in _tables(data):
        out += [f"## {title}", ""] + _md_table(header, rows) + [""]
    out += ["## Plots", ""]
    for n in plots:
        out += [f"![{n}](plots/{n})", "", f"*{CAPTIONS[n]}*", ""]
    title, header, rows = _provenance_table(data)
    out += [f"## {title}", ""] + _md_table(header, rows) + [""]
    out += [
        "### Raw provenance (JSON)",
        "",
        "```json",
        json.dumps(data["provenance"], indent=1, sort_keys=True, default=str),
        "```",
        "",
    ]
    return "\n".join(out)


def _html(data: dict) -> str:
    """report.html: the tables of report.md and its charts as interactive plotly figures
    (``figures``), one self-contained file (``lipleak.html``: Jinja2, plotly.js inlined)."""
    from ..html import render

    figs = figures.figures(data)
    return render(
        "report.html.j2",
        title="lipleak-fast report",
        charts=bool(figs),
        warnings=data.get("warnings", []),
        summary=_summary(data),
        no_fid=None if data.get("fid_computed", True) else _NO_FID,
        glossary=[list(g) for g in GLOSSARY],
        coverage=_coverage_lines(data),
        tables=_tables(data),
        figures=[(name, CAPTIONS[name]) for name in figs],
        figure_specs=list(figs.values()),
        provenance=_provenance_table(data),
        raw_provenance=json.dumps(data["provenance"], indent=1, sort_keys=True, default=str),
    )


def write_report(
    root: Path,
    db: Path | None = None,
    out: Path | None = None,
    fid: bool = True,
    progress: Callable[[str], None] = lambda message: None,
) -> dict:
    """Write report.md/.html, results.json/.csv and the plots; ``progress`` hears of each
    step (the cell FIDs, the plots), so a caller can say what happens after the last
    video."""
    root = Path(root)
    out = Path(out) if out else root
    data = build(root, db, fid, progress)
    progress(f"writing the report and plots in {out}")
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
    _write(out / "report.html", _html(data))
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

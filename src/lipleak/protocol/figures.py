"""The report's charts as plotly figures (plain JSON: data and layout) for report.html,
drawn by the plotly.js the page embeds (``lipleak.html``). Interactive where a PNG is not:
hovering a point of the AM-vs-XM scatter names its video. report.md keeps the OpenCV
PNGs of ``charts`` (a markdown viewer runs no script).

``series`` is what both are drawn from, so the PNGs and the page show the same points.
"""

from __future__ import annotations

import html

from .dataset import GT_SETUP, REFERENCES

COLOURS = {"CR": "#1f77b4", "AR": "#d62728", "GT": "#2ca02c"}


def series(data: dict) -> dict:
    """{"am_vs_xm": {ref: [(stem, LSE-C AM, LSE-C XM)]}, "si": {ref: [(stem, LSE-C)]},
    "offsets": {ref or "GT": [(stem, offset)]}}, each left out where it has no point."""
    by = {(v["stem"], v["setup"], v["reference"]): v for v in data["videos"]}
    am_xm = {}
    for ref in REFERENCES:
        pts = [
            (s, by[(s, "AM", ref)]["lse_c"], by[(s, "XM", ref)]["lse_c"])
            for (s, st, rf) in by
            if (st, rf) == ("AM", ref)
            and (s, "XM", ref) in by
            and "lse_c" in by[(s, "XM", ref)]
            and "lse_c" in by[(s, "AM", ref)]
        ]
        if pts:
            am_xm[ref] = pts
    si = {
        ref: [
            (v["stem"], v["lse_c"])
            for v in data["videos"]
            if (v["setup"], v["reference"]) == ("SI", ref) and "lse_c" in v
        ]
        for ref in REFERENCES
    }
    offs = {
        ref: [
            (v["stem"], v["offset"])
            for v in data["videos"]
            if v["reference"] == ref and "offset" in v
        ]
        for ref in REFERENCES
    }
    offs["GT"] = [
        (v["stem"], v["offset"]) for v in data["videos"] if v["setup"] == GT_SETUP and "offset" in v
    ]
    return {
        "am_vs_xm": am_xm,
        "si": {k: v for k, v in si.items() if v},
        "offsets": {k: v for k, v in offs.items() if v},
    }


def _layout(title: str, xlabel: str, ylabel: str, **more) -> dict:
    return {
        "title": {"text": title, "font": {"size": 15}},
        "xaxis": {"title": {"text": xlabel}},
        "yaxis": {"title": {"text": ylabel}},
        "width": 640,
        "height": 420,
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        **more,
    }


def figures(data: dict) -> dict[str, dict]:
    """{PNG name (report.CAPTIONS' key): {"data": [...], "layout": {...}}}"""
    s = series(data)
    out = {}
    if s["am_vs_xm"]:
        values = [x for pts in s["am_vs_xm"].values() for _, a, b in pts for x in (a, b)]
        lo, hi = min(values), max(values)
        traces = [
            {
                "type": "scatter",
                "mode": "markers",
                "name": ref,
                "x": [a for _, a, _ in pts],
                "y": [b for _, _, b in pts],
                # plotly renders hover text as HTML-like markup: entities keep a stem text
                "text": [html.escape(stem) for stem, _, _ in pts],
                "hovertemplate": "%{text}<br>AM %{x:.3f}, XM %{y:.3f}<extra>" + ref + "</extra>",
                "marker": {"color": COLOURS[ref], "size": 8, "opacity": 0.8},
            }
            for ref, pts in s["am_vs_xm"].items()
        ]
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "y = x (no leakage)",
                "x": [lo, hi],
                "y": [lo, hi],
                "hoverinfo": "skip",
                "line": {"color": "#888", "dash": "dash", "width": 1},
            }
        )
        out["lse_c_am_vs_xm.png"] = {
            "data": traces,
            "layout": _layout(
                "LSE-C per video, AM vs XM (on the line: no leakage)", "LSE-C, AM", "LSE-C, XM"
            ),
        }
    if s["si"]:
        out["si_lse_c.png"] = {
            "data": [_histogram(ref, pts) for ref, pts in s["si"].items()],
            "layout": _layout(
                "SI: LSE-C under silence (low is leak-free)", "LSE-C", "videos", barmode="overlay"
            ),
        }
    if s["offsets"]:
        out["offsets.png"] = {
            "data": [
                {**_histogram(ref, pts), "xbins": {"size": 1}} for ref, pts in s["offsets"].items()
            ],
            "layout": _layout(
                "Audio-visual offset (frames)", "offset", "videos", barmode="overlay"
            ),
        }
    return out


def _histogram(name: str, pts: list[tuple[str, float]]) -> dict:
    return {
        "type": "histogram",
        "name": name,
        "x": [v for _, v in pts],
        "opacity": 0.6,
        "marker": {"color": COLOURS[name]},
    }

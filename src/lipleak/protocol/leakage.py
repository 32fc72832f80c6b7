"""Tables of the report, from the per-video rows (SPEC §1).

Cell means are over the videos of the cell that scored ok. LSD compares AM with XM on the
videos that scored ok in both cells, and is given in both aggregations the paper leaves
open: the headline ``lsd`` = 0.5 · (|mean C_AM − mean C_XM| + |mean D_AM − mean D_XM|),
and ``lsd_per_video`` = mean over videos of 0.5 · (|C_AM − C_XM| + |D_AM − D_XM|).
LSE-C_S / LSE-D_S are the SI cell's mean LSE-C / LSE-D (scored against the GT audio).
PSNR follows ``lipleak.metrics.quality``'s identical-frame rule: videos with PSNR +inf are
left out of the cell mean and counted (``psnr_identical``); a cell of only such videos is
+inf.
"""

from __future__ import annotations

import math
from collections import defaultdict

from .dataset import CELLS, GT_REF, GT_SETUP, REFERENCES


def per_video(rows: list[dict]) -> dict[tuple[str, str, str], dict[str, float]]:
    """(stem, setup, reference) -> {metric: value} of the rows that are ok."""
    out: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    for r in rows:
        if r["status"] == "ok" and r["value"] is not None:
            out[(r["stem"], r["setup"], r["reference"])][r["metric"]] = r["value"]
    return dict(out)


def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def cell_means(videos: dict, metrics: list[str]) -> dict[tuple[str, str], dict]:
    cells = [(GT_SETUP, GT_REF), *CELLS]
    out = {}
    for setup, ref in cells:
        rows = [m for (s, st, rf), m in videos.items() if (st, rf) == (setup, ref)]
        out[(setup, ref)] = {
            "n": sum(1 for m in rows if "lse_c" in m),
            **{k: _mean([m.get(k) for m in rows]) for k in metrics},
        }
        if "psnr" in metrics:
            # PSNR of identical frames is +inf (lipleak.metrics.quality): such videos are left
            # out of the mean and counted; a cell of only such videos is +inf, not "no value"
            n_inf = sum(1 for m in rows if m.get("psnr") == math.inf)
            out[(setup, ref)]["psnr_identical"] = n_inf
            if out[(setup, ref)]["psnr"] is None and n_inf:
                out[(setup, ref)]["psnr"] = math.inf
    return out


def leakage(videos: dict) -> dict[str, dict]:
    """LSE-C_S, LSE-D_S, LSD (both aggregations) for CR and AR."""
    out = {}
    for ref in REFERENCES:
        si = [m for (s, st, rf), m in videos.items() if (st, rf) == ("SI", ref) and "lse_c" in m]
        am = {s: m for (s, st, rf), m in videos.items() if (st, rf) == ("AM", ref) and "lse_c" in m}
        xm = {s: m for (s, st, rf), m in videos.items() if (st, rf) == ("XM", ref) and "lse_c" in m}
        both = sorted(set(am) & set(xm))
        row = {
            "lse_c_s": _mean([m["lse_c"] for m in si]),
            "lse_d_s": _mean([m["lse_d"] for m in si]),
            "n_si": len(si),
            "n_pairs": len(both),
            "lsd": None,
            "lsd_per_video": None,
        }
        if both:
            c_am, c_xm = (
                _mean([am[s]["lse_c"] for s in both]),
                _mean([xm[s]["lse_c"] for s in both]),
            )
            d_am, d_xm = (
                _mean([am[s]["lse_d"] for s in both]),
                _mean([xm[s]["lse_d"] for s in both]),
            )
            row["lsd"] = 0.5 * (abs(c_am - c_xm) + abs(d_am - d_xm))
            row["lsd_per_video"] = _mean(
                [
                    0.5
                    * (abs(am[s]["lse_c"] - xm[s]["lse_c"]) + abs(am[s]["lse_d"] - xm[s]["lse_d"]))
                    for s in both
                ]
            )
        out[ref] = row
    return out

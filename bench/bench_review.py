"""Issue 23, acceptance 4: the review page of a 1,000-video sync store, rendered in
Python and opened in headless Chromium (target: usable within 2 s).

The store is written from constructed rows (tests/review_rows.py: SPEC §11 segments of a
2-min video each, 4 s every 2 s = 59 segments; in sync, shifted, drifting or with local
errors; a cut in every fourth), no model run. Every row points at its own symlink to one
short synthetic clip, so each section has its <video> as in a real run. Measured:

* the Python render (``review_page`` + ``render_review``), best of 3, with and without
  thumbnails (thumbnails: 6 per failing video, made from a real frame once and reused, so
  the page has their bytes without decoding 1,000 videos);
* in Chromium, per page: navigation to the load event, to the first chart drawn, a sort of
  the 1,000 rows by global offset, a jump to the 500th video until its chart is drawn.

    python bench/bench_review.py [--videos 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from common import best_seconds, write_result  # noqa: E402


def offsets(k: int, n: int, rng) -> list[int]:
    kind = k % 4
    base = [0] * n
    if kind == 1:  # the whole programme shifted
        base = [4] * n
    elif kind == 2:  # drifting: 0 to -6 frames over the 2 minutes
        base = [round(-6 * j / (n - 1)) for j in range(n)]
    elif kind == 3:  # local errors
        base = [5 if 10 <= j < 14 else 0 for j in range(n)]
    return [b + int(rng.integers(-1, 2)) for b in base]


def make_store(folder: Path, n_videos: int) -> Path:
    import numpy as np

    import review_rows as rr
    import synth

    clip = synth.make_clip(folder / "clip.mp4", seed=3, seconds=2.0)
    (folder / "videos").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for k in range(n_videos):
        link = folder / "videos" / f"talk_{k:04d}.mp4"
        link.symlink_to(clip)
        lse_c = list(rng.uniform(2.0, 9.0, 59))
        rows.append(
            rr.row(
                link,
                offsets(k, 59, rng),
                lse_c,
                seconds=120.0,
                length=100,
                hop=50,
                cuts=(1000, 2000) if k % 4 == 0 else (),
            )
        )
    return rr.make_store(folder / "sync.sqlite", rows)


def add_fake_thumbnails(page: dict, clip: Path) -> None:
    from lipleak.io.video import iter_frames
    from lipleak.sync.thumbnails import THUMBS_PER_VIDEO, failing_segments, jpeg_data_uri

    uri = jpeg_data_uri(next(iter(iter_frames(clip))))
    for v in page["videos"]:
        v["thumbs"] = [
            {
                "uri": uri,
                "t": v["tracks"][k]["t0"][j],
                "tc": v["tracks"][k]["tc0"][j],
                "ms": v["tracks"][k]["ms"][j],
            }
            for k, j in failing_segments(v, THUMBS_PER_VIDEO)
        ]


def in_chromium(page: Path, profile: Path) -> dict:
    from cdp import Browser

    with Browser(profile, 1400, 1000) as b:
        t0 = time.perf_counter()
        b.open(page.as_uri(), timeout=120)
        load_wall = time.perf_counter() - t0
        nav = b.eval(
            "(() => { const e = performance.getEntriesByType('navigation')[0];"
            " const p = performance.getEntriesByName('first-contentful-paint')[0];"
            " return {fcp: p ? p.startTime : null, dcl: e.domContentLoadedEventEnd,"
            " load: e.loadEventEnd}; })()"
        )
        # the first sections sit below the table (it scrolls within 60 % of the window):
        # their charts are drawn without any scrolling
        first_chart = b.eval(
            "new Promise(r => { (function w() { if (document.querySelector('#v0 .js-plotly-plot'))"
            " r(performance.now()); else requestAnimationFrame(w); })(); })"
        )
        sort_ms = b.eval(
            "(() => { const t = performance.now();"
            " document.querySelector('th[data-key=gom]').click();"
            " return performance.now() - t; })()"
        )
        jump_ms = b.eval(
            "new Promise(r => { const t = performance.now(); location.hash = '#v500';"
            " (function w() { if (document.querySelector('#v500 .js-plotly-plot'))"
            " r(performance.now() - t); else requestAnimationFrame(w); })(); })"
        )
        return {
            "load_event_wall_s": round(load_wall, 3),
            "first_contentful_paint_ms": nav["fcp"] and round(nav["fcp"], 1),
            "dom_content_loaded_ms": round(nav["dcl"], 1),
            "load_event_ms": round(nav["load"], 1),
            "first_chart_ms": round(first_chart, 1),
            "sort_1000_rows_ms": round(sort_ms, 1),
            "jump_to_500th_chart_ms": round(jump_ms, 1),
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    import os

    from lipleak.sync.review import render_review, review_page

    result: dict = {
        "device": "2-core CPU machine, no GPU",
        # the 2 cores are shared with other jobs: the load says how busy they were
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "videos": args.videos,
        "segments_per_video": 59,
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        db = make_store(tmp, args.videos)
        result["store_build_s"] = round(time.perf_counter() - t0, 2)
        out = tmp / "review.html"
        pages = {}
        result["python_page_data_s"] = round(
            best_seconds(
                lambda: pages.setdefault("p", review_page(db, out, None, False)), args.runs
            ),
            3,
        )
        page = pages["p"]
        result["python_render_s"] = round(best_seconds(lambda: render_review(page), args.runs), 3)
        html = render_review(page)
        out.write_text(html, encoding="utf-8")
        thumbs = tmp / "review_thumbs.html"
        add_fake_thumbnails(page, tmp / "clip.mp4")
        thumbs.write_text(render_review(page), encoding="utf-8")
        result["thumbnails"] = sum(len(v["thumbs"]) for v in page["videos"])
        result["verdicts"] = dict(page["counts"])
        for name, path in (("no_thumbnails", out), ("with_thumbnails", thumbs)):
            runs = [in_chromium(path, tmp / f"profile_{name}_{k}") for k in range(args.runs)]
            result[name] = {
                "file_mb": round(path.stat().st_size / 1e6, 2),
                "chromium_runs": runs,
                "best_load_event_ms": min(r["load_event_ms"] for r in runs),
                "best_first_chart_ms": min(r["first_chart_ms"] for r in runs),
            }
            print(name, json.dumps(result[name], indent=1))
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(write_result("review", result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Report charts (OpenCV PNGs): what is drawn matches the data it is drawn from."""

from __future__ import annotations

import math
import re

import cv2
import numpy as np

from lipleak.protocol import charts


def _decode(png: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (charts.H, charts.W, 3)
    return img


def _mask(img: np.ndarray, colour) -> np.ndarray:
    """Pixels of exactly ``colour``, the legend (top right corner) left out."""
    m = np.all(img == np.array(colour, np.uint8), axis=-1)
    m[:80, charts.W - 160 :] = False
    return m


def test_integer_histogram_bar_heights_follow_counts():
    # offsets -2 x1, 0 x4, 3 x2: one bar per whole number, heights 1 : 4 : 2
    img = _decode(charts.histogram({"CR": [-2, 0, 0, 0, 0, 3, 3]}, "t", "offset", integer=True))
    bars = _mask(img, charts.PALETTE[0])
    plot = bars[charts.M - 20 : charts.H - charts.M, charts.M : charts.W - 20]
    cols = plot.sum(axis=0)
    heights = sorted({int(h) for h in cols if h > 0})
    assert len(heights) == 3
    h1, h2, h4 = heights
    assert abs(h2 / h1 - 2) < 0.05 and abs(h4 / h1 - 4) < 0.05
    # bars sit left to right in value order: -2 (1), 0 (4), 3 (2)
    runs = [int(cols[i]) for i in range(1, len(cols)) if cols[i] > 0 and cols[i - 1] == 0]
    assert runs == [h1, h4, h2]
    # headroom: the tallest bar stays below the legend rows
    assert not bars[:80].any()


def test_scatter_points_land_at_their_coordinates():
    img = _decode(charts.scatter({"CR": [(1.0, 1.0)], "AR": [(3.0, 2.0)]}, "t", "x", "y"))
    lo, hi = charts._range([1.0, 1.0, 3.0, 2.0])
    for colour, (x, y) in ((charts.PALETTE[0], (1.0, 1.0)), (charts.PALETTE[1], (3.0, 2.0))):
        ys, xs = np.nonzero(_mask(img, colour))
        px, py = charts._to_px(x, y, (lo, hi), (lo, hi))
        assert abs(xs.mean() - px) < 1.0 and abs(ys.mean() - py) < 1.0


def test_cell_fids_are_cached_by_feature_bytes(tmp_path, monkeypatch):
    """A cell's FID is computed once per exact set of feature files: rewriting the report
    reuses it, and changing one video's features recomputes that cell only."""
    import numpy as np

    from lipleak.protocol import reporting
    from lipleak.protocol.dataset import CELLS, GT_REF, GT_SETUP, features_path

    def cell_fid(gen, gt):  # a cheap stand-in: the test is about the cache, not the FID
        return float(sum(g.sum() for g in gen) - sum(t.sum() for t in gt))

    rng = np.random.default_rng(0)
    vh, stems = "abc123", ["v0", "v1"]
    videos = {}
    for s in stems:
        for setup, ref in [*CELLS, (GT_SETUP, GT_REF)]:
            p = features_path(tmp_path, vh, setup, ref, s)
            p.parent.mkdir(parents=True, exist_ok=True)
            np.save(p, rng.standard_normal((30, 8)).astype(np.float32))
            videos[(s, setup, ref)] = {"ssim": 0.5}
    calls = []

    def counting(gen, gt):
        calls.append(1)
        return cell_fid(gen, gt)

    monkeypatch.setattr("lipleak.metrics.fid.cell_fid", counting)
    first = reporting.cell_fids(tmp_path, vh, videos)
    assert len(first) == len(CELLS) and len(calls) == len(CELLS)
    for (setup, ref), v in first.items():  # the cached number is the computed one
        pairs = [
            (
                features_path(tmp_path, vh, setup, ref, s),
                features_path(tmp_path, vh, GT_SETUP, GT_REF, s),
            )
            for s in stems
        ]
        assert v == cell_fid((np.load(g) for g, _ in pairs), (np.load(t) for _, t in pairs))
    assert reporting.cell_fids(tmp_path, vh, videos) == first
    assert len(calls) == len(CELLS)  # all six from the cache
    setup, ref = CELLS[0]
    np.save(
        features_path(tmp_path, vh, setup, ref, "v1"),
        rng.standard_normal((30, 8)).astype(np.float32),
    )
    again = reporting.cell_fids(tmp_path, vh, videos)
    assert len(calls) == len(CELLS) + 1 and again[(setup, ref)] != first[(setup, ref)]
    assert {k: v for k, v in again.items() if k != (setup, ref)} == {
        k: v for k, v in first.items() if k != (setup, ref)
    }
    (tmp_path / ".lipleak" / "fid_cache.json").write_text("{not json")  # damaged: recompute
    assert reporting.cell_fids(tmp_path, vh, videos) == again
    assert len(calls) == 2 * len(CELLS) + 1


# --- the report explains instead of dropping (issue 12) --------------------------------------

RANDOM_SHA = "4e3e685a6a869399262ec78e8d41286a886c60ca1f470607b641eec2c9b9bc53"
NO_ARCFACE = "no ArcFace model: w600k_r50 is not in the model dir"


def _md_tables(md: str) -> list[list[list[str]]]:
    """Every table of a Markdown document as rows of cells, split the way GitHub does: on
    every "|" that is not escaped."""
    import re

    tables, cur = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            cur.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif cur:
            tables.append(cur)
            cur = []
    return tables


def _store_with(tmp_path, sha=RANDOM_SHA):
    """A results store of two videos in every cell, as `score` would leave it: PSNR +inf
    where the frames are identical, CSIM not computed (no ArcFace), one stray file."""
    from lipleak.protocol.dataset import CELLS, GT_REF, GT_SETUP
    from lipleak.protocol.results import ResultsStore

    store = ResultsStore(tmp_path / "results.sqlite")
    store.start_run(
        "t",
        ["score", "x"],
        {
            "hashes": {"sync": "s", "visual": "v"},
            "sync": {
                "settings": {"mode": "prealigned"},
                "models": {"syncnet": {"checkpoint": {"name": "syncnet", "sha256": sha}}},
            },
            "layout": {
                "not_run": [],
                "missing": {},
                "ignored": [{"path": "AM/CR/notes.txt", "reason": "not a video file"}],
            },
        },
    )
    for i, stem in enumerate(("a", "b")):
        for setup, ref in [(GT_SETUP, GT_REF), *CELLS]:
            c = 2.0 + i + (setup == "AM")
            store.commit_unit(
                stem, setup, ref, "sync", "s", "i", {"lse_c": c, "lse_d": 9.0 - c, "offset": 0}
            )
            if setup == GT_SETUP:
                continue
            # AM/CR: both videos identical to the GT; AM/AR: one of the two
            psnr = (
                math.inf if (setup, ref) == ("AM", "CR") or (stem, setup) == ("a", "AM") else 30.0
            )
            store.commit_unit(
                stem,
                setup,
                ref,
                "visual",
                "v",
                "i",
                {"ssim": 0.9, "psnr": psnr, "csim": None},
                reasons={"csim": NO_ARCFACE},
            )
    store.close()


def test_report_explains_inf_not_computed_and_fixture(tmp_path, monkeypatch):
    from lipleak.protocol import reporting

    _store_with(tmp_path)

    # an FID of -1e-9 (sqrtm round-off on identical sets) must not print as "-0.000"
    def fids(root, visual_hash, videos, reasons=None, progress=None):
        reasons[("XM", "CR")] = "2 frames: too few for a covariance"
        return {("AM", "CR"): -1e-9, ("XM", "CR"): math.nan}

    monkeypatch.setattr(reporting, "cell_fids", fids)
    data = reporting.write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    tables = _md_tables(md)
    assert len(tables) >= 7
    for t in tables:  # header, separator and every row: one column count per table
        assert len({len(r) for r in t}) == 1, t[:2]
        assert all(set(c) <= {"-"} for c in t[1])
    leak = next(t for t in tables if t[0][0] == "reference")
    assert len(leak[0]) == 7 and leak[0][3] == r"LSD ↓ (\|mean−mean\|)"
    am = next(t for t in tables if t[0][:2] == ["metric", "CR"])  # AM comes first
    rows = {r[0]: r[1:] for r in am[2:]}
    assert rows["PSNR ↑"][:2] == ["∞ (identical)", "30.000 (+1 identical: ∞)"]
    assert rows["CSIM ↑"][:2] == [f"not computed: {NO_ARCFACE}"] * 2
    assert rows["FID ↓"][0] == "0.000" and "-0.000" not in md
    xm = next(t for t in tables[tables.index(am) + 1 :] if t[0][:2] == ["metric", "CR"])
    assert {r[0]: r[1] for r in xm[2:]}[
        "FID ↓"
    ] == "not computed: 2 frames: too few for a covariance"
    assert data["cells"]["AM/CR"]["psnr"] == math.inf  # the numbers themselves unchanged
    assert data["cells"]["AM/AR"]["psnr"] == 30.0
    assert data["cells"]["XM/CR"]["psnr"] == 30.0
    # the fixture banner comes before anything else, then summary and glossary
    lines = md.splitlines()
    assert lines[2].startswith("> **WARNING — test fixture model.** syncnet_v2_random")
    assert "mean nothing about lip sync" in lines[2]
    assert md.index("## Summary") < md.index("## Glossary") < md.index("## AM")
    glossary = next(t for t in tables if t[0] == ["term", "meaning"])
    terms = " ".join(r[0] for r in glossary)
    for term in ("SI", "AM", "XM", "CR", "AR", "LSE-C ↑", "LSE-D ↓", "LSE-C_S", "LSD ↓"):
        assert term in terms
    assert "Scored with a test fixture model" in md.split("## Summary")[1].split("##")[0]
    # stray files are listed; provenance is a table with the raw JSON below it
    assert ["AM/CR/notes.txt", "not a video file"] in next(
        t for t in tables if t[0] == ["file", "why it was left out"]
    )
    prov = next(t for t in tables if t[0] == ["what", "value"])
    assert any(r[0] == "sync model: syncnet.checkpoint" and RANDOM_SHA in r[1] for r in prov)
    assert md.index("## Provenance") < md.index("### Raw provenance (JSON)")
    html = (tmp_path / "report.html").read_text()
    assert html.index("class='banner'") < html.index("class='glossary'")
    assert "∞ (identical)" in html and f"not computed: {NO_ARCFACE}" in html


def test_report_of_a_real_checkpoint_has_no_banner(tmp_path, monkeypatch):
    from lipleak.models import registry
    from lipleak.protocol import reporting

    _store_with(tmp_path, sha=registry.get("syncnet_v2").sha256)
    monkeypatch.setattr(reporting, "cell_fids", lambda *a, **k: {})
    data = reporting.write_report(tmp_path)
    assert data["warnings"] == []
    assert "WARNING" not in (tmp_path / "report.md").read_text()
    assert "class='banner'" not in (tmp_path / "report.html").read_text()


def test_fixtures_are_marked_in_the_registry():
    from lipleak.models import registry

    assert [n for n, s in registry.MODELS.items() if s.fixture] == ["syncnet_v2_random"]
    assert registry.get("syncnet_v2_random").sha256 == RANDOM_SHA
    assert registry.fixture_for(RANDOM_SHA).name == "syncnet_v2_random"
    assert registry.fixture_for(registry.get("syncnet_v2").sha256) is None
    assert registry.fixture_warnings({"x": [{"y": {"sha256": RANDOM_SHA}}]})
    assert registry.fixture_warnings({"sha256": registry.get("syncnet_v2").sha256}) == []


def test_am_vs_xm_caption_agrees_with_lsd_lower_is_better():
    """SPEC §1: LSD 0 is best. A video on the y = x line scores alike with its own and with
    another video's audio, i.e. LSD 0; the caption must not call that leakage."""
    from lipleak.protocol import reporting

    cap = reporting.CAPTIONS["lse_c_am_vs_xm.png"]
    assert "LSD ≈ 0, no leakage" in cap and "Below the line" in cap
    assert "ignore the audio" not in cap
    lsd = [t for t, _ in reporting.GLOSSARY if t.startswith("LSD")]
    assert lsd and "↓" in lsd[0]


def test_sync_command_warns_about_a_fixture_checkpoint(model_dir, tmp_path, capsys):
    import json

    import synth
    from lipleak.cli import main

    (clip,) = synth.make_set(tmp_path, 1, seconds=0.48)
    assert main(["sync", str(clip), "--syncnet", "syncnet_v2_random"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("WARNING: syncnet_v2_random") and "mean nothing" in out
    assert main(["sync", str(clip), "--syncnet", "syncnet_v2_random", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "warning: syncnet_v2_random" in err
    doc = json.loads(out)
    assert len(doc["warnings"]) == 1 and "test fixture" in doc["warnings"][0]


def test_plan_wav_bytes_equal_write_wav(tmp_path):
    from lipleak.io.audio import write_wav
    from lipleak.protocol.planner import _wav_bytes

    x = (np.random.default_rng(0).standard_normal(16000 * 3) * 3000).astype(np.int16)
    write_wav(tmp_path / "a.wav", x)
    assert _wav_bytes(x) == (tmp_path / "a.wav").read_bytes()


def test_report_html_keeps_names_as_text(tmp_path, monkeypatch):
    """report.html is a Jinja2 template with autoescape; its figures' JSON cannot close
    its script element, and plotly's hover text gets entities, not markup."""
    from lipleak.protocol import reporting

    monkeypatch.setattr(reporting, "cell_fids", lambda *a, **k: {})
    _store_with(tmp_path)
    import sqlite3

    con = sqlite3.connect(tmp_path / "results.sqlite")
    for table in ("results", "units"):
        con.execute(f"UPDATE {table} SET stem = '</script><b>x</b>' WHERE stem = 'a'")
    con.commit()
    con.close()
    reporting.write_report(tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert "</script><b>x</b>" not in html and "<b>x</b>" not in html
    assert "&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;" in html  # the per-video table
    assert html.count("<script") == 3  # plotly.js, the figures' JSON, their script
    # the scatter's hover text: entities (plotly shows them as the characters), inside JSON
    assert "\\u0026lt;/script\\u0026gt;\\u0026lt;b\\u0026gt;x" in html
    # nothing of the page links out (plotly.js itself holds link strings it never uses here:
    # the logo link is off, no map is drawn)
    start = html.index("<script>/**")
    page = html[:start] + html[html.index("</script>", start) :]
    assert not re.search(r"(src|href)=[\"']?(https?:|//)", page)

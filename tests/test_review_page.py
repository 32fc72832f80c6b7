"""Issue 23, acceptance 4: ``review DB -o review.html`` over a sync results store, driven
in headless Chromium over the DevTools protocol (tests/cdp.py): table rows, one chart per
scored video, a click on a segment seeks the <video>, sorting, no network request, and
file names that stay text. The store is written from constructed rows (tests/review_rows.py)
over short synthetic clips, so no model runs."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

import review_rows as rr
import synth
from cdp import Browser, chromium
from lipleak.cli import main

# v0 in sync; v1 shifted +5 frames (global_offset); v2 two bad segments and a cut
OFFSETS = {"v0": [0, 1, 0, -1, 0], "v1": [5, 5, 6, 5, 5], "v2": [0, 0, 4, 5, -1]}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("review")
    (base / "videos").mkdir()
    rows = []
    for k, (name, offs) in enumerate(OFFSETS.items()):
        clip = synth.make_clip(base / "videos" / f"{name}.mp4", seed=40 + k, seconds=3.0)
        rows.append(rr.row(clip, offs, cuts=(40,) if name == "v2" else ()))
    rows.append(rr.failed_row(base / "videos" / "broken.mp4"))
    db = rr.make_store(base / "sync.sqlite", rows)
    (base / "pages").mkdir()
    out = base / "pages" / "review.html"
    assert main(["review", str(db), "-o", str(out), "--quiet"]) == 0
    return base, db, out, rows


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if chromium() is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with Browser(tmp_path_factory.mktemp("profile")) as b:
        b.send("Network.enable")
        yield b


def requests_made(b: Browser) -> list[str]:
    return [
        e["params"]["request"]["url"]
        for e in b.events
        if e["method"] == "Network.requestWillBeSent"
    ]


def open_all_sections(b: Browser, n_charts: int) -> None:
    # charts are drawn when their section scrolls into view
    b.eval(
        "(async () => { for (const s of document.querySelectorAll('section.video')) {"
        " s.scrollIntoView(); await new Promise(r => setTimeout(r, 50)); } })()"
    )
    b.wait_for(f"document.querySelectorAll('.js-plotly-plot').length >= {n_charts}")


def test_page_table_charts_seek_and_sort(site, browser):
    base, db, out, rows = site
    b = browser
    b.open(out.as_uri())
    assert b.eval("document.querySelectorAll('#videos tbody tr').length") == len(rows)
    assert b.eval("document.querySelectorAll('section.video').length") == len(rows)
    open_all_sections(b, 3)
    # one chart per scored video; the failed one has none
    assert b.eval("document.querySelectorAll('.js-plotly-plot').length") == 3
    assert b.eval("document.querySelectorAll('section.video .js-plotly-plot').length") == 3
    assert b.eval("!!document.querySelector('#v3 .js-plotly-plot')") is False
    # the gate band (itu-bt1359: -125 .. +45 ms) is the chart's first shape
    band = b.eval(
        "(() => { const s = document.getElementById('chart-0').layout.shapes[0];"
        " return [s.y0, s.y1]; })()"
    )
    assert band == [-125, 45]
    # the cut of v2 (frame 40 = 1.6 s) is a vertical line
    assert b.eval(
        "document.getElementById('chart-2').layout.shapes.some("
        "s => s.type === 'line' && s.x0 === 1.6 && s.x1 === 1.6)"
    )

    # a real mouse click on v2's third segment in its list seeks v2's video to its start
    seg = rows[2]["tracks"][0]["segments"][2]
    b.eval("document.querySelector('#v2 details.segs').open = true")
    xy = b.eval(
        "(() => { const r = document.querySelectorAll('#segs-2 tr.seek')[2];"
        " r.scrollIntoView({block: 'center'}); const q = r.getBoundingClientRect();"
        " return [q.x + q.width / 2, q.y + q.height / 2]; })()"
    )
    b.click_at(*xy)
    t = b.wait_for("document.getElementById('video-2').currentTime || null")
    assert abs(t - seg["start_s"]) < 1e-3, (t, seg["start_s"])
    assert b.eval("document.getElementById('video-0').currentTime") == 0
    # a click on a chart point seeks too (plotly_click)
    seg1 = rows[1]["tracks"][0]["segments"][3]
    xy = b.eval(
        "(() => { const el = document.getElementById('chart-1');"
        " el.scrollIntoView({block: 'center'});"
        " const p = el.querySelectorAll('.scatterlayer .trace')[0].querySelectorAll('.point')[3];"
        " const q = p.getBoundingClientRect(); return [q.x + q.width / 2, q.y + q.height / 2]; })()"
    )
    b.click_at(*xy)
    t = b.wait_for("document.getElementById('video-1').currentTime || null")
    assert abs(t - seg1["start_s"]) < 1e-3, (t, seg1["start_s"])

    # sorting: by global offset ascending puts v1 (+200 ms) last of the scored ones and the
    # failed video (no number) at the end; again: descending, v1 first
    order = "[...document.querySelectorAll('#videos tbody tr')].map(r => Number(r.dataset.i))"
    b.eval("document.querySelector('th[data-key=gom]').click()")
    assert b.eval(order) == [0, 2, 1, 3]
    b.eval("document.querySelector('th[data-key=gom]').click()")
    assert b.eval(order) == [1, 0, 2, 3]
    b.eval("document.querySelector('th[data-key=rank]').click()")  # worst verdict first
    assert b.eval(order) == [3, 1, 2, 0]

    # nothing from the network: every request is the page itself, a data: URI or the video
    urls = requests_made(b)
    assert urls and all(u.split(":", 1)[0] in ("file", "data") for u in urls), urls
    assert any(u.endswith("/videos/v2.mp4") for u in urls)  # the seek asked for the file
    refs = b.eval(
        "[...document.querySelectorAll('[src],[href]')].map(e => e.getAttribute('src') ||"
        " e.getAttribute('href'))"
    )
    assert not [r for r in refs if re.match(r"\s*(https?:|//)", r)], refs
    # the <video> sources are relative to the page: ../videos/NAME.mp4
    assert b.eval("document.getElementById('video-0').getAttribute('src')") == "../videos/v0.mp4"
    assert b.eval("document.querySelectorAll('script[src]').length") == 0


def test_thumbnails_of_failing_segments_only(site):
    base, db, out, rows = site
    html = out.read_text()
    # v1: all 5 segments fail (cap 6); v2: 2; v0: none
    for i, n in ((0, 0), (1, 5), (2, 2)):
        section = html.split(f'id="v{i}"', 1)[1].split("<section", 1)[0]
        assert section.count("data:image/jpeg;base64,") == n, i
    plain = base / "plain.html"
    assert main(["review", str(db), "-o", str(plain), "--no-thumbnails", "--quiet"]) == 0
    assert "data:image/jpeg" not in plain.read_text()


def test_regating_changes_verdicts_not_the_store(site, tmp_path):
    base, db, out, rows = site
    before = sqlite3.connect(db).execute("SELECT * FROM videos ORDER BY seq").fetchall()
    page = tmp_path / "loose.html"
    # frames:7: no segment fails (max |offset| is 6)
    assert main(["review", str(db), "-o", str(page), "--gate", "frames:7", "--quiet"]) == 0
    text = page.read_text()
    assert 'class="verdict v-in_sync">in_sync</span> 3' in text.replace("\n", "")
    assert "frames:7" in text
    assert sqlite3.connect(db).execute("SELECT * FROM videos ORDER BY seq").fetchall() == before


def test_missing_or_foreign_store_exits_2(tmp_path, capsys):
    assert main(["review", str(tmp_path / "none.sqlite"), "-o", str(tmp_path / "r.html")]) == 2
    assert "no such results store" in capsys.readouterr().err
    foreign = tmp_path / "results.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE results (stem TEXT)")
    con.commit()
    con.close()
    assert main(["review", str(foreign), "-o", str(tmp_path / "r.html")]) == 2
    assert "not a sync results store" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
    # the foreign store was not written to (no sync tables created in it)
    tables = sqlite3.connect(foreign).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("results",)]


# paths under the test's folder: "/" cannot be in a file name, so a folder opens the tags
HOSTILE = ['"><script>alert(1)</script>.mp4', "it's & <b>bold</b>.mp4"]


def test_hostile_file_names_stay_text(tmp_path, browser):
    (tmp_path / "v").mkdir()
    rows = []
    for k, name in enumerate(HOSTILE):
        (tmp_path / "v" / name).parent.mkdir(parents=True, exist_ok=True)
        clip = synth.make_clip(tmp_path / "v" / name, seed=50 + k, seconds=3.0)
        rows.append(rr.row(clip, [0, 5, 5, 0, 0]))
    db = rr.make_store(tmp_path / "s.sqlite", rows)
    out = tmp_path / "review.html"
    assert main(["review", str(db), "-o", str(out), "--quiet"]) == 0
    b = browser
    b.events.clear()
    b.send("Runtime.enable")
    b.open(out.as_uri())
    open_all_sections(b, len(rows))
    # the page's own scripts only: the embedded plotly.js and the review script (plus the
    # JSON data block); nothing the names could have added, and no dialog opened
    assert b.eval("document.querySelectorAll('script').length") == 3
    bold = "[...document.querySelectorAll('b')].filter(e => e.textContent === 'bold').length"
    assert b.eval(bold) == 0
    assert not [e for e in b.events if e["method"] == "Page.javascriptDialogOpening"]
    names = b.eval("[...document.querySelectorAll('#videos tbody a')].map(a => a.textContent)")
    assert [n.split("/v/", 1)[1] for n in names] == HOSTILE
    # the sources are percent-encoded and still name the files
    srcs = b.eval("[...document.querySelectorAll('video')].map(v => v.src)")
    assert all("<" not in s and "'" not in s and '"' not in s for s in srcs)
    import urllib.parse

    assert [urllib.parse.unquote(s).split("/v/", 1)[1] for s in srcs] == HOSTILE
    # the data block parses as JSON and holds no name at all
    data = json.loads(b.eval("document.getElementById('review-data').textContent"))
    assert len(data["videos"]) == len(rows) and "alert" not in json.dumps(data)


def test_page_data_cannot_close_its_script_element():
    from lipleak.html import data_json

    text = str(data_json({"name": "</script><script>alert(1)</script>", "x": float("nan")}))
    assert "<" not in text and ">" not in text
    assert json.loads(text) == {"name": "</script><script>alert(1)</script>", "x": None}


def test_video_url_is_relative_and_percent_encoded(tmp_path):
    from lipleak.sync.review import video_url

    video = tmp_path / "clips" / "a b\"<x>'&#?.mp4"
    url = video_url(str(video), tmp_path / "pages")
    assert url == "../clips/a%20b%22%3Cx%3E%27%26%23%3F.mp4"


def test_gate_options_replace_the_stores_gate(site, tmp_path):
    base, db, out, rows = site
    page = tmp_path / "lead.html"
    # lead limit 250 ms: v1's +200/+240 ms pass; the store's itu-bt1359 lag limit stays
    assert main(["review", str(db), "-o", str(page), "--max-lead-ms", "250", "--quiet"]) == 0
    text = page.read_text()
    assert "itu-bt1359 (lead 250 ms)" in text
    assert 'class="verdict v-global_offset"' not in text
    assert main(["review", str(db), "-o", str(page), "--gate", "frames:0"]) == 2


def test_a_real_sync_store_renders(model_dir, tmp_path, browser):
    """The rows `sync DIR` writes (not constructed ones): detail, tracks and their
    segments as stored, one chart per video, the player's source relative to the page."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for k in range(2):
        synth.make_clip(videos / f"s{k}.mp4", seed=60 + k, seconds=2.0)
    db = tmp_path / "sync.sqlite"
    seg = ["--segment", "0.6", "--hop", "0.4"]
    sync = ["sync", str(videos), "--db", str(db), "--syncnet", "syncnet_v2_random", "--quiet"]
    assert main([*sync, *seg]) == 0
    out = tmp_path / "review.html"
    assert main(["review", str(db), "-o", str(out), "--quiet"]) == 0
    b = browser
    b.open(out.as_uri())
    assert b.eval("document.querySelectorAll('#videos tbody tr').length") == 2
    open_all_sections(b, 2)
    assert b.eval("document.querySelectorAll('.js-plotly-plot').length") == 2
    n_points = b.eval("[0, 1].map(i => document.getElementById('chart-' + i).data[0].x.length)")
    stored = [
        sum(len(t["segments"]) for t in json.loads(tracks))
        for (tracks,) in sqlite3.connect(db).execute("SELECT tracks FROM videos ORDER BY seq")
    ]
    assert n_points == stored and min(stored) >= 3
    assert b.eval("document.getElementById('video-0').getAttribute('src')") in (
        "videos/s0.mp4",
        "videos/s1.mp4",
    )

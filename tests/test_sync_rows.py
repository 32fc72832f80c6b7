"""lipleak.sync.rows: printed lines, CSV/JSONL round trips, the summary (its means replay
Wav2Lip's calculate_scores_LRS.py loop), keep thresholds and keep lists."""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest

from lipleak.errors import LipleakError
from lipleak.sync.inputs import VideoJob, collect_jobs
from lipleak.sync.rows import (
    CSV_COLUMNS,
    Summary,
    format_header,
    format_row,
    format_summary,
    keep,
    summarize,
    write_csv,
    write_jsonl,
    write_keep_list,
)


def ok_row(video, lse_c, lse_d, offset=0, audio="", tracks=None, n_frames=100):
    tracks = tracks or [
        {
            "start_frame": 0,
            "end_frame": n_frames - 1,
            "n_windows": n_frames - 5,
            "offset": offset,
            "lse_c": lse_c,
            "lse_d": lse_d,
        }
    ]
    return {
        "video": video,
        "audio": audio,
        "settings_hash": "abcd1234",
        "inputs_hash": "in",
        "status": "ok",
        "reason": "",
        "offset": offset,
        "lse_c": lse_c,
        "lse_d": lse_d,
        "n_frames": n_frames,
        "n_tracks": len(tracks),
        "tracks": tracks,
        "detail": {"src_fps": 29.97, "resampled": True, "frame_path": "lossless", "x": 1},
    }


def failed_row(video, status="no_face", reason="no face track"):
    return {
        "video": video,
        "audio": "",
        "settings_hash": "abcd1234",
        "inputs_hash": "in",
        "status": status,
        "reason": reason,
        "offset": None,
        "lse_c": None,
        "lse_d": None,
        "n_frames": None,
        "n_tracks": None,
        "tracks": [],
        "detail": None,
    }


TWO_TRACKS = [
    {"start_frame": 0, "end_frame": 119, "n_windows": 115, "offset": 1, "lse_c": 7.125,
     "lse_d": 6.5, },
    {"start_frame": 130, "end_frame": 249, "n_windows": 115, "offset": -3, "lse_c": 0.1 + 0.2,
     "lse_d": 9.75},
]  # fmt: skip


@pytest.fixture
def rows():
    return [
        ok_row("/d/a.mp4", 7.123456789, 6.5, offset=1, audio="/d/a.wav"),
        failed_row('/d/b,with "quotes".mp4', "decode_error", "bad packet at 3.2 s"),
        ok_row("/d/c.mp4", 1 / 3, 9.0, offset=-3, tracks=TWO_TRACKS, n_frames=250),
    ]


# --- printed lines -------------------------------------------------------------------------


def test_format_row_fixed_width(rows):
    header = format_header()
    lines = [format_row(r) for r in rows]
    assert header.split() == ["status", "offset", "LSE-C", "LSE-D", "frames", "tracks", "video"]
    # the path starts in the same column on every line
    col = header.index("video")
    assert all(line[col - 2 : col] == "  " for line in lines)
    assert lines[0].split() == ["ok", "1", "7.1235", "6.5000", "100", "1", "/d/a.mp4", "(audio",
                                "/d/a.wav)"]  # fmt: skip
    assert lines[1].startswith("decode_error ")
    assert lines[1].endswith('/d/b,with "quotes".mp4: bad packet at 3.2 s')
    assert lines[1].split()[1:6] == ["-"] * 5
    assert lines[2][:col].split() == ["ok", "-3", "0.3333", "9.0000", "250", "2"]


# --- CSV -----------------------------------------------------------------------------------


def test_csv_round_trip(tmp_path, rows):
    path = tmp_path / "out" / "sync.csv"
    write_csv(path, rows)
    with open(path, newline="") as f:
        got = list(csv.DictReader(f))
    assert tuple(got[0]) == CSV_COLUMNS
    assert [(g["video"], g["track"]) for g in got] == [
        ("/d/a.mp4", "video"),
        ("/d/a.mp4", "0"),
        ('/d/b,with "quotes".mp4', "video"),
        ("/d/c.mp4", "video"),
        ("/d/c.mp4", "0"),
        ("/d/c.mp4", "1"),
    ]
    a, a0, b, c, c0, c1 = got
    assert float(a["lse_c"]) == 7.123456789 and a["audio"] == "/d/a.wav"
    assert (a["start_frame"], a["end_frame"], a["n_tracks"]) == ("", "", "1")
    assert a0["audio"] == "/d/a.wav" and a0["settings_hash"] == "abcd1234"
    assert b["status"] == "decode_error" and b["reason"] == "bad packet at 3.2 s"
    for col in ("offset", "lse_c", "lse_d", "n_frames", "n_tracks", "start_frame", "end_frame"):
        assert b[col] == ""
    assert float(c["lse_c"]) == 1 / 3 and int(c["offset"]) == -3 and c["n_frames"] == "250"
    assert float(c1["lse_c"]) == 0.1 + 0.2  # repr: exact round trip
    assert (c1["offset"], c1["start_frame"], c1["end_frame"]) == ("-3", "130", "249")
    assert (c0["n_frames"], c0["n_tracks"], c0["reason"]) == ("120", "", "")
    assert (c1["lse_d"], c1["status"]) == ("9.75", "ok")


def test_csv_is_atomic(tmp_path, rows):
    path = tmp_path / "sync.csv"
    path.write_text("old")

    class Boom(dict):
        def __getitem__(self, k):
            raise RuntimeError("mid-write")

    with pytest.raises(RuntimeError):
        write_csv(path, [rows[0], Boom(rows[2])])
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sync.csv"]


def test_csv_keeps_non_utf8_names_as_bytes(tmp_path):
    name = os.fsdecode(b"/d/caf\xe9.mp4")
    write_csv(tmp_path / "s.csv", [ok_row(name, 1.0, 2.0)])
    assert b"/d/caf\xe9.mp4," in (tmp_path / "s.csv").read_bytes()


# --- JSONL ---------------------------------------------------------------------------------


def test_jsonl_round_trip_and_no_nan(tmp_path, rows):
    rows[2]["lse_d"] = float("nan")
    rows[2]["tracks"][1]["lse_c"] = float("inf")
    path = tmp_path / "sync.jsonl"
    write_jsonl(path, rows)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    got = [json.loads(line, parse_constant=pytest.fail) for line in text.splitlines()]
    assert len(got) == 3
    a, b, c = got
    assert a["lse_c"] == 7.123456789 and a["audio"] == "/d/a.wav" and a["n_tracks"] == 1
    assert a["tracks"] == rows[0]["tracks"]
    assert (a["src_fps"], a["resampled"], a["frame_path"]) == (29.97, True, "lossless")
    assert "x" not in a and "detail" not in a
    assert b["status"] == "decode_error" and b["lse_c"] is None and b["tracks"] == []
    assert b["src_fps"] is None and b["audio"] == ""
    assert c["lse_d"] is None and c["tracks"][1]["lse_c"] is None
    assert c["tracks"][0] == TWO_TRACKS[0]
    assert set(a) == set(b) == set(c)


def test_jsonl_escapes_non_utf8_names(tmp_path):
    name = os.fsdecode(b"/d/caf\xe9.mp4")
    write_jsonl(tmp_path / "s.jsonl", [ok_row("/d/é.mp4", 1.0, 2.0), ok_row(name, 1.0, 2.0)])
    lines = (tmp_path / "s.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["video"] == "/d/é.mp4" and "é" in lines[0]
    assert json.loads(lines[1])["video"] == name


# --- summary -------------------------------------------------------------------------------


def wav2lip_means(confidences, min_distances):
    """calculate_scores_LRS.py's loop, replayed: each SyncNet number is a 0-d float32 array
    (``conf.numpy()``); ``avg += x`` from ``0.`` under NumPy 1.x promotion, where a Python
    float with a float32 array gives float64 (NumPy 2 would keep float32, NEP 50, so the
    promotion is spelled out); then ``avg / len(all_videos)``."""
    avg_confidence = np.float64(0.0)
    avg_min_distance = np.float64(0.0)
    for conf, minval in zip(confidences, min_distances, strict=True):
        conf = np.asarray(conf, dtype=np.float32)
        minval = np.asarray(minval, dtype=np.float32)
        avg_confidence = np.add(avg_confidence, conf, dtype=np.float64)
        avg_min_distance = np.add(avg_min_distance, minval, dtype=np.float64)
    n = len(confidences)
    return float(avg_confidence / n), float(avg_min_distance / n)


def float32_values(rng, n, lo, hi):
    return rng.uniform(lo, hi, n).astype(np.float32)


def test_means_equal_wav2lip_loop_bit_for_bit():
    rng = np.random.default_rng(13)
    conf32 = float32_values(rng, 3000, 0.5, 11.0)
    dist32 = float32_values(rng, 3000, 5.0, 12.0)
    # our rows hold Python floats made from the float32 outputs
    rows = [
        ok_row(f"/v/{i}.mp4", float(c), float(d)) for i, (c, d) in enumerate(zip(conf32, dist32))
    ]
    s = summarize(rows)
    assert (s.mean_lse_c, s.mean_lse_d) == wav2lip_means(conf32, dist32)  # exact, not approx
    # the order matters to the last bits: the oracle in another order need not agree
    perm = rng.permutation(len(rows))
    s2 = summarize([rows[i] for i in perm])
    assert (s2.mean_lse_c, s2.mean_lse_d) == wav2lip_means(conf32[perm], dist32[perm])


def test_failed_videos_are_left_out_of_the_means():
    rng = np.random.default_rng(7)
    conf32 = float32_values(rng, 50, 0.5, 11.0)
    dist32 = float32_values(rng, 50, 5.0, 12.0)
    rows = []
    for i, (c, d) in enumerate(zip(conf32, dist32)):
        rows.append(ok_row(f"/v/{i}.mp4", float(c), float(d), offset=i % 5 - 2))
        if i % 10 == 4:
            rows.append(failed_row(f"/v/{i}-bad.mp4", "no_face" if i % 20 == 4 else "missing"))
    s = summarize(rows)
    assert (s.count, s.ok, s.failed) == (55, 50, 5)
    assert s.failures == {"missing": 2, "no_face": 3}
    assert (s.mean_lse_c, s.mean_lse_d) == wav2lip_means(conf32, dist32)
    c64, d64 = conf32.astype(np.float64), dist32.astype(np.float64)
    assert s.std_lse_c == pytest.approx(np.std(c64), rel=1e-12)  # ddof = 0
    assert s.std_lse_d == pytest.approx(np.std(d64, ddof=0), rel=1e-12)
    assert (s.min_lse_c, s.max_lse_c) == (float(c64.min()), float(c64.max()))
    assert (s.min_lse_d, s.max_lse_d) == (float(d64.min()), float(d64.max()))
    offsets = np.arange(50) % 5 - 2
    assert s.mean_offset == pytest.approx(offsets.mean())
    assert s.mean_abs_offset == pytest.approx(np.abs(offsets).mean())
    assert s.in_sync == 10 and s.frames == 5000


@pytest.mark.skipif(np.lib.NumpyVersion(np.__version__) < "2.0.0", reason="NumPy 2 promotion")
def test_literal_loop_under_numpy2_accumulates_float32():
    """Why the oracle spells out the promotion: the script's loop run verbatim under NumPy 2
    sums in float32 and drifts from the float64 sum the script printed under NumPy 1.x."""
    rng = np.random.default_rng(3)
    conf32 = float32_values(rng, 3000, 0.5, 11.0)
    avg_confidence = 0.0
    for conf in conf32:
        avg_confidence += np.asarray(conf)  # 0-d float32, as conf.numpy()
    assert np.asarray(avg_confidence).dtype == np.float32
    rows = [ok_row(f"/v/{i}.mp4", float(c), 8.0) for i, c in enumerate(conf32)]
    assert summarize(rows).mean_lse_c != float(avg_confidence / len(conf32))


def test_summary_edge_cases(rows):
    empty = summarize([])
    assert empty == Summary() and empty.mean_lse_c is None
    none_ok = summarize([failed_row("/a.mp4")])
    assert (none_ok.count, none_ok.ok, none_ok.failed, none_ok.std_lse_c) == (1, 0, 1, None)
    assert format_summary(none_ok) == "1 videos: 0 scored, 1 failed (no_face 1)"
    one = summarize([ok_row("/a.mp4", 3.0, 8.0, offset=-2)])
    assert (one.std_lse_c, one.std_lse_d, one.mean_abs_offset, one.in_sync) == (0.0, 0.0, 2.0, 0)
    s = summarize(rows)
    text = format_summary(s)
    assert text.splitlines()[0] == "3 videos: 2 scored, 1 failed (decode_error 1)"
    assert f"Average Confidence: {s.mean_lse_c!r}" in text and "ddof=0" in text
    assert json.loads(json.dumps(s.to_dict()))["failures"] == {"decode_error": 1}


# --- keep ----------------------------------------------------------------------------------


def test_keep_thresholds_are_inclusive():
    rows = [
        ok_row("/a.mp4", 6.0, 8.0, offset=0),
        ok_row("/b.mp4", 5.999999, 7.0, offset=1),
        ok_row("/c.mp4", 7.0, 8.000001, offset=-1),
        ok_row("/d.mp4", 9.0, 6.0, offset=-2),
        failed_row("/e.mp4"),
        ok_row("/f.mp4", float("nan"), 6.0, offset=0),
    ]
    names = lambda kept: [r["video"] for r in kept]  # noqa: E731
    assert names(keep(rows, None, None, None)) == ["/a.mp4", "/b.mp4", "/c.mp4", "/d.mp4", "/f.mp4"]
    assert names(keep(rows, min_lse_c=6.0, max_lse_d=None, max_abs_offset=None)) == [
        "/a.mp4",
        "/c.mp4",
        "/d.mp4",
    ]
    assert names(keep(rows, None, 8.0, None)) == ["/a.mp4", "/b.mp4", "/d.mp4", "/f.mp4"]
    assert names(keep(rows, None, None, 1)) == ["/a.mp4", "/b.mp4", "/c.mp4", "/f.mp4"]
    assert names(keep(rows, None, None, 0)) == ["/a.mp4", "/f.mp4"]
    assert names(keep(rows, 6.0, 8.0, 1)) == ["/a.mp4"]


def test_keep_list_reads_back_as_a_list(tmp_path):
    d = tmp_path / "media"
    d.mkdir()
    a = d / "a b.mp4"
    b = d / "#b.mp4"
    w = d / "b.wav"
    for p in (a, b, w):
        p.write_bytes(b"x")
    rows = [ok_row(str(a), 7.0, 6.0), ok_row(str(b), 7.0, 6.0, audio=str(w))]
    out = tmp_path / "keep.txt"
    write_keep_list(out, rows)
    assert out.read_text() == f"{a}\n{b}\t{w}\n"
    jobs, ignored = collect_jobs([f"@{out}"])
    assert jobs == [VideoJob(a, None), VideoJob(b, w)] and ignored == []
    assert [j.key() for j in jobs] == [(r["video"], r["audio"]) for r in rows]


def test_keep_list_relative_names_that_look_like_comments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "#x.mp4").write_bytes(b"x")
    (tmp_path / " ").write_bytes(b"x")
    write_keep_list(tmp_path / "k.txt", [ok_row("#x.mp4", 1, 1), ok_row(" ", 1, 1)])
    assert (tmp_path / "k.txt").read_text() == "./#x.mp4\n./ \n"
    jobs, _ = collect_jobs(["@k.txt"])
    assert [j.key()[0] for j in jobs] == [str(tmp_path / "#x.mp4"), str(tmp_path / " ")]


@pytest.mark.parametrize("bad", ["/a\tb.mp4", "/a\nb.mp4", "/a\rb.mp4", ""])
def test_keep_list_refuses_names_it_cannot_write(tmp_path, bad):
    with pytest.raises(LipleakError, match="cannot be written to a list file"):
        write_keep_list(tmp_path / "k.txt", [ok_row(bad, 1, 1)])
    assert not (tmp_path / "k.txt").exists()


def test_nan_compare_sanity():
    # keep() relies on NaN comparisons being False
    assert not (math.nan >= 0) and not (math.nan <= 0)

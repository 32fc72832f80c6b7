"""``sync``'s SPEC §11 options end to end on two 2-s synthetic clips (random-weight
SyncNet): --json segments and timeline, --segments CSV/JSONL, --fail-on's exit status,
the store re-gated without rescoring, the summary's verdict counts, usage errors."""

from __future__ import annotations

import csv
import json

import pytest

import synth
from lipleak.cli import main

SEG = ["--segment", "0.6", "--hop", "0.4"]  # 15 windows every 10: several per clip
SEGMENT_KEYS = {
    "first_window",
    "last_window",
    "start_frame",
    "end_frame",
    "start_tc",
    "end_tc",
    "offset",
    "av_offset_ms",
    "lse_c",
    "lse_d",
    "status",
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory, model_dir):
    d = tmp_path_factory.mktemp("timeline") / "videos"
    d.mkdir()
    for i in range(2):
        synth.make_clip(d / f"v{i}.mp4", seed=20 + i, seconds=2.0)
    return d


def sync(*args) -> int:
    return main(["sync", *map(str, args), "--syncnet", "syncnet_v2_random"])


def test_one_video_json_and_segments_files(folder, tmp_path, capsys):
    video = folder / "v0.mp4"
    assert sync(video, *SEG, "--json", "--segments", tmp_path / "s.csv") == 0
    r = json.loads(capsys.readouterr().out)["result"]
    (track,) = r["tracks"]
    segs = track["segments"]
    assert len(segs) >= 3 and all(SEGMENT_KEYS <= set(s) for s in segs)
    assert all(s["av_offset_ms"] == 40.0 * s["offset"] for s in segs)
    assert [s["first_window"] for s in segs] == list(range(0, 10 * len(segs), 10))
    t = r["timeline"]
    assert t["gate"]["name"] == "itu-bt1359" and "audio leads" in t["sign"]
    assert set(t) >= {"global_offset", "global_offset_ms", "drift_ms_per_min", "verdict", "failing"}
    with open(tmp_path / "s.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == len(segs)
    for line, s in zip(lines, segs):
        assert line["track"] == "0" and line["video"] == str(video)
        assert float(line["lse_c"]) == s["lse_c"] and int(line["offset"]) == s["offset"]
        assert line["start_tc"] == s["start_tc"] and line["status"] == s["status"]


def test_fail_on_exit_status_one_video(folder, capsys):
    video = folder / "v1.mp4"
    # every segment below the threshold: nothing measurable
    args = (video, *SEG, "--min-segment-lse-c", "1e9")
    assert sync(*args, "--fail-on", "not_measurable,drift_late") == 5
    out = capsys.readouterr().out
    assert "timeline: not_measurable under itu-bt1359" in out


def test_volume_store_regated_without_rescoring(folder, tmp_path, capsys):
    db = tmp_path / "s.sqlite"
    base = (folder, "--db", db, *SEG, "--quiet")
    # frames:16 can never fail (|offset| <= 15); threshold 0: every loud segment is ok
    loose = ("--gate", "frames:16", "--min-segment-lse-c", "0", "--fail-on", "not_measurable")
    assert (
        sync(*base, *loose, "--jsonl", tmp_path / "r.jsonl", "--segments", tmp_path / "s.jsonl")
        == 0
    )
    out = capsys.readouterr().out
    assert "scored 2, skipped 0" in out and "timeline (frames:16): in_sync 2" in out
    rows = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["timeline"]["verdict"] for r in rows] == ["in_sync", "in_sync"]
    segs = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(segs) == sum(len(t["segments"]) for r in rows for t in r["tracks"])
    assert {s["status"] for s in segs} <= {"ok", "silent"}
    # another gate and threshold: the same rows, verdicts re-derived, nothing rescored
    strict = ("--min-segment-lse-c", "1e9", "--csv", tmp_path / "r.csv")
    assert (
        sync(*base, *strict, "--segments", tmp_path / "s2.csv", "--fail-on", "not_measurable") == 5
    )
    out = capsys.readouterr().out
    assert "scored 0, skipped 2" in out and "timeline (itu-bt1359): not_measurable 2" in out
    with open(tmp_path / "r.csv", newline="") as f:
        videos = [r for r in csv.DictReader(f) if r["track"] == "video"]
    assert [r["verdict"] for r in videos] == ["not_measurable"] * 2
    with open(tmp_path / "s2.csv", newline="") as f:
        again = list(csv.DictReader(f))
    assert len(again) == len(segs) and {r["status"] for r in again} <= {"low_confidence", "silent"}
    # the stored numbers did not change
    assert [float(r["lse_c"]) for r in again] == [s["lse_c"] for s in segs]


@pytest.mark.parametrize(
    "opts,msg",
    [
        (["--gate", "smpte"], "unknown gate"),
        (["--gate", "frames:2", "--max-lead-ms", "40"], "frames:K gate has no ms limits"),
        (["--fail-on", "late"], "unknown verdict late"),
        (["--segments", "s.txt"], "must end in .csv or .jsonl"),
        (["--segment", "0.01"], "--segment must be at least 0.04 s"),
        (["--max-lag-ms", "-5"], "max lag must be"),
    ],
)
def test_usage_errors(folder, capsys, opts, msg):
    assert sync(folder / "v0.mp4", *opts) == 2
    assert msg in capsys.readouterr().err

"""`sync --avs`: AVS_u per video in the rows, CSV, JSONL and summary, with a random-weight
AV-HuBERT (tiny fixture of the published layout) on real clips."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import CLIPS_DIR
from lipleak.cli import main
from lipleak.io.audio import load_audio
from media import cut_clip, noise_frames, speech_like, write_video

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def avs_set(model_dir, tmp_path_factory):
    from lipleak.export.avhubert_fixture import make_fixture

    base = tmp_path_factory.mktemp("sync_avs")
    tiny = make_fixture(base / "tiny.pt", "tiny", seed=7)
    videos = base / "videos"
    videos.mkdir()
    cut_clip(CLIPS_DIR / "real03_aoc.mp4", videos / "a.mp4", 0, 30, width=320)
    cut_clip(CLIPS_DIR / "real07_reagan.mp4", videos / "b.mp4", 10, 30, width=320)
    # prealigned SyncNet scores any frames; AV-HuBERT's mouth ROIs need a face
    write_video(videos / "noface.mp4", noise_frames(30, 224, 224), audio=speech_like(1.2))
    return base, tiny, videos


@pytest.mark.slow
def test_sync_avs_rows_equal_the_scorer_and_a_faceless_video_says_why(avs_set, capsys):
    from lipleak.avs import AVSScorer, AVSSettings

    base, tiny, videos = avs_set
    out = base / "out"
    args = ["sync", str(videos), "--syncnet", "syncnet_v2_random", "--avs", str(tiny)]
    args += ["--csv", str(out / "rows.csv"), "--jsonl", str(out / "rows.jsonl")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    rows = {r["video"].rsplit("/", 1)[-1]: r for r in map(json.loads, open(out / "rows.jsonl"))}
    assert all(r["status"] == "ok" for r in rows.values())
    scorer = AVSScorer(AVSSettings(model=str(tiny)))
    for name in ("a.mp4", "b.mp4"):
        want = scorer.score(videos / name, load_audio(videos / name))["avs_u"]
        assert rows[name]["avs_u"] == pytest.approx(want, abs=1e-12)
        assert rows[name]["reason"] == ""
    assert rows["noface.mp4"]["avs_u"] is None
    assert rows["noface.mp4"]["reason"].startswith("avs_u: no_face")
    assert rows["noface.mp4"]["lse_c"] is not None  # LSE stands
    lines = list(csv.DictReader(open(out / "rows.csv")))
    by = {r["video"].rsplit("/", 1)[-1]: r for r in lines if r["track"] == "video"}
    assert float(by["a.mp4"]["avs_u"]) == rows["a.mp4"]["avs_u"]
    assert by["noface.mp4"]["avs_u"] == ""
    mean = np.mean([rows["a.mp4"]["avs_u"], rows["b.mp4"]["avs_u"]])
    assert f"AVS_u  mean {mean:.4f}" in printed and "(over 2)" in printed
    # a rerun skips every video; the same videos without --avs are another run's rows
    assert main(args) == 0
    again = capsys.readouterr()
    assert "scored 0, skipped 3" in again.out + again.err
    plain = ["sync", str(videos), "--syncnet", "syncnet_v2_random"]
    plain += ["--jsonl", str(out / "plain.jsonl"), "--db", str(out / "sync_results.sqlite")]
    assert main(plain) == 0
    prow = {r["video"].rsplit("/", 1)[-1]: r for r in map(json.loads, open(out / "plain.jsonl"))}
    for name, r in rows.items():
        assert prow[name]["avs_u"] is None
        assert (prow[name]["lse_c"], prow[name]["lse_d"]) == (r["lse_c"], r["lse_d"])
        assert prow[name]["settings_hash"] != r["settings_hash"]


def test_avs_with_ray_is_refused(tmp_path, capsys):
    v = tmp_path / "v.mp4"
    v.write_bytes(b"")
    rc = main(["sync", str(tmp_path), str(v), "--avs", "avhubert_base", "--ray"])
    assert rc != 0
    assert "not with --ray" in capsys.readouterr().err

"""`sync --gt-dir`: LPIPS of each video against the GT of the same stem (SPEC §8), with a
seeded random trunk and the lpips wheel's heads; the GT pairing rules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import CLIPS_DIR
from lipleak.cli import main
from lipleak.sync.inputs import VideoJob, pair_gt
from media import write_video


def test_pair_gt_by_stem_any_container_case_insensitive(tmp_path):
    gt = tmp_path / "gt"
    gt.mkdir()
    for name in ("a.MP4", "b.mkv", "b.avi", ".c.mp4", "c.txt", "d.wav"):
        (gt / name).write_bytes(b"x")
    jobs = [VideoJob(Path(f"/v/{s}.mp4"), None) for s in ("a", "b", "c", "d")]
    got = {Path(j.video).stem: j.gt for j in pair_gt(jobs, gt)}
    assert got["a"] == gt / "a.MP4"
    assert got["b"] == gt / "b.avi"  # several: the first name in code-point order
    assert got["c"] == gt / "c" and not got["c"].exists()  # hidden and non-video names skipped
    assert got["d"] == gt / "d"
    assert all(j.key() == (str(Path(j.video).resolve()), "") for j in pair_gt(jobs, gt))


def test_gt_dir_must_be_a_folder(tmp_path):
    from lipleak.errors import InputError

    with pytest.raises(InputError):
        pair_gt([], tmp_path / "nope")
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(InputError):
        pair_gt([], tmp_path / "f")


@pytest.mark.parametrize("opts", [["--lpips", "vgg"], ["--lpips-trunk", "trunk.pth"]])
@pytest.mark.parametrize("many", [False, True])
def test_lpips_options_without_gt_dir_are_an_error(tmp_path, capsys, opts, many):
    """Not silently ignored: without --gt-dir there is no LPIPS to compute; one video
    (today's one-video path) and a folder alike, before anything is scored."""
    video = CLIPS_DIR / "real03_aoc.mp4"
    inputs = [str(video), "--db", str(tmp_path / "s.sqlite")] if many else [str(video)]
    assert main(["sync", *inputs, *opts]) == 2  # a usage error
    assert "--lpips/--lpips-trunk need --gt-dir" in capsys.readouterr().err
    assert not (tmp_path / "s.sqlite").exists()


def _heads() -> Path:
    """The lpips wheel's v0.1 heads (found, not imported: lpips imports torchvision)."""
    import importlib.util

    spec = importlib.util.find_spec("lpips")
    if spec is None or importlib.util.find_spec("torch") is None:
        pytest.skip("needs the lpips package (README install) and torch")
    return Path(spec.origin).parent / "weights" / "v0.1"


def _frames(n: int):
    from lipleak.io.video import iter_frames

    out = []
    for f in iter_frames(CLIPS_DIR / "real07_reagan.mp4"):
        out.append(f)
        if len(out) == n:
            return out


def _lossless(path: Path, frames, audio=None) -> Path:
    return write_video(path, frames, audio=audio, codec="ffv1")


@pytest.fixture(scope="module")
def gt_set(model_dir, tmp_path_factory):
    """GT: 10 real frames; videos: a brightened band, the GT itself, and one without GT."""
    from lipleak.export import lpips_onnx
    from lipleak.io.audio import load_audio
    from lipleak.models import store

    base = tmp_path_factory.mktemp("sync_gt")
    store.fetch("lpips_alex", source=_heads() / "alex.pth")
    trunk = lpips_onnx.random_trunk("alex", base / "trunk.pth", 3)
    frames = _frames(10)
    audio = load_audio(CLIPS_DIR / "real07_reagan.mp4")[: 10 * 640]
    band = []
    for f in frames:
        g = f.copy()
        g[150:190] = np.clip(g[150:190].astype(np.int16) + 50, 0, 255)
        band.append(g)
    gt, videos = base / "gt", base / "videos"
    gt.mkdir()
    videos.mkdir()
    _lossless(gt / "band.mkv", frames, audio)
    _lossless(gt / "same.mkv", frames, audio)
    _lossless(videos / "band.mkv", band, audio)
    _lossless(videos / "same.mkv", frames, audio)
    _lossless(videos / "orphan.mkv", frames, audio)
    return base, trunk, gt, videos


@pytest.mark.slow
def test_pair_lpips_equals_score_visual_lpips(gt_set):
    from lipleak.visual import VisualScorer, VisualSettings
    from lipleak.visual.pair import PairScorer

    _, trunk, gt, videos = gt_set
    settings = VisualSettings(lpips_trunk=str(trunk), backend="cpu", batch_size=4)
    pair = PairScorer(settings)
    full = VisualScorer(settings)
    gta = full.analyze_gt(gt / "band.mkv")
    want = full.score(videos / "band.mkv", gta, gt / "band.mkv", None, "SI").per_frame["lpips"]
    got = pair.per_frame(videos / "band.mkv", gt / "band.mkv")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert got.min() > 1e-3
    assert pair.lpips(videos / "same.mkv", gt / "same.mkv") < 1e-7


@pytest.mark.slow
def test_sync_gt_dir_rows(gt_set, capsys):
    from lipleak.visual import VisualSettings
    from lipleak.visual.pair import PairScorer

    base, trunk, gt, videos = gt_set
    out = base / "out"
    args = ["sync", str(videos), "--syncnet", "syncnet_v2_random", "--gt-dir", str(gt)]
    args += ["--lpips-trunk", str(trunk), "--jsonl", str(out / "rows.jsonl")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    rows = {Path(r["video"]).name: r for r in map(json.loads, open(out / "rows.jsonl"))}
    pair = PairScorer(VisualSettings(lpips_trunk=str(trunk)))
    assert rows["band.mkv"]["lpips"] == pytest.approx(
        pair.lpips(videos / "band.mkv", gt / "band.mkv"), abs=1e-7
    )
    assert rows["same.mkv"]["lpips"] < 1e-7
    orphan = rows["orphan.mkv"]
    assert orphan["status"] == "ok" and orphan["lse_c"] is not None
    assert orphan["lpips"] is None and orphan["reason"].startswith("lpips: missing_gt")
    assert "LPIPS  mean" in printed and "(over 2)" in printed
    # a rerun skips all; a changed GT rescores only its video
    assert main(args) == 0
    assert "scored 0, skipped 3" in capsys.readouterr().out
    st = os.stat(gt / "same.mkv")
    os.utime(gt / "same.mkv", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert main(args) == 0
    assert "scored 1, skipped 2" in capsys.readouterr().out

"""Issue 3, `score DIR` layout rules: cells with no folder are "not run", GT stems absent
from a cell are listed, generations with no GT are left out, half-written outputs ignored."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

import synth
from conftest import ROOT
from lipleak.errors import InputError, LipleakError
from lipleak.protocol.dataset import CELLS, discover

PY = sys.executable
SYNTH = str(ROOT / "tests" / "synth.py")


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_discover_not_run_missing_extra_partial(tmp_path):
    for s in ("a", "b", "c"):
        _touch(tmp_path / "gt" / f"{s}.mp4")
    _touch(tmp_path / "gt" / "a.wav")  # a sibling wav is audio, not a GT video
    for s in ("a", "b", "c"):
        _touch(tmp_path / "AM" / "CR" / f"{s}.mp4")
    _touch(tmp_path / "AM" / "AR" / "a.mkv")
    _touch(tmp_path / "AM" / "AR" / "b.partial.mp4")  # a generator still writing
    _touch(tmp_path / "AM" / "AR" / "zz.mp4")  # no GT for it
    (tmp_path / "SI" / "CR").mkdir(parents=True)  # folder exists, nothing generated yet
    lay = discover(tmp_path)
    assert sorted(lay.gt) == ["a", "b", "c"]
    assert lay.not_run == [c for c in CELLS if c not in {("AM", "CR"), ("AM", "AR"), ("SI", "CR")}]
    assert sorted(lay.cells[("AM", "CR")]) == ["a", "b", "c"] and lay.missing[("AM", "CR")] == []
    assert sorted(lay.cells[("AM", "AR")]) == ["a"]
    assert lay.missing[("AM", "AR")] == ["b", "c"] and lay.extra[("AM", "AR")] == ["zz"]
    assert lay.cells[("SI", "CR")] == {} and lay.missing[("SI", "CR")] == ["a", "b", "c"]
    # nothing left out silently: each file that is not scored is listed with its reason
    _touch(tmp_path / "AM" / "CR" / "notes.txt")
    _touch(tmp_path / "AM" / "stray.mp4")  # not inside CR/ or AR/
    _touch(tmp_path / "gt" / "readme.md")
    why = {p.relative_to(tmp_path).as_posix(): r for p, r in discover(tmp_path).ignored}
    assert why == {
        "AM/AR/b.partial.mp4": "a generator output still being written (.partial)",
        "AM/AR/zz.mp4": "no GT video with this name",
        "AM/CR/notes.txt": why["AM/CR/notes.txt"],
        "AM/stray.mp4": "not in a reference folder (CR/ or AR/)",
        "gt/readme.md": why["gt/readme.md"],
    }  # gt/a.wav is a's audio, not a stray file
    assert why["AM/CR/notes.txt"].startswith("not a video file")
    assert why["gt/readme.md"].startswith("not a video file")


def test_discover_errors_are_one_line(tmp_path):
    with pytest.raises(InputError, match="ground-truth folder not found"):
        discover(tmp_path)
    (tmp_path / "gt").mkdir()
    with pytest.raises(InputError, match="no ground-truth videos"):
        discover(tmp_path)
    _touch(tmp_path / "gt" / "a.mp4")
    _touch(tmp_path / "gt" / "a.mkv")
    with pytest.raises(LipleakError, match="two videos named 'a'"):
        discover(tmp_path)


def test_score_reports_cells_not_run_and_missing_stems(model_dir, tmp_path):
    """A partial run (no XM at all, one AR video missing) is scored as far as it goes."""
    synth.make_set(tmp_path / "gt", 2, seconds=0.48)
    run = tmp_path / "run"
    cmd = (
        f"{PY} {SYNTH} leaky --video {{video}} --audio {{audio}} --out {{out}} "
        "--ref-frames {ref_frames}"
    )

    def cli(*args):
        return subprocess.run(
            [PY, "-m", "lipleak", *map(str, args)], capture_output=True, text=True, timeout=600
        )

    assert cli("plan", tmp_path / "gt", run).returncode == 0
    assert cli("generate", run, "--cmd", cmd, "--quiet").returncode == 0
    shutil.rmtree(run / "XM")
    (run / "SI" / "AR" / "synth01.mp4").unlink()
    (run / "AM" / "CR" / "notes.txt").write_text("x")
    shutil.copy(run / "AM" / "CR" / "synth00.mp4", run / "AM" / "CR" / "nogt.mp4")
    proc = cli("score", run, "--syncnet", "syncnet_v2_random", "--no-visual")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cell XM/CR: not run" in proc.stderr and "cell XM/AR: not run" in proc.stderr
    assert "cell SI/AR: missing 1 video(s): synth01" in proc.stderr
    assert "scored 9," in proc.stdout  # 2 GT + AM 2x2 + SI/CR 2 + SI/AR 1
    assert "not scored: AM/CR/nogt.mp4: no GT video with this name" in proc.stderr
    assert "not scored: AM/CR/notes.txt: not a video file" in proc.stderr
    data = json.loads((run / "results.json").read_text())
    assert sorted(data["layout"]["not_run"]) == ["XM/AR", "XM/CR"]
    assert data["layout"]["missing"] == {"SI/AR": ["synth01"]}
    assert data["cells"]["SI/AR"]["n"] == 1 and data["cells"]["AM/AR"]["n"] == 2
    for ref in ("CR", "AR"):  # no XM: LSD cannot be computed, LSE-*_S still can
        lk = data["leakage"][ref]
        assert lk["n_pairs"] == 0 and lk["lsd"] is None and lk["lsd_per_video"] is None
        assert lk["lse_c_s"] is not None
    md = (run / "report.md").read_text()
    assert "cells not run: XM/CR, XM/AR" in md and "missing from SI/AR: synth01" in md
    assert "| AM/CR/nogt.mp4 | no GT video with this name |" in md
    assert [i["path"] for i in data["layout"]["ignored"]] == ["AM/CR/nogt.mp4", "AM/CR/notes.txt"]
    assert (run / "report.html").stat().st_size > 0

"""The README's "Python API" snippet runs as written (on a synthetic clip, with the
random-weight SyncNet in place of the real one) and prints what it promises."""

from __future__ import annotations

import re
from pathlib import Path

import synth

README = Path(__file__).resolve().parent.parent / "README.md"


def snippet() -> str:
    text = README.read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_api_runs(model_dir, tmp_path, capsys, monkeypatch):
    code = snippet()
    assert 'SyncSettings(mode="prealigned"' in code and '"video.mp4"' in code
    clip = synth.make_clip(tmp_path / "video.mp4", seed=5, seconds=2.0)
    monkeypatch.chdir(tmp_path)
    # the one change: the test fixture's weights instead of the real checkpoint's
    code = code.replace("SyncSettings(mode=", 'SyncSettings(syncnet="syncnet_v2_random", mode=')
    exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert clip.exists() and len(out) >= 4
    # one line per segment: start_tc end_tc av_offset_ms lse_c status
    seg_lines = [
        line for line in out if re.fullmatch(r"\d\d:\d\d:\d\d:\d\d \d\d:\d\d:\d\d:\d\d .*", line)
    ]
    assert seg_lines and all(
        line.split()[-1] in ("ok", "silent", "low_confidence") for line in seg_lines
    )
    verdicts = (
        "in_sync",
        "global_offset",
        "drift_early",
        "drift_late",
        "local_errors",
        "not_measurable",
    )
    assert out[len(seg_lines) + 1].split()[0] in verdicts
    assert out[-1].split()[0] in verdicts and len(out[-1].split()[1]) == 16

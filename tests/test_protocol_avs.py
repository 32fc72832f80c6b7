"""`score --avs`: AVS_u/AVS_m/AVS_v in every cell, the results store and the report, on
real clips with a random-weight AV-HuBERT (tiny fixture of the published layout).

The remux generator puts each cell's driving audio under the GT's own frames, so what AVS
must give is known without trained weights: AVS_v = 1 in every cell (same frames); AM:
AVS_m = 1 and AVS_u = the GT's (same frames, same audio); XM and SI: AVS_m < 1 (another
audio under the same frames), which shows each cell gets its own driving audio.
"""

from __future__ import annotations

import json

import pytest
from test_protocol import _trimmed, cli, gen_cmd

from conftest import CLIPS_DIR
from lipleak.protocol.dataset import CELLS

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def avs_run(model_dir, tmp_path_factory):
    from lipleak.export.avhubert_fixture import make_fixture

    base = tmp_path_factory.mktemp("avs_run")
    tiny = make_fixture(base / "tiny.pt", "tiny", seed=5)
    gt = base / "gt"
    gt.mkdir()
    for name in ("real03_aoc", "real07_reagan"):
        _trimmed(CLIPS_DIR / f"{name}.mp4", gt / f"{name}.mp4", 20)
    run = base / "run"
    cli("plan", gt, run, "--seed", "1")
    cli("generate", run, "--cmd", gen_cmd("remux"), "--quiet")
    # first without AVS, then with: only the new group is scored
    cli("score", run, "--syncnet", "syncnet_v2_random", "--no-visual", "--quiet", "--no-fid")
    proc = cli(
        "score", run, "--syncnet", "syncnet_v2_random", "--no-visual", "--no-fid", "--avs", tiny
    )
    return run, tiny, proc


@pytest.mark.slow
def test_avs_in_every_cell_with_known_values(avs_run):
    run, _, proc = avs_run
    # 2 stems × 7 videos already scored for sync; only the AVS group was left to do
    assert "scored 14, skipped 14" in proc.stdout
    data = json.loads((run / "results.json").read_text())
    by = {(v["stem"], v["setup"], v["reference"]): v for v in data["videos"]}
    stems = sorted({k[0] for k in by})
    assert len(stems) == 2
    for s in stems:
        gt = by[(s, "GT", "-")]
        assert "avs_u" in gt and "avs_m" not in gt
        for setup, ref in CELLS:
            v = by[(s, setup, ref)]
            assert v["avs_v"] == pytest.approx(1.0, abs=1e-6), (s, setup, ref)
            if setup == "AM":
                assert v["avs_m"] == pytest.approx(1.0, abs=1e-6)
                assert v["avs_u"] == pytest.approx(gt["avs_u"], abs=1e-6)
            else:
                assert v["avs_m"] < 1 - 1e-4, (s, setup, ref)
    for setup, ref in CELLS:
        cell = data["cells"][f"{setup}/{ref}"]
        assert cell["avs_u"] is not None and cell["avs_v"] == pytest.approx(1.0, abs=1e-6)
    html = (run / "report.md").read_text()
    assert "AVS_u" in html and "AVS_m" in html


@pytest.mark.slow
def test_avs_rerun_skips_and_window_change_rescores_only_avs(avs_run):
    run, tiny, _ = avs_run
    base = ("score", run, "--syncnet", "syncnet_v2_random", "--no-visual", "--no-fid")
    again = cli(*base, "--avs", tiny)
    assert "scored 0, skipped 28" in again.stdout
    windowed = cli(*base, "--avs", tiny, "--avs-window", "8")
    assert "scored 14, skipped 14" in windowed.stdout
    data = json.loads((run / "results.json").read_text())
    am = [v for v in data["videos"] if v["setup"] == "AM"]
    assert all(v["avs_m"] == pytest.approx(1.0, abs=1e-6) for v in am)


def test_avs_window_needs_avs(tmp_path):
    proc = cli("score", tmp_path, "--avs-window", "8", check=False)
    assert proc.returncode != 0 and "--avs-window needs --avs" in proc.stderr


@pytest.mark.slow
def test_avs_on_ray_equals_local(avs_run, tmp_path):
    pytest.importorskip("ray")
    import shutil
    import sqlite3

    run, tiny, _ = avs_run
    copy = tmp_path / "ray"
    shutil.copytree(
        run,
        copy,
        ignore=shutil.ignore_patterns(
            "results.sqlite*", "report*", "results.*", "plots", ".lipleak"
        ),
    )
    proc = cli(
        "score",
        copy,
        "--syncnet",
        "syncnet_v2_random",
        "--no-visual",
        "--no-fid",
        "--avs",
        tiny,
        "--ray",
        "--ray-workers",
        "1",
        "--quiet",
    )
    assert proc.returncode == 0

    def avs_rows(db):
        con = sqlite3.connect(db)
        try:
            return sorted(
                con.execute(
                    "SELECT stem, setup, reference, metric, value, status FROM results "
                    "WHERE grp = 'avs'"
                ).fetchall()
            )
        finally:
            con.close()

    got = avs_rows(copy / "results.sqlite")
    assert len(got) == 2 * (1 + 6 * 3)  # per stem: the GT's AVS_u, 3 metrics per generation
    # the local store also holds the --avs-window 8 rows of the test above: a superset
    assert set(got) <= set(avs_rows(run / "results.sqlite"))

"""Issue 3: plan → generate → score → report on synthetic talking faces and on a set
built from real clips; derived metrics by hand; kill -9 and resume; concurrent runs."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import synth
from conftest import CLIPS_DIR, ROOT, result_rows
from lipleak.cli import main
from lipleak.io.audio import load_audio
from lipleak.io.video import iter_frames
from lipleak.protocol.dataset import CELLS
from lipleak.protocol.leakage import leakage, per_video
from lipleak.protocol.results import ResultsStore
from media import write_video

SYNTH = str(ROOT / "tests" / "synth.py")
PY = sys.executable


def cli(*args, env=None, check=True, timeout=900):
    proc = subprocess.run(
        [PY, "-m", "lipleak", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc


def gen_cmd(name: str) -> str:
    return (
        f"{PY} {SYNTH} {name} --video {{video}} --audio {{audio}} --out {{out}} "
        "--ref-frames {ref_frames}"
    )


# GT clips of the synthetic run: 7 videos each (GT and 6 cells); 4 is enough for the XM
# derangement and the leakage pairs, and every test on the run scores 7 * N_SYNTH videos.
N_SYNTH = 4


@pytest.fixture(scope="module")
def synth_run(model_dir, tmp_path_factory):
    """4 synthetic GT clips, the leaky generator over the whole plan, scored (LSE only)."""
    base = tmp_path_factory.mktemp("synth")
    synth.make_set(base / "gt", N_SYNTH, seconds=1.6)
    run = base / "run"
    cli("plan", base / "gt", run, "--seed", "7")
    cli("generate", run, "--cmd", gen_cmd("leaky"), "--jobs", "2", "--quiet")
    proc = cli("score", run, "--syncnet", "syncnet_v2_random", "--no-visual", "--quiet")
    return run, proc


def test_synthetic_end_to_end(synth_run):
    run, _ = synth_run
    data = json.loads((run / "results.json").read_text())
    cells = data["cells"]
    for setup, ref in [("GT", "-"), *CELLS]:
        c = cells[f"{setup}/{ref}"]
        assert c["n"] == N_SYNTH and c["lse_c"] is not None and c["lse_d"] is not None, (setup, ref)
    for ref in ("CR", "AR"):
        lk = data["leakage"][ref]
        assert lk["n_pairs"] == N_SYNTH and lk["n_si"] == N_SYNTH
        for k in ("lse_c_s", "lse_d_s", "lsd", "lsd_per_video"):
            assert lk[k] is not None and np.isfinite(lk[k])
    for f in (
        "report.md",
        "report.html",
        "results.csv",
        "plots/lse_c_am_vs_xm.png",
        "plots/si_lse_c.png",
        "plots/offsets.png",
    ):
        assert (run / f).is_file() and (run / f).stat().st_size > 0, f
    assert data["failures"] == []
    assert data["provenance"]["sync"]["models"]["syncnet"]["checkpoint"]["sha256"].startswith(
        "4e3e"
    )
    # the random-weight fixture is named as such, even with --quiet
    assert "syncnet_v2_random" in data["warnings"][0]
    assert "warning: syncnet_v2_random" in synth_run[1].stderr
    # the leaky generator copies the GT mouth (CR): under silence it still "speaks" like GT
    by = {(v["stem"], v["setup"], v["reference"]): v for v in data["videos"]}
    for stem in {k[0] for k in by}:
        assert by[(stem, "SI", "CR")]["lse_c"] == by[(stem, "AM", "CR")]["lse_c"]


def test_report_without_fid_says_so_and_computes_none(synth_run, tmp_path, monkeypatch):
    from lipleak.protocol import reporting

    def no_fid(*_a, **_k):
        raise AssertionError("--no-fid computed a cell FID")

    monkeypatch.setattr(reporting, "cell_fids", no_fid)
    run, _ = synth_run
    assert main(["report", str(run), "--out", str(tmp_path), "--no-fid"]) == 0
    assert json.loads((tmp_path / "results.json").read_text())["fid_computed"] is False
    assert "FID not computed" in (tmp_path / "report.md").read_text()
    assert "FID not computed" in (tmp_path / "report.html").read_text()


def test_derived_metrics_equal_hand_computation(synth_run):
    run, _ = synth_run
    store = ResultsStore(run / "results.sqlite")
    rs = store.results(store.latest_hashes())
    store.close()
    v = per_video(rs)
    got = leakage(v)
    data = json.loads((run / "results.json").read_text())
    for ref in ("CR", "AR"):
        stems = sorted({s for (s, st, r) in v if r == ref and st == "AM"})
        c_am = np.array([v[(s, "AM", ref)]["lse_c"] for s in stems])
        c_xm = np.array([v[(s, "XM", ref)]["lse_c"] for s in stems])
        d_am = np.array([v[(s, "AM", ref)]["lse_d"] for s in stems])
        d_xm = np.array([v[(s, "XM", ref)]["lse_d"] for s in stems])
        headline = 0.5 * (abs(c_am.mean() - c_xm.mean()) + abs(d_am.mean() - d_xm.mean()))
        per_vid = np.mean(0.5 * (np.abs(c_am - c_xm) + np.abs(d_am - d_xm)))
        si_c = np.mean([v[(s, "SI", ref)]["lse_c"] for s in stems])
        si_d = np.mean([v[(s, "SI", ref)]["lse_d"] for s in stems])
        for k, want in (
            ("lsd", headline),
            ("lsd_per_video", per_vid),
            ("lse_c_s", si_c),
            ("lse_d_s", si_d),
        ):
            assert got[ref][k] == pytest.approx(want, rel=1e-12, abs=1e-12), (ref, k)
            assert data["leakage"][ref][k] == pytest.approx(want, rel=1e-12, abs=1e-12)
        assert per_vid >= headline - 1e-12  # |mean Δ| <= mean |Δ| (triangle inequality)


def test_derived_metrics_on_constructed_rows(tmp_path):
    """Rows with known values: LSD = 0.5(|ΔC| + |ΔD|) in both aggregations."""
    store = ResultsStore(tmp_path / "r.sqlite")
    store.start_run("t", [], {})
    vals = {"a": ((5.0, 7.0), (3.0, 8.0), (1.0, 9.0)), "b": ((4.0, 6.0), (6.0, 6.5), (2.0, 8.5))}
    for stem, ((c_am, d_am), (c_xm, d_xm), (c_si, d_si)) in vals.items():
        for setup, (c, d) in (("AM", (c_am, d_am)), ("XM", (c_xm, d_xm)), ("SI", (c_si, d_si))):
            store.commit_unit(stem, setup, "CR", "sync", "h", "i", {"lse_c": c, "lse_d": d})
    lk = leakage(per_video(store.results()))["CR"]
    store.close()
    # dataset: C_AM 4.5, C_XM 4.5, D_AM 6.5, D_XM 7.25 -> 0.5 * (0 + 0.75)
    assert lk["lsd"] == pytest.approx(0.375)
    # per video: a: 0.5*(2+1) = 1.5, b: 0.5*(2+0.5) = 1.25 -> 1.375
    assert lk["lsd_per_video"] == pytest.approx(1.375)
    assert lk["lse_c_s"] == pytest.approx(1.5) and lk["lse_d_s"] == pytest.approx(8.75)


def test_rerun_skips_everything(synth_run):
    run, _ = synth_run
    before = result_rows(run / "results.sqlite")
    proc = cli("score", run, "--syncnet", "syncnet_v2_random", "--no-visual")
    assert "scored 0," in proc.stdout and f"skipped {7 * N_SYNTH}" in proc.stdout, proc.stdout
    assert result_rows(run / "results.sqlite") == before


def test_changed_input_rescored_only(synth_run, tmp_path):
    run, _ = synth_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    victim = copy / "AM" / "CR" / "synth02.mp4"
    os.utime(victim, ns=(time.time_ns(), time.time_ns()))
    proc = cli("score", copy, "--syncnet", "syncnet_v2_random", "--no-visual")
    assert "scored 1," in proc.stdout, proc.stdout
    assert result_rows(copy / "results.sqlite") == result_rows(run / "results.sqlite")
    # the time after the last video is said, not silent
    assert "report: writing the report and plots" in proc.stderr


def test_worker_count_and_batch_size_change_no_number(synth_run, tmp_path):
    """score's in-process pipeline: one stem at a time with batches of 7 gives the rows of
    the fixture's run (2 stems at once on threads, one shared lip tower, batches of 32)."""
    run, _ = synth_run
    copy = tmp_path / "run"
    shutil.copytree(
        run, copy, ignore=shutil.ignore_patterns("results.sqlite*", "report*", "results.*", "plots")
    )
    cli(
        "score", copy, "--syncnet", "syncnet_v2_random", "--no-visual", "--quiet",
        "--workers", "1", "--batch-size", "7",
    )  # fmt: skip
    assert result_rows(copy / "results.sqlite") == result_rows(run / "results.sqlite")


def test_plan_again_changes_nothing_and_rescores_nothing(synth_run, tmp_path):
    """plan → generate → score, then plan again with the same inputs and seed: every plan
    file keeps its bytes and mtime, so the next score has nothing to do."""
    run, _ = synth_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)  # copy2: mtimes kept, so the copy is fully scored
    planned = sorted(
        p for p in copy.rglob("*") if p.is_file() and p.parts[len(copy.parts)] == "audio"
    ) + [copy / "plan.json", copy / "jobs.jsonl"]
    assert len(planned) == N_SYNTH * 3 + 2

    def stamp():
        return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in planned}

    before = stamp()
    time.sleep(0.05)  # a rewrite would get a visibly newer mtime
    cli("plan", run.parent / "gt", copy, "--seed", "7", "--quiet")
    assert stamp() == before
    proc = cli("score", copy, "--syncnet", "syncnet_v2_random", "--no-visual")
    assert "scored 0," in proc.stdout and f"skipped {7 * N_SYNTH}" in proc.stdout, proc.stdout


# Not in the slow tier: it would build the synthetic run (synth_run, ~50 s) a second time
# there only for this test and the screenshot's; here they reuse the fast tier's.
def test_kill9_then_resume_equals_uninterrupted(synth_run, tmp_path):
    run, _ = synth_run
    copy = tmp_path / "run"
    shutil.copytree(
        run, copy, ignore=shutil.ignore_patterns("results.sqlite*", "report*", "results.*", "plots")
    )
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    delay = rng.uniform(4.0, 14.0)
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "lipleak",
            "score",
            str(copy),
            "--syncnet",
            "syncnet_v2_random",
            "--no-visual",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    db = copy / "results.sqlite"
    if db.exists():
        con = sqlite3.connect(db)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n_partial = con.execute("SELECT COUNT(*) FROM units").fetchone()[0]
        # a unit is all of its rows or none of them
        per_unit = con.execute(
            "SELECT COUNT(*) FROM results GROUP BY stem, setup, reference, grp"
        ).fetchall()
        con.close()
        assert all(n == 5 for (n,) in per_unit)
        print(f"killed after {delay:.1f} s with {n_partial} units committed")
    cli("score", copy, "--syncnet", "syncnet_v2_random", "--no-visual", "--quiet")
    assert result_rows(db) == result_rows(run / "results.sqlite")


def test_second_concurrent_run_stops_with_a_clear_message(synth_run):
    from lipleak.protocol.results import RunLock

    run, _ = synth_run
    with RunLock(run / "results.sqlite.lock"):
        proc = cli("score", run, "--syncnet", "syncnet_v2_random", "--no-visual", check=False)
    assert proc.returncode == 1
    assert "another lipleak-fast run is using" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_report_screenshot_in_headless_chromium(synth_run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    run, _ = synth_run
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1400,2600",
            (run / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.is_file()
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (2600, 1400)
    # not blank: tables (dark text on white) and plots (coloured markers) are drawn
    assert (img < 100).mean() > 0.002
    colourful = (np.abs(img[..., 0].astype(int) - img[..., 2].astype(int)) > 60).mean()
    assert colourful > 0.0005

    # the fixture-checkpoint banner (#ffd24d) is drawn at the top, the glossary (#e6f4ea)
    # below it, both before the first results table
    def rows_of(rgb):
        bgr = np.array(rgb[::-1], int)
        return np.nonzero((np.abs(img.astype(int) - bgr).max(axis=-1) <= 2).sum(axis=1) > 400)[0]

    banner, glossary = rows_of((0xFF, 0xD2, 0x4D)), rows_of((0xE6, 0xF4, 0xEA))
    assert banner.size > 20 and banner.min() < 250, banner[:5]
    assert glossary.size > 100 and glossary.min() > banner.max()
    keep = os.environ.get("LIPLEAK_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "report.png")


def test_plan_is_deterministic_and_deranged(tmp_path):
    gt = tmp_path / "gt"
    synth.make_set(gt, 5, seconds=0.6)
    for d in ("a", "b"):
        assert (
            main(["plan", str(gt), str(tmp_path / d), "--seed", "11", "--ar", "multi:3", "--quiet"])
            == 0
        )
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert len(files) == 2 + 3 * 5
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    plan = json.loads((tmp_path / "a" / "plan.json").read_text())
    for v in plan["videos"]:
        assert v["xm_driver"] != v["stem"]
        assert len(v["ar_frames"]) == 3 and v["ar_frames"] == sorted(set(v["ar_frames"]))
        si = load_audio(tmp_path / "a" / v["audio"]["SI"])
        am = load_audio(tmp_path / "a" / v["audio"]["AM"])
        xm = load_audio(tmp_path / "a" / v["audio"]["XM"])
        assert len(si) == len(am) == len(xm) and not si.any()
    # many seeds: never a video's own audio
    from lipleak.protocol.planner import derangement

    for seed in range(200):
        p = derangement(2 + seed % 7, np.random.default_rng(seed))
        assert not np.any(p == np.arange(len(p)))


def test_plan_refuses_fewer_than_two_videos(tmp_path, capsys):
    gt = tmp_path / "gt"
    synth.make_set(gt, 1, seconds=0.4)
    assert main(["plan", str(gt), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "XM" in err and "at least 2" in err and len(err.strip().splitlines()) == 1


def test_generate_records_failures_and_resumes(tmp_path):
    gt = tmp_path / "gt"
    synth.make_set(gt, 2, seconds=0.4)
    run = tmp_path / "run"
    cli("plan", gt, run)
    cmd = gen_cmd("leaky") + " --fail-on synth01"
    proc = cli("generate", run, "--cmd", cmd, "--quiet", check=False)
    assert proc.returncode == 4
    fails = [json.loads(x) for x in (run / "generate_failures.jsonl").read_text().splitlines()]
    assert len(fails) == 6 and all("synthetic failure" in f["stderr_tail"] for f in fails)
    assert not list(run.rglob("*.partial*"))  # the half-written outputs are gone
    assert not (run / "AM" / "CR" / "synth01.mp4").exists()
    assert (run / "AM" / "CR" / "synth00.mp4").is_file()
    proc = cli("generate", run, "--cmd", gen_cmd("leaky"))
    assert "generated 6, skipped 6" in proc.stdout


# ------------------------------------------------------------------- real clips


def _trimmed(src: Path, dst: Path, n: int) -> Path:
    frames = []
    for f in iter_frames(src):
        frames.append(f)
        if len(frames) == n:
            break
    write_video(dst, frames, audio=load_audio(src)[: n * 640])
    return dst


@pytest.fixture(scope="module")
def real_set(model_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("real")
    gt = base / "gt"
    gt.mkdir()
    for name in ("real03_aoc", "real07_reagan"):
        _trimmed(CLIPS_DIR / f"{name}.mp4", gt / f"{name}.mp4", 16)
    return base


@pytest.mark.slow
def test_real_clips_remux_generator_with_all_metrics(real_set):
    run = real_set / "remux"
    cli("plan", real_set / "gt", run, "--seed", "1")
    cli("generate", run, "--cmd", gen_cmd("remux"), "--quiet")
    proc = cli("score", run, "--syncnet", "syncnet_v2_random", "--quiet")
    data = json.loads((run / "results.json").read_text())
    by = {(v["stem"], v["setup"], v["reference"]): v for v in data["videos"]}
    stems = sorted({k[0] for k in by})
    assert len(stems) == 2
    for s in stems:
        gt, am, xm = by[(s, "GT", "-")], by[(s, "AM", "CR")], by[(s, "XM", "CR")]
        # AM of a perfect re-mux is the GT video: the same frames and audio, the same score
        assert (am["lse_c"], am["lse_d"], am["offset"]) == (gt["lse_c"], gt["lse_d"], gt["offset"])
        # XM against the driving audio: the lips follow the GT audio, so it differs
        assert (xm["lse_c"], xm["lse_d"]) != (am["lse_c"], am["lse_d"])
        for setup, ref in CELLS:
            v = by[(s, setup, ref)]
            for m in ("ssim", "psnr", "lmd", "mouth_open_fraction", "mouth_aperture_std"):
                assert m in v, (s, setup, ref, m)
            assert v["ssim"] == pytest.approx(1.0, abs=1e-9)  # the frames are the GT's
    for ref in ("CR", "AR"):
        assert data["leakage"][ref]["lsd"] > 0 and data["leakage"][ref]["lsd_per_video"] > 0
    for cell in CELLS:
        assert data["cells"][f"{cell[0]}/{cell[1]}"].get("fid") is not None
    assert proc.returncode == 0


@pytest.mark.slow
def test_real_clips_freeze_generator(real_set):
    run = real_set / "freeze"
    cli("plan", real_set / "gt", run, "--seed", "1", "--ar", "random")
    cli("generate", run, "--cmd", gen_cmd("freeze"), "--quiet")
    cli("score", run, "--syncnet", "syncnet_v2_random", "--no-visual", "--quiet")
    data = json.loads((run / "results.json").read_text())
    for setup, ref in CELLS:
        assert data["cells"][f"{setup}/{ref}"]["n"] == 2
    by = {(v["stem"], v["setup"], v["reference"]): v for v in data["videos"]}
    for s in {k[0] for k in by}:
        # AR freezes one frame: the video is the same whatever the audio setup
        assert by[(s, "SI", "AR")]["lse_c"] == by[(s, "AM", "AR")]["lse_c"]


def test_xm_never_pairs_identical_audio(tmp_path):
    """A GT set with the same audio under two names (a copy): XM never drives one with the
    other, for any seed; the plan lists the group; a set where no pairing can keep them
    apart is refused with a clear message."""
    import shutil

    from lipleak.errors import LipleakError
    from lipleak.protocol.planner import make_plan

    gt = tmp_path / "gt"
    synth.make_set(gt, 4, seconds=0.6)
    first = sorted(gt.glob("*.mp4"))[0]
    for ext in (".mp4", ".wav"):  # the GT audio is the sibling .wav when there is one
        if first.with_suffix(ext).exists():
            shutil.copy(first.with_suffix(ext), (gt / "zz_copy").with_suffix(ext))
    dup = {first.stem, "zz_copy"}
    for seed in range(12):
        plan = make_plan(gt, tmp_path / f"p{seed}", seed=seed)
        assert plan["identical_audio"] == [sorted(dup)]
        for v in plan["videos"]:
            assert v["xm_driver"] != v["stem"]
            if v["stem"] in dup:
                assert v["xm_driver"] not in dup, (seed, v)
    for k in range(2):  # 4 of 6 videos with one audio: impossible
        for ext in (".mp4", ".wav"):
            if first.with_suffix(ext).exists():
                shutil.copy(first.with_suffix(ext), (gt / f"zz_more{k}").with_suffix(ext))
    with pytest.raises(LipleakError, match="share the same audio"):
        make_plan(gt, tmp_path / "bad")


def test_group_derangement_properties():
    from lipleak.protocol.planner import derangement

    rng = np.random.default_rng(0)
    for groups in ([0, 0, 1, 2], [0, 0, 0, 1, 1, 2], [5, 5, 5, 7, 7, 7], list(range(9))):
        g = np.array(groups)
        for _ in range(50):
            p = derangement(len(g), rng, g)
            assert sorted(p) == list(range(len(g))) and not np.any(g[p] == g)
    # without groups: the same draws as the plain derangement, so old plans do not move
    a = derangement(7, np.random.default_rng(3))
    b = derangement(7, np.random.default_rng(3), np.arange(7))
    assert list(a) == list(b)
    # a group of exactly half of many items: rejection would almost never succeed, the
    # fixed construction must still give a valid pairing
    g = np.array([0] * 20 + list(range(1, 21)))
    p = derangement(40, np.random.default_rng(1), g)
    assert sorted(p) == list(range(40)) and not np.any(g[p] == g)
    with pytest.raises(ValueError, match="share a group"):
        derangement(5, rng, [1, 1, 1, 2, 3])

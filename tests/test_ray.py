"""Issue 5: `score DIR --ray` on a local 2-CPU Ray instance gives the single-process rows,
row for row (synthetic set, LSE only; real clips with every visual metric and cell FID);
a worker killed mid-run is retried and nothing is lost or written twice."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from test_protocol import _trimmed, cli, gen_cmd  # noqa: E402

import synth  # noqa: E402
from conftest import CLIPS_DIR  # noqa: E402
from lipleak.cli import main  # noqa: E402
from lipleak.errors import LipleakError  # noqa: E402
from lipleak.protocol.dataset import fid_cache_path, state_dir  # noqa: E402
from lipleak.protocol.distributed import RayExecutor, plan_workers  # noqa: E402
from lipleak.protocol.scoring import DirectoryScorer, ScoreOptions  # noqa: E402
from lipleak.sync import SyncSettings  # noqa: E402
from ray_faults import KillFileWorker, kill_file  # noqa: E402

pytestmark = pytest.mark.slow  # a Ray instance per module and whole-CLI runs

SYNC = ["--syncnet", "syncnet_v2_random"]
N_STEMS = 4
RESULT_COLS = "stem, setup, reference, metric, settings_hash, value, status, reason"
UNIT_COLS = "stem, setup, reference, grp, settings_hash, inputs_hash, status, reason"


def table(db: Path, cols: str, name: str) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return sorted(
            con.execute(f"SELECT {cols} FROM {name}").fetchall(), key=lambda r: tuple(map(str, r))
        )
    finally:
        con.close()


def fresh_copy(src: Path, dst: Path) -> Path:
    """The generated protocol directory without any scoring output."""
    shutil.copytree(
        src,
        dst,
        ignore=shutil.ignore_patterns(
            "results.sqlite*", "report*", "results.*", "plots", ".lipleak"
        ),
    )
    return dst


@pytest.fixture(scope="module")
def cluster(model_dir):
    """A local Ray instance (2 CPUs) for this module; workers inherit LIPLEAK_MODEL_DIR."""
    ctx = ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield ctx.address_info["address"]
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def synth_set(model_dir, tmp_path_factory):
    """4 synthetic GT clips of 1.2 s, the leaky generator, scored in one process (LSE)."""
    base = tmp_path_factory.mktemp("raysynth")
    synth.make_set(base / "gt", N_STEMS, seconds=1.2)
    gen = base / "generated"
    cli("plan", base / "gt", gen, "--seed", "3")
    cli("generate", gen, "--cmd", gen_cmd("leaky"), "--jobs", "2", "--quiet")
    single = fresh_copy(gen, base / "single")
    cli("score", single, *SYNC, "--no-visual", "--quiet")
    return gen, single


def test_plan_workers():
    assert plan_workers({"CPU": 16, "GPU": 4}, None) == (4, {"num_gpus": 1, "num_cpus": 1}, None)
    assert plan_workers({"CPU": 16, "GPU": 4}, 2)[0] == 2
    assert plan_workers({"CPU": 2}, None) == (2, {"num_cpus": 1}, 1)
    assert plan_workers({"CPU": 8}, 2) == (2, {"num_cpus": 1}, 4)
    for res, n, msg in (
        ({"CPU": 2}, 3, "2 CPU"),
        ({"CPU": 8, "GPU": 1}, 2, "1 GPU"),
        ({"CPU": 2}, 0, "at least 1"),
        ({}, None, "no CPU"),
    ):
        with pytest.raises(LipleakError, match=msg):
            plan_workers(res, n)


def test_cli_ray_option_errors(cluster, synth_set, capsys):
    gen, _ = synth_set
    assert (
        main(["score", str(gen), *SYNC, "--no-visual", "--ray-workers", "2"]) == 2
    )  # a usage error (docs/failures.md)
    assert "--ray-workers needs --ray" in capsys.readouterr().err
    assert main(["score", str(gen), *SYNC, "--no-visual", "--ray", "--ray-workers", "3"]) == 1
    assert "the Ray cluster has 2 CPU(s)" in capsys.readouterr().err


def test_synthetic_ray_equals_single_process(cluster, synth_set, tmp_path):
    """A second driver (the CLI in a subprocess) attached to the cluster by its address."""
    gen, single = synth_set
    run = fresh_copy(gen, tmp_path / "ray")
    t = time.perf_counter()
    proc = cli("score", run, *SYNC, "--no-visual", "--ray", cluster, "--ray-workers", "2")
    print(f"ray run: {time.perf_counter() - t:.1f} s")
    assert f"scored {7 * N_STEMS}, skipped 0" in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr
    got = table(run / "results.sqlite", RESULT_COLS, "results")
    assert len(got) == 5 * 7 * N_STEMS
    assert got == table(single / "results.sqlite", RESULT_COLS, "results")
    assert table(run / "results.sqlite", UNIT_COLS, "units") == table(
        single / "results.sqlite", UNIT_COLS, "units"
    )
    a, b = (json.loads((d / "results.json").read_text()) for d in (run, single))
    assert a["cells"] == b["cells"] and a["leakage"] == b["leakage"]
    assert a["provenance"]["sync"]["models"] == b["provenance"]["sync"]["models"]
    # a rerun on Ray skips every unit and changes nothing
    proc = cli("score", run, *SYNC, "--no-visual", "--ray", cluster, "--no-report")
    assert f"scored 0, skipped {7 * N_STEMS}" in proc.stdout, proc.stdout
    assert table(run / "results.sqlite", RESULT_COLS, "results") == got


def _committed(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(db, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM units").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0  # schema not written yet


def _run_and_kill(run: Path, retries: int) -> dict:
    """Score ``run`` on 2 workers; the worker that picks up the second stem dies at once
    (a ``kill-worker-<stem>`` file, see tests/ray_faults.py), mid-run."""
    opts = ScoreOptions(sync=SyncSettings(syncnet="syncnet_v2_random"), quiet=True)
    ex = RayExecutor(
        opts.sync, None, workers=2, max_task_retries=retries, worker_class=KillFileWorker
    )
    scorer = DirectoryScorer(run, opts, executor=ex)
    stems = sorted(v["stem"] for v in json.loads((run / "plan.json").read_text())["videos"])
    flag = kill_file(run, stems[1])
    flag.parent.mkdir(parents=True, exist_ok=True)
    flag.touch()
    counts = scorer.run([])
    assert not flag.exists()  # a worker took the stem and died on it
    return counts


def _check_integrity(db: Path) -> None:
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        per_unit = con.execute(
            "SELECT COUNT(*) FROM results GROUP BY stem, setup, reference, grp"
        ).fetchall()
        assert len(per_unit) == 7 * N_STEMS and all(n == 5 for (n,) in per_unit)
    finally:
        con.close()


def test_killed_worker_is_retried_nothing_lost_or_doubled(cluster, synth_set, tmp_path):
    gen, single = synth_set
    run = fresh_copy(gen, tmp_path / "ray")
    counts = _run_and_kill(run, retries=3)
    # every unit committed exactly once: a retried stem came back once, as a whole
    assert counts["scored"] == 7 * N_STEMS and counts["failed"] == 0, counts
    _check_integrity(run / "results.sqlite")
    assert table(run / "results.sqlite", RESULT_COLS, "results") == table(
        single / "results.sqlite", RESULT_COLS, "results"
    )


def test_stem_whose_worker_dies_every_try_is_failed_then_retried(cluster, synth_set, tmp_path):
    """No task retries: the stem on the killed worker is recorded as failed (worker_died),
    the others are scored; a rerun with --retry-failed completes the table."""
    gen, single = synth_set
    run = fresh_copy(gen, tmp_path / "ray")
    counts = _run_and_kill(run, retries=0)
    units = table(run / "results.sqlite", "stem, status, reason", "units")
    bad = {s for s, st, _ in units if st != "ok"}
    # the stem the worker died on, and the one queued behind it on that worker if any
    assert 1 <= len(bad) <= 2
    assert counts["failed"] == 7 * len(bad) and counts["scored"] == 7 * (N_STEMS - len(bad))
    assert all(
        r.startswith("worker_died: the Ray worker holding this stem died (1 tries")
        for s, st, r in units
        if st != "ok"
    )
    assert (
        main(
            [
                "score",
                str(run),
                *SYNC,
                "--no-visual",
                "--quiet",
                "--ray",
                "--retry-failed",
                "--no-report",
            ]
        )
        == 0
    )
    _check_integrity(run / "results.sqlite")
    assert table(run / "results.sqlite", RESULT_COLS, "results") == table(
        single / "results.sqlite", RESULT_COLS, "results"
    )


def test_real_clips_all_metrics_and_cell_fid_equal(cluster, tmp_path):
    """Two real clips (16 frames), re-muxed generations, every visual metric: the Ray rows
    and the report's cell FIDs (pooled from the workers' per-video feature files) equal
    the single-process ones."""
    gt = tmp_path / "gt"
    gt.mkdir()
    for name in ("real03_aoc", "real09_vox_rdj"):
        _trimmed(CLIPS_DIR / f"{name}.mp4", gt / f"{name}.mp4", 16)
    gen = tmp_path / "generated"
    cli("plan", gt, gen, "--seed", "1")
    cli("generate", gen, "--cmd", gen_cmd("remux"), "--quiet")
    single, run = fresh_copy(gen, tmp_path / "single"), fresh_copy(gen, tmp_path / "ray")
    t = time.perf_counter()
    cli("score", single, *SYNC, "--quiet")
    # The Ray run's report may reuse a single-process FID only where the cell's feature
    # files are byte for byte the ones that FID was computed from (the cache key hashes
    # every file of the cell): a cell pooled from different bytes is computed again and
    # compared below. This saves six 2048x2048 matrix square roots, not a comparison.
    fid_cache_path(run).parent.mkdir(exist_ok=True)
    shutil.copy(fid_cache_path(single), fid_cache_path(run))
    t1 = time.perf_counter()
    assert main(["score", str(run), *SYNC, "--quiet", "--ray", "--ray-workers", "2"]) == 0
    print(f"single {t1 - t:.1f} s, ray {time.perf_counter() - t1:.1f} s")
    got = table(run / "results.sqlite", RESULT_COLS, "results")
    assert {r[3] for r in got} >= {"lse_c", "ssim", "psnr", "lmd", "mouth_audio_corr"}
    assert got == table(single / "results.sqlite", RESULT_COLS, "results")
    a, b = (json.loads((d / "results.json").read_text()) for d in (run, single))
    fids = {c: v.get("fid") for c, v in a["cells"].items() if c != "GT/-"}
    assert len(fids) == 6 and all(f is not None for f in fids.values()), fids
    assert fids == {c: v.get("fid") for c, v in b["cells"].items() if c != "GT/-"}
    assert a["cells"] == b["cells"]
    # What the FIDs are pooled from: every per-video feature file the workers wrote.
    feats = sorted(p.relative_to(single) for p in state_dir(single).rglob("*.npy"))
    assert feats and feats == sorted(p.relative_to(run) for p in state_dir(run).rglob("*.npy"))
    assert all((single / p).read_bytes() == (run / p).read_bytes() for p in feats)


def test_missing_model_on_the_workers_is_a_one_line_error(synth_set, tmp_path):
    """The CLI starting its own local instance; the workers cannot find SyncNet."""
    gen, _ = synth_set
    env = {**os.environ, "LIPLEAK_MODEL_DIR": str(tmp_path / "empty")}
    proc = cli(
        "score",
        fresh_copy(gen, tmp_path / "run"),
        *SYNC,
        "--no-visual",
        "--ray",
        "--ray-workers",
        "1",
        env=env,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "is not in the model dir" in proc.stderr and "Traceback" not in proc.stderr


# -- sync over many videos ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def sync_videos(model_dir, tmp_path_factory):
    """6 short real cuts and one text file named .mp4, scored locally once."""
    from media import cut_clip

    folder = tmp_path_factory.mktemp("raysync") / "videos"
    folder.mkdir()
    clips = [c for c in sorted(CLIPS_DIR.glob("*.mp4")) if "vfr" not in c.stem][:6]
    for c in clips:
        cut_clip(c, folder / c.name, 0, 20)
    (folder / "not_a_video.mp4").write_text("text\n")
    local = folder.parent / "local"
    rc = main(["sync", str(folder), *SYNC, "--db", str(local / "db.sqlite"),
               "--jsonl", str(local / "rows.jsonl"), "--quiet"])  # fmt: skip
    assert rc == 4
    return folder, local


def test_sync_on_ray_equals_local(cluster, sync_videos, tmp_path):
    folder, local = sync_videos
    rc = main(["sync", str(folder), *SYNC, "--ray", "--db", str(tmp_path / "db.sqlite"),
               "--jsonl", str(tmp_path / "rows.jsonl"), "--quiet"])  # fmt: skip
    assert rc == 4
    assert (tmp_path / "rows.jsonl").read_text() == (local / "rows.jsonl").read_text()


def test_sync_batch_whose_worker_dies_is_failed_then_retried(cluster, sync_videos, tmp_path):
    from lipleak.protocol.distributed import JOBS_PER_TASK, SyncRayExecutor
    from lipleak.sync.inputs import collect_jobs
    from lipleak.sync.results import SyncStore
    from lipleak.sync.rows import write_jsonl
    from lipleak.sync.timeline import row_timeline
    from lipleak.sync.volume import VolumeRun
    from ray_faults import KillFileSyncWorker

    folder, local = sync_videos
    jobs, _ = collect_jobs([folder])
    victim = jobs[0].video
    Path(f"{victim}.kill").touch()
    settings = SyncSettings(syncnet="syncnet_v2_random")
    store = SyncStore(tmp_path / "db.sqlite")
    try:
        executor = SyncRayExecutor(
            settings, address=cluster, max_task_retries=0, worker_class=KillFileSyncWorker
        )
        first = VolumeRun(jobs, store, executor)
        counts = first.run([])
        died = [r for r in first.rows() if r["status"] == "worker_died"]
        # the batch the victim was in: every video of it, and nothing else
        assert str(victim.resolve()) in {r["video"] for r in died}
        assert 1 <= len(died) <= JOBS_PER_TASK and counts.failed >= len(died)
        assert all("the Ray worker holding this video batch died (1 tries" in r["reason"]
                   for r in died)  # fmt: skip
        again = VolumeRun(jobs, store, SyncRayExecutor(settings, address=cluster),
                          retry_failed=True)  # fmt: skip
        again_counts = again.run([])
        assert again_counts.scored + again_counts.failed == len(died)  # redone, nothing else
        rows = again.rows()
        for r in rows:  # as `sync` does: timelines re-derived under the run's gate
            r["timeline"] = row_timeline(r, settings.timeline_rule())
        write_jsonl(tmp_path / "rows.jsonl", rows)
    finally:
        store.close()
    assert (tmp_path / "rows.jsonl").read_text() == (local / "rows.jsonl").read_text()

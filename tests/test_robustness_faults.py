"""Issue 6, acceptance 2: faults during a run never corrupt or lose finished results.

Each test checks the database afterwards: ``PRAGMA integrity_check``, no duplicated rows,
every unit all of its metric rows or none, and (after a resume) the same rows as an
uninterrupted run. Also covered elsewhere: kill -9 at a random moment of ``score`` and a
second run on a locked DIR (tests/test_protocol.py::test_kill9_then_resume_equals_uninterrupted
and ::test_second_concurrent_run_stops_with_a_clear_message).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import synth
from conftest import ROOT, result_rows

pytestmark = pytest.mark.slow  # whole-CLI runs killed, starved and raced

PY = sys.executable
SYNTH = str(ROOT / "tests" / "synth.py")
SCORE = ("score", "--syncnet", "syncnet_v2_random", "--no-visual", "--quiet")
N_STEMS = 3
N_UNITS = N_STEMS * 4  # GT + AM/CR + XM/CR + SI/CR


def cmd(*args) -> list[str]:
    return [PY, "-m", "lipleak", *map(str, args)]


def score_cmd(root: Path) -> list[str]:
    return cmd(SCORE[0], root, *SCORE[1:])


def check_db(db: Path) -> int:
    """Integrity, no duplicates, each unit all-or-nothing; returns the committed units."""
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        units = con.execute("SELECT stem, setup, reference, grp FROM units").fetchall()
        assert len(units) == len(set(units))
        per_unit = dict(
            ((s, st, r, g), n)
            for s, st, r, g, n in con.execute(
                "SELECT stem, setup, reference, grp, COUNT(*) FROM results "
                "GROUP BY stem, setup, reference, grp"
            )
        )
        dup = con.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM results GROUP BY stem, setup, "
            "reference, metric, settings_hash HAVING COUNT(*) > 1)"
        ).fetchone()[0]
    finally:
        con.close()
    assert dup == 0
    assert set(per_unit) == set(units)  # no metric rows without their unit entry
    assert all(n == 5 for n in per_unit.values())  # lse_c, lse_d, offset, n_frames, n_tracks
    return len(units)


def n_units(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM units").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def wait_for(pred, proc, timeout=300.0, step=0.05) -> None:
    t0 = time.monotonic()
    while not pred():
        assert proc.poll() is None, "the run ended before the fault could be injected"
        assert time.monotonic() - t0 < timeout, "timed out waiting for progress"
        time.sleep(step)


def one_line_error(proc_stderr: str) -> str:
    err = proc_stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def protocol_dir(model_dir, tmp_path_factory):
    """3 synthetic GT clips; AM/CR, XM/CR, SI/CR hold copies of them (no plan: XM is scored
    against the video's own track). Scored once, uninterrupted, as the reference."""
    base = tmp_path_factory.mktemp("faults")
    src = base / "DIR"
    synth.make_set(src / "gt", N_STEMS, seconds=1.2)
    for cell in ("AM/CR", "XM/CR", "SI/CR"):
        (src / cell).mkdir(parents=True)
        for v in (src / "gt").glob("*.mp4"):
            shutil.copy2(v, src / cell / v.name)
    ref = base / "ref"
    shutil.copytree(src, ref)
    subprocess.run(score_cmd(ref), check=True, capture_output=True, timeout=600)
    assert check_db(ref / "results.sqlite") == N_UNITS
    return src, result_rows(ref / "results.sqlite")


def fresh(protocol_dir, tmp_path) -> Path:
    src, _ = protocol_dir
    root = tmp_path / "DIR"
    shutil.copytree(src, root)
    return root


def test_kill9_right_after_the_first_commit_then_resume(protocol_dir, tmp_path):
    """A second kill point (test_protocol kills at a random time): just after a commit."""
    root = fresh(protocol_dir, tmp_path)
    db = root / "results.sqlite"
    proc = subprocess.Popen(score_cmd(root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: n_units(db) >= 1, proc, step=0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = check_db(db)
    assert 1 <= done < N_UNITS
    subprocess.run(score_cmd(root), check=True, capture_output=True, timeout=600)
    assert check_db(db) == N_UNITS
    assert result_rows(db) == protocol_dir[1]


def test_kill9_during_generate_then_resume(model_dir, tmp_path):
    gt = tmp_path / "gt"
    synth.make_set(gt, 2, seconds=0.8)
    run = tmp_path / "run"
    subprocess.run(cmd("plan", gt, run, "--quiet"), check=True, capture_output=True)
    gen = (
        f"{PY} {SYNTH} leaky --video {{video}} --audio {{audio}} --out {{out}} "
        "--ref-frames {ref_frames}"
    )
    outputs = lambda: [p for p in run.glob("*/*/*.mp4") if ".partial" not in p.name]  # noqa: E731
    # its own process group, killed as a whole (as a job scheduler or the OOM killer would)
    proc = subprocess.Popen(
        cmd("generate", run, "--cmd", gen, "--jobs", "2", "--quiet"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for(lambda: len(outputs()) >= 3, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = len(outputs())
    assert 3 <= n_before < 12
    for p in outputs():  # whatever has its final name is a whole video
        assert len(synth.read_frames(p)) == 20, p
    r = subprocess.run(
        cmd("generate", run, "--cmd", gen, "--jobs", "2"),
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    assert f"skipped {n_before} existing" in r.stdout and "failed 0" in r.stdout, r.stdout
    assert len(outputs()) == 12
    assert not list(run.rglob("*.partial*"))  # the killed jobs' half files were replaced
    for p in outputs():
        assert len(synth.read_frames(p)) == 20, p
    # and the generated set scores completely
    s = subprocess.run(score_cmd(run), capture_output=True, text=True, timeout=600)
    assert s.returncode == 0, s.stderr[-2000:]
    assert check_db(run / "results.sqlite") == 2 + 12


def _without_root_override():
    """argv prefix that drops CAP_DAC_OVERRIDE, so that permission bits bind even as root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without util-linux setpriv: cannot make a dir read-only")
    drop = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}"]


def test_results_dir_made_read_only_mid_run(protocol_dir, tmp_path):
    root = fresh(protocol_dir, tmp_path)
    db = root / "results.sqlite"
    proc = subprocess.Popen(
        _without_root_override() + score_cmd(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: n_units(db) >= 2, proc)
        seen = n_units(db)
        ro = stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP
        for p in [root, *root.iterdir()]:
            p.chmod(ro if p.is_dir() else stat.S_IRUSR | stat.S_IRGRP)
        out, err = proc.communicate(timeout=600)
    finally:
        for p in [root, *root.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert proc.returncode == 1, err[-2000:]  # a run-level error, not an internal one (70)
    msg = one_line_error(err)
    assert "Permission denied" in msg or "read-only" in msg.lower(), msg
    print(f"read-only after {seen} units: {msg}")
    # SQLite keeps writing through its open files; the first new file (the report) fails
    done = check_db(db)
    assert seen <= done <= N_UNITS
    subprocess.run(score_cmd(root), check=True, capture_output=True, timeout=600)
    assert result_rows(db) == protocol_dir[1]


def test_disk_full_mid_run(protocol_dir, tmp_path):
    """RLIMIT_FSIZE in the child: Python ignores SIGXFSZ, so writes past it fail (EFBIG)."""
    root = fresh(protocol_dir, tmp_path)
    db = root / "results.sqlite"
    limit = 96 * 1024  # room for the schema, the run row and a few units in the WAL

    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        score_cmd(root), capture_output=True, text=True, timeout=600, preexec_fn=cap
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    msg = one_line_error(proc.stderr)
    assert "could not write results" in msg and "intact" in msg, msg
    done = check_db(db)
    print(f"disk full after {done} units: {msg}")
    assert 1 <= done < N_UNITS
    for f in root.iterdir():
        assert f.stat().st_size <= limit, f
    # with room again, the run resumes and ends with the uninterrupted run's rows
    subprocess.run(score_cmd(root), check=True, capture_output=True, timeout=600)
    assert result_rows(db) == protocol_dir[1]


def test_two_concurrent_runs(protocol_dir, tmp_path):
    """Both started at once: one scores, the other stops at the lock; nothing doubled."""
    root = fresh(protocol_dir, tmp_path)
    procs = [
        subprocess.Popen(score_cmd(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    res = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(rc for rc, _ in res)
    db = root / "results.sqlite"
    if codes == [0, 0]:  # the second only reached the lock after the first had finished
        pytest.skip("the runs did not overlap on this machine")
    assert codes == [0, 1], res
    err = next(e for rc, e in res if rc == 1)
    assert "another lipleak-fast run is using" in one_line_error(err)
    assert check_db(db) == N_UNITS
    assert result_rows(db) == protocol_dir[1]


def test_model_with_wrong_sha256_is_refused(protocol_dir, tmp_path, model_dir):
    models = tmp_path / "models"
    models.mkdir()
    data = bytearray((model_dir / "syncnet_v2_random.model").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    (models / "syncnet_v2_random.model").write_bytes(bytes(data))
    root = fresh(protocol_dir, tmp_path)
    env = {**os.environ, "LIPLEAK_MODEL_DIR": str(models)}
    proc = subprocess.run(score_cmd(root), capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 3
    msg = one_line_error(proc.stderr)
    assert "wrong sha256" in msg and "syncnet_v2_random" in msg and "refusing" in msg, msg
    assert not (root / "results.sqlite").exists()  # refused before anything was written

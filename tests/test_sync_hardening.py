"""Issue 24, items 3, 4, 6, 7, 8 and 9: one video at fault never stops a run, option
limits are usage errors (exit 2) checked before anything runs, a retry is linear in the
store, an unsafe checkpoint is refused in one line, and names are escaped when printed."""

from __future__ import annotations

import csv
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lipleak.errors import InputError, LipleakError, ModelError, UsageError
from lipleak.names import as_path, shown, storable
from lipleak.sync import rows as out
from lipleak.sync.inputs import VideoJob, collect_jobs
from lipleak.sync.results import SyncStore, row_from_error, sync_inputs_hash
from media import noise_frames, speech_like, write_video

LATIN1 = os.fsdecode(b"caf\xe9.mp4")  # a name that is not UTF-8 (os.fsdecode's surrogate)
HOSTILE = "c\n\x1b[2J\x1b]0;pwn\x07d\u202e.mp4"  # newline, clear screen, title, bidi


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """30 frames (25 SyncNet windows) of 64x64 noise with speech-like audio."""
    p = tmp_path_factory.mktemp("tiny") / "tiny.mp4"
    return write_video(p, noise_frames(30, 64, 64), audio=speech_like(1.2))


# --- item 3 and 9: names -------------------------------------------------------------------


def test_names_storable_shown_and_back(tmp_path):
    assert storable("/a/b.mp4") == "/a/b.mp4"  # valid names keep their stored keys
    assert storable(LATIN1) == "caf\\xe9.mp4"
    assert storable(LATIN1).encode("utf-8")  # SQLite TEXT / CSV can hold it
    assert shown("plain é ü 名.mp4") == "plain é ü 名.mp4"
    s = shown(HOSTILE)
    assert s == "c\\x0a\\x1b[2J\\x1b]0;pwn\\x07d\\u202e.mp4"
    assert s.isprintable()
    real = tmp_path / LATIN1
    real.write_bytes(b"x")
    assert as_path(storable(real)) == str(real)  # the keep list names the real file
    literal = tmp_path / "a\\xe9.mp4"  # a name that holds a backslash-x itself
    literal.write_bytes(b"y")
    assert as_path(str(literal)) == str(literal)


def test_non_utf8_name_hashes_stores_and_writes(tmp_path):
    """Today: inputs_hash raised UnicodeEncodeError in the job generator (exit 70)."""
    video = tmp_path / LATIN1
    video.write_bytes(b"not a video")
    other = tmp_path / "cafe.mp4"
    other.write_bytes(b"not a video")
    job = VideoJob(video, None)
    key = job.key()
    assert key == (str(tmp_path.resolve() / "caf\\xe9.mp4"), "")
    h = sync_inputs_hash(video, None)
    assert h != sync_inputs_hash(other, None)
    store = SyncStore(tmp_path / "s.sqlite")
    row = row_from_error(key, InputError(video, f"cannot open {video}", "not_a_video"))
    store.commit(row | {"settings_hash": "s", "inputs_hash": h})
    assert store.is_done(key, "s", h)
    back = store.rows("s", keys=[key])
    store.close()
    assert [r["video"] for r in back] == [key[0]]
    assert "caf\\xe9.mp4" in back[0]["reason"]
    out.write_csv(tmp_path / "rows.csv", back)
    assert list(csv.reader((tmp_path / "rows.csv").open()))[1][0] == key[0]
    out.write_keep_list(tmp_path / "keep.txt", back)
    jobs, _ = collect_jobs(["@" + str(tmp_path / "keep.txt")])
    assert [j.video for j in jobs] == [video]  # reads back as the file with those bytes


def test_printed_row_is_one_line_without_escape_codes():
    row = {"video": "/x/" + HOSTILE, "audio": "/y/a\nb.wav", "status": "not_a_video"}
    row["reason"] = "cannot open\x1b[31m red"
    line = out.format_row(row)
    assert "\n" not in line and "\x1b" not in line and "\u202e" not in line, line
    assert "\\x1b[2J" in line and "\\x0a" in line
    ok = {**row, "status": "ok", "reason": "", "offset": 1, "lse_c": 2.0, "lse_d": 3.0}
    ok |= {"n_frames": 30, "n_tracks": 1}
    assert "\x1b" not in out.format_row(ok) and "\n" not in out.format_row(ok)


@pytest.mark.slow
def test_sync_dir_with_hostile_names_scores_every_video(tiny, tmp_path, model_dir):
    """A non-UTF-8 name and a name with control characters: every video gets its row,
    printed on one line with nothing a terminal acts on; CSV and JSONL are written."""
    d = tmp_path / "videos"
    d.mkdir()
    for name in (LATIN1, HOSTILE, "ok.mp4"):
        (d / name).write_bytes(tiny.read_bytes())
    (d / "zz_text.mp4").write_text("not a video\n")
    env = {**os.environ, "LIPLEAK_MODEL_DIR": str(model_dir)}
    cmd = [sys.executable, "-m", "lipleak", "sync", str(d), "--syncnet", "syncnet_v2_random"]
    cmd += ["--db", str(tmp_path / "s.sqlite"), "--csv", str(tmp_path / "r.csv")]
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    stdout, stderr = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 4, stderr[-2000:]  # the text file failed, the rest is ok
    assert "\x1b" not in stdout + stderr
    lines = stdout.splitlines()
    rows = lines[1 : lines.index(next(ln for ln in lines if ln.startswith("4 videos")))]
    assert sorted(r.split()[0] for r in rows) == ["not_a_video", "ok", "ok", "ok"], stdout
    assert any(r.endswith("caf\\xe9.mp4") for r in rows), stdout
    with open(tmp_path / "r.csv", newline="") as f:
        videos = {r["video"]: r["status"] for r in csv.DictReader(f) if r["track"] == "video"}
    assert videos[str(d / "caf\\xe9.mp4")] == "ok"
    assert videos[str(d / HOSTILE)] == "ok"  # CSV quotes it: the real name, one record


# --- item 4 and 9: option limits, one exit code ---------------------------------------------


def _exit_code(argv: list[str]) -> int:
    from lipleak.cli import main

    try:
        return main(argv)
    except SystemExit as exc:  # argparse
        return int(exc.code)


def _usage_cases(tiny: Path, folder: Path) -> list[list[str]]:
    v, d = str(tiny), str(folder)
    fixture = ["--syncnet", "syncnet_v2_random"]
    return [
        ["sync", v, "--vshift", "100000", *fixture],  # today: accepted, internal error late
        ["sync", d, "--vshift", "1001", *fixture],
        ["sync", v, "--batch-size", "0", *fixture],
        ["sync", v, "--batch-size", "100000", *fixture],
        ["sync", d, "--workers", "1000", *fixture],  # today: a video per worker in memory
        ["sync", d, "--workers", "0", *fixture],
        ["sync", v, "--min-track", "0", *fixture],
        ["sync", v, "--min-face-size", "-1", *fixture],
        ["sync", d, "--ray", "--ray-workers", "0", *fixture],
        ["sync", d, "--keep-list", str(folder / "k.txt"), "--max-abs-offset", "-1", *fixture],
        ["sync", d, "--checkpoint-every", "-1", *fixture],
        ["score", d, "--workers", "0", *fixture],
        ["models", "fetch", "syncnet_v2", "--symlink"],  # needs --from: today exit 1
    ]


def test_every_usage_error_exits_2_before_anything_runs(tiny, tmp_path, capsys, model_dir):
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(tiny.read_bytes())
    for argv in _usage_cases(tiny, folder):
        code = _exit_code(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, code, err[-500:])
        assert "Traceback" not in err and err.strip().splitlines()[-1].count("error") == 1
        assert not (folder / "lipleak-sync.sqlite").exists(), argv  # nothing ran
    assert not Path("lipleak-sync.sqlite").exists()


def test_plan_ar_is_a_usage_error():
    from lipleak.protocol.planner import reference_frames

    with pytest.raises(UsageError) as e:
        reference_frames("multi:0", 10, np.random.default_rng(0))
    assert e.value.exit_code == 2 and e.value.status == "bad_option"


def test_vshift_too_long_for_the_core_is_a_failed_row_at_once():
    """Past the core's 2^28 distances, the video is refused (too_long) as soon as the
    window count says so, not with an internal error once it was all embedded."""
    from lipleak.export.syncnet_shapes import EMBED_DIM
    from lipleak.sync.search import MAX_DISTANCES, StreamingSearch

    vshift = 100_000  # the library's limit (the CLI's is 1000)
    fit = MAX_DISTANCES // (2 * vshift + 1)  # 1342 windows
    s = StreamingSearch(syncnet=None, audio=None, vshift=vshift, batch_size=32)
    s.add(np.zeros((fit, EMBED_DIM), np.float32))  # no row is final yet: nothing computed
    with pytest.raises(InputError) as e:
        s.add(np.zeros((1, EMBED_DIM), np.float32))
    assert e.value.status == "too_long" and "smaller --vshift" in e.value.cause
    assert s.n_video == fit


# --- item 6: a full disk while writing --csv / --jsonl ----------------------------------------

CHILD = """
import sys
from lipleak.errors import LipleakError
from lipleak.sync import rows as out
rows = [{{"video": "/v/%05d.mp4" % i, "audio": "", "status": "ok", "reason": "", "offset": 0,
          "lse_c": 1.5, "lse_d": 7.25, "n_frames": 30, "n_tracks": 0, "tracks": [],
          "settings_hash": "s", "inputs_hash": "i", "detail": None}} for i in range(2000)]
try:
    out.{writer}(sys.argv[1], rows)
except LipleakError as exc:
    print("ERROR", exc)
"""


@pytest.mark.parametrize("writer", ["write_csv", "write_jsonl"])
def test_full_disk_writing_rows_is_one_line_naming_the_file(tmp_path, writer):
    """RLIMIT_FSIZE in the child: Python ignores SIGXFSZ, so the write fails (EFBIG) as it
    does on a full disk. Today: OSError, i.e. ``internal error`` (exit 70)."""
    target = tmp_path / "rows.out"

    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    code = textwrap.dedent(CHILD.format(writer=writer))
    proc = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=cap,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    msg = proc.stdout.strip()
    assert msg.startswith(f"ERROR {target}: cannot write (File too large)"), msg
    assert len(msg.splitlines()) == 1 and "results store" in msg
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # the temporary file is gone too


def test_unwritable_output_path_is_a_lipleak_error(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(LipleakError, match="afile/rows.csv: cannot write"):
        out.write_csv(tmp_path / "afile" / "rows.csv", [])


# --- item 7: --retry-failed linear in the store ------------------------------------------------


class _Executor:
    def start(self):
        return "h", {"settings_hash": "h", "models": {}}


def _vm_steps_of_retry(tmp_path: Path, n: int) -> tuple[int, int]:
    """(SQLite VM steps/1000 deciding the jobs of a store of ``n`` failed rows, jobs
    handed out): each job is looked up once, so the steps grow with n, not n^2."""
    from lipleak.sync.volume import Counts, VolumeRun

    store = SyncStore(tmp_path / f"s{n}.sqlite")
    jobs = [VideoJob(tmp_path / f"gone{i:05d}.mp4", None) for i in range(n)]
    for j in jobs:
        row = row_from_error(j.key(), InputError(j.video, "no such file", "missing"))
        store.commit(row | {"settings_hash": "h", "inputs_hash": sync_inputs_hash(j.video, None)})
    run = VolumeRun(jobs, store, _Executor(), retry_failed=True)
    run.start()
    steps = [0]

    def tick():
        steps[0] += 1
        return 0

    store.db.set_progress_handler(tick, 1000)
    handed = sum(1 for _ in run.pending(Counts(), on_skip=lambda job: None))
    store.db.set_progress_handler(None, 0)
    store.close()
    return steps[0], handed


def test_retry_failed_is_linear_in_the_store(tmp_path):
    small, n_small = _vm_steps_of_retry(tmp_path, 250)
    big, n_big = _vm_steps_of_retry(tmp_path, 1000)
    assert (n_small, n_big) == (250, 1000)  # every failed row is retried
    # 4x the rows: linear ~4x the work; today's per-job scan of the store was ~16x
    assert big <= 6 * max(small, 1), (small, big)


def test_score_store_is_done_ok_only(tmp_path):
    from lipleak.protocol.results import ResultsStore

    store = ResultsStore(tmp_path / "r.sqlite")
    store.start_run("t", [], {})
    for stem, status in (("a", "ok"), ("b", "no_face")):
        store.commit_unit(stem, "AM", "CR", "sync", "h", "in", {"lse_c": None}, status, "x")
    assert store.is_done("b", "AM", "CR", "sync", "h", "in")
    assert not store.is_done("b", "AM", "CR", "sync", "h", "in", ok_only=True)
    assert store.is_done("a", "AM", "CR", "sync", "h", "in", ok_only=True)
    store.close()


# --- item 8: an unsafe checkpoint ---------------------------------------------------------------


def test_unsafe_checkpoint_is_refused_in_one_line(tmp_path):
    torch = pytest.importorskip("torch")
    from lipleak.export.lpips_onnx import read_state
    from lipleak.export.syncnet import read_state_dict

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"w": Evil()}, path)
    for load in (read_state_dict, read_state):
        with pytest.raises(ModelError) as e:
            load(path)
        msg = str(e.value)
        assert msg.endswith("(unsafe pickle: global posix.system)"), msg
        assert "\n" not in msg and "weights_only" not in msg
    assert not marker.exists()


def test_refusal_of_other_files_names_the_cause():
    from lipleak.export.refusal import refusal

    torch_text = (
        "Weights only load failed. Re-running `torch.load` with `weights_only` set to `False`"
        " will likely succeed, but it can result in arbitrary code execution.\n\nUnsupported "
        "global: GLOBAL builtins.eval was not an allowed global by default."
    )
    assert refusal(RuntimeError(torch_text)) == "unsafe pickle: global builtins.eval"
    assert refusal(RuntimeError("PytorchStreamReader failed reading zip archive\nmore")) == (
        "RuntimeError: PytorchStreamReader failed reading zip archive"
    )


def test_a_file_that_cannot_be_stated_is_its_own_failed_row(tmp_path, monkeypatch):
    """Deciding a job (its inputs hash) fails for one file: that video gets its row, the
    others are scored. Before: the error left the job generator and stopped the run."""
    import lipleak.sync.volume as volume

    real = volume.sync_inputs_hash

    def stat(video, audio, gt=None):
        if Path(video).name == "b.mp4":
            raise PermissionError(13, "Permission denied")
        return real(video, audio, gt)

    monkeypatch.setattr(volume, "sync_inputs_hash", stat)

    class Fails(_Executor):
        def run(self, jobs, commit):
            for job in jobs:
                commit(job, InputError(job.video, "not scored here", "missing"))

        def close(self):
            pass

    jobs = [VideoJob(tmp_path / f"{n}.mp4", None) for n in "abc"]
    store = SyncStore(tmp_path / "s.sqlite")
    counts = volume.VolumeRun(jobs, store, Fails()).run([])
    rows = store.rows("h")
    store.close()
    assert counts.failed == 3 and [Path(r["video"]).name for r in rows] == [
        "a.mp4",
        "b.mp4",
        "c.mp4",
    ]
    assert rows[1]["inputs_hash"] == "? Permission denied"

"""lipleak.sync.results: the batch sync store (rows whole or absent under SIGKILL, resume
by settings and inputs hash, row order, runs, the run lock)."""

from __future__ import annotations

import inspect
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from lipleak.errors import InputError, LipleakError
from lipleak.sync.results import (
    REASON_MAX,
    SCHEMA,
    RunLock,
    SyncStore,
    lock_path,
    row_from_error,
    row_from_result,
    sync_inputs_hash,
)
from lipleak.sync.scorer import TrackSync, VideoSync


def make_row(i: int, settings_hash: str = "s1") -> dict:
    """A deterministic row; big enough (~60 KB of detail) to span many database pages."""
    ok = i % 5 != 3
    return {
        "video": f"/data/v{i:05d}.mp4",
        "audio": "" if i % 2 else f"/data/a{i:05d}.wav",
        "settings_hash": settings_hash,
        "inputs_hash": f"in{i}",
        "status": "ok" if ok else "no_face",
        "reason": "" if ok else f"no face track ({i})",
        "offset": (i % 7) - 3 if ok else None,
        "lse_c": i + 0.25 if ok else None,
        "lse_d": 7.0 + i / 8 if ok else None,
        "n_frames": 100 + i if ok else None,
        "n_tracks": 2 if ok else None,
        "tracks": [
            {
                "start_frame": 0,
                "end_frame": 49 + t,
                "n_windows": 46,
                "offset": t,
                "lse_c": i + t / 4,
                "lse_d": 7.5,
            }
            for t in range(2 if ok else 0)
        ],
        "detail": {"i": i, "payload": [i + k / 7 for k in range(3000)]} if ok else None,
        "avs_u": i / 7 if ok and i % 3 == 0 else None,  # sync --avs rows carry it
        "lpips": i / 11 if ok and i % 4 == 0 else None,  # sync --gt-dir rows carry it
    }


def stored(row: dict) -> dict:
    keys = ("run_id", "created", "seq")
    return {k: v for k, v in row.items() if k not in keys}


def test_store_made_before_avs_u_and_lpips_gains_the_columns(tmp_path):
    db = tmp_path / "old.sqlite"
    old = sqlite3.connect(db)
    old.executescript(SCHEMA.replace(" avs_u REAL, lpips REAL,", ""))
    assert "avs_u" not in {r[1] for r in old.execute("PRAGMA table_info(videos)")}
    old.close()
    with SyncStore(db) as store:
        store.start_run("0", [], {})
        store.commit(make_row(6))
        store.commit(make_row(12))
        rows = store.rows("s1")
    assert [stored(r) for r in rows] == [make_row(6), make_row(12)]
    assert rows[0]["avs_u"] == 6 / 7 and rows[1]["lpips"] == 12 / 11


def test_commit_and_read_back(tmp_path):
    db = tmp_path / "deep/er/sync.sqlite"  # parent folders are made
    with SyncStore(db) as s:
        run = s.start_run("1.2.3", ["sync", "a b.mp4"], {"settings_hash": "s1"})
        for i in range(4):
            s.commit(make_row(i))
        s.finish_run()
        rows = s.rows()
        assert [stored(r) for r in rows] == [make_row(i) for i in range(4)]
        assert [r["run_id"] for r in rows] == [run] * 4
        assert [r["seq"] for r in rows] == [1, 2, 3, 4]
        (info,) = s.runs()
        assert info["argv"] == ["sync", "a b.mp4"] and info["version"] == "1.2.3"
        assert info["provenance"] == {"settings_hash": "s1"} and info["finished"] >= info["started"]
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    con.close()


def test_is_done_follows_inputs_and_settings_hash(tmp_path):
    s = SyncStore(tmp_path / "s.sqlite")
    s.start_run("v", [], {})
    key = ("/data/v00000.mp4", "/data/a00000.wav")
    assert not s.is_done(key, "s1", "in0")
    s.commit(make_row(0))
    assert s.is_done(key, "s1", "in0")
    assert not s.is_done(key, "s1", "in0-changed")  # a file changed: redo
    assert not s.is_done(key, "s2", "in0")  # another setting or model: redo
    assert not s.is_done((key[0], ""), "s1", "in0")  # another audio: another job
    failed = make_row(3)
    s.commit(failed)
    fkey = (failed["video"], failed["audio"])
    assert s.is_done(fkey, "s1", "in3")
    assert not s.is_done(fkey, "s1", "in3", ok_only=True)
    assert s.is_done(key, "s1", "in0", ok_only=True)
    s.close()


def test_replace_and_orders(tmp_path):
    s = SyncStore(tmp_path / "s.sqlite")
    s.start_run("v", [], {})
    for i in range(3):
        s.commit(make_row(i))
    s.commit(make_row(1, settings_hash="s2"))
    again = make_row(0) | {"inputs_hash": "in0-new", "lse_c": 99.0}
    s.commit(again)  # same key: replaced, and now last in commit order
    s1 = s.rows("s1")
    assert [r["video"] for r in s1] == ["/data/v00001.mp4", "/data/v00002.mp4", "/data/v00000.mp4"]
    assert s1[-1]["lse_c"] == 99.0 and s1[-1]["inputs_hash"] == "in0-new"
    assert [r["seq"] for r in s.rows()] == [2, 3, 4, 5]  # strictly growing
    assert len(s.rows()) == 4
    keys = [(make_row(i)["video"], make_row(i)["audio"]) for i in (2, 7, 0, 2, 1)]
    got = s.rows("s1", keys=keys)
    assert [r["video"] for r in got] == ["/data/v00002.mp4", "/data/v00000.mp4", "/data/v00001.mp4"]
    both = s.rows(keys=[keys[-1]])  # every settings hash of that key, commit order
    assert [r["settings_hash"] for r in both] == ["s1", "s2"]
    assert s.rows("nope") == [] and s.rows(keys=[]) == []
    s.close()


def test_commit_rejects_an_incomplete_row(tmp_path):
    s = SyncStore(tmp_path / "s.sqlite")
    row = make_row(0)
    del row["inputs_hash"]
    with pytest.raises(ValueError, match="inputs_hash"):
        s.commit(row)
    s.close()


def test_unencodable_name_fails_cleanly_and_the_store_goes_on(tmp_path):
    s = SyncStore(tmp_path / "s.sqlite")
    bad = make_row(0) | {"video": "/data/caf\udce9.mp4"}  # os.fsdecode of a latin-1 name
    with pytest.raises(LipleakError, match="could not write results"):
        s.commit(bad)
    s.commit(make_row(1))
    assert [r["video"] for r in s.rows()] == ["/data/v00001.mp4"]
    s.close()


def test_cannot_open_is_one_line_lipleak_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LipleakError) as e:
        SyncStore(tmp_path / "file" / "s.sqlite")  # parent is a file
    assert "cannot open the sync results database" in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "notdb.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(LipleakError, match="cannot open"):
        SyncStore(tmp_path / "notdb.sqlite")


def test_run_lock_refuses_a_second_run(tmp_path):
    db = tmp_path / "sync.sqlite"
    assert lock_path(db) == tmp_path / "sync.sqlite.lock"
    with RunLock(lock_path(db)):
        with pytest.raises(LipleakError, match=f"pid {os.getpid()}"):
            with RunLock(lock_path(db)):
                pass
    with RunLock(lock_path(db)):  # released: the next run goes
        pass


# --- rows from results and errors ----------------------------------------------------------


def test_row_from_result_keeps_tracks_without_per_window_lists():
    tracks = [
        TrackSync(0, 59, 55, 1, 6.5, 7.25, mdist=[1.0] * 31, fconf=[0.5] * 55),
        TrackSync(70, 199, 125, -2, 5.0, 8.0, mdist=[2.0] * 31, fconf=[0.1] * 125, shot=1),
    ]
    result = VideoSync(
        video="/x/v.mp4",
        audio_source="/x/a.wav",
        n_frames=200,
        src_fps=25.0,
        resampled=False,
        frame_path="lossless",
        tracks=tracks,
        offset=-2,
        lse_c=5.5,
        lse_d=7.8,
    )
    row = row_from_result(("/x/v.mp4", "/x/a.wav"), result)
    assert row["status"] == "ok" and row["reason"] == ""
    assert (row["offset"], row["lse_c"], row["lse_d"]) == (-2, 5.5, 7.8)
    assert (row["n_frames"], row["n_tracks"]) == (200, 2)
    assert row["tracks"][1] == {
        "start_frame": 70,
        "end_frame": 199,
        "n_windows": 125,
        "offset": -2,
        "lse_c": 5.0,
        "lse_d": 8.0,
        "shot": 1,
        "segments": [],  # SPEC §11 segments live in the row's tracks ...
    }
    detail = result.to_dict()
    for t in detail["tracks"]:
        del t["segments"]  # ... and not twice
    del detail["timeline"]  # re-derived under each run's gate
    assert row["detail"] == detail and "mdist" not in row["detail"]["tracks"][0]
    assert (row["video"], row["audio"]) == ("/x/v.mp4", "/x/a.wav")


def test_to_dict_does_not_copy_the_per_frame_rows():
    """An hour of video keeps 90,000 x 31 distances (22 MB) for the segments; to_dict
    leaves them out, and must not deep-copy them first (asdict would)."""
    import tracemalloc

    import numpy as np

    n = 90_000
    track = TrackSync(0, n + 4, n, 0, 5.0, 7.0, mdist=[1.0] * 31, fconf=[0.5] * 10)
    track.distances = np.ones((n, 31))
    track.frame_energy = np.ones(n + 5)
    result = VideoSync(
        "/x/v.mp4", "container", n + 5, 25.0, False, "lossless", [track], 0, 5.0, 7.0
    )
    tracemalloc.start()
    try:
        d = result.to_dict(verbose=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak  # the distances alone are 22.3 MB
    assert "distances" not in d["tracks"][0] and "frame_energy" not in d["tracks"][0]
    assert d["tracks"][0]["fconf"] == [0.5] * 10
    assert result.tracks[0].distances is track.distances  # the result itself is untouched


def test_row_from_error_is_one_line():
    exc = InputError("/x/v.mp4", "decoder said:\n  broken  packet\r\n" + "z" * 1000, "decode_error")
    row = row_from_error(("/x/v.mp4", ""), exc)
    assert row["status"] == "decode_error"
    assert row["reason"].startswith("decoder said: broken packet z")
    assert "\n" not in row["reason"] and len(row["reason"]) == REASON_MAX
    assert row["reason"].endswith("…")
    assert all(row[k] is None for k in ("offset", "lse_c", "lse_d", "n_frames", "n_tracks"))
    assert row["tracks"] == [] and row["detail"] is None
    short = row_from_error(("/x/v.mp4", ""), InputError(None, "no such file", "missing"))
    assert short["reason"] == "no such file"


def test_sync_inputs_hash(tmp_path):
    v = tmp_path / "v.mp4"
    a = tmp_path / "a.wav"
    missing = sync_inputs_hash(v, a)  # neither exists: no exception
    v.write_bytes(b"12345")
    own = sync_inputs_hash(v, None)
    assert sync_inputs_hash(v, a) not in (missing, own)
    a.write_bytes(b"1")
    with_audio = sync_inputs_hash(v, a)
    assert with_audio not in (missing, own)
    os.utime(a, ns=(1, 1))
    assert sync_inputs_hash(v, a) != with_audio  # mtime changed
    st = a.stat()
    a.write_bytes(b"12")
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert sync_inputs_hash(v, a) != with_audio  # size changed
    assert sync_inputs_hash(v, None) == own


# --- atomicity under SIGKILL ---------------------------------------------------------------

CHILD = """
import os, signal, sys, threading
from pathlib import Path
from lipleak.sync.results import SyncStore

{make_row}

db, mode, when = sys.argv[1], sys.argv[2], float(sys.argv[3])
store = SyncStore(Path(db))
store.start_run("test", [], {{}})
kill = lambda: os.kill(os.getpid(), signal.SIGKILL)
calls = 0
def tick():
    global calls
    calls += 1
    if calls == int(when):
        kill()
    return 0
if mode == "vm":  # at the N-th SQLite VM step: inside a statement or a transaction
    store.db.set_progress_handler(tick, 1)
else:  # after `when` seconds, wherever the loop is
    threading.Timer(when, kill).start()
for i in range(100_000):
    store.commit(make_row(i))
    print(i, flush=True)
"""


@pytest.mark.parametrize(
    "mode, when",
    [("vm", 40), ("vm", 333), ("vm", 1001), ("vm", 4567), ("time", 0.05), ("time", 0.3)],
)
def test_sigkill_leaves_whole_rows_only(tmp_path, mode, when):
    db = tmp_path / "s.sqlite"
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD).format(make_row=inspect.getsource(make_row)))
    proc = subprocess.run(
        [sys.executable, str(script), str(db), mode, str(when)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr
    printed = [int(x) for x in proc.stdout.split()]
    last = printed[-1] if printed else -1
    s = SyncStore(db)  # opens (recovers the WAL) fine
    assert s.db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = s.rows()
    # every commit that returned is there; the one in flight is whole or absent
    assert len(rows) in (last + 1, last + 2)
    for i, r in enumerate(rows):
        assert stored(r) == make_row(i)
        assert r["seq"] == i + 1
    s.start_run("after", [], {})  # and it takes new rows
    s.commit(make_row(len(rows)))
    assert len(s.rows()) == len(rows) + 1
    s.close()
    print(f"{mode} {when}: {len(rows)} rows committed before the kill")

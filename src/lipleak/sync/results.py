"""The results store of a batch ``sync`` run: SQLite in WAL mode, one row per video.

A row is keyed by (video, audio, settings hash): ``video`` and ``audio`` are the resolved
absolute paths of ``VideoJob.key()`` (``audio`` is "" for the video's own track), the
settings hash is ``SyncSettings.hash()`` (settings and model sha256 that move a number).
Each row is written in its own transaction as its video finishes, so a run killed at any
moment, SIGKILL included, leaves every row whole or absent, and a rerun skips the rows
whose inputs hash (name, size and mtime of the video and audio file) is unchanged.

Failed videos are rows too (``status`` is the ``InputError`` status, ``reason`` one line),
so a rerun does not retry a video that failed for a reason its files carry; changing a
file changes its inputs hash and it is scored again. ``seq`` grows with every commit, so
``rows()`` can list rows in the order they were written.

NaN cannot be stored in a SQLite REAL column (it reads back as NULL); SyncNet never gives
one for a scored video.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError, LipleakError
from ..files import RunLock, inputs_hash, lock_path
from ..names import storable
from .checkpoint import SCHEMA as CHECKPOINT_SCHEMA
from .checkpoint import delete_sql as checkpoint_delete_sql

if TYPE_CHECKING:
    from .scorer import VideoSync

__all__ = [
    "REASON_MAX",
    "RunLock",
    "SyncStore",
    "lock_path",
    "one_line",
    "row_from_error",
    "row_from_result",
    "sync_inputs_hash",
]

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS runs (
  run_id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL, finished REAL,
  version TEXT NOT NULL, argv TEXT, provenance TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
  video TEXT NOT NULL, audio TEXT NOT NULL, settings_hash TEXT NOT NULL,
  inputs_hash TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
  "offset" INTEGER, lse_c REAL, lse_d REAL, n_frames INTEGER, n_tracks INTEGER,
  tracks TEXT NOT NULL, detail TEXT, avs_u REAL, lpips REAL, run_id INTEGER,
  created REAL NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (video, audio, settings_hash));
CREATE INDEX IF NOT EXISTS videos_seq ON videos (seq);
"""
    + CHECKPOINT_SCHEMA
)

COLUMNS = (
    "video",
    "audio",
    "settings_hash",
    "inputs_hash",
    "status",
    "reason",
    "offset",
    "lse_c",
    "lse_d",
    "n_frames",
    "n_tracks",
    "tracks",
    "detail",
    "avs_u",
    "lpips",
    "run_id",
    "created",
    "seq",
)
# What a caller's row must hold; run_id, created and seq are the store's.
ROW_KEYS = COLUMNS[:-3]
# None when absent: only sync --avs (avs_u) and sync --gt-dir (lpips) fill them
OPTIONAL = ("avs_u", "lpips")
TRACK_KEYS = ("start_frame", "end_frame", "n_windows", "offset", "lse_c", "lse_d")
REASON_MAX = 300


def sync_inputs_hash(video: Path, audio: Path | None, gt: Path | None = None) -> str:
    """name|size|mtime_ns of the video and the audio file (``None``: its own track), and
    of the GT video with ``--gt-dir`` (without it the hash is what it always was). A
    missing file hashes as missing, so its row is redone once the file appears."""
    if gt is None:
        return inputs_hash(video, audio, missing_ok=True)
    return inputs_hash(video, audio, gt, missing_ok=True)


def one_line(text: str, limit: int = REASON_MAX) -> str:
    """``text`` on one line (runs of whitespace, newlines included, become one space),
    cut to ``limit`` characters with an ellipsis; a file name's bytes that are not UTF-8
    written ``\\xNN`` (``lipleak.names.storable``), so that the store can hold it."""
    flat = " ".join(storable(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def row_from_result(job_key: tuple[str, str], result: VideoSync) -> dict:
    """The row of a scored video (without settings_hash and inputs_hash)."""
    return {
        "video": job_key[0],
        "audio": job_key[1],
        "status": "ok",
        "reason": "",
        "offset": int(result.offset),
        "lse_c": float(result.lse_c),
        "lse_d": float(result.lse_d),
        "n_frames": int(result.n_frames),
        "n_tracks": len(result.tracks),
        "tracks": [
            {
                "start_frame": int(t.start_frame),
                "end_frame": int(t.end_frame),
                "n_windows": int(t.n_windows),
                "offset": int(t.offset),
                "lse_c": float(t.lse_c),
                "lse_d": float(t.lse_d),
                "shot": int(t.shot),
                # SPEC §11: the numbers a rerun re-gates without rescoring (sync.timeline)
                "segments": [seg.to_dict() for seg in t.segments],
            }
            for t in result.tracks
        ],
        "detail": _detail(result),
        "avs_u": None,
        "lpips": None,
    }


def _detail(result: VideoSync) -> dict:
    """``result.to_dict()`` without the segments, which the row's tracks hold already, and
    without the timeline, which is re-derived from them under each run's gate
    (``lipleak.sync.timeline.row_timeline``; the gate is in the run's provenance)."""
    d = result.to_dict()
    d.pop("timeline", None)
    for t in d["tracks"]:
        t.pop("segments", None)
    return d


def row_from_error(job_key: tuple[str, str], exc: InputError) -> dict:
    """The row of a video that could not be scored (without the two hashes)."""
    return {
        "video": job_key[0],
        "audio": job_key[1],
        "status": exc.status,
        "reason": one_line(exc.cause),
        "offset": None,
        "lse_c": None,
        "lse_d": None,
        "n_frames": None,
        "n_tracks": None,
        "tracks": [],
        "detail": None,
        "avs_u": None,
        "lpips": None,
    }


class SyncStore:
    """One SQLite file; open it, ``start_run``, ``commit`` each video, ``finish_run``.

    Two runs must not write one store at once: hold ``RunLock(lock_path(db))`` for the run.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            # A committed transaction survives the process being killed (the WAL is in the
            # OS cache); only a power cut can lose the last ones, never tear a row.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            # stores made before these columns existed gain them (NULL in their rows)
            cols = {r[1] for r in self.db.execute("PRAGMA table_info(videos)")}
            for col in OPTIONAL:
                if col not in cols:
                    self.db.execute(f"ALTER TABLE videos ADD COLUMN {col} REAL")
        except (OSError, sqlite3.Error) as exc:
            raise LipleakError(
                f"{self.path}: cannot open the sync results database: {one_line(str(exc))}"
            ) from None
        self.run_id: int | None = None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> SyncStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------------------
    def start_run(self, version: str, argv: list[str], provenance: dict) -> int:
        cur = self._write(
            "INSERT INTO runs (started, version, argv, provenance) VALUES (?, ?, ?, ?)",
            (time.time(), version, json.dumps(list(argv)), json.dumps(provenance, sort_keys=True)),
        )
        self.run_id = int(cur.lastrowid)
        return self.run_id

    def finish_run(self) -> None:
        self._write("UPDATE runs SET finished = ? WHERE run_id = ?", (time.time(), self.run_id))

    def runs(self) -> list[dict]:
        q = "SELECT run_id, started, finished, version, argv, provenance FROM runs ORDER BY run_id"
        return [
            {
                "run_id": r[0],
                "started": r[1],
                "finished": r[2],
                "version": r[3],
                "argv": json.loads(r[4] or "[]"),
                "provenance": json.loads(r[5]),
            }
            for r in self.db.execute(q)
        ]

    # -- videos -------------------------------------------------------------------------
    def is_done(
        self, key: tuple[str, str], settings_hash: str, in_hash: str, ok_only: bool = False
    ) -> bool:
        """A row for ``key`` and ``settings_hash`` exists and was made from the same input
        files (``in_hash``); with ``ok_only`` a failed row does not count (retry failures)."""
        row = self.db.execute(
            "SELECT inputs_hash, status FROM videos WHERE video=? AND audio=? AND settings_hash=?",
            (key[0], key[1], settings_hash),
        ).fetchone()
        return row is not None and row[0] == in_hash and (not ok_only or row[1] == "ok")

    def commit(self, row: dict) -> None:
        """Write one video's row in one transaction, replacing the row of the same key."""
        missing = [k for k in ROW_KEYS if k not in row and k not in OPTIONAL]
        if missing:
            raise ValueError(f"a sync row needs {', '.join(missing)}")
        values = [row.get(k) for k in ROW_KEYS]
        values[COLUMNS.index("tracks")] = json.dumps(row["tracks"] or [])
        if row["detail"] is not None:
            values[COLUMNS.index("detail")] = json.dumps(row["detail"], sort_keys=True)
        # seq is computed inside the INSERT, i.e. inside its transaction: no two commits
        # (even of two processes, which the run lock forbids anyway) get the same number.
        # The video's checkpoint (``lipleak.sync.checkpoint``) goes in the same transaction.
        key = (row["video"], row["audio"])
        self._write(
            f"INSERT OR REPLACE INTO videos ({', '.join(_q(c) for c in COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(ROW_KEYS))}, ?, ?, "
            "(SELECT COALESCE(MAX(seq), 0) + 1 FROM videos))",
            (*values, row.get("run_id", self.run_id), time.time()),
            *[(sql, key) for sql in checkpoint_delete_sql()],
        )

    def rows(
        self, settings_hash: str | None = None, keys: list[tuple[str, str]] | None = None
    ) -> list[dict]:
        """Rows as dicts (``tracks`` a list, ``detail`` a dict or None), of one settings hash
        or all. With ``keys``: in that order, each key once, keys without a row left out (a
        key with rows of several settings hashes gives them in commit order); otherwise all
        rows in commit order."""
        q = f"SELECT {', '.join(_q(c) for c in COLUMNS)} FROM videos"
        args: tuple = ()
        if settings_hash is not None:
            q += " WHERE settings_hash = ?"
            args = (settings_hash,)
        found = [self._decode(r) for r in self.db.execute(q + " ORDER BY seq", args)]
        if keys is None:
            return found
        by_key: dict[tuple[str, str], list[dict]] = {}
        for r in found:
            by_key.setdefault((r["video"], r["audio"]), []).append(r)
        out, seen = [], set()
        for k in keys:
            k = (str(k[0]), str(k[1]))
            if k not in seen:
                seen.add(k)
                out += by_key.get(k, [])
        return out

    # -- internals ----------------------------------------------------------------------
    @staticmethod
    def _decode(r: tuple) -> dict:
        d = dict(zip(COLUMNS, r))
        d["tracks"] = json.loads(d["tracks"] or "[]")
        d["detail"] = None if d["detail"] is None else json.loads(d["detail"])
        return d

    def _write(self, sql: str, args: tuple, *more: tuple[str, tuple]) -> sqlite3.Cursor:
        """One statement (and ``more`` after it) in one explicit transaction: whole or not
        at all. Returns the first statement's cursor."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            cur = self.db.execute(sql, args)
            for other, other_args in more:
                self.db.execute(other, other_args)
            self.db.execute("COMMIT")
            return cur
        except BaseException as exc:
            # Never leave a transaction open: the next commit's BEGIN would fail.
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            if not isinstance(exc, sqlite3.Error | UnicodeEncodeError):
                raise
            # UnicodeEncodeError: a file name that is not valid UTF-8 cannot be a TEXT key.
            raise LipleakError(
                f"{self.path}: could not write results ({one_line(str(exc))}); everything "
                "committed before this video is intact"
            ) from None


def _q(column: str) -> str:
    return f'"{column}"'

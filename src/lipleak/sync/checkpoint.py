"""A long video's progress, kept in the results database while it is scored.

A video of an hour is scored for most of an hour; killed at minute 40 it should not start
again from frame 0. Every ``every_frames`` frames (60 s of video by default) the scorer
hands its whole streaming state to ``Checkpoint.save``: small arrays that are replaced
(pending embeddings, the last crops, counters) and arrays that only grow, appended as
parts (the offset search's distance rows, detect mode's detections), so a save writes
what changed since the last one, not the video so far. A rerun of the same video with
the same run hash (settings and models) and inputs hash (file names, sizes, mtimes)
loads it and goes on from there; anything else discards it. The final row's commit
deletes it in the same transaction (``SyncStore.commit``).

Arrays are stored as ``.npy`` bytes read back with ``allow_pickle=False`` and the
scalars as JSON: a tampered database can give wrong numbers, never run code. Each
``Checkpoint`` opens its own SQLite connection (the worker threads of a run save while
the driver commits rows); WAL mode and a busy timeout let them share the file.
"""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import time
from pathlib import Path

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
  video TEXT NOT NULL, audio TEXT NOT NULL, run_hash TEXT NOT NULL, inputs_hash TEXT NOT NULL,
  meta TEXT NOT NULL, updated REAL NOT NULL, PRIMARY KEY (video, audio));
CREATE TABLE IF NOT EXISTS checkpoint_arrays (
  video TEXT NOT NULL, audio TEXT NOT NULL, name TEXT NOT NULL, part INTEGER NOT NULL,
  data BLOB NOT NULL, PRIMARY KEY (video, audio, name, part));
"""
log = logging.getLogger(__name__)
# part of a replaced array; appended arrays count their parts from 1
REPLACED = 0
FRAMES_PER_SECOND = 25


def delete_sql() -> list[str]:
    """The statements that drop one (video, audio) checkpoint, for a caller's transaction."""
    return [
        "DELETE FROM checkpoints WHERE video = ? AND audio = ?",
        "DELETE FROM checkpoint_arrays WHERE video = ? AND audio = ?",
    ]


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _from_npy(b: bytes) -> np.ndarray:
    return np.load(io.BytesIO(b), allow_pickle=False)


class Checkpoint:
    """The checkpoint of one (video, audio) key under one run hash and inputs hash."""

    def __init__(
        self,
        db: Path,
        key: tuple[str, str],
        run_hash: str,
        inputs_hash: str,
        every_seconds: float = 60.0,
    ):
        self.db = Path(db)
        self.key = (str(key[0]), str(key[1]))
        self.run_hash = run_hash
        self.inputs_hash = inputs_hash
        self.every_frames = max(1, round(every_seconds * FRAMES_PER_SECOND))
        self._parts: dict[str, int] = {}  # appended arrays: parts written so far
        self.resumed_from: int | None = None  # the frame a loaded checkpoint had reached

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.db, timeout=60, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.executescript(SCHEMA)
        return con

    def due(self, frame: int) -> bool:
        """Whether to save after ``frame`` frames."""
        return frame > 0 and frame % self.every_frames == 0

    def load(self) -> tuple[dict, dict[str, np.ndarray], dict[str, list[np.ndarray]]] | None:
        """(scalars, replaced arrays, appended arrays as their parts in order), or None
        without a usable checkpoint; one made by other settings, models or files is
        deleted."""
        con = self._connect()
        try:
            row = con.execute(
                "SELECT run_hash, inputs_hash, meta FROM checkpoints WHERE video=? AND audio=?",
                self.key,
            ).fetchone()
            if row is None:
                return None
            if (row[0], row[1]) != (self.run_hash, self.inputs_hash):
                self._delete(con)
                return None
            arrays: dict[str, np.ndarray] = {}
            parts: dict[str, list[np.ndarray]] = {}
            q = "SELECT name, part, data FROM checkpoint_arrays WHERE video=? AND audio=? "
            for name, part, data in con.execute(q + "ORDER BY name, part", self.key):
                if part == REPLACED:
                    arrays[name] = _from_npy(data)
                else:
                    parts.setdefault(name, []).append(_from_npy(data))
            meta = json.loads(row[2])
        finally:
            con.close()
        self._parts = {name: len(p) for name, p in parts.items()}
        self.resumed_from = int(meta.get("frame", 0))
        step = "" if meta.get("pass", 1) == 1 else f", pass {meta['pass']} of 2"
        log.warning(
            "%s: resuming from its checkpoint at frame %d (%.1f s of video%s)",
            self.key[0],
            self.resumed_from,
            self.resumed_from / FRAMES_PER_SECOND,
            step,
        )
        return meta, arrays, parts

    def save(
        self,
        meta: dict,
        arrays: dict[str, np.ndarray],
        appended: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Replace the scalars and ``arrays``, append each of ``appended`` as a new part,
        all in one transaction: a kill leaves the previous checkpoint or this one."""
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)",
                (*self.key, self.run_hash, self.inputs_hash, json.dumps(meta), time.time()),
            )
            ins = "INSERT OR REPLACE INTO checkpoint_arrays VALUES (?, ?, ?, ?, ?)"
            for name, a in arrays.items():
                con.execute(ins, (*self.key, name, REPLACED, _npy(a)))
            next_parts = dict(self._parts)
            for name, a in (appended or {}).items():  # empty ones too: parts stay aligned
                next_parts[name] = next_parts.get(name, 0) + 1
                con.execute(ins, (*self.key, name, next_parts[name], _npy(a)))
            con.execute("COMMIT")
            self._parts = next_parts
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def clear(self) -> None:
        con = self._connect()
        try:
            self._delete(con)
        finally:
            con.close()

    def _delete(self, con: sqlite3.Connection) -> None:
        con.execute("BEGIN IMMEDIATE")
        for sql in delete_sql():
            con.execute(sql, self.key)
        con.execute("COMMIT")
        self._parts = {}

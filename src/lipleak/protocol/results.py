"""The results store: SQLite in WAL mode, one row per (video, setup, reference, metric,
settings hash), committed as each video finishes.

A "unit" is one video of one cell (``stem``, ``setup``, ``reference``) scored by one metric
group (``sync`` or ``visual``) with one settings hash. Its metric rows and its entry in
``units`` are written in a single transaction, so a run killed at any moment leaves
either all of a unit or none of it. A rerun skips units whose settings hash (settings +
model sha256) and inputs hash (file sizes and modification times) are unchanged; a changed
setting or model gets a new hash, so only the groups it affects are recomputed.

The metric group is stored in the column ``grp``, and the row dicts that ``units()`` and
``results()`` return use the column names, so existing stores and results.json keep their
``grp`` key.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from ..errors import LipleakError

# Moved to the bottom floor so that lipleak.sync's store shares them; re-exported here for
# the existing imports (protocol.scoring, tests).
from ..files import RunLock, inputs_hash

__all__ = ["ResultsStore", "RunLock", "inputs_hash"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL, finished REAL,
  version TEXT NOT NULL, argv TEXT, provenance TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS units (
  stem TEXT NOT NULL, setup TEXT NOT NULL, reference TEXT NOT NULL, grp TEXT NOT NULL,
  settings_hash TEXT NOT NULL, inputs_hash TEXT NOT NULL, status TEXT NOT NULL,
  reason TEXT, detail TEXT, run_id INTEGER NOT NULL, created REAL NOT NULL,
  PRIMARY KEY (stem, setup, reference, grp, settings_hash));
CREATE TABLE IF NOT EXISTS results (
  stem TEXT NOT NULL, setup TEXT NOT NULL, reference TEXT NOT NULL, metric TEXT NOT NULL,
  settings_hash TEXT NOT NULL, grp TEXT NOT NULL, value REAL, status TEXT NOT NULL,
  reason TEXT, run_id INTEGER NOT NULL, created REAL NOT NULL,
  PRIMARY KEY (stem, setup, reference, metric, settings_hash));
"""


class ResultsStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise LipleakError(f"{self.path}: cannot open the results database: {exc}") from None
        self.run_id: int | None = None

    def close(self) -> None:
        self.db.close()

    # -- runs ---------------------------------------------------------------------------
    def start_run(self, version: str, argv: list[str], provenance: dict) -> int:
        cur = self.db.execute(
            "INSERT INTO runs (started, version, argv, provenance) VALUES (?, ?, ?, ?)",
            (time.time(), version, json.dumps(argv), json.dumps(provenance, sort_keys=True)),
        )
        self.run_id = int(cur.lastrowid)
        return self.run_id

    def finish_run(self) -> None:
        self.db.execute("UPDATE runs SET finished = ? WHERE run_id = ?", (time.time(), self.run_id))

    def provenance(self) -> list[dict]:
        rows = self.db.execute(
            "SELECT run_id, started, finished, version, argv, provenance FROM runs ORDER BY run_id"
        )
        return [
            {
                "run_id": r[0],
                "started": r[1],
                "finished": r[2],
                "version": r[3],
                "argv": json.loads(r[4] or "[]"),
                "provenance": json.loads(r[5]),
            }
            for r in rows
        ]

    # -- units --------------------------------------------------------------------------
    def is_done(
        self,
        stem: str,
        setup: str,
        ref: str,
        group: str,
        settings_hash: str,
        in_hash: str,
        ok_only: bool = False,
    ) -> bool:
        """A unit of these settings made from the same files exists; with ``ok_only`` a
        failed unit does not count (``--retry-failed``). One indexed look-up."""
        row = self.db.execute(
            "SELECT inputs_hash, status FROM units WHERE stem=? AND setup=? AND reference=? "
            "AND grp=? AND settings_hash=?",
            (stem, setup, ref, group, settings_hash),
        ).fetchone()
        return row is not None and row[0] == in_hash and (not ok_only or row[1] == "ok")

    def commit_unit(
        self,
        stem: str,
        setup: str,
        ref: str,
        group: str,
        settings_hash: str,
        in_hash: str,
        metrics: dict[str, float | None],
        status: str = "ok",
        reason: str | None = None,
        detail: dict | None = None,
        reasons: dict[str, str] | None = None,
    ) -> None:
        """Write all metric rows of one unit and its completion entry atomically."""
        now = time.time()
        reasons = reasons or {}
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "DELETE FROM results WHERE stem=? AND setup=? AND reference=? AND "
                "grp=? AND settings_hash=?",
                (stem, setup, ref, group, settings_hash),
            )
            for name, value in metrics.items():
                ok = value is not None and status == "ok"
                self.db.execute(
                    "INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        stem,
                        setup,
                        ref,
                        name,
                        settings_hash,
                        group,
                        None if value is None else float(value),
                        "ok" if ok else ("failed" if status != "ok" else "not_computed"),
                        reason if status != "ok" else reasons.get(name),
                        self.run_id,
                        now,
                    ),
                )
            self.db.execute(
                "INSERT OR REPLACE INTO units VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    stem,
                    setup,
                    ref,
                    group,
                    settings_hash,
                    in_hash,
                    status,
                    reason,
                    json.dumps(detail or {}, sort_keys=True),
                    self.run_id,
                    now,
                ),
            )
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise LipleakError(
                f"{self.path}: could not write results ({exc}); everything "
                "committed before this video is intact"
            ) from None

    # -- reading ------------------------------------------------------------------------
    def units(self, group: str | None = None, settings_hash: str | None = None) -> list[dict]:
        q = "SELECT stem, setup, reference, grp, settings_hash, status, reason, detail FROM units"
        cond, args = [], []
        if group:
            cond.append("grp = ?")
            args.append(group)
        if settings_hash:
            cond.append("settings_hash = ?")
            args.append(settings_hash)
        if cond:
            q += " WHERE " + " AND ".join(cond)
        return [
            {
                "stem": r[0],
                "setup": r[1],
                "reference": r[2],
                "grp": r[3],
                "settings_hash": r[4],
                "status": r[5],
                "reason": r[6],
                "detail": json.loads(r[7] or "{}"),
            }
            for r in self.db.execute(q + " ORDER BY stem, setup, reference", args)
        ]

    def results(self, hashes: dict[str, str] | None = None) -> list[dict]:
        """Metric rows; with ``hashes`` ({group: settings_hash}) only those settings."""
        rows = self.db.execute(
            "SELECT stem, setup, reference, metric, settings_hash, grp, value, status, reason "
            "FROM results ORDER BY stem, setup, reference, metric"
        ).fetchall()
        out = [
            {
                "stem": r[0],
                "setup": r[1],
                "reference": r[2],
                "metric": r[3],
                "settings_hash": r[4],
                "grp": r[5],
                "value": r[6],
                "status": r[7],
                "reason": r[8],
            }
            for r in rows
        ]
        if hashes:
            out = [r for r in out if hashes.get(r["grp"]) == r["settings_hash"]]
        return out

    def latest_hashes(self) -> dict[str, str]:
        """{group: settings hash} of the most recent run that wrote each group."""
        rows = self.db.execute(
            "SELECT grp, settings_hash FROM units ORDER BY run_id, created"
        ).fetchall()
        return {g: h for g, h in rows}

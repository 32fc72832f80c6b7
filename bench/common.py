"""Helpers shared by the benchmarks: paths, machine description, result files."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIPLEAK_SHARED_DIR", ROOT.parent / "shared"))
CLIPS_DIR = SHARED / "data" / "clips"
RESULTS = ROOT / "bench" / "results"
# All-metrics `score` frames/s on this machine type (bench/README.md, bench_score.py row,
# 2026-11-21): what the share of a protocol run is taken against.
SCORE_ALL_METRICS_FPS = 2.3


def best_seconds(fn, repeat: int) -> float:
    """The fastest of ``repeat`` runs of ``fn()``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
    }


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    date = _dt.date.today().isoformat()
    path = RESULTS / f"{name}_{date}.json"
    payload = {"date": date, "machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def model_env(tmp: Path) -> Path:
    """Point LIPLEAK_MODEL_DIR at a scratch dir holding the shared model files."""
    from lipleak.models import store

    os.environ["LIPLEAK_MODEL_DIR"] = str(tmp)
    for name in ("syncnet_v2_random", "scrfd_500m"):
        store.fetch(name, source=SHARED / "models")
    # Export SyncNet's ONNX towers now: the first load otherwise exports them in whatever
    # is measured first (seconds of torch, and torch's ~250 MB in that process's peak RSS).
    from lipleak.models.syncnet import SyncNet

    SyncNet.load("syncnet_v2_random")
    return tmp


def store_rows(db: Path, table: str, skip: tuple[str, ...] = ()) -> list[tuple]:
    """Every row of ``table`` in a results store, less the ``skip`` columns (times, run
    ids), as sorted string tuples: what "the same rows" compares between two runs."""
    import sqlite3

    con = sqlite3.connect(db)
    try:
        cur = con.execute(f"SELECT * FROM {table}")  # noqa: S608 - a fixed table name
        keep = [i for i, d in enumerate(cur.description) if d[0] not in skip]
        return sorted(tuple(str(r[i]) for i in keep) for r in cur.fetchall())
    finally:
        con.close()

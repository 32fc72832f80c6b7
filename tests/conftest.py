"""Shared fixtures: the read-only ../shared folder (SPEC, real models, real clips)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIPLEAK_SHARED_DIR", ROOT.parent / "shared"))
SHARED_MODELS = SHARED / "models"
CLIPS_DIR = SHARED / "data" / "clips"
CLIPS = sorted(CLIPS_DIR.glob("*.mp4"))
WAVS = sorted(CLIPS_DIR.glob("*.wav"))


# CUDA_VISIBLE_DEVICES as the session found it, for the tests that are allowed a GPU.
_VISIBLE = os.environ.get("CUDA_VISIBLE_DEVICES")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Tests not marked ``gpu`` run as on a machine without a GPU.

    Their expected numbers come from the CPU path, and ``auto`` backends and decoders would
    take a GPU where there is one (TensorRT, DALI, torch-CUDA: other kernels, other pixels).
    An empty CUDA_VISIBLE_DEVICES hides every GPU from lipleak's probe, from subprocesses
    (the CLI tests) and from CUDA libraries not yet initialised in this process. It is set
    before fixtures, so session fixtures first made for a CPU test see no GPU either. Run
    ``-m gpu`` in a process of its own: a library that initialised CUDA while the GPUs were
    hidden (torch caches its device count) keeps seeing none.
    """
    if item.get_closest_marker("gpu") is None:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    elif _VISIBLE is None:
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = _VISIBLE


@pytest.fixture(scope="session")
def shared_models() -> Path:
    if not SHARED_MODELS.is_dir():
        pytest.fail(f"shared models not found at {SHARED_MODELS} (set LIPLEAK_SHARED_DIR)")
    return SHARED_MODELS


@pytest.fixture(scope="session")
def clips_dir() -> Path:
    if not CLIPS_DIR.is_dir():
        pytest.fail(f"shared clips not found at {CLIPS_DIR} (set LIPLEAK_SHARED_DIR)")
    return CLIPS_DIR


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, shared_models) -> Path:
    """A model dir holding the shared model files, with SyncNet exported to ONNX once.

    Sets LIPLEAK_MODEL_DIR for the rest of the session (subprocesses inherit it); tests
    that need another model dir use monkeypatch.setenv.
    """
    from lipleak.models import store
    from lipleak.models.syncnet import SyncNet

    d = tmp_path_factory.mktemp("models")
    os.environ["LIPLEAK_MODEL_DIR"] = str(d)
    for name in ("syncnet_v2_random", "scrfd_500m", "pfld_68", "fid_inception"):
        store.fetch(name, source=shared_models)
    SyncNet.load("syncnet_v2_random")
    return d


def result_rows(db: Path) -> list[tuple]:
    """Every row of a results database, in a stable order: what "no row lost or changed"
    compares between runs."""
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return sorted(
            con.execute(
                "SELECT stem, setup, reference, metric, settings_hash, grp, value, status, reason "
                "FROM results"
            ).fetchall(),
            key=lambda r: tuple(map(str, r)),
        )
    finally:
        con.close()

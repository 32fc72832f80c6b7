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

"""Golden checks: the whole engine against numbers published for the REAL weights.

These run only where the real files are in the model dir (LIPLEAK_MODEL_DIR, else
~/.cache/lipleak/models), recognised by sha256; anywhere else they skip and say which file
is missing and how to fetch it. With the random-weight fixtures the numbers mean nothing.

    LIPLEAK_MODEL_DIR=/path/to/models pytest -m realweights

See docs/golden.md for the protocol and what each number is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import SHARED
from lipleak.files import sha256_of
from lipleak.models import registry
from lipleak.paths import model_dir

pytestmark = [pytest.mark.realweights, pytest.mark.slow]

GOLDEN = SHARED / "data" / "golden"
# The user's model dir, read at collection: the session's model_dir fixture later points
# LIPLEAK_MODEL_DIR at a folder of random-weight fixtures.
MODEL_DIR = model_dir()
TOLERANCE = 0.1  # MoChaBench: ±0.1 depending on the ffmpeg build

# syncnet_python's S3FD (detectors/s3fd/weights/sfd_face.pth), the file MoChaBench runs. It is
# not the registry's ``s3fd`` (face-alignment's file, another network): its sha256 is the one
# syncnet_python mirrors and ports agree on, not yet in the published tables the registry
# is checked against, so it is passed to --detector as a path.
SFD_FACE = "sfd_face.pth"
SFD_FACE_SHA256 = "d54a87c2b7543b64729c9a25eafd188da15fd3f6e02f0ecec76ae1b30d86c491"
SFD_FACE_URL = "https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/sfd_face.pth"


def _syncnet_problem() -> str | None:
    spec = registry.get("syncnet_v2")
    path = MODEL_DIR / spec.filename
    if not path.is_file():
        return (
            f"real SyncNet weights missing: {spec.filename} (sha256 {spec.sha256[:8]}…) is not "
            f"in {MODEL_DIR}; fetch it with `LIPLEAK_MODEL_DIR={MODEL_DIR} lipleak-fast models "
            f"fetch syncnet_v2` ({spec.url})"
        )
    if sha256_of(path) != spec.sha256:
        return f"{path} is not the real syncnet_v2.model (sha256 is not {spec.sha256[:8]}…)"
    return None


def _sfd_face_problem() -> str | None:
    path = MODEL_DIR / SFD_FACE
    if not path.is_file():
        return (
            f"real S3FD weights missing: {SFD_FACE} (sha256 {SFD_FACE_SHA256[:8]}…, "
            f"syncnet_python's detector) is not in {MODEL_DIR}; fetch it with "
            f"`wget {SFD_FACE_URL} -O {path}`"
        )
    if sha256_of(path) != SFD_FACE_SHA256:
        return f"{path} is not syncnet_python's sfd_face.pth (sha256 is not d54a87c2…)"
    return None


def _need(*problems: str | None) -> None:
    """Skip naming every missing file at once, so that one run says all there is to fetch."""
    missing = [p for p in problems if p]
    if missing:
        pytest.skip("; ".join(missing))


def _sync_json(capsys, monkeypatch, *argv) -> dict:
    from lipleak.cli import main

    monkeypatch.setenv("LIPLEAK_MODEL_DIR", str(MODEL_DIR))
    assert main(["sync", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_mochabench_example(capsys, monkeypatch):
    """MoChaBench eval-lipsync/example: AV offset 1, min dist 9.255, confidence 4.497."""
    _need(_syncnet_problem(), _sfd_face_problem())
    sfd = MODEL_DIR / SFD_FACE
    video = GOLDEN / "mochabench_example.avi"
    audio = GOLDEN / "mochabench_example_speech.wav"
    if not video.is_file() or not audio.is_file():
        pytest.skip(f"golden clip not found in {GOLDEN} (set LIPLEAK_SHARED_DIR)")
    out = _sync_json(
        capsys,
        monkeypatch,
        video,
        "--audio",
        audio,
        "--mode",
        "detect",
        "--detector",
        sfd,
        "--min-track",
        "50",
        "--tracks",
        "best",
        "--syncnet",
        "syncnet_v2",
        "--reference-frames",
    )
    r = out["result"]
    assert r["tracks"], "no face track"
    assert r["offset"] == 1
    assert r["lse_d"] == pytest.approx(9.255, abs=TOLERANCE)
    assert r["lse_c"] == pytest.approx(4.497, abs=TOLERANCE)


def _example_path() -> Path:
    env = os.environ.get("LIPLEAK_SYNCNET_EXAMPLE")
    return Path(env) if env else MODEL_DIR / "example.avi"


def _example_problem() -> str | None:
    path = _example_path()
    if path.is_file():
        return None
    return (
        f"syncnet_python's example.avi is not shipped (not at {path}): get it with "
        "syncnet_python's download_model.sh (http://www.robots.ox.ac.uk/~vgg/software/"
        "lipsync/data/example.avi) and put it there or set LIPLEAK_SYNCNET_EXAMPLE"
    )


def test_syncnet_python_example(capsys, monkeypatch):
    """syncnet_python's README, demo_syncnet.py on the pre-cropped example.avi:
    AV offset 3, min dist 5.353, confidence 10.021."""
    _need(_syncnet_problem(), _example_problem())
    video = _example_path()
    out = _sync_json(
        capsys,
        monkeypatch,
        video,
        "--mode",
        "prealigned",
        "--syncnet",
        "syncnet_v2",
        "--reference-frames",
    )
    r = out["result"]
    assert r["offset"] == 3
    assert r["lse_d"] == pytest.approx(5.353, abs=TOLERANCE)
    assert r["lse_c"] == pytest.approx(10.021, abs=TOLERANCE)

"""Hardware probes run once per process, however many models are opened and videos scored.

A fake ``nvidia-smi`` first on PATH logs every call; cuda-python is blocked in the child
process, so nvidia-smi is the GPU probe that answers. The child opens every ONNX model of
the test model dir with backend "auto" (twice each) and scores three short synthetic
clips with the SyncNet scorer (backend and decoder "auto"), then prints ``probe.PROBES``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from media import noise_frames, speech_like, write_video

CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    sys.modules["cuda"] = None  # cuda-python absent, even where it is installed

    from lipleak.runtime import open_model, probe
    from lipleak.sync import SyncScorer, SyncSettings

    model_dir, clips = Path(sys.argv[1]), sys.argv[2:]
    models = sorted(model_dir.rglob("*.onnx"))
    backends = [open_model(m, "auto").describe().backend for _ in range(2) for m in models]
    scorer = SyncScorer(SyncSettings(syncnet="syncnet_v2_random"))
    decoders = [scorer.score(c).decoder for c in clips]
    print(json.dumps({"models": len(models), "backends": backends, "decoders": decoders,
                      "probes": dict(probe.PROBES)}))
""")

GPU_LINE = "0, NVIDIA Fake GPU, 9.0, 81559, 550.54.15"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    # 12 frames: a few SyncNet windows each, enough to run the whole scorer, kept short
    # because the lip tower is the slow part on a CPU.
    return [
        write_video(
            d / f"c{i}.mp4", noise_frames(12, 64, 64, seed=i), audio=speech_like(0.48, seed=i)
        )
        for i in range(3)
    ]


@pytest.mark.parametrize("smi_works", [True, False], ids=["smi-reports-gpu", "smi-fails"])
def test_probes_run_once_per_process(model_dir, clips, tmp_path, smi_works):
    log = tmp_path / "nvidia-smi.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    answer = f'echo "{GPU_LINE}"' if smi_works else 'echo "NVIDIA-SMI has failed" >&2; exit 9'
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n{answer}\n')
    smi.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("CUDA_VISIBLE_DEVICES", None)

    res = subprocess.run(
        [sys.executable, "-c", CHILD, str(model_dir), *map(str, clips)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])

    assert out["models"] >= 4  # scrfd, pfld and the two SyncNet towers
    assert len(out["backends"]) == 2 * out["models"] and len(out["decoders"]) == 3
    assert len(log.read_text().splitlines()) == 1  # the fake ran, once
    probes = out["probes"]
    assert probes["nvidia-smi"] == 1
    assert probes and all(n == 1 for n in probes.values()), probes

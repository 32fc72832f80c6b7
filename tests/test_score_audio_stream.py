"""`score` streams its audio: a stem's GT audio is never held whole for SyncNet or the
mouth-motion envelope, so memory does not grow with the clip's length (AV-HuBERT, opt-in,
takes its clip whole and is not measured here)."""

from __future__ import annotations

import shutil
import tracemalloc

import soundfile as sf

from conftest import CLIPS_DIR
from lipleak.cli import main
from media import cut_clip, speech_like


def _peak(root, seconds: int) -> int:
    """Traced peak of scoring a 1.2-s GT video with a sibling wav of ``seconds`` and its
    AM/CR copy, every default metric on."""
    (root / "gt").mkdir(parents=True)
    gt = cut_clip(CLIPS_DIR / "real03_aoc.mp4", root / "gt" / "a.mp4", 0, 30, width=192)
    sf.write(str(gt.with_suffix(".wav")), speech_like(seconds), 16000, subtype="PCM_16")
    (root / "AM" / "CR").mkdir(parents=True)
    shutil.copy(gt, root / "AM" / "CR" / "a.mp4")
    args = ["score", str(root), "--syncnet", "syncnet_v2_random", "--quiet", "--no-report"]
    tracemalloc.start()
    try:
        assert main([*args, "--workers", "1"]) == 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_score_memory_does_not_grow_with_audio_length(model_dir, tmp_path):
    """A 5-minute GT audio (9.6 MB of int16 samples) against a 3-s one: the model loads
    (~150 MB traced) are the same, and the old whole-array path added the 9.6 MB."""
    _peak(tmp_path / "warm", 3)  # first-run allocations (caches, lazy imports)
    short = _peak(tmp_path / "short", 3)
    long = _peak(tmp_path / "long", 300)
    assert long - short < 300 * 16000 * 2 / 4, (short, long)

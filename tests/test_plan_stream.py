"""`plan` streams its audio: the files equal, byte for byte, those written from whole
arrays (the in-memory oracle below, the planner's old way), and memory does not grow with
the clips' length."""

from __future__ import annotations

import hashlib
import json
import tracemalloc

import numpy as np
import pytest

import synth
from lipleak.io.audio import array_chunks, load_audio
from lipleak.protocol.planner import (
    _wav_bytes,
    audio_digest,
    fit_length,
    make_plan,
    write_wav_if_changed,
    zeros,
)


def _tile(a: np.ndarray, n: int) -> np.ndarray:
    """The length rule on a whole array (the oracle)."""
    if len(a) == 0:
        return np.zeros(n, np.int16)
    return np.tile(a, -(-n // len(a)))[:n]


def _cat(chunks) -> np.ndarray:
    parts = [np.asarray(c) for c in chunks]
    return np.concatenate(parts) if parts else np.zeros(0, np.int16)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_fit_length_equals_the_whole_array_rule(chunk):
    a = np.arange(1, 6, dtype=np.int16)
    for n in (0, 1, 3, 5, 6, 12, 23):
        got = list(fit_length(lambda: array_chunks(a, chunk), n))
        assert all(len(c) for c in got)
        assert _cat(got).tolist() == _tile(a, n).tolist(), (chunk, n)
    assert _cat(fit_length(lambda: iter(()), 9)).tolist() == [0] * 9  # empty source: silence


def test_zeros_and_digest():
    for n in (0, 1, 65536, 65537, 200_000):
        z = list(zeros(n))
        assert sum(len(c) for c in z) == n and not any(c.any() for c in z)
    x = (np.random.default_rng(1).standard_normal(100_003) * 3000).astype(np.int16)
    for size in (1, 999, 1 << 16):
        assert audio_digest(array_chunks(x, size)) == (
            hashlib.sha256(x.tobytes()).hexdigest(),
            len(x),
        )


@pytest.mark.parametrize("n", [0, 1, 16000, 100_001])
def test_streamed_wav_bytes_equal_whole_write(tmp_path, n):
    x = (np.random.default_rng(n).standard_normal(n) * 3000).astype(np.int16)
    path = tmp_path / "a.wav"
    write_wav_if_changed(path, array_chunks(x, 4096))
    assert path.read_bytes() == _wav_bytes(x)
    # unchanged bytes: the file (and its mtime) stays, no temporary file is left
    stamp = path.stat().st_mtime_ns
    write_wav_if_changed(path, array_chunks(x, 777))
    assert path.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]
    if n:  # changed bytes: replaced
        y = x.copy()
        y[-1] ^= 1
        write_wav_if_changed(path, array_chunks(y, 4096))
        assert path.read_bytes() == _wav_bytes(y)


def test_plan_files_equal_the_in_memory_oracle(tmp_path):
    """Different lengths, so XM is both cut and repeated."""
    gt = tmp_path / "gt"
    for i, seconds in enumerate((0.4, 1.2, 0.6)):
        gt.mkdir(exist_ok=True)
        synth.make_clip(gt / f"c{i}.mp4", 200 + i, seconds)
    plan = make_plan(gt, tmp_path / "p", seed=3)
    audio = {v["stem"]: load_audio(gt / f"{v['stem']}.wav") for v in plan["videos"]}
    lengths = {len(a) for a in audio.values()}
    assert len(lengths) == 3
    for v in plan["videos"]:
        s, n = v["stem"], len(audio[v["stem"]])
        assert v["n_samples"] == n
        want = {
            "AM": audio[s],
            "SI": np.zeros(n, np.int16),
            "XM": _tile(audio[v["xm_driver"]], n),
        }
        for setup, samples in want.items():
            assert (tmp_path / "p" / v["audio"][setup]).read_bytes() == _wav_bytes(samples)
    assert json.loads((tmp_path / "p" / "plan.json").read_text()) == plan


def test_plan_memory_does_not_grow_with_audio_length(tmp_path):
    """Two videos with 5-minute sibling wavs (9.6 MB of samples each): the old planner held
    both whole (and a tiled copy); the streaming one holds a few chunks."""
    gt = tmp_path / "gt"
    gt.mkdir()
    sr, seconds = 16000, 300
    for i in range(2):
        synth.write_video(
            gt / f"long{i}.mp4", (synth.draw_face(i, 0.2) for _ in range(3)), audio=None
        )
        x = (np.random.default_rng(i).standard_normal(sr * seconds) * 3000).astype(np.int16)
        synth.sf.write(str(gt / f"long{i}.wav"), x, sr, subtype="PCM_16")
        del x
    tracemalloc.start()
    try:
        plan = make_plan(gt, tmp_path / "p")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [v["n_samples"] for v in plan["videos"]] == [sr * seconds] * 2
    per_clip = sr * seconds * 2  # bytes of one clip's int16 samples
    assert peak < per_clip / 4, peak

"""The DALI-vs-CPU decode check of test_gpu.py, run on fake frames here.

The old check passed when the mean absolute difference over the whole clip was below 3
levels; a GPU decode that is one frame late passes that on slow-moving video. The
frame-by-frame comparison catches it (and a single corrupt frame), and still accepts a
decode that differs by a level or two everywhere.
"""

from __future__ import annotations

import numpy as np
from frame_compare import MEAN_ABS, compare_frames


def clip(n=25, h=48, w=64):
    """Slow change: every frame is 2 levels brighter than the one before, on a gradient."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = (xx + yy)[..., None].repeat(3, axis=-1)
    return [np.clip(base + 2 * i + 20, 0, 255).astype(np.uint8) for i in range(n)]


def decoder_noise(frames, seed=0):
    """What another YUV->RGB conversion does: -1, 0 or +1 level per pixel."""
    rng = np.random.default_rng(seed)
    return [
        np.clip(f.astype(np.int16) + rng.integers(-1, 2, f.shape), 0, 255).astype(np.uint8)
        for f in frames
    ]


def old_check(gpu, cpu) -> bool:
    """test_gpu.py's former assertion: same count, clip-wide mean |Δ| < 3."""
    if len(gpu) != len(cpu):
        return False
    diff = np.abs(np.stack(gpu).astype(np.int16) - np.stack(cpu).astype(np.int16))
    return float(diff.mean()) < 3.0


def test_same_frames_with_decoder_noise_agree():
    cpu = clip()
    gpu = decoder_noise(cpu)
    c = compare_frames(gpu, cpu)
    assert c.problems() == [] and c.best == list(range(25))
    assert max(c.max_abs) == 1 and max(c.mean_abs) < 1


def test_one_frame_shift_is_caught():
    cpu = clip()
    # one frame late: the first frame lost, the last repeated, so the count still matches
    gpu = decoder_noise(cpu[1:] + cpu[-1:])
    assert old_check(gpu, cpu)  # the mean-only check passed this
    c = compare_frames(gpu, cpu)
    problems = c.problems()
    assert any("match another CPU frame best" in p for p in problems), problems
    assert c.misaligned == list(range(24)) and c.best[:3] == [1, 2, 3]
    assert max(c.mean_abs) < MEAN_ABS  # the per-frame levels alone would not show it


def test_shift_the_other_way_is_caught():
    cpu = clip()
    gpu = decoder_noise(cpu[:1] + cpu[:-1])
    assert old_check(gpu, cpu)
    c = compare_frames(gpu, cpu)
    assert c.misaligned == list(range(1, 25)) and c.best[5] == 4


def test_repeated_frames_are_no_shift():
    cpu = clip()
    cpu[10] = cpu[11].copy()  # a duplicated frame (e.g. from a frame-rate conversion)
    assert compare_frames(decoder_noise(cpu), cpu).problems() == []


def test_one_corrupt_frame_and_count_mismatch_are_caught():
    cpu = clip()
    gpu = decoder_noise(cpu)
    gpu[7] = gpu[7].copy()
    gpu[7][:4, :4] = 255 - gpu[7][:4, :4]  # a corrupt block
    assert old_check(gpu, cpu)
    assert any("frames [7] differ by more than" in p for p in compare_frames(gpu, cpu).problems())
    assert compare_frames(gpu[:-1], cpu).problems()[0] == "24 GPU frames, 25 CPU frames"

"""AVS_u/m/v arithmetic (SPEC §9) on constructed features, against torch's cosine."""

from __future__ import annotations

import numpy as np
import pytest

from lipleak.errors import InputError
from lipleak.metrics.avs import avs, frame_cosines

torch = pytest.importorskip("torch")


def _oracle(a, b):
    n = min(len(a), len(b))
    ta = torch.as_tensor(np.asarray(a[:n], np.float64))
    tb = torch.as_tensor(np.asarray(b[:n], np.float64))
    return float(torch.nn.functional.cosine_similarity(ta, tb, dim=1, eps=1e-8).mean())


@pytest.mark.parametrize("seed", range(4))
def test_equals_torch_cosine_mean(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((57, 768)).astype(np.float32)
    b = (a + rng.standard_normal(a.shape) * (seed + 0.5)).astype(np.float32)
    assert avs(a, b) == pytest.approx(_oracle(a, b), rel=0, abs=1e-12)


def test_a_video_against_itself_gives_one():
    f = np.random.default_rng(1).standard_normal((250, 1024)).astype(np.float32)
    assert avs(f, f) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(frame_cosines(f, f), 1.0, atol=1e-12)


def test_scale_invariant_and_signs():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((10, 16))
    assert avs(a, 3.5 * a) == pytest.approx(1.0, abs=1e-12)
    assert avs(a, -a) == pytest.approx(-1.0, abs=1e-12)
    e = np.eye(16)[:10]
    f = np.eye(16)[6:16]
    assert avs(e, f) == 0.0  # orthogonal rows


def test_frames_paired_by_index_and_truncated_to_the_shorter():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((40, 8))
    b = rng.standard_normal((25, 8))
    assert len(frame_cosines(a, b)) == 25
    assert avs(a, b) == pytest.approx(_oracle(a, b), abs=1e-12)
    assert avs(a, b) == avs(a[:25], b)


def test_zero_vectors_give_zero_not_nan():
    z = np.zeros((3, 4))
    a = np.ones((3, 4))
    assert np.all(frame_cosines(z, a) == 0.0)
    assert avs(z, z) == 0.0


def test_bad_shapes_are_input_errors():
    with pytest.raises(InputError):
        avs(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(InputError):
        avs(np.zeros((0, 4)), np.zeros((3, 4)))


def test_shuffled_frames_lower_avs_u_on_aligned_constructed_features():
    # With random weights a real model's features carry no sync, so the arithmetic is
    # shown on constructed ones: F_V follows F_A frame by frame, plus noise.
    rng = np.random.default_rng(4)
    fa = rng.standard_normal((200, 64))
    fv = fa + 0.5 * rng.standard_normal(fa.shape)
    aligned = avs(fa, fv)
    shuffled = avs(fa, fv[rng.permutation(len(fv))])
    assert aligned > 0.8
    assert shuffled < 0.2

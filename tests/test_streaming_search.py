"""The streaming offset search (bounded memory) gives bit for bit the one-shot search of
SPEC §2 on the same embeddings, for any batch size, length and vshift."""

from __future__ import annotations

import numpy as np
import pytest

from lipleak import _core
from lipleak.metrics import sync as syncm
from lipleak.sync_video import _WindowStream


class FakeSyncNet:
    """Deterministic stand-in for the towers: fixed random projections of the inputs."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.pl = rng.standard_normal((3 * 5 * 4 * 4, 1024)).astype(np.float32) / 50
        self.pa = rng.standard_normal((13 * 20, 1024)).astype(np.float32) / 50
        self.lip_calls = self.audio_calls = 0

    def embed_lips(self, x):
        self.lip_calls += 1
        small = x[:, :, :, ::56, ::56].reshape(len(x), -1)  # 3*5*4*4 features
        # row by row, so that (like the real onnxruntime towers) results do not depend on
        # how rows are grouped into batches
        return np.stack([r @ self.pl for r in small]).astype(np.float32)

    def embed_audio(self, x):
        self.audio_calls += 1
        return np.stack([r @ self.pa for r in x.reshape(len(x), -1)]).astype(np.float32)


def one_shot(net, crops, samples, vshift):
    n = syncm.n_windows(len(crops), len(samples))
    win = np.empty((n, 3, 5, 224, 224), np.float32)
    for k in range(n):
        syncm.lip_window(crops[k : k + 5], win[k])
    v = net.embed_lips(win)
    a = net.embed_audio(syncm.mfcc_windows(samples, n))
    return _core.offset_search(v, a, vshift)


@pytest.mark.parametrize("n_frames,audio_frames,vshift,batch", [
    (40, 40, 15, 1), (40, 40, 15, 7), (40, 60, 15, 64), (60, 30, 15, 7),
    (12, 12, 15, 3), (6, 50, 15, 1), (33, 33, 3, 5), (25, 25, 0, 4), (80, 80, 20, 16),
])
def test_streaming_equals_one_shot(n_frames, audio_frames, vshift, batch):
    rng = np.random.default_rng(n_frames * 100 + batch)
    crops = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(n_frames)]
    samples = (rng.standard_normal(audio_frames * 640) * 3000).astype(np.int16)
    net = FakeSyncNet()
    ref = one_shot(net, crops, samples, vshift)
    stream = _WindowStream(net, samples, vshift, batch)
    for c in crops:
        stream.push(c)
        if stream.done:
            break
    got = stream.result()
    assert stream.windows == syncm.n_windows(n_frames, len(samples))
    for key in ("offset", "best"):
        assert got[key] == ref[key]
    for key in ("lse_c", "lse_d"):
        assert got[key] == ref[key]  # bit for bit
    np.testing.assert_array_equal(got["mdist"], ref["mdist"])
    np.testing.assert_array_equal(got["fconf"], ref["fconf"])


def test_no_windows_gives_none():
    net = FakeSyncNet()
    stream = _WindowStream(net, np.zeros(640 * 20, np.int16), 15, 4)
    for _ in range(5):
        stream.push(np.zeros((224, 224, 3), np.uint8))
    assert stream.result() is None

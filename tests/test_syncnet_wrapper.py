"""lipleak.models.syncnet.SyncNet: load (auto-export to ONNX), embed, batch independence.

Oracles: the PyTorch model (export/syncnet.py, itself checked against the reference layer
list in test_export_syncnet.py) and the embeddings of the same windows run one at a time.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import SHARED_MODELS
from lipleak.errors import ModelError
from lipleak.files import file_sha256
from lipleak.models import store
from lipleak.models.onnx_files import syncnet_folder
from lipleak.models.syncnet import SyncNet

FIXTURE_SHA = "4e3e685a6a869399262ec78e8d41286a886c60ca1f470607b641eec2c9b9bc53"


@pytest.fixture(scope="session")
def syncnet_model_dir(tmp_path_factory):
    """A model dir holding the random SyncNet fixture and its exported ONNX towers."""
    pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("syncnet_models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIPLEAK_MODEL_DIR", str(folder))
        store.fetch("syncnet_v2_random", SHARED_MODELS)
        SyncNet.load("syncnet_v2_random", backend="cpu")  # exports on first use
    return folder


@pytest.fixture
def model_dir(syncnet_model_dir, monkeypatch):
    monkeypatch.setenv("LIPLEAK_MODEL_DIR", str(syncnet_model_dir))
    return syncnet_model_dir


@pytest.fixture
def net(model_dir):
    return SyncNet.load("syncnet_v2_random", backend="cpu")


def _windows(n, seed=0):
    """Lip windows with smooth, face-like structure in 0..255 and MFCC in realistic ranges."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, (n, 3, 5, 8, 8)).astype(np.float32)
    lips = np.repeat(np.repeat(base, 28, axis=3), 28, axis=4)
    lips += rng.normal(0, 8, lips.shape).astype(np.float32)
    lips = np.clip(lips, 0, 255).round().astype(np.float32)
    mfcc = rng.normal(0, 15, (n, 1, 13, 20)).astype(np.float32)
    mfcc[:, :, 0] += 18  # coefficient 0 is log frame energy: ~10..25 for int16 speech
    return lips, mfcc


def test_auto_export_layout(model_dir):
    folder = model_dir / "onnx" / f"syncnet-{FIXTURE_SHA[:16]}-r2"
    assert syncnet_folder(FIXTURE_SHA) == folder
    assert sorted(p.name for p in folder.iterdir()) == ["syncnet_audio.onnx", "syncnet_lips.onnx"]


def test_second_load_reuses_the_onnx_files(model_dir, monkeypatch):
    import lipleak.models.onnx_files as mod

    def no_export(*args):
        raise AssertionError("exported again")

    monkeypatch.setattr(mod, "export_syncnet", no_export)
    by_name = SyncNet.load("syncnet_v2_random", backend="cpu")
    by_path = SyncNet.load(SHARED_MODELS / "syncnet_v2_random.model", backend="cpu")
    assert by_path.name == by_name.name == "syncnet_v2_random"  # named by its sha256
    assert by_path.describe()["onnx"] == by_name.describe()["onnx"]


def test_embeddings_match_pytorch(net):
    torch = pytest.importorskip("torch")
    from lipleak.export.syncnet import load_syncnet

    ref = load_syncnet(SHARED_MODELS / "syncnet_v2_random.model")
    lips, mfcc = _windows(3)
    with torch.no_grad():
        want_lips = ref.forward_lips(torch.from_numpy(lips)).numpy()
        want_audio = ref.forward_audio(torch.from_numpy(mfcc)).numpy()
    for got, want in ((net.embed_lips(lips), want_lips), (net.embed_audio(mfcc), want_audio)):
        assert got.shape == (3, 1024) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    assert np.abs(want_lips[0] - want_lips[1]).max() > 1e-2 * np.abs(want_lips).max()


def test_embeddings_do_not_depend_on_batch_size(net):
    """Bitwise: onnxruntime CPU gives every window the same result in any batch."""
    lips, mfcc = _windows(64, seed=1)
    for embed, x, singles in (
        (net.embed_lips, lips, [0, 1, 6, 7, 31, 63]),
        (net.embed_audio, mfcc, range(64)),
    ):
        whole = embed(x)
        sevens = np.concatenate([embed(x[i : i + 7]) for i in range(0, len(x), 7)])
        np.testing.assert_array_equal(sevens, whole)
        # one at a time (a subset of the lip windows: each costs a full run on 2 cores)
        ones = np.concatenate([embed(x[i : i + 1]) for i in singles])
        np.testing.assert_array_equal(ones, whole[list(singles)])


def test_inputs_are_checked(net):
    with pytest.raises(
        ValueError, match=r"lip windows must be B×3×5×224×224, got \(2, 3, 224, 224\)"
    ):
        net.embed_lips(np.zeros((2, 3, 224, 224), np.float32))
    with pytest.raises(ValueError, match="MFCC windows must be B×1×13×20"):
        net.embed_audio(np.zeros((1, 13, 20), np.float32))
    assert net.embed_lips(np.zeros((0, 3, 5, 224, 224))).shape == (0, 1024)
    # uint8 frames are converted, not misread
    lips, _ = _windows(1)
    np.testing.assert_array_equal(net.embed_lips(lips.astype(np.uint8)), net.embed_lips(lips))


def test_describe(net, model_dir):
    info = net.describe()
    ckpt = model_dir / "syncnet_v2_random.model"
    assert info["checkpoint"] == {
        "name": "syncnet_v2_random",
        "path": str(ckpt),
        "sha256": file_sha256(ckpt),
    }
    for tower in ("lips", "audio"):
        path = info["onnx"][tower]["path"]
        assert path.endswith(f"syncnet_{tower}.onnx")
        assert info["onnx"][tower]["sha256"] == file_sha256(path)
    assert info["backend"] == "cpu" and "onnxruntime" in info["runtime"]["details"]


def test_missing_or_corrupt_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("LIPLEAK_MODEL_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="lipleak-fast models fetch syncnet_v2"):
        SyncNet.load("syncnet_v2")
    with pytest.raises(ModelError, match="no such SyncNet checkpoint"):
        SyncNet.load(tmp_path / "absent.model")
    with pytest.raises(ModelError, match="is a face_detector model, not a SyncNet checkpoint"):
        SyncNet.load("scrfd_500m")
    bad = bytearray((SHARED_MODELS / "syncnet_v2_random.model").read_bytes())
    bad[-100] ^= 1
    (tmp_path / "syncnet_v2_random.model").write_bytes(bad)
    with pytest.raises(ModelError, match="wrong sha256.*refusing to use it"):
        SyncNet.load("syncnet_v2_random")


def test_without_torch_says_what_to_install(model_dir, tmp_path, monkeypatch):
    for mod in ("torch", "lipleak.export.syncnet", "lipleak.export.syncnet_onnx"):
        monkeypatch.setitem(sys.modules, mod, None)  # makes `import mod` fail
    with pytest.raises(ModelError, match=r"install the export extra .*lipleak-fast models export"):
        SyncNet.load("syncnet_v2_random", onnx_root=tmp_path / "fresh")
    # ONNX files that exist already need no torch.
    assert SyncNet.load("syncnet_v2_random", backend="cpu").embed_audio(
        np.zeros((1, 1, 13, 20), np.float32)
    ).shape == (1, 1024)

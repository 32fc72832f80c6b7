"""SyncNet v2 in PyTorch: strict checkpoint loading and the ONNX towers (export/).

Oracles: the checkpoint file itself (every tensor must land in the model unchanged), a
functional re-statement of the reference layer list (joonson/syncnet_python SyncNetModel.S:
kernel sizes, strides, paddings, pools) run on the raw state dict, and onnxruntime vs
PyTorch on real frames and MFCC windows of a shared clip.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import torch.nn.functional as F  # noqa: E402

from conftest import CLIPS_DIR, SHARED_MODELS  # noqa: E402
from lipleak.errors import ModelError  # noqa: E402
from lipleak.export.syncnet import (  # noqa: E402
    SyncNetV2,
    load_state_strict,
    load_syncnet,
    read_state_dict,
)
from lipleak.export.syncnet_onnx import export_towers  # noqa: E402

FIXTURE = SHARED_MODELS / "syncnet_v2_random.model"
CLIP = CLIPS_DIR / "real09_vox_rdj.mp4"  # an aligned 224×224 face crop: frames fit as they are


@pytest.fixture(scope="module")
def state():
    return read_state_dict(FIXTURE)


@pytest.fixture(scope="module")
def net():
    return load_syncnet(FIXTURE)


@pytest.fixture(scope="module")
def towers(tmp_path_factory):
    out = tmp_path_factory.mktemp("syncnet_onnx")
    paths = export_towers(FIXTURE, out)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return {
        k: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
        for k, p in paths.items()
    }


@pytest.fixture(scope="module")
def real_inputs():
    """16 lip windows (5 BGR frames, 0..255) and 16 MFCC windows from one real clip."""
    cv2 = pytest.importorskip("cv2")
    sf = pytest.importorskip("soundfile")
    psf = pytest.importorskip("python_speech_features")
    cap = cv2.VideoCapture(str(CLIP))
    frames = []
    while len(frames) < 20:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(img, (224, 224)))
    cap.release()
    assert len(frames) == 20, f"cannot decode {CLIP}"
    video = np.stack(frames).astype(np.float32)  # T×H×W×3
    lips = np.stack([video[k : k + 5].transpose(3, 0, 1, 2) for k in range(16)])
    audio, rate = sf.read(str(CLIP.with_suffix(".wav")), dtype="int16")
    assert rate == 16000
    mfcc = psf.mfcc(audio[:16000], 16000).T.astype(np.float32)  # 13 × T (int16 values as-is)
    windows = np.stack([mfcc[None, :, 4 * k : 4 * k + 20] for k in range(16)])
    return np.ascontiguousarray(lips), np.ascontiguousarray(windows)


# --- strict loading --------------------------------------------------------------------------


def test_fixture_is_a_legacy_ordered_dict_of_88_tensors(state):
    assert not zipfile.is_zipfile(FIXTURE)  # the loader must handle the legacy container
    assert len(state) == 88
    assert not any(k.endswith("num_batches_tracked") for k in state)


def test_every_tensor_is_loaded_by_name(state, net):
    own = net.state_dict()
    expected = {k for k in own if not k.endswith("num_batches_tracked")}
    assert set(state) == expected
    for name, tensor in state.items():
        assert torch.equal(own[name], tensor), name
    assert not net.training


def _save_legacy(obj, path):
    torch.save(obj, path, _use_new_zipfile_serialization=False)
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        ("extra", r"unknown keys: netcnnlip\.99\.weight"),
        ("missing_param", r"missing keys: netfcaud\.3\.weight"),
        ("missing_stat", r"missing keys: netcnnaud\.1\.running_var"),
        ("shape", r"shape mismatch: netcnnlip\.0\.weight \(96, 3, 5, 7, 6\)"),
        ("prefixed", r"unknown keys: module\.netcnnaud\.0\.bias"),
    ],
)
def test_bad_checkpoints_are_rejected(state, tmp_path, edit, message):
    bad = dict(state)
    if edit == "extra":
        bad["netcnnlip.99.weight"] = torch.zeros(3)
    elif edit == "missing_param":
        del bad["netfcaud.3.weight"]
    elif edit == "missing_stat":
        del bad["netcnnaud.1.running_var"]
    elif edit == "shape":
        bad["netcnnlip.0.weight"] = bad["netcnnlip.0.weight"][..., :6].clone()
    elif edit == "prefixed":
        bad["module.netcnnaud.0.bias"] = bad.pop("netcnnaud.0.bias")
    path = _save_legacy(bad, tmp_path / "bad.model")
    with pytest.raises(ModelError, match=message):
        load_syncnet(path)


def test_num_batches_tracked_may_be_present(state):
    with_counters = dict(state)
    with_counters["netcnnaud.1.num_batches_tracked"] = torch.tensor(7)
    load_state_strict(SyncNetV2(), with_counters)


@pytest.mark.parametrize("content", [b"not a checkpoint", None])
def test_foreign_files_give_model_error(tmp_path, content):
    path = tmp_path / "x.model"
    if content is None:
        _save_legacy([torch.zeros(2)], path)  # a pickle, but not a dict of named tensors
    else:
        path.write_bytes(content)
    with pytest.raises(ModelError, match="not a SyncNet checkpoint"):
        load_syncnet(path)
    with pytest.raises(ModelError, match="not found"):
        load_syncnet(tmp_path / "absent.model")


class OldStyleDict(dict):
    """Stands for whatever an old pickle may hold that the weights-only unpickler refuses."""


def test_full_unpickling_only_for_published_files(state, tmp_path, monkeypatch):
    import lipleak.export.syncnet as mod

    path = _save_legacy(OldStyleDict(state), tmp_path / "old.model")
    with pytest.raises(
        ModelError, match=r"not a SyncNet checkpoint \(unsafe pickle: global .*OldStyleDict\)$"
    ):
        load_syncnet(path)  # unknown file: never unpickled in full
    monkeypatch.setattr(mod, "_is_published", lambda p, published: p == path)
    assert torch.equal(load_syncnet(path).netfclip[3].bias, state["netfclip.3.bias"])


# --- architecture oracle -------------------------------------------------------------------


def _bn(x, s, p):
    return F.batch_norm(
        x,
        s[f"{p}.running_mean"],
        s[f"{p}.running_var"],
        s[f"{p}.weight"],
        s[f"{p}.bias"],
        training=False,
        eps=1e-5,
    )


def _reference_audio(s, x):
    """The reference's audio tower, layer by layer, on the raw state dict."""
    a = "netcnnaud"
    x = F.relu(_bn(F.conv2d(x, s[f"{a}.0.weight"], s[f"{a}.0.bias"], padding=1), s, f"{a}.1"))
    x = F.relu(_bn(F.conv2d(x, s[f"{a}.4.weight"], s[f"{a}.4.bias"], padding=1), s, f"{a}.5"))
    x = F.max_pool2d(x, 3, stride=(1, 2))
    for conv, bn in ((8, 9), (11, 12), (14, 15)):
        x = F.relu(
            _bn(
                F.conv2d(x, s[f"{a}.{conv}.weight"], s[f"{a}.{conv}.bias"], padding=1),
                s,
                f"{a}.{bn}",
            )
        )
    x = F.max_pool2d(x, 3, stride=2)
    x = F.relu(_bn(F.conv2d(x, s[f"{a}.18.weight"], s[f"{a}.18.bias"]), s, f"{a}.19"))
    return _reference_head(s, "netfcaud", x.reshape(len(x), -1))


def _reference_lips(s, x):
    c = "netcnnlip"
    x = F.relu(
        _bn(F.conv3d(x, s[f"{c}.0.weight"], s[f"{c}.0.bias"], stride=(1, 2, 2)), s, f"{c}.1")
    )
    x = F.max_pool3d(x, (1, 3, 3), stride=(1, 2, 2))
    x = F.relu(
        _bn(
            F.conv3d(x, s[f"{c}.4.weight"], s[f"{c}.4.bias"], stride=(1, 2, 2), padding=(0, 1, 1)),
            s,
            f"{c}.5",
        )
    )
    x = F.max_pool3d(x, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
    for conv, bn in ((8, 9), (11, 12), (14, 15)):
        x = F.relu(
            _bn(
                F.conv3d(x, s[f"{c}.{conv}.weight"], s[f"{c}.{conv}.bias"], padding=(0, 1, 1)),
                s,
                f"{c}.{bn}",
            )
        )
    x = F.max_pool3d(x, (1, 3, 3), stride=(1, 2, 2))
    x = F.relu(_bn(F.conv3d(x, s[f"{c}.18.weight"], s[f"{c}.18.bias"]), s, f"{c}.19"))
    return _reference_head(s, "netfclip", x.reshape(len(x), -1))


def _reference_head(s, h, x):
    x = F.relu(_bn(F.linear(x, s[f"{h}.0.weight"], s[f"{h}.0.bias"]), s, f"{h}.1"))
    return F.linear(x, s[f"{h}.3.weight"], s[f"{h}.3.bias"])


def test_model_matches_the_reference_layer_list(state, net, real_inputs):
    lips, mfcc = (torch.from_numpy(a[:3]) for a in real_inputs)
    with torch.no_grad():
        torch.testing.assert_close(
            net.forward_lips(lips), _reference_lips(state, lips), rtol=1e-5, atol=1e-5
        )
        torch.testing.assert_close(
            net.forward_audio(mfcc), _reference_audio(state, mfcc), rtol=1e-5, atol=1e-5
        )


# --- ONNX ------------------------------------------------------------------------------------


def _assert_close_rel(got, want, rel=1e-4):
    scale = float(np.abs(want).max())
    assert scale > 0
    np.testing.assert_allclose(got, want, rtol=rel, atol=rel * scale)


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_towers_match_pytorch(net, towers, real_inputs, batch):
    lips, mfcc = (a[:batch] for a in real_inputs)
    with torch.no_grad():
        want_lips = net.forward_lips(torch.from_numpy(lips)).numpy()
        want_audio = net.forward_audio(torch.from_numpy(mfcc)).numpy()
    got_lips = towers["lips"].run(["embedding"], {"lips": lips})[0]
    got_audio = towers["audio"].run(["embedding"], {"mfcc": mfcc})[0]
    assert got_lips.shape == got_audio.shape == (batch, 1024)
    assert got_lips.dtype == got_audio.dtype == np.float32
    _assert_close_rel(got_lips, want_lips)
    _assert_close_rel(got_audio, want_audio)
    # The towers must react to their input, or any closeness test would pass trivially.
    with torch.no_grad():
        blank = net.forward_lips(torch.zeros(1, 3, 5, 224, 224)).numpy()
    assert np.abs(want_lips - blank).max() > 1e-2 * np.abs(want_lips).max()


def test_planar_lip_tower_equals_the_checkpoints_3d_tower(net, real_inputs, tmp_path):
    """The exported lip tower runs as 2-D layers (``planar_lip_cnn``): the same function as
    the checkpoint's 3-D tower up to the order of float additions."""
    import onnx

    from lipleak.export.syncnet import LipTower, planar_lip_cnn

    lips = torch.from_numpy(real_inputs[0][:4])
    with torch.no_grad():
        want = net.forward_lips(lips)
        got = LipTower(net).eval()(lips)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))
    paths = export_towers(FIXTURE, tmp_path)
    convs = [n for n in onnx.load(str(paths["lips"])).graph.node if n.op_type == "Conv"]
    assert len(convs) == 6
    for n in convs:
        (k,) = (a.ints for a in n.attribute if a.name == "kernel_shape")
        assert len(k) == 2, n  # no 3-D convolution left for the runtime
    # the guard: a layer mixing frames with temporal padding is no 2-D layer
    bad = torch.nn.Sequential(torch.nn.Conv3d(3, 4, (3, 3, 3), padding=(1, 0, 0)))
    with pytest.raises(ValueError, match="not a 2-D layer"):
        planar_lip_cnn(bad)


def test_onnx_batch_axis_is_dynamic(towers, real_inputs):
    lips, mfcc = real_inputs
    for name, sess in towers.items():
        (inp,) = sess.get_inputs()
        assert inp.name == ("lips" if name == "lips" else "mfcc")
        assert isinstance(inp.shape[0], str) and inp.shape[1:] == (
            [3, 5, 224, 224] if name == "lips" else [1, 13, 20]
        )
        assert sess.get_outputs()[0].name == "embedding"
    for batch in (2, 3, 16):
        assert towers["lips"].run(None, {"lips": lips[:batch]})[0].shape == (batch, 1024)
        assert towers["audio"].run(None, {"mfcc": mfcc[:batch]})[0].shape == (batch, 1024)


def test_export_cli(tmp_path, capsys):
    from lipleak.export.syncnet_onnx import main

    assert main([str(tmp_path / "absent.model"), str(tmp_path / "out")]) == ModelError.exit_code
    assert "not found" in capsys.readouterr().err

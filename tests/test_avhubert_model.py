"""AV-HuBERT in PyTorch (export/avhubert.py): checkpoint layout, strict loading, ONNX.

Oracles:
- the state-dict listing of av_hubert's ``AVHubertModel`` for the published pretraining
  configs, enumerated here layer by layer from av_hubert's definitions (hubert.py,
  resnet.py, fairseq wav2vec2 TransformerEncoder / MultiheadAttention), not from the module;
- torch's own weight norm and ``nn.TransformerEncoderLayer`` for the positional
  convolution and the encoder layers (same weights, independent kernels);
- onnxruntime vs PyTorch for each modality mode at two clip lengths (dynamic time axis).
"""

from __future__ import annotations

import argparse
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from lipleak.errors import ModelError  # noqa: E402
from lipleak.export.avhubert import (  # noqa: E402
    MODES,
    AVHubert,
    EncoderLayer,
    WeightNormConv1d,
    arch_from_checkpoint,
    load_checkpoint,
    mode_inputs,
)
from lipleak.export.avhubert_fixture import (  # noqa: E402
    make_checkpoint,
    make_fixture,
    model_config,
    task_config,
)
from lipleak.export.avhubert_onnx import export_onnx  # noqa: E402

# --- (a) the checkpoint layout, listed from av_hubert's definitions ------------------------


def _bn(prefix: str, c: int) -> dict:
    return {
        f"{prefix}.weight": (c,),
        f"{prefix}.bias": (c,),
        f"{prefix}.running_mean": (c,),
        f"{prefix}.running_var": (c,),
        f"{prefix}.num_batches_tracked": (),
    }


def _linear(prefix: str, n_out: int, n_in: int) -> dict:
    return {f"{prefix}.weight": (n_out, n_in), f"{prefix}.bias": (n_out,)}


def reference_keys(
    layers: int, d: int, ffn: int, classes: int, final_dim=256, feat=104, conv_pos=128, groups=16
) -> dict[str, tuple]:
    """Every state-dict key of AVHubertModel (prelu ResNet, concat fusion, input masking,
    untied final_proj over one label set, sub_encoder_layers 0) with its shape."""
    keys: dict[str, tuple] = {}
    keys |= _linear("feature_extractor_audio.proj", d, feat)
    r = "feature_extractor_video.resnet"
    keys[f"{r}.frontend3D.0.weight"] = (64, 1, 5, 7, 7)  # Conv3d, no bias
    keys |= _bn(f"{r}.frontend3D.1", 64)
    keys[f"{r}.frontend3D.2.weight"] = (64,)  # PReLU(64)
    inplanes = 64
    for i, planes in enumerate((64, 128, 256, 512), 1):
        for b in (0, 1):
            p = f"{r}.trunk.layer{i}.{b}"
            cin = inplanes if b == 0 else planes
            keys[f"{p}.conv1.weight"] = (planes, cin, 3, 3)
            keys |= _bn(f"{p}.bn1", planes)
            keys[f"{p}.relu1.weight"] = (planes,)
            keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            keys |= _bn(f"{p}.bn2", planes)
            keys[f"{p}.relu2.weight"] = (planes,)
            if b == 0 and i > 1:  # stride 2: 1×1 conv + BN on the shortcut
                keys[f"{p}.downsample.0.weight"] = (planes, inplanes, 1, 1)
                keys |= _bn(f"{p}.downsample.1", planes)
        inplanes = planes
    keys |= _linear("feature_extractor_video.proj", d, 512)
    keys |= _linear("post_extract_proj", d, 2 * d)
    keys["mask_emb"] = (feat,)
    keys["encoder.pos_conv.0.weight_g"] = (1, 1, conv_pos)
    keys["encoder.pos_conv.0.weight_v"] = (d, d // groups, conv_pos)
    keys["encoder.pos_conv.0.bias"] = (d,)
    for i in range(layers):
        p = f"encoder.layers.{i}"
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            keys |= _linear(f"{p}.self_attn.{proj}", d, d)
        keys[f"{p}.self_attn_layer_norm.weight"] = (d,)
        keys[f"{p}.self_attn_layer_norm.bias"] = (d,)
        keys |= _linear(f"{p}.fc1", ffn, d)
        keys |= _linear(f"{p}.fc2", d, ffn)
        keys[f"{p}.final_layer_norm.weight"] = (d,)
        keys[f"{p}.final_layer_norm.bias"] = (d,)
    keys["encoder.layer_norm.weight"] = (d,)
    keys["encoder.layer_norm.bias"] = (d,)
    keys["layer_norm.weight"] = (2 * d,)
    keys["layer_norm.bias"] = (2 * d,)
    keys |= _linear("final_proj", final_dim, d)
    keys["label_embs_concat"] = (classes, final_dim)
    return keys


# The model sections of av_hubert's conf/pretrain/{base,large}_vox_iter5.yaml that decide
# shapes (the rest are AVHubertConfig defaults): written out here, not taken from the fixture.
_YAML = {
    "base": {"layer_norm_first": True, "final_dim": 256, "untie_final_proj": True,
             "audio_feat_dim": 104, "modality_fuse": "concat", "masking_type": "input"},
    "large": {"layer_norm_first": True, "final_dim": 256, "untie_final_proj": True,
              "audio_feat_dim": 104, "modality_fuse": "concat", "masking_type": "input",
              "encoder_layers": 24, "encoder_embed_dim": 1024, "encoder_ffn_embed_dim": 4096,
              "encoder_attention_heads": 16},
}  # fmt: skip


@pytest.mark.parametrize(
    ("size", "layers", "d", "ffn"), [("base", 12, 768, 3072), ("large", 24, 1024, 4096)]
)
@pytest.mark.parametrize("config", ["yaml", "fixture"])
def test_state_dict_layout_equals_av_hubert(size, layers, d, ffn, config):
    classes = 2004
    model_cfg = {"_name": "av_hubert", **_YAML[size]} if config == "yaml" else model_config(size)
    ckpt = {"cfg": {"model": model_cfg, "task": {"labels": ["km"]}}}
    arch = arch_from_checkpoint(ckpt, {"label_embs_concat": torch.empty(classes, 256)})
    with torch.device("meta"):  # shapes only: nothing allocated for the 300M-parameter large
        net = AVHubert(arch)
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    want = reference_keys(layers, d, ffn, classes)
    assert sorted(set(got) - set(want)) == []
    assert sorted(set(want) - set(got)) == []
    assert {k: v for k, v in got.items() if want[k] != v} == {}
    assert arch.activation_fn == "gelu" and arch.resnet_relu_type == "prelu"


def test_weight_norm_names_and_values_match_torch():
    """Our pos_conv stores fairseq's weight_g/weight_v and computes what torch's weight norm
    (dim=2) computes from the same two tensors, whatever names torch gives them."""
    torch.manual_seed(0)
    ours = WeightNormConv1d(16, 6, 4)
    with torch.no_grad():
        ours.weight_g.copy_(torch.rand(1, 1, 6) + 0.5)
        ours.bias.copy_(torch.randn(16))
    ref = torch.nn.utils.parametrizations.weight_norm(
        torch.nn.Conv1d(16, 16, 6, padding=3, groups=4), name="weight", dim=2
    )
    with torch.no_grad():
        ref.parametrizations.weight.original0.copy_(ours.weight_g)
        ref.parametrizations.weight.original1.copy_(ours.weight_v)
        ref.bias.copy_(ours.bias)
        x = torch.randn(2, 16, 11)
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-6, atol=1e-6)
    assert set(ours.state_dict()) == {"weight_g", "weight_v", "bias"}


@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_layer_equals_torch_transformer_layer(norm_first):
    from lipleak.export.avhubert import AVHubertArch

    arch = AVHubertArch(
        encoder_embed_dim=32,
        encoder_ffn_embed_dim=48,
        encoder_attention_heads=4,
        layer_norm_first=norm_first,
        audio_feat_dim=104,
    )
    torch.manual_seed(1)
    ours = EncoderLayer(arch).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(torch.randn_like(p) * 0.2 + (1 if p.ndim == 1 and p.shape[0] == 32 else 0))
    ref = torch.nn.TransformerEncoderLayer(
        32, 4, 48, dropout=0.0, activation="gelu", batch_first=True, norm_first=norm_first
    ).eval()
    a = ours.self_attn
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(
            torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])
        )
        ref.self_attn.in_proj_bias.copy_(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]))
        ref.self_attn.out_proj.load_state_dict(a.out_proj.state_dict())
        ref.linear1.load_state_dict(ours.fc1.state_dict())
        ref.linear2.load_state_dict(ours.fc2.state_dict())
        ref.norm1.load_state_dict(ours.self_attn_layer_norm.state_dict())
        ref.norm2.load_state_dict(ours.final_layer_norm.state_dict())
        x = torch.randn(3, 9, 32)
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


# --- (b) loading ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return make_fixture(tmp_path_factory.mktemp("avhubert") / "tiny.pt", "tiny", seed=0)


@pytest.fixture(scope="module")
def tiny(tiny_path):
    return load_checkpoint(tiny_path)


def test_fixture_loads_strictly_every_tensor_unchanged(tiny_path, tiny):
    raw = torch.load(tiny_path, map_location="cpu", weights_only=True)
    assert set(raw) >= {"cfg", "model", "optimizer_history", "extra_state"}
    assert raw["cfg"]["model"]["_name"] == "av_hubert"
    own = tiny.state_dict()
    assert set(own) == set(raw["model"])
    for k, v in raw["model"].items():
        assert torch.equal(own[k], v), k
    assert not tiny.training
    assert tiny.arch.encoder_layers == 2 and tiny.arch.encoder_embed_dim == 32


def _save_modified(tmp_path, tiny_path, edit) -> str:
    ckpt = torch.load(tiny_path, map_location="cpu", weights_only=True)
    edit(ckpt)
    out = tmp_path / "edited.pt"
    torch.save(ckpt, out)
    return out


def test_extra_key_fails(tmp_path, tiny_path):
    path = _save_modified(
        tmp_path, tiny_path, lambda c: c["model"].__setitem__("encoder.extra", torch.zeros(1))
    )
    with pytest.raises(ModelError, match=r"unknown keys: encoder\.extra"):
        load_checkpoint(path)


def test_missing_key_fails(tmp_path, tiny_path):
    path = _save_modified(
        tmp_path, tiny_path, lambda c: c["model"].pop("encoder.layers.1.fc2.bias")
    )
    with pytest.raises(ModelError, match=r"missing keys: encoder\.layers\.1\.fc2\.bias"):
        load_checkpoint(path)


def test_unused_pretraining_key_missing_fails(tmp_path, tiny_path):
    """mask_emb plays no part in features, yet a checkpoint without it is not accepted."""
    path = _save_modified(tmp_path, tiny_path, lambda c: c["model"].pop("mask_emb"))
    with pytest.raises(ModelError, match="missing keys: mask_emb"):
        load_checkpoint(path)


def test_config_disagreeing_with_weights_fails(tmp_path, tiny_path):
    def edit(c):
        c["cfg"]["model"]["encoder_layers"] = 3

    with pytest.raises(ModelError, match=r"missing keys: encoder\.layers\.2\."):
        load_checkpoint(_save_modified(tmp_path, tiny_path, edit))


def test_wrong_shape_fails(tmp_path, tiny_path):
    def edit(c):
        c["model"]["final_proj.weight"] = torch.zeros(17, 32)

    with pytest.raises(ModelError, match=r"shape mismatch: final_proj\.weight \(17, 32\)"):
        load_checkpoint(_save_modified(tmp_path, tiny_path, edit))


def test_old_args_namespace_checkpoint_with_numpy_state_loads(tmp_path, tiny_path, tiny):
    def edit(c):
        c["args"] = argparse.Namespace(**c["cfg"]["model"], labels=["km"])
        c["cfg"] = None
        c["extra_state"]["val_loss"] = np.float64(3.25)  # training state may hold numpy

    net = load_checkpoint(_save_modified(tmp_path, tiny_path, edit))
    assert net.arch == tiny.arch


@pytest.mark.parametrize(
    "content",
    [
        b"not a checkpoint",
        {"weight": torch.zeros(3)},  # a bare state dict (no fairseq layout)
        {"cfg": {"model": {"_name": "wav2vec2"}}, "model": {"w": torch.zeros(1)}},
        {"cfg": {"model": {"_name": "av_hubert"}}, "model": {"w": torch.zeros(1)}},
    ],
)
def test_not_an_avhubert_checkpoint(tmp_path, content):
    path = tmp_path / "x.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(ModelError, match="AV-HuBERT"):
        load_checkpoint(path)


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_checkpoint_cannot_run_code(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"cfg": {}, "model": {}, "x": _Evil()}, f, protocol=2)
    with pytest.raises(ModelError, match="loads safely"):
        load_checkpoint(path)
    assert "unpickled code ran" not in capsys.readouterr().out


class FakeDictionary:
    """Stands for fairseq's Dictionary in a training checkpoint's task_state."""

    def __init__(self, symbols):
        self.symbols = list(symbols)


class _Loud:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_training_checkpoint_with_foreign_objects_loads_inertly(tmp_path, tiny_path, tiny, capsys):
    # what weights_only refuses (a task dictionary, a meter-like object, a call of print):
    # kept as inert data, never imported or called; the weights load strictly
    ckpt = torch.load(tiny_path, map_location="cpu", weights_only=True)
    ckpt["task_state"] = {"dictionaries": [FakeDictionary(["<s>", "a"])]}
    ckpt["extra_state"] = {"metrics": {"train": [_Loud()]}, "best": np.float64(1.5)}
    path = tmp_path / "training.pt"
    torch.save(ckpt, path)
    with pytest.raises(Exception):  # noqa: B017 - the premise: the safe loader refuses it
        torch.load(path, map_location="cpu", weights_only=True)
    net = load_checkpoint(path)
    for k, v in tiny.state_dict().items():
        torch.testing.assert_close(net.state_dict()[k], v, rtol=0, atol=0)
    assert "unpickled code ran" not in capsys.readouterr().out
    from lipleak.export import inert_pickle

    raw = inert_pickle.load(path)
    inert = raw["task_state"]["dictionaries"][0]
    assert isinstance(inert, inert_pickle.Inert) and inert.name.endswith("FakeDictionary")


def test_omegaconf_config_is_read_without_omegaconf(tmp_path, tiny_path, tiny):
    omegaconf = pytest.importorskip("omegaconf")
    ckpt = torch.load(tiny_path, map_location="cpu", weights_only=True)
    ckpt["cfg"] = omegaconf.OmegaConf.create(ckpt["cfg"])  # as older fairseq saved it
    path = tmp_path / "omegaconf.pt"
    torch.save(ckpt, path)
    net = load_checkpoint(path)
    assert net.arch == tiny.arch
    for k, v in tiny.state_dict().items():
        torch.testing.assert_close(net.state_dict()[k], v, rtol=0, atol=0)


# --- (c) ONNX equals PyTorch -----------------------------------------------------------------


def _inputs(mode: str, batch: int, frames: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = {"video": (batch, 1, frames, 88, 88), "audio": (batch, 104, frames)}
    return {n: rng.standard_normal(shapes[n]).astype(np.float32) for n in mode_inputs(mode)}


def _torch_features(net, x: dict[str, np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return net.features(**{k: torch.from_numpy(v) for k, v in x.items()}).numpy()


def _session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("mode", MODES)
def test_onnx_equals_pytorch_each_mode_two_lengths(tmp_path, tiny, mode):
    session = _session(export_onnx(tiny, tmp_path / f"{mode}.onnx", mode))
    assert [i.name for i in session.get_inputs()] == list(mode_inputs(mode))
    for batch, frames in ((1, 5), (2, 12)):
        x = _inputs(mode, batch, frames, seed=frames)
        ref = _torch_features(tiny, x)
        got = session.run(["features"], x)[0]
        assert got.shape == (batch, frames, 32)
        assert _rel(got, ref) < 1e-4


def test_missing_modality_is_zero_features_not_zero_input(tiny):
    """av_hubert zeros the absent modality's *features*: audio-only differs from feeding a
    zero video, and equals av with the video extractor's output replaced by zeros."""
    x = _inputs("av", 1, 6, seed=3)
    audio_only = _torch_features(tiny, {"audio": x["audio"]})
    zero_video = _torch_features(tiny, {"audio": x["audio"], "video": 0 * x["video"]})
    assert not np.allclose(audio_only, zero_video, atol=1e-3)
    extractor = tiny.feature_extractor_video
    try:
        tiny.feature_extractor_video = _ZeroFeatures(extractor)
        patched = _torch_features(tiny, x)
    finally:
        tiny.feature_extractor_video = extractor
    np.testing.assert_allclose(audio_only, patched, rtol=0, atol=1e-6)


class _ZeroFeatures(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return 0 * self.inner(x)


@pytest.mark.slow
def test_base_onnx_equals_pytorch(tmp_path):
    net = load_checkpoint(make_fixture(tmp_path / "base.pt", "base", seed=1))
    assert net.arch.encoder_layers == 12 and net.arch.num_label_classes == 2004
    session = _session(export_onnx(net, tmp_path / "av.onnx", "av"))
    for frames in (6, 17):
        x = _inputs("av", 1, frames, seed=frames)
        assert _rel(session.run(["features"], x)[0], _torch_features(net, x)) < 1e-4


def test_checkpoint_dict_layout():
    ckpt = make_checkpoint("tiny", seed=2)
    assert ckpt["cfg"]["task"] == task_config()
    assert ckpt["args"] is None and isinstance(ckpt["model"], dict)


# --- (d) the wrapper behind the runtime interface (models/avhubert.py) ---------------------


@pytest.fixture(scope="module")
def wrapper_dir(tmp_path_factory, tiny_path):
    """A private model dir holding the tiny fixture under the registry's base name."""
    from lipleak.models import store

    d = tmp_path_factory.mktemp("avh_models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIPLEAK_MODEL_DIR", str(d))
        store.fetch("avhubert_base", tiny_path)
        yield d


@pytest.fixture(scope="module")
def wrapper(wrapper_dir):
    from lipleak.models.avhubert import AVHubert as Wrapper

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIPLEAK_MODEL_DIR", str(wrapper_dir))
        yield Wrapper.load("avhubert_base", backend="cpu")


def _clip_inputs(mode: str, batch: int, frames: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = {"video": (batch, frames, 88, 88), "audio": (batch, frames, 104)}
    return {n: rng.standard_normal(shapes[n]).astype(np.float32) for n in mode_inputs(mode)}


def test_registry_name_loads_the_fixture_and_records_it_unpinned(wrapper, wrapper_dir, tiny_path):
    from lipleak.files import file_sha256
    from lipleak.models.onnx_files import avhubert_folder
    from lipleak.models.registry import unpinned_warnings

    d = wrapper.describe()
    assert d["checkpoint"]["name"] == "avhubert_base" and d["checkpoint"]["pinned"] is False
    assert d["checkpoint"]["sha256"] == file_sha256(tiny_path)
    assert set(d["onnx"]) == set(MODES) and d["backend"] == "cpu"
    folder = avhubert_folder(d["checkpoint"]["sha256"], wrapper_dir / "onnx")
    assert sorted(p.name for p in folder.glob("*.onnx")) == [
        "avhubert_audio.onnx",
        "avhubert_av.onnx",
        "avhubert_video.onnx",
    ]
    assert len(unpinned_warnings(d)) == 1


@pytest.mark.parametrize("mode", MODES)
def test_wrapper_equals_pytorch_and_is_batch_invariant(wrapper, tiny, mode):
    x = _clip_inputs(mode, 3, 9, seed=5)
    batched = wrapper.features_batch(mode, **x)
    assert batched.shape == (3, 9, 32) and batched.dtype == np.float32
    # the same clips one at a time: equal to the batch (independent of batch size)
    for i in range(3):
        one = wrapper.features(mode, **{k: v[i] for k, v in x.items()})
        np.testing.assert_allclose(one, batched[i], rtol=0, atol=1e-5 * np.abs(one).max())
        again = wrapper.features(mode, **{k: v[i] for k, v in x.items()})
        np.testing.assert_array_equal(one, again)  # deterministic
    # ... and equal to PyTorch fed in av_hubert's layout (video B×1×T×H×W, audio B×104×T)
    layout = {}
    if "video" in x:
        layout["video"] = x["video"][:, None]
    if "audio" in x:
        layout["audio"] = np.ascontiguousarray(x["audio"].transpose(0, 2, 1))
    assert _rel(batched, _torch_features(tiny, layout)) < 1e-4


@pytest.mark.parametrize("mode", MODES)
def test_torch_backend_equals_onnxruntime(wrapper_dir, tiny, mode):
    # the export folds weight norm into a constant conv weight and stores the inferred
    # shapes, without which onnx2torch cannot convert the graph
    import importlib.util

    if importlib.util.find_spec("onnx2torch") is None:  # not imported: it may lack torchvision
        pytest.skip("the torch backend needs onnx2torch (README install)")
    from lipleak.models.avhubert import AVHubert as Wrapper

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIPLEAK_MODEL_DIR", str(wrapper_dir))
        on_torch = Wrapper.load("avhubert_base", modes=(mode,), backend="torch")
        on_ort = Wrapper.load("avhubert_base", modes=(mode,), backend="cpu")
    assert on_torch.describe()["backend"].startswith("torch")
    x = _clip_inputs(mode, 2, 7, seed=8)
    assert _rel(on_torch.features_batch(mode, **x), on_ort.features_batch(mode, **x)) < 1e-4


def test_wrapper_checks_inputs(wrapper):
    v = np.zeros((4, 88, 88), np.float32)
    a = np.zeros((4, 104), np.float32)
    with pytest.raises(ValueError, match="takes audio"):
        wrapper.features("audio", video=v)
    with pytest.raises(ValueError, match="takes video and audio"):
        wrapper.features("av", video=v)
    with pytest.raises(ValueError, match="audio must be"):
        wrapper.features("audio", audio=np.zeros((4, 26), np.float32))
    with pytest.raises(ValueError, match=r"video is \(1, 4\)"):
        wrapper.features("av", video=v, audio=np.zeros((5, 104), np.float32))
    assert wrapper.features("av", video=v, audio=a).shape == (4, 32)


def test_wrong_kind_or_missing_checkpoint(wrapper_dir, tmp_path, monkeypatch):
    from lipleak.models.avhubert import AVHubert as Wrapper

    monkeypatch.setenv("LIPLEAK_MODEL_DIR", str(wrapper_dir))
    with pytest.raises(ModelError, match="not an AV-HuBERT checkpoint"):
        Wrapper.load("syncnet_v2")
    with pytest.raises(ModelError, match="no such AV-HuBERT checkpoint"):
        Wrapper.load(tmp_path / "nope.pt")
    with pytest.raises(ModelError, match="avhubert_large .*not in the model dir"):
        Wrapper.load("avhubert_large")


def test_models_export_command_exports_present_checkpoints(wrapper_dir, monkeypatch):
    from lipleak.models import onnx_files

    monkeypatch.setenv("LIPLEAK_MODEL_DIR", str(wrapper_dir))
    folder, sha = onnx_files.avhubert_onnx("avhubert_base")
    assert folder == onnx_files.avhubert_folder(sha)
    assert all((folder / f"avhubert_{m}.onnx").is_file() for m in MODES)
    with pytest.raises(ModelError, match="not in the model dir"):
        onnx_files.avhubert_onnx("avhubert_large")

"""Engine cache: the key, the profile shapes read from real ONNX files, and the
load-or-rebuild rules, with a fake builder standing in for TensorRT."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from lipleak.errors import LipleakError, ModelError
from lipleak.files import atomic_write
from lipleak.runtime import engine_cache as ec

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

PROFILE = {"x": ((1, 3), (32, 3), (64, 3))}


@pytest.fixture(autouse=True)
def private_model_dir(tmp_path, monkeypatch):
    """Hashing a model remembers the digest in the model dir: keep it out of the user's."""
    monkeypatch.setenv("LIPLEAK_MODEL_DIR", str(tmp_path / "models"))


def matmul_onnx(path: Path, dims, w_seed: int = 0) -> Path:
    w = np.random.default_rng(w_seed).standard_normal((dims[-1], 2)).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))
    y = helper.make_tensor_value_info(
        "y", TensorProto.FLOAT, [dims[0], 2] if len(dims) == 2 else None
    )
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "g",
        [x],
        [y],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def key_for(path, **over):
    args = dict(
        trt_version="10.9.0.34",
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
        precision="fp32",
        profile=PROFILE,
    )
    args.update(over)
    return ec.make_key(path, **args)


# ------------------------------------------------------------------------- key


def test_key_changes_with_every_field(tmp_path):
    a = matmul_onnx(tmp_path / "a.onnx", ["batch", 3], w_seed=0)
    b = matmul_onnx(tmp_path / "b.onnx", ["batch", 3], w_seed=1)  # same graph, other weights
    base = key_for(a)
    assert base.onnx_sha256 == hashlib.sha256(a.read_bytes()).hexdigest()
    variants = {
        "onnx bytes": key_for(b),
        "trt version": key_for(a, trt_version="10.9.0.35"),
        "gpu name": key_for(a, gpu_name="NVIDIA H200"),
        "compute capability": key_for(a, compute_capability="8.9"),
        "precision": key_for(a, precision="fp16"),
        "profile max": key_for(a, profile={"x": ((1, 3), (32, 3), (128, 3))}),
        "profile opt": key_for(a, profile={"x": ((1, 3), (16, 3), (64, 3))}),
        "profile name": key_for(a, profile={"z": ((1, 3), (32, 3), (64, 3))}),
        # builder options that change the engine (issue 14: they were not in the key)
        "workspace": key_for(a, workspace_bytes=2 << 30),
        "tf32 policy": key_for(a, tf32=True),
        "fp16 method": key_for(a, precision="fp16", fp16_method="onnx-fp16-conversion"),
    }
    digests = {name: k.digest() for name, k in variants.items()}
    for name, d in digests.items():
        assert d != base.digest(), name
    assert len(set(digests.values())) == len(digests)
    # Same inputs, same key: the digest is a pure function of the fields.
    assert key_for(a).digest() == base.digest()
    assert (
        key_for(a, precision="fp16", fp16_method="builder-flag").digest()
        != variants["fp16 method"].digest()
    )
    assert base.fields()["key_version"] == 2 and base.fields()["workspace_bytes"] is None
    assert (
        ec.make_key(
            tmp_path / "ignored",
            "10.9.0.34",
            "NVIDIA H100 80GB HBM3",
            "9.0",
            "fp32",
            PROFILE,
            onnx_sha256=base.onnx_sha256,
        ).digest()
        == base.digest()
    )


def test_key_ignores_profile_dict_order(tmp_path):
    a = matmul_onnx(tmp_path / "a.onnx", ["batch", 3])
    p1 = {"x": ((1, 3), (2, 3), (4, 3)), "m": ((1, 5), (2, 5), (4, 5))}
    p2 = dict(reversed(list(p1.items())))
    assert key_for(a, profile=p1).digest() == key_for(a, profile=p2).digest()


def test_paths_live_under_model_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LIPLEAK_MODEL_DIR", str(tmp_path / "models"))
    k = key_for(matmul_onnx(tmp_path / "a.onnx", ["batch", 3]))
    assert ec.engine_path(k) == tmp_path / "models" / "engines" / f"{k.digest()}.engine"
    assert ec.sidecar_path(k) == tmp_path / "models" / "engines" / f"{k.digest()}.json"
    t1 = ec.timing_cache_path("NVIDIA H100 80GB HBM3", "9.0", "10.9.0.34")
    assert t1.parent == tmp_path / "models" / "engines" / "timing"
    assert t1.name == "NVIDIA_H100_80GB_HBM3-cc9.0-trt10.9.0.34.cache"
    others = {
        ec.timing_cache_path("NVIDIA H200", "9.0", "10.9.0.34"),
        ec.timing_cache_path("NVIDIA H100 80GB HBM3", "9.0", "10.10.0.1"),
    }
    assert t1 not in others and len(others) == 2


# ---------------------------------------------------------------- profile shapes


def test_profile_from_torch_exported_dynamic_batch_model(tmp_path):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 8),
    ).eval()
    path = tmp_path / "conv.onnx"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(2, 3, 20, 24),),
            str(path),
            input_names=["img"],
            output_names=["emb"],
            dynamic_axes={"img": {0: "batch"}, "emb": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    assert ec.profile_shapes(path, 1, 16, 64) == {
        "img": ((1, 3, 20, 24), (16, 3, 20, 24), (64, 3, 20, 24))
    }
    # opt defaults to max: scoring runs full batches but for each video's tail.
    assert ec.profile_shapes(path, max_batch=32)["img"][1] == (32, 3, 20, 24)


def test_profile_fixed_batch_model_is_fixed(tmp_path):
    path = matmul_onnx(tmp_path / "fixed.onnx", [4, 3])
    assert ec.profile_shapes(path, 1, 8, 64) == {"x": ((4, 3), (4, 3), (4, 3))}


def test_profile_rejects_dynamic_spatial_axes(tmp_path):
    path = matmul_onnx(tmp_path / "dyn.onnx", ["batch", "h", 3])
    with pytest.raises(ModelError, match=r"dynamic non-batch axes \[1\]"):
        ec.profile_shapes(path)


def image_onnx(path: Path, dims) -> Path:
    x = helper.make_tensor_value_info("img", TensorProto.FLOAT, list(dims))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Relu", ["img"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_profile_dynamic_image_hw_gets_the_detector_range(tmp_path):
    """SCRFD's input is [1, 3, ?, ?]: it got no profile, so TensorRT could not run it."""
    scrfd = image_onnx(tmp_path / "scrfd.onnx", [1, 3, "?", "?"])
    assert ec.profile_shapes(scrfd) == {"img": ((1, 3, 32, 32), (1, 3, 640, 640), (1, 3, 640, 640))}
    assert ec.profile_shapes(scrfd, spatial=(64, 320, 960))["img"] == (
        (1, 3, 64, 64),
        (1, 3, 320, 320),
        (1, 3, 960, 960),
    )
    dyn = image_onnx(tmp_path / "dyn.onnx", ["n", 3, "h", "w"])
    assert ec.profile_shapes(dyn, 1, 4, 8)["img"] == (
        (1, 3, 32, 32),
        (4, 3, 640, 640),
        (8, 3, 640, 640),
    )
    # only H and W: a dynamic channel axis, or one of H/W fixed, is still refused
    for dims in (["n", "c", "h", "w"], [1, 3, 224, "w"]):
        with pytest.raises(ModelError, match="dynamic non-batch axes"):
            ec.profile_shapes(image_onnx(tmp_path / "x.onnx", dims))
    with pytest.raises(LipleakError, match="spatial profile"):
        ec.profile_shapes(scrfd, spatial=(640, 320, 960))


def test_profile_bad_batch_range(tmp_path):
    path = matmul_onnx(tmp_path / "a.onnx", ["batch", 3])
    for mn, op, mx in [(0, 1, 2), (4, 2, 8), (1, 9, 8)]:
        with pytest.raises(LipleakError, match="1 <= min <= opt <= max"):
            ec.profile_shapes(path, mn, op, mx)


def test_profile_via_onnxruntime_when_onnx_missing(tmp_path, monkeypatch):
    path = matmul_onnx(tmp_path / "a.onnx", ["batch", 3])
    want = ec.profile_shapes(path, 1, 4, 8)
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *a, **k):
        if name == "onnx":
            raise ImportError("no onnx")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    assert ec.profile_shapes(path, 1, 4, 8) == want


def test_profile_on_non_onnx_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff\x00 definitely not protobuf" * 10)
    with pytest.raises(ModelError, match="bad.onnx"):
        ec.profile_shapes(bad)
    with pytest.raises(ModelError, match="not found"):
        ec.profile_shapes(tmp_path / "missing.onnx")


# ------------------------------------------------------------------ load / build


class FakeBuilder:
    """Writes an 'engine' whose bytes name the build number, like a real build would
    write a new file; records its calls."""

    def __init__(self, fail: bool = False):
        self.calls: list[tuple[Path, Path, Path]] = []
        self.fail = fail

    def __call__(self, onnx_path: Path, out: Path, timing: Path) -> None:
        self.calls.append((onnx_path, out, timing))
        out.write_bytes(b"ENGINE-PART")  # a partial file, as a crashing builder leaves
        if self.fail:
            raise ModelError("TensorRT could not build an engine: fake")
        out.write_bytes(f"ENGINE#{len(self.calls)}".encode() * 100)
        return {"tf32_set": False}


@pytest.fixture
def setup(tmp_path):
    onnx_path = matmul_onnx(tmp_path / "m.onnx", ["batch", 3])
    return onnx_path, key_for(onnx_path), tmp_path / "cache"


def test_build_then_hit(setup):
    onnx_path, key, root = setup
    fb = FakeBuilder()
    first = ec.load_or_build(key, onnx_path, fb, root)
    assert first.built and first.reason == "no cached engine" and first.build_seconds >= 0
    assert first.path == ec.engine_path(key, root) and first.path.read_bytes() == first.data
    assert fb.calls[0][0] == onnx_path
    assert fb.calls[0][1].parent == root and fb.calls[0][1] != first.path  # temp name
    assert fb.calls[0][2] == ec.timing_cache_path(
        key.gpu_name, key.compute_capability, key.trt_version, root
    )
    meta = json.loads(ec.sidecar_path(key, root).read_text())
    assert {k: meta[k] for k in key.fields()} == key.fields()
    assert meta["engine_sha256"] == hashlib.sha256(first.data).hexdigest()

    # what the build reported goes into the sidecar and comes back on a hit
    assert meta["tf32_set"] is False and first.meta["tf32_set"] is False

    second = ec.load_or_build(key, onnx_path, fb, root)
    assert not second.built and second.reason == "cache hit" and second.data == first.data
    assert second.meta["tf32_set"] is False
    assert len(fb.calls) == 1
    assert sorted(p.name for p in root.iterdir() if p.suffix != ".lock") == sorted(
        [first.path.name, ec.sidecar_path(key, root).name]
    )


@pytest.mark.parametrize(
    "field,value",
    [
        ("trt_version", "10.8.0.0"),
        ("gpu_name", "NVIDIA A100"),
        ("compute_capability", "8.0"),
        ("precision", "fp16"),
        ("onnx_sha256", "0" * 64),
        ("workspace_bytes", 1 << 30),
        ("tf32", True),
        ("fp16_method", "builder-flag"),
        ("key_version", 1),
    ],
)
def test_foreign_sidecar_is_rebuilt(setup, field, value):
    """An engine whose sidecar names another TensorRT/GPU/precision/model is never loaded."""
    onnx_path, key, root = setup
    fb = FakeBuilder()
    ec.load_or_build(key, onnx_path, fb, root)
    side = ec.sidecar_path(key, root)
    meta = json.loads(side.read_text())
    meta[field] = value
    side.write_text(json.dumps(meta))
    again = ec.load_or_build(key, onnx_path, fb, root)
    assert again.built and f"sidecar mismatch in {field}" == again.reason
    assert again.data == b"ENGINE#2" * 100 and len(fb.calls) == 2
    assert json.loads(side.read_text())[field] == key.fields()[field]


def test_corrupt_engine_is_rebuilt(setup):
    onnx_path, key, root = setup
    fb = FakeBuilder()
    ec.load_or_build(key, onnx_path, fb, root)
    eng = ec.engine_path(key, root)
    eng.write_bytes(eng.read_bytes()[:50])  # truncated, e.g. a disk-full copy
    again = ec.load_or_build(key, onnx_path, fb, root)
    assert again.built and "corrupt" in again.reason and again.data == b"ENGINE#2" * 100


@pytest.mark.parametrize("damage", ["delete_sidecar", "garbage_sidecar"])
def test_missing_or_unreadable_sidecar_is_rebuilt(setup, damage):
    onnx_path, key, root = setup
    fb = FakeBuilder()
    ec.load_or_build(key, onnx_path, fb, root)
    side = ec.sidecar_path(key, root)
    if damage == "delete_sidecar":
        side.unlink()
    else:
        side.write_text("{not json")
    again = ec.load_or_build(key, onnx_path, fb, root)
    assert again.built and len(fb.calls) == 2
    assert again.reason in ("engine without sidecar", "unreadable sidecar (JSONDecodeError)")


def test_engine_refused_by_runtime_is_rebuilt(setup):
    """A verified file that TensorRT still refuses (e.g. a driver update) is rebuilt."""
    onnx_path, key, root = setup
    fb = FakeBuilder()
    ec.load_or_build(key, onnx_path, fb, root)
    seen = []

    def validate(blob):
        seen.append(blob)
        return blob != b"ENGINE#1" * 100

    again = ec.load_or_build(key, onnx_path, fb, root, validate=validate)
    assert again.built and again.reason == "cached engine failed to deserialise"
    assert seen[0] == b"ENGINE#1" * 100 and again.data == b"ENGINE#2" * 100


def test_builder_exception_leaves_nothing(setup):
    onnx_path, key, root = setup
    with pytest.raises(ModelError, match="fake"):
        ec.load_or_build(key, onnx_path, FakeBuilder(fail=True), root)
    left = [p.name for p in root.iterdir() if p.suffix != ".lock"]
    assert left == []  # no engine, no sidecar, no temp file


def test_failed_rebuild_removes_the_stale_pair(setup):
    onnx_path, key, root = setup
    ec.load_or_build(key, onnx_path, FakeBuilder(), root)
    side = ec.sidecar_path(key, root)
    meta = json.loads(side.read_text())
    meta["trt_version"] = "9.0"
    side.write_text(json.dumps(meta))
    with pytest.raises(ModelError):
        ec.load_or_build(key, onnx_path, FakeBuilder(fail=True), root)
    assert not ec.engine_path(key, root).exists() and not side.exists()


def test_empty_engine_is_an_error(setup):
    onnx_path, key, root = setup

    def empty(onnx, out, timing):
        out.write_bytes(b"")

    with pytest.raises(ModelError, match="empty engine"):
        ec.load_or_build(key, onnx_path, empty, root)
    assert [p for p in root.iterdir() if p.suffix != ".lock"] == []


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write(target, b"old")
    import os

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]

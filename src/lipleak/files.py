"""Files written whole or not at all, their sha256 (cached by the file's stamp), the
identity stamp of input files and the lock that keeps one run per results store.

Every file the project writes for later runs to read (models, engines, features, reports,
caches) goes through ``atomic_path``/``atomic_write``: a reader, or a run killed midway,
sees the old file or the whole new one, never a torn one. Hashes of multi-hundred-MB model
files go through ``file_sha256``, which remembers each digest under the file's size, mtime,
ctime and inode in the model dir, so a model is read once, not once per process.

``inputs_hash``, ``RunLock`` and ``lock_path`` serve both results stores (``protocol`` and
``sync``); they live on this floor because ``sync`` must not import ``protocol``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import LipleakError
from .paths import model_dir

HASH_CACHE = ".sha256-cache.json"
_CHUNK = 1 << 20


# --- atomic writes -------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: str | Path, mode: int = 0o644) -> Iterator[Path]:
    """A temporary path beside ``path``; renamed onto ``path`` if the block succeeds.

    The temporary name keeps ``path``'s suffix, so writers that append one (``np.save``,
    ``np.savez``) do not rename it. The mode is set explicitly because mkstemp makes files
    private and model dirs and results dirs are often shared.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: bytes | str, fsync: bool = True) -> None:
    """Write ``data`` (str as UTF-8) so that readers see the old file or the whole new one."""
    blob = data.encode() if isinstance(data, str) else bytes(data)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        if fsync:
            os.fsync(f.fileno())


# --- hashing -------------------------------------------------------------------------------


def sha256_of(path: str | Path) -> str:
    """sha256 of the file's bytes, read in 1 MiB chunks (no cache)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_cache() -> dict:
    try:
        data = json.loads((model_dir() / HASH_CACHE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(data: dict) -> None:
    """Best effort: a read-only model dir or a lost race only costs a rehash later."""
    with contextlib.suppress(OSError):
        atomic_write(
            model_dir() / HASH_CACHE, json.dumps(data, indent=0, sort_keys=True), fsync=False
        )


def _cache_key(path: Path) -> tuple[str, list]:
    # ctime and inode also catch a replacement that kept size and mtime (cp -p, rsync -t).
    real = path.resolve()
    st = real.stat()
    return str(real), [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def file_sha256(path: str | Path, rehash: bool = False) -> str:
    """sha256 of ``path``, from the model dir's hash cache if the file's stamp is unchanged.

    ``rehash`` ignores the cache (and refreshes it).
    """
    path = Path(path)
    key, stamp = _cache_key(path)
    hit = _read_cache().get(key)
    if not rehash and isinstance(hit, list) and len(hit) == len(stamp) + 1 and hit[:-1] == stamp:
        return hit[-1]
    digest = sha256_of(path)
    remember(path, digest)
    return digest


def remember(path: str | Path, digest: str) -> None:
    """Record ``digest`` as the sha256 of ``path`` as it is now (e.g. right after a fetch)."""
    key, stamp = _cache_key(Path(path))
    cache = _read_cache()  # re-read: another process may have added entries meanwhile
    cache[key] = [*stamp, digest]
    _write_cache(cache)


# --- input stamps and the run lock ---------------------------------------------------------


def inputs_hash(*paths, missing_ok: bool = False) -> str:
    """Identity of the input files: name, size and modification time (not their bytes, and
    not their folder, so that a moved or copied DIR is not rescored).

    ``None`` stands for "no file" (e.g. a video's own audio track). With ``missing_ok`` a
    path that does not exist hashes as missing instead of raising, so that a result recorded
    for a missing file is redone once the file appears.
    """
    h = hashlib.sha256()
    for p in paths:
        if p is None:
            h.update(b"-")
            continue
        try:
            st = os.stat(p)
        except FileNotFoundError:
            if not missing_ok:
                raise
            h.update(f"{Path(p).name}|missing;".encode("utf-8", "surrogateescape"))
            continue
        # a name that is not UTF-8 hashes as its bytes (valid names: the same hash as ever)
        h.update(
            f"{Path(p).name}|{st.st_size}|{st.st_mtime_ns};".encode("utf-8", "surrogateescape")
        )
    return h.hexdigest()[:16]


def lock_path(db: Path) -> Path:
    """The run lock beside a results store: one run per store, wherever it lives."""
    db = Path(db)
    return db.with_name(db.name + ".lock")


class RunLock:
    """An exclusive lock held for a whole run; a second run on the same DIR stops at once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise LipleakError(
                f"another lipleak-fast run is using {self.path.parent} "
                f"(pid {other}); wait for it to finish or stop it"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)

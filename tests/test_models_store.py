"""Model registry and model dir: fetch (local copy, archive member, download), verify, CLI.

Oracles: sha256 computed here with hashlib on the shared files, and the sha256 values
published in ../shared/models/MODELS.md, SYNCNET.md and SPEC.md (parsed from the text).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import urllib.error
import urllib.request
import zipfile

import pytest

from conftest import SHARED, SHARED_MODELS
from lipleak import files
from lipleak.cli import main
from lipleak.errors import ModelError
from lipleak.models import registry, store

SMALL = "scrfd_500m"  # 2.5 MB: the cheapest real file to copy around


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    d = tmp_path / "models"
    monkeypatch.setenv("LIPLEAK_MODEL_DIR", str(d))
    return d


def _touch(path):
    """A later mtime: an in-place rewrite can fall within one filesystem timestamp tick."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def _leftovers(folder):
    """Temporary files a fetch left behind: hidden names (atomic writes, downloads) other
    than the hash cache."""
    return sorted(
        p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != files.HASH_CACHE
    )


# --- registry --------------------------------------------------------------------------------


def test_registry_hashes_match_the_published_tables():
    docs = "".join((SHARED_MODELS / n).read_text() for n in ("MODELS.md", "SYNCNET.md"))
    docs += (SHARED / "SPEC.md").read_text()
    published = set(re.findall(r"\b[0-9a-f]{64}\b", docs))
    sizes = {m[0]: int(m[1]) for m in re.findall(r"\| (\S+) \([^|]*\| (\d+) \| [0-9a-f]{64}", docs)}
    for spec in registry.MODELS.values():
        if not spec.pinned:  # no published digest (test_unpinned_* below)
            continue
        if len(spec.sha256) < 64:  # torchvision's files: only torch.hub's prefix is published
            assert f"-{spec.sha256}." in spec.filename and spec.url.endswith(spec.filename)
            continue
        if spec.kind == "lpips_heads":  # checked against the lpips wheel in test_lpips.py
            continue
        assert spec.sha256 in published, spec.name
        if spec.filename in sizes:
            assert spec.size == sizes[spec.filename], spec.name
    assert {"syncnet_v2.model", "w600k_r50.onnx", "det_10g.onnx"} <= set(sizes)
    assert len({s.filename for s in registry.MODELS.values()}) == len(registry.MODELS)


@pytest.mark.parametrize("name", ["syncnet_v2_random", "scrfd_500m", "pfld_68", "fid_inception"])
def test_registry_matches_the_shared_files(name):
    spec = registry.get(name)
    path = SHARED_MODELS / spec.filename
    assert path.stat().st_size == spec.size
    assert _sha(path) == spec.sha256


def test_prefix_digest_is_torch_hubs_check(model_dir, tmp_path, monkeypatch):
    """A registry digest shorter than 64 digits (torchvision's published file-name prefix)
    accepts exactly the files whose sha256 starts with it, as torch.hub's check_hash does."""
    src = tmp_path / "weights.pth"
    src.write_bytes(b"trunk weights")
    digest = _sha(src)
    spec = registry.ModelSpec(
        name="tv_prefix",
        filename=f"w-{digest[:8]}.pth",
        url=None,
        sha256=digest[:8],
        size=src.stat().st_size,
        license="test",
        kind="test",
    )
    monkeypatch.setitem(registry.MODELS, spec.name, spec)
    assert store.digest_matches(digest[:8], digest)
    flipped = ("0" if digest[0] != "0" else "1") + digest[1:]
    assert not store.digest_matches(digest[:8], flipped)
    assert not store.digest_matches(digest[:7], digest)  # too short to mean anything
    assert not store.digest_matches(digest, flipped)  # a full digest stays exact
    assert store.verify("tv_prefix", store.fetch("tv_prefix", src)) == digest
    other = tmp_path / "other.pth"
    other.write_bytes(b"different")
    with pytest.raises(ModelError, match=r"expected [0-9a-f]{8}…, a published prefix"):
        store.verify("tv_prefix", other)


def test_unknown_name():
    with pytest.raises(ModelError, match="unknown model 'nope'; known models: syncnet_v2"):
        registry.get("nope")


# --- locate / verify -------------------------------------------------------------------------


def test_locate_missing_says_how_to_fetch(model_dir):
    with pytest.raises(ModelError) as err:
        store.locate("syncnet_v2")
    msg = str(err.value)
    assert "syncnet_v2.model" in msg and str(model_dir) in msg
    assert "`lipleak-fast models fetch syncnet_v2`" in msg
    with pytest.raises(ModelError, match="fetch syncnet_v2_random --from FILE_OR_DIR"):
        store.locate("syncnet_v2_random")


def test_fetch_from_folder_then_locate_and_verify(model_dir):
    path = store.fetch(SMALL, SHARED_MODELS)
    assert path == model_dir / "scrfd_500m.onnx" and not path.is_symlink()
    assert store.locate(SMALL) == path
    assert store.verify(SMALL) == _sha(SHARED_MODELS / "scrfd_500m.onnx")
    assert _leftovers(model_dir) == []
    mtime = path.stat().st_mtime_ns
    assert store.fetch(SMALL, SHARED_MODELS) == path  # already there: kept as is
    assert path.stat().st_mtime_ns == mtime


def test_fetch_symlink(model_dir):
    path = store.fetch(SMALL, SHARED_MODELS / "scrfd_500m.onnx", symlink=True)
    assert path.is_symlink() and path.resolve() == (SHARED_MODELS / "scrfd_500m.onnx").resolve()
    assert store.verify(SMALL) == registry.get(SMALL).sha256


def test_fetch_published_name_and_archive_member(model_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SHARED_MODELS / "scrfd_500m.onnx", src / "det_500m.onnx")  # insightface's name
    assert _sha(store.fetch(SMALL, src)) == registry.get(SMALL).sha256
    (model_dir / "scrfd_500m.onnx").unlink()
    archive = tmp_path / "buffalo_sc.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(SHARED_MODELS / "scrfd_500m.onnx", "det_500m.onnx")
        z.writestr("w600k_mbf.onnx", b"other")
    assert _sha(store.fetch(SMALL, archive)) == registry.get(SMALL).sha256
    assert _leftovers(model_dir) == []


def test_wrong_sha256_is_refused(model_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    data = bytearray((SHARED_MODELS / "scrfd_500m.onnx").read_bytes())
    data[1000] ^= 1  # one flipped bit
    (src / "scrfd_500m.onnx").write_bytes(data)
    with pytest.raises(
        ModelError,
        match=r"wrong sha256 [0-9a-f]{64} for model scrfd_500m "
        r"\(expected 5e4447f5.*refusing to use it",
    ):
        store.fetch(SMALL, src)
    assert not (model_dir / "scrfd_500m.onnx").exists()
    assert _leftovers(model_dir) == []
    # The same file placed in the model dir by hand is refused on use.
    shutil.copy(src / "scrfd_500m.onnx", model_dir / "scrfd_500m.onnx")
    with pytest.raises(ModelError, match="wrong sha256.*refusing to use it"):
        store.verify(SMALL)
    # ... and replaced by a good copy on the next fetch.
    assert store.verify(SMALL, store.fetch(SMALL, SHARED_MODELS)) == registry.get(SMALL).sha256


def test_hash_cache_avoids_rehashing_and_notices_changes(model_dir, monkeypatch):
    path = store.fetch(SMALL, SHARED_MODELS)
    calls = []
    real = files.sha256_of
    monkeypatch.setattr(store, "sha256_of", lambda p: calls.append(p) or real(p))
    monkeypatch.setattr(files, "sha256_of", lambda p: calls.append(p) or real(p))
    for _ in range(3):
        store.verify(SMALL)
    assert calls == []
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(data)  # same size
    _touch(path)
    with pytest.raises(ModelError, match="wrong sha256"):
        store.verify(SMALL)
    assert calls == [path]
    # --rehash reads the file even when the cache knows it.
    path.write_bytes((SHARED_MODELS / "scrfd_500m.onnx").read_bytes())
    _touch(path)
    assert store.verify(SMALL) == registry.get(SMALL).sha256
    calls.clear()
    assert store.verify(SMALL) == store.verify(SMALL, rehash=True) == registry.get(SMALL).sha256
    assert calls == [path]
    assert main(["models", "verify", "--rehash", SMALL]) == 0
    assert calls == [path, path]


# --- download --------------------------------------------------------------------------------


class _Response(io.BytesIO):
    headers: dict = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_offline_fetch_is_a_model_error(model_dir, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ModelError) as err:
        store.fetch("syncnet_v2")
    assert str(err.value) == (
        "cannot download syncnet_v2 from "
        "https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model: "
        "Temporary failure in name resolution; download it yourself and run "
        "`lipleak-fast models fetch syncnet_v2 --from FILE`"
    )
    assert _leftovers(model_dir) == []
    assert main(["models", "fetch", "syncnet_v2"]) == ModelError.exit_code


def test_no_public_download(model_dir):
    with pytest.raises(ModelError, match="syncnet_v2_random has no public download"):
        store.fetch("syncnet_v2_random")


def test_download_plain_file_and_archive_member(model_dir, monkeypatch):
    """The download path with a fake server: a plain file (pfld) and a zip member (scrfd)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.write(SHARED_MODELS / "scrfd_500m.onnx", "det_500m.onnx")
    served = {
        registry.get("pfld_68").url: (SHARED_MODELS / "pfld_68.onnx").read_bytes(),
        registry.get(SMALL).url: archive.getvalue(),
    }
    asked = []

    def fake_urlopen(request, timeout=None):
        asked.append(request.full_url)
        return _Response(served[request.full_url])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    for name in ("pfld_68", SMALL):
        assert store.verify(name, store.fetch(name)) == registry.get(name).sha256
    assert asked == [registry.get("pfld_68").url, registry.get(SMALL).url]
    assert _leftovers(model_dir) == []
    # A corrupt download is refused and leaves nothing behind.
    served[registry.get("pfld_68").url] = b"<html>rate limited</html>"
    (model_dir / "pfld_68.onnx").unlink()
    with pytest.raises(ModelError, match="wrong sha256.*refusing"):
        store.fetch("pfld_68")
    assert not (model_dir / "pfld_68.onnx").exists() and _leftovers(model_dir) == []


# --- CLI -------------------------------------------------------------------------------------


def test_cli_list_fetch_verify(model_dir, capsys):
    assert main(["models", "verify", SMALL]) == ModelError.exit_code  # not there yet
    assert "FAILED" in capsys.readouterr().err
    assert main(["models", "fetch", SMALL, "pfld_68", "--from", str(SHARED_MODELS)]) == 0
    assert "pfld_68:" in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()[2:]
    rows = {line.split()[0]: line.split() for line in listing if not line.startswith(" ")}
    assert set(rows) == set(registry.MODELS)
    assert rows[SMALL][1:4] == ["face_detector", "yes", "yes"]
    assert rows["syncnet_v2"][2:4] == ["NO", "-"]
    # the README promises URL, sha256 and size for every model
    details: dict[str, dict[str, str]] = {}
    for line in listing:
        if not line.startswith(" "):
            name = line.split()[0]
        else:
            key, _, value = line.strip().partition(" ")
            details.setdefault(name, {})[key] = value.strip()
    for name, spec in registry.MODELS.items():
        assert rows[name][4] == f"{spec.size:,}"
        assert details[name]["sha256"] == (
            spec.sha256 or "- (not pinned: no published sha256; recorded where it is used)"
        )
        assert details[name]["url"].startswith(spec.url or "- (not published")
    assert details["scrfd_500m"]["url"].endswith("(member det_500m.onnx)")
    assert details["syncnet_v2_random"]["note"].startswith("TEST FIXTURE")
    assert "note" not in details["syncnet_v2"]
    assert main(["models", "verify"]) == 0
    out = capsys.readouterr().out
    assert f"{SMALL}: ok {registry.get(SMALL).sha256}" in out and "pfld_68: ok" in out
    path = model_dir / "pfld_68.onnx"
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    _touch(path)
    assert main(["models", "verify"]) == ModelError.exit_code
    assert "pfld_68: FAILED" in capsys.readouterr().err
    assert main(["models", "list"]) == 0
    assert "pfld_68            landmarks      yes      NO" in capsys.readouterr().out


def test_cli_errors_are_one_line(model_dir, capsys):
    assert main(["models", "fetch", "nope"]) == ModelError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("lipleak-fast: error: unknown model 'nope'") and err.count("\n") == 1
    assert (
        main(["models", "fetch", SMALL, "--from", str(model_dir / "absent")])
        == ModelError.exit_code
    )
    assert "absent: no such file or folder" in capsys.readouterr().err


# --- unpinned entries (no published sha256: the AV-HuBERT checkpoints) ---------------------


def test_unpinned_file_is_accepted_and_its_sha256_recorded(model_dir, tmp_path, caplog):
    spec = registry.get("avhubert_large")
    assert not spec.pinned and spec.url.endswith("/clean-pretrain/large_vox_iter5.pt")
    src = tmp_path / "large_vox_iter5.pt"
    src.write_bytes(b"any bytes at all")
    with caplog.at_level("WARNING", logger="lipleak.models.store"):
        path = store.fetch(spec.name, src)
        digest = store.verify(spec.name)
    assert digest == _sha(src) == _sha(path)
    assert "not pinned" in caplog.text and digest in caplog.text
    row = next(r for r in store.list_models() if r["name"] == spec.name)
    assert row["present"] and row["pinned"] is False and row["verified"] is None
    assert row["sha256"] == digest
    # an empty sha256 never names a file, and outputs that used it say it is unpinned
    assert registry.by_sha256("") is None and registry.by_sha256(digest) is None
    warnings = registry.unpinned_warnings(
        {"avhubert": {"checkpoint": {"name": spec.name, "sha256": digest, "pinned": False}}}
    )
    assert len(warnings) == 1 and digest in warnings[0] and "not pinned" in warnings[0]
    assert registry.unpinned_warnings({"checkpoint": {"sha256": digest, "pinned": True}}) == []


def test_pinned_entries_keep_refusing_a_wrong_file(model_dir, tmp_path):
    """The unpinned path must not loosen pinned ones: a pinned entry still checks."""
    bad = tmp_path / "scrfd_500m.onnx"
    bad.write_bytes(b"any bytes at all")
    with pytest.raises(ModelError, match="wrong sha256"):
        store.fetch(SMALL, bad)

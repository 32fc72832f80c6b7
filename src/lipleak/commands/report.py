"""``lipleak-fast report DIR``: report.md, report.html, results.csv/json and plots."""

from __future__ import annotations

from pathlib import Path

HELP = "write report.md, report.html, results.csv, results.json and plots from a results store"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "report",
        help=HELP,
        description=HELP
        + (
            ". Tables shaped like the paper's: one per setup with CR and AR side by side, the "
            "leakage table (LSE-C_S, LSE-D_S, LSD-CR, LSD-AR in both aggregations), per-video "
            "rows, failures, and the models, versions and settings behind the numbers."
        ),
    )
    p.add_argument("dir", type=Path, help="the directory that was scored")
    p.add_argument("--db", type=Path, help="results database (default DIR/results.sqlite)")
    p.add_argument("--out", type=Path, help="where to write the report (default DIR)")
    p.add_argument(
        "--no-fid",
        action="store_true",
        help="leave the cell FIDs out (each is a 2048x2048 matrix square root, 10-30 s)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import InputError
    from ..protocol.dataset import results_db
    from ..protocol.reporting import write_report

    db = args.db or results_db(args.dir)
    if not db.is_file():
        raise InputError(db, "no results database; run `lipleak-fast score` first", "missing")
    write_report(args.dir, db, args.out, fid=not args.no_fid)
    print(f"wrote {(args.out or args.dir) / 'report.html'}")
    return 0

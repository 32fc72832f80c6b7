"""``lipleak-fast review DB -o review.html``: the review page of a ``sync`` results store."""

from __future__ import annotations

from pathlib import Path

HELP = "write a self-contained HTML review page of a sync results store (--db of sync DIR)"


def add_parser(sub) -> None:
    from ..sync.timeline import GATE_PRESETS

    p = sub.add_parser(
        "review",
        help=HELP,
        description=HELP
        + (
            ". One file that works offline (plotly.js embedded, nothing fetched): a table of "
            "the videos, sortable by verdict, global offset, drift, LSE-C and LSE-D; per video "
            "a chart of its segment offsets in ms against the gate band, LSE-C beneath and "
            "cuts marked, thumbnails of its first failing segments, and its <video> (linked "
            "by its path relative to the page), which a click on a segment seeks to the "
            "segment's start. Verdicts are re-derived from the stored segments under the "
            "store's latest gate, or under --gate: nothing is rescored (docs/timeline.md)."
        ),
    )
    p.add_argument("db", type=Path, help="the results store written by `sync DIR --db DB`")
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("review.html"),
        help="the page to write; keep it where the videos' relative paths hold "
        "(default: %(default)s)",
    )
    g = p.add_argument_group("the gate (default: the one of the store's latest run)")
    g.add_argument(
        "--gate",
        metavar="NAME",
        help=f"re-derive verdicts under this gate: {', '.join(GATE_PRESETS)} or frames:K",
    )
    g.add_argument("--max-lead-ms", type=float, metavar="MS", help="replace its audio-lead limit")
    g.add_argument("--max-lag-ms", type=float, metavar="MS", help="replace its audio-lag limit")
    g.add_argument(
        "--min-segment-lse-c",
        type=float,
        metavar="X",
        help="segments with LSE-C below X are low_confidence (default: the run's, else 3.0)",
    )
    p.add_argument(
        "--no-thumbnails",
        action="store_true",
        help="leave out the failing segments' thumbnails (each needs its video decoded up to "
        "its last failing segment)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _rule(args, runs):
    from ..errors import InputError
    from ..sync.review import store_rule
    from ..sync.timeline import TimelineRule, parse_gate

    if args.gate is None and args.max_lead_ms is None and args.max_lag_ms is None:
        if args.min_segment_lse_c is None:
            return None
        base = store_rule(runs)
        return TimelineRule(base.gate, args.min_segment_lse_c)
    base = store_rule(runs)
    try:
        gate = parse_gate(
            args.gate or base.gate.name.split(" (")[0], args.max_lead_ms, args.max_lag_ms
        )
        return TimelineRule(
            gate, base.min_lse_c if args.min_segment_lse_c is None else args.min_segment_lse_c
        )
    except ValueError as exc:
        raise InputError(None, f"--gate: {exc}", "bad_option") from None


def run(args) -> int:
    from tqdm import tqdm

    from ..sync.review import read_store, write_review

    _, runs = read_store(args.db)  # a missing or foreign store: exit 2 before anything else
    rule = _rule(args, runs)
    with tqdm(unit="video", desc="thumbnails", disable=args.quiet or args.no_thumbnails) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        page = write_review(args.db, args.out, rule, not args.no_thumbnails, progress)
    for note in page["notes"]:
        print(f"note: {note}")
    print(f"wrote {args.out} ({len(page['videos'])} videos)")
    return 0

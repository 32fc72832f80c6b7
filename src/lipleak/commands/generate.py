"""``lipleak-fast generate PLAN --cmd '...'``: run a generator over a plan, resumably."""

from __future__ import annotations

from pathlib import Path

HELP = "run any generator's command line over every job of a plan (resumable)"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "generate",
        help=HELP,
        description=HELP
        + (
            ". Placeholders in --cmd: {video} (GT video), {audio} (driving audio wav), {out} "
            "(where to write the generated video), {ref_frames} ('current' for CR, else "
            "comma-separated frame indices), {reference} (CR/AR), {setup} (AM/XM/SI), {stem}. "
            "Outputs that exist are skipped; a job's output appears only when its command "
            "succeeds; failures are listed with their stderr tail in generate_failures.jsonl "
            "and retried on the next run."
        ),
    )
    p.add_argument("plan", type=Path, help="plan.json or the folder holding it")
    p.add_argument("--cmd", required=True, help="command line template, run with the shell")
    p.add_argument("--jobs", type=int, default=1, help="commands run at once (default 1)")
    p.add_argument("--out", type=Path, help="output root (default: the plan's folder)")
    p.add_argument(
        "--cells", nargs="+", metavar="SETUP/REF", help="only these cells, e.g. AM/CR XM/AR"
    )
    p.add_argument("--timeout", type=float, help="seconds before a job is killed")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import LipleakError
    from ..protocol.runner import generate

    only = None
    if args.cells:
        try:
            only = {tuple(c.upper().split("/")) for c in args.cells}
        except ValueError:
            raise LipleakError("--cells takes SETUP/REF items such as AM/CR") from None
    r = generate(
        args.plan,
        args.cmd,
        jobs=args.jobs,
        out_dir=args.out,
        only=only,
        timeout=args.timeout,
        quiet=args.quiet,
    )
    if not args.quiet:
        print(f"generated {r['generated']}, skipped {r['skipped']} existing, failed {r['failed']}")
    return 4 if r["failed"] else 0

"""``lipleak-fast generate PLAN --cmd '...'``: run a generator over a plan, resumably."""

from __future__ import annotations

from pathlib import Path

from .limits import float_at_least, int_in

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
            "The template is split into words once, as sh would split it (quotes and "
            "backslashes honoured), and each job runs without a shell: a placeholder's value "
            "goes verbatim into its word whether it is written {video}, '{video}' or "
            '"{video}", so paths with spaces, quotes, ; or $() are safe and never run. A '
            "literal brace is written {{ or }}. Shell syntax (|, >, <, ;, &&, $, backticks, "
            "globs) is refused; to use it, pass the paths as arguments to an explicit shell, "
            'e.g. the template: bash -c \'python inference.py --face "$1" --outfile "$2" > '
            '"$2.log"\' _ {video} {out} (placeholders inside the bash -c code are refused). '
            "Leading NAME=value words set the command's "
            "environment; a leading ~ is expanded. "
            "Outputs that exist are skipped; a job's output appears only when its command "
            "succeeds; failures are listed with their stderr tail in generate_failures.jsonl "
            "and retried on the next run."
        ),
    )
    p.add_argument("plan", type=Path, help="plan.json or the folder holding it")
    p.add_argument(
        "--cmd", required=True, help="command line template, run without a shell (see above)"
    )
    p.add_argument("--jobs", type=int_in(1), default=1, help="commands run at once (default 1)")
    p.add_argument("--out", type=Path, help="output root (default: the plan's folder)")
    p.add_argument(
        "--cells", nargs="+", metavar="SETUP/REF", help="only these cells, e.g. AM/CR XM/AR"
    )
    p.add_argument(
        "--timeout", type=float_at_least(0, strict=True), help="seconds before a job is killed"
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import UsageError
    from ..protocol.runner import generate

    only = None
    if args.cells:
        try:
            only = {tuple(c.upper().split("/")) for c in args.cells}
        except ValueError:
            raise UsageError("--cells takes SETUP/REF items such as AM/CR") from None
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

"""``lipleak-fast plan GT_DIR OUT_DIR``: audio, reference frames and jobs of the protocol."""

from __future__ import annotations

from pathlib import Path

HELP = "write the SI/AM/XM x CR/AR generation plan for a folder of ground-truth videos"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "plan",
        help=HELP,
        description=HELP
        + (
            ". For every GT video (audio inside it or in a sibling .wav): the silent audio (exact "
            "zeros), the XM driving audio (a seeded derangement: never the video's own audio; cut "
            "to the GT length or repeated from its start when shorter), the AR reference frame "
            "indices, plan.json and jobs.jsonl. The same inputs and seed give byte-identical files."
        ),
    )
    p.add_argument("gt_dir", type=Path, help="folder of ground-truth videos")
    p.add_argument("out_dir", type=Path, help="where the plan, audio and (later) videos go")
    p.add_argument("--seed", type=int, default=0, help="seed of the XM pairing and AR frames")
    p.add_argument(
        "--ar",
        default="first",
        metavar="first|random|multi:K",
        help="alternative-reference frames: the first frame (default), one random "
        "frame, or K random frames",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    p.set_defaults(func=run)


def run(args) -> int:
    from tqdm import tqdm

    from ..protocol.planner import make_plan

    # two passes over the GT audio (hash, then write): one bar step per video and pass; the
    # bar starts with the first step, so a refused folder prints its error line alone
    bar = None

    def progress(message: str) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(unit="step", desc="plan", disable=args.quiet, leave=False)
        bar.set_postfix_str(message, refresh=False)
        bar.update(1)

    try:
        plan = make_plan(args.gt_dir, args.out_dir, seed=args.seed, ar=args.ar, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        n = len(plan["videos"])
        print(
            f"planned {n} videos x 6 cells = {6 * n} jobs in {args.out_dir} "
            f"(seed {args.seed}, AR {args.ar})"
        )
        for v in plan["videos"]:
            print(f"  {v['stem']}: XM driven by {v['xm_driver']}, AR frames {v['ar_frames']}")
    return 0

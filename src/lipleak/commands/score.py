"""``lipleak-fast score DIR``: the whole SI/AM/XM x CR/AR protocol, resumable."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UsageError
from .limits import WORKERS_LIMIT, int_in
from .sync import add_avs_options, add_sync_options, avs_from_args, settings_from_args

LOCAL_RAY = "local"  # --ray without ADDRESS (== lipleak.protocol.distributed.LOCAL)

HELP = "score every cell of a protocol directory (resumable; writes the report at the end)"

EXIT_POLICY = (
    "Exit status: 0 when every video was scored; 4 when the run finished but some "
    "videos failed (each has a row 'failed: <reason>'); 1-3 when the run itself "
    "could not go on (bad options, missing models, another run on DIR)."
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "score",
        help=HELP,
        description=HELP
        + (
            ". DIR holds AM/, XM/, SI/, each with CR/ and AR/ subfolders of generated videos "
            "named like the GT stems, and the GT videos in DIR/gt/ (or --gt). AM and SI are "
            "scored against the GT audio, XM against the plan's driving audio (without a plan: "
            "the generated video's own audio track). Results go to an SQLite store, committed "
            "per video; rerunning skips what is done unless inputs, settings or models changed. "
            + EXIT_POLICY
        ),
    )
    p.add_argument("dir", type=Path, help="protocol directory")
    p.add_argument("--gt", type=Path, help="ground-truth videos (default DIR/gt)")
    p.add_argument("--plan", type=Path, help="plan.json (default DIR/plan.json if present)")
    p.add_argument("--db", type=Path, help="results database (default DIR/results.sqlite)")
    p.add_argument(
        "--no-visual",
        action="store_true",
        help="LSE only: skip SSIM, PSNR, FID, CSIM, LMD and mouth motion",
    )
    p.add_argument(
        "--crop",
        choices=("face", "full"),
        default="face",
        help="visual metrics on face crops (default) or full frames",
    )
    p.add_argument(
        "--arcface",
        default="w600k_r50",
        metavar="NAME|PATH",
        help="ArcFace model for CSIM (registry name or ONNX path). Default: "
        "%(default)s; CSIM is reported as not computed when it is absent",
    )
    p.add_argument(
        "--lpips",
        choices=("alex", "vgg", "none"),
        default="alex",
        help="LPIPS v0.1 trunk (on the SSIM crops). Default: %(default)s; LPIPS is reported "
        "as not computed when its model files are absent",
    )
    p.add_argument(
        "--lpips-trunk",
        metavar="PATH",
        help="a trunk checkpoint in torchvision's layout instead of the registry's "
        "(its sha256 is recorded)",
    )
    p.add_argument("--retry-failed", action="store_true", help="rescore videos that failed")
    p.add_argument("--no-report", action="store_true", help="do not write the report")
    p.add_argument(
        "--no-fid",
        action="store_true",
        help="write the report without the cell FIDs (each is a 2048x2048 matrix square "
        "root, 10-30 s on 2 cores; cached once computed)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    p.add_argument(
        "--workers",
        type=int_in(1, WORKERS_LIMIT),
        default=2,
        metavar="N",
        help="stems scored at once in this process, sharing the models and one SyncNet "
        "that batches windows from all of them; with 2 or more, each worker runs the shared "
        "CPU models on its own thread (not one pool for all). Never changes a number. "
        "Default: %(default)s",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const=LOCAL_RAY,
        metavar="ADDRESS",
        help="score on Ray workers (needs the 'ray' extra; DIR on a filesystem all "
        "nodes see). ADDRESS: a cluster's host:port, ray://host:port or 'auto'; "
        "without it: $RAY_ADDRESS, else the cluster started on this machine, else "
        "a new local instance",
    )
    p.add_argument(
        "--ray-workers",
        type=int_in(1),
        metavar="N",
        help="Ray workers (default: one per GPU of the cluster, or one per CPU when it has no GPU)",
    )
    add_sync_options(p)
    add_avs_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..models.registry import fixture_warnings
    from ..protocol.reporting import write_report
    from ..protocol.scoring import DirectoryScorer, ScoreOptions

    visual = None
    if not args.no_visual:
        from ..visual import VisualSettings

        visual = VisualSettings(
            crop=args.crop,
            arcface=args.arcface,
            lpips=args.lpips,
            lpips_trunk=args.lpips_trunk,
            detector=args.detector,
            batch_size=args.batch_size,
            backend=args.backend,
        )
    opts = ScoreOptions(
        sync=settings_from_args(args),
        visual=visual,
        avs=avs_from_args(args),
        db=args.db,
        plan=args.plan,
        gt=args.gt,
        retry_failed=args.retry_failed,
        quiet=args.quiet,
        workers=args.workers,
    )
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    executor = None
    if args.ray is not None:
        from ..protocol.distributed import RayExecutor

        executor = RayExecutor(
            opts.sync, visual, address=args.ray, workers=args.ray_workers, avs=opts.avs
        )
    elif args.ray_workers is not None:
        raise UsageError("--ray-workers needs --ray")
    scorer = DirectoryScorer(args.dir, opts, executor=executor)
    lay = scorer.layout
    if not args.quiet:
        for s, r in lay.not_run:
            print(f"cell {s}/{r}: not run (no folder {args.dir / s / r})", file=sys.stderr)
        for (s, r), stems in lay.missing.items():
            if stems:
                print(
                    f"cell {s}/{r}: missing {len(stems)} video(s): {', '.join(stems)}",
                    file=sys.stderr,
                )
        for item in scorer.ignored():
            print(f"not scored: {item['path']}: {item['reason']}", file=sys.stderr)
    counts = scorer.run(sys.argv[1:])
    warnings = fixture_warnings(scorer.provenance or {})
    if not args.no_report:
        # the minutes after the last video (cell FIDs, plots) are said, not silent
        write_report(
            args.dir,
            scorer.db_path,
            fid=not args.no_fid,
            progress=lambda m: None if args.quiet else print(f"report: {m}", file=sys.stderr),
        )
    for w in warnings:  # even with --quiet: the numbers in the store are not what they seem
        print(f"lipleak-fast: warning: {w}", file=sys.stderr)
    if not args.quiet:
        print(
            f"scored {counts['scored']}, skipped {counts['skipped']} already done, "
            f"failed {counts['failed']}; results in {scorer.db_path}"
        )
        if not args.no_report:
            print(f"report: {args.dir / 'report.html'}")
    return 4 if counts["failed"] else 0

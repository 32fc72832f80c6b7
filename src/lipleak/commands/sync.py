"""``lipleak-fast sync PATH [PATH ...]``: offset, LSE-C and LSE-D (SPEC §2) of one video, or
of many in one resumable run (files, folders, @LIST files)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import InputError, UsageError
from ..names import shown
from .limits import BATCH_LIMIT, VSHIFT_LIMIT, WORKERS_LIMIT, float_at_least, int_in
from .sync_timeline import (
    FAIL_ON_EXIT,
    add_timeline_options,
    check_timeline_options,
    timeline_kwargs,
    timeline_lines,
)

_RULE_WORDS = {
    "weighted-mean": "frame-weighted mean over tracks; offset of the longest track",
    "best": "the track with the highest LSE-C",
    "longest": "the longest track",
}

HELP = (
    "LSE-C / LSE-D / offset with SyncNet (per face track and per video) of one video, or of "
    "many in one resumable run"
)

VOLUME_HELP = (
    "One video file prints its table (or --json). Several paths, a folder (searched "
    "recursively for video containers) or an @LIST file (one video per line, or "
    "video<TAB>audio) make a volume run: every finished video is committed at once to a "
    "results store (--db) and printed as a row; a rerun skips what is done unless the "
    "video, its audio, the settings or a model changed; a video that cannot be scored is a "
    "failed row with its reason and the run goes on. At the end: count, failures, mean "
    "LSE-C and LSE-D (averaged as Wav2Lip's calculate_scores_LRS.py does, over the videos "
    "scored) and their spread; --csv/--jsonl/--keep-list write every row. Exit status: 0 "
    "when every video has an ok row, 4 when the run finished but some failed, 1-3 when the "
    "run itself could not go on."
)
LOCAL_RAY = "local"  # --ray without ADDRESS (== lipleak.protocol.distributed.LOCAL)
DEFAULT_DB = "lipleak-sync.sqlite"


SCRFD_NAMES = ("scrfd_500m", "det_10g")  # the detectors LPIPS crops (--gt-dir) can use


def add_sync_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs SyncNet."""
    g = p.add_argument_group("SyncNet scoring")
    g.add_argument(
        "--mode",
        choices=("prealigned", "detect"),
        default="prealigned",
        help="prealigned: every full frame resized to 224x224 (Wav2Lip's LRS2 "
        "protocol); detect: face detection (--detector), IoU tracking and the "
        "syncnet_python crop (in-the-wild video). Default: %(default)s",
    )
    g.add_argument(
        "--reference-frames",
        action="store_true",
        help="score the JPEG frames syncnet_python reads (`ffmpeg -i VIDEO -threads 1 -f "
        "image2 %%06d.jpg`, made by the ffmpeg on PATH or --ffmpeg) to match numbers "
        "computed with the reference tool; without an ffmpeg binary, PyAV's bundled "
        "encoder with a warning (default: lossless frames straight from the decoder)",
    )
    g.add_argument(
        "--ffmpeg",
        metavar="PATH",
        help="the ffmpeg binary that makes the --reference-frames JPEGs, i.e. the one the "
        "reference tool ran (default: ffmpeg on PATH); its version is recorded and hashed",
    )
    g.add_argument(
        "--syncnet",
        default="syncnet_v2",
        metavar="NAME|PATH",
        help="SyncNet checkpoint: a registry name (see `models list`) or a "
        "checkpoint file. Default: %(default)s",
    )
    g.add_argument(
        "--detector",
        default="scrfd_500m",
        metavar="NAME|PATH",
        help="face detector for --mode detect: scrfd_500m or det_10g (SCRFD), s3fd "
        "(face-alignment's S3FD), or an S3FD checkpoint file (.pth) such as syncnet_python's "
        "sfd_face.pth; S3FD runs syncnet_python's detect_faces and is exported to ONNX on "
        "first use (needs the export extra). Default: %(default)s",
    )
    g.add_argument(
        "--batch-size",
        type=int_in(1, BATCH_LIMIT),
        default=32,
        metavar="N",
        help="SyncNet windows per batch; never changes a number. Default: %(default)s",
    )
    g.add_argument(
        "--vshift",
        type=int_in(0, VSHIFT_LIMIT),
        default=15,
        help=f"offset search range in frames, ±N (0..{VSHIFT_LIMIT}). Default: %(default)s",
    )
    g.add_argument(
        "--min-track",
        type=int_in(1),
        default=100,
        metavar="FRAMES",
        help="detect mode: keep face tracks longer than this (reference: 100)",
    )
    g.add_argument(
        "--min-face-size",
        type=float_at_least(0),
        default=100.0,
        metavar="PX",
        help="detect mode: keep tracks whose mean box side exceeds this (reference: 100)",
    )
    g.add_argument(
        "--tracks",
        default="weighted-mean",
        choices=("weighted-mean", "best", "longest"),
        help="detect mode: the video's numbers from its face tracks. weighted-mean: "
        "frame-weighted mean LSE-C/D, the longest track's offset; best: the track with the "
        "highest LSE-C, its LSE-D and offset (MoChaBench); longest: the longest track's. "
        "Every track's row is printed either way. Default: %(default)s",
    )
    g.add_argument(
        "--shots",
        default="content",
        choices=("content", "none"),
        help="detect mode: content splits the video into shots first (PySceneDetect "
        "0.6.7.1's ContentDetector with its defaults on the 25-fps frames, as syncnet_python "
        "does) and tracks faces per shot, so no track crosses a cut; every shot is "
        "reported, also those shorter than --min-track (not tracked). none: the whole video "
        "is one shot. prealigned mode is always one shot. Default: %(default)s",
    )
    g.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "tensorrt", "ort-cuda", "ort-tensorrt", "torch", "cpu"),
        help="inference backend; auto picks the best available (see `doctor`); torch "
        "runs the ONNX models in PyTorch, on a GPU when torch sees one (auto takes it "
        "only there), else on the CPU. Default: %(default)s",
    )
    g.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "fp16", "bf16"),
        help="SyncNet's precision: fp16 on tensorrt or torch, bf16 on torch; both move "
        "LSE slightly and are recorded in the settings hash (visual metrics stay fp32). "
        "Default: %(default)s",
    )
    g.add_argument(
        "--decoder",
        default="cpu",
        choices=("auto", "cpu", "dali"),
        help="video decoder: cpu (PyAV, the reference pixels), dali (NVDEC on the GPU; "
        "frames differ by a few levels, so it is part of the settings hash) or auto (DALI "
        "for the videos it can decode, else the CPU). Default: %(default)s",
    )


def settings_from_args(args):
    from ..sync import SyncSettings

    # Checked before SyncSettings (which checks it too) to name the option and keep its
    # exit status.
    if args.batch_size < 1:
        raise InputError(None, "--batch-size must be at least 1", "bad_option")
    if args.ffmpeg and not args.reference_frames:
        raise InputError(None, "--ffmpeg needs --reference-frames", "bad_option")
    return SyncSettings(
        mode=args.mode,
        reference_frames=args.reference_frames,
        vshift=args.vshift,
        min_track=args.min_track,
        min_face_size=args.min_face_size,
        detector=args.detector,
        syncnet=args.syncnet,
        batch_size=args.batch_size,
        backend=args.backend,
        precision=args.precision,
        decoder=args.decoder,
        ffmpeg_path=args.ffmpeg or "",
        tracks=args.tracks,
        shots=args.shots,
        **timeline_kwargs(args),
    )


def add_avs_options(p: argparse.ArgumentParser, gt: bool = True) -> None:
    """The AV-HuBERT sync metrics' options (SPEC §9), off unless ``--avs`` is given."""
    g = p.add_argument_group("AV-HuBERT sync metrics (AVS_u, AVS_m, AVS_v)")
    what = (
        "also compute AVS_u (every video, no GT needed) and AVS_m/AVS_v (against the GT)"
        if gt
        else "also compute AVS_u (shift-invariant AV-HuBERT sync, no GT needed) of every "
        "video with its audio: an avs_u column in rows, CSV, JSONL and the summary; one "
        "video then prints a row like many"
    )
    g.add_argument(
        "--avs",
        metavar="NAME|PATH",
        help=what + " with this AV-HuBERT checkpoint: avhubert_large (large_vox_iter5.pt, "
        "the default of SPEC §9) or avhubert_base from the model dir (lipleak-fast models "
        "fetch NAME), or a checkpoint file in av_hubert's fairseq format. Exported to ONNX "
        "on first use (needs the export extra). Off by default",
    )
    g.add_argument(
        "--avs-window",
        type=int_in(0),
        default=0,
        metavar="K",
        help="run AV-HuBERT's encoder over windows of K frames instead of the whole clip "
        "(bounds memory on long videos; changes the features, so it is in the settings "
        "hash). Default: 0, the whole clip",
    )


def avs_from_args(args):
    """``AVSSettings`` from ``--avs``/``--avs-window`` (None without ``--avs``)."""
    if getattr(args, "avs", None) is None:
        if getattr(args, "avs_window", 0):
            raise InputError(None, "--avs-window needs --avs", "bad_option")
        return None
    from ..avs import AVSSettings

    if args.avs_window < 0:
        raise InputError(None, "--avs-window must be 0 (whole clip) or more", "bad_option")
    return AVSSettings(
        model=args.avs,
        window=args.avs_window,
        batch_size=args.batch_size,
        backend=args.backend,
    )


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sync",
        help=HELP,
        description=HELP + ". " + VOLUME_HELP + " Output names the settings and the sha256 "
        "of every model used.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="PATH",
        help="a video file (any container/codec FFmpeg reads), a folder (recursive), or "
        "@LIST: a text file with one video per line, or video<TAB>audio",
    )
    p.add_argument(
        "--audio",
        type=Path,
        metavar="FILE",
        help="score the one video against this audio (wav or any media file) instead of "
        "its own audio track",
    )
    p.add_argument(
        "--audio-stream",
        type=_stream_spec,
        metavar="N|lang:CODE|all",
        help="which audio stream of the video's own audio is scored: the N-th (from 0, as "
        "ffmpeg's -map 0:a:N), the first tagged language CODE, or all of them (one row per "
        "stream, each with its language; one decode and one SyncNet lip pass per video). "
        "Default: the stream ffmpeg picks (marked default, else the most channels)",
    )
    p.add_argument(
        "--audio-dir",
        type=Path,
        metavar="DIR",
        help="score each video against the audio file of the same stem in DIR",
    )
    p.add_argument(
        "--gt-dir",
        type=Path,
        metavar="DIR",
        help="the ground-truth video of each video is the video of the same stem in DIR "
        "(any container): adds LPIPS (on face crops, as score) to each row, CSV/JSONL and "
        "the summary; a video without a GT keeps its LSE and says so",
    )
    p.add_argument(
        "--lpips",
        choices=("alex", "vgg"),
        default=None,
        help="LPIPS v0.1 trunk with --gt-dir (its model files must be in the model dir). "
        "Default: alex",
    )
    p.add_argument(
        "--lpips-trunk",
        metavar="PATH",
        help="with --gt-dir: a trunk checkpoint in torchvision's layout instead of the "
        "registry's (its sha256 is recorded)",
    )
    p.add_argument("--json", action="store_true", help="one video: print one JSON object")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="one video: no progress bar (frames, frames/s, ETA) on stderr; it is shown "
        "only when stderr is a terminal",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="one video: also give mdist (31 values) and per-frame confidence per track",
    )
    v = p.add_argument_group("many videos")
    v.add_argument(
        "--db",
        type=Path,
        metavar="FILE",
        help=f"results store (SQLite); default {DEFAULT_DB} in the folder of the first of "
        "--csv, --jsonl, --keep-list, else in the current folder",
    )
    v.add_argument("--csv", type=Path, metavar="FILE", help="write every row as CSV")
    v.add_argument(
        "--jsonl", type=Path, metavar="FILE", help="write every row as JSON lines (tracks nested)"
    )
    v.add_argument(
        "--keep-list",
        type=Path,
        metavar="FILE",
        help="write the videos that pass --min-lse-c/--max-lse-d/--max-abs-offset (an @LIST)",
    )
    v.add_argument("--min-lse-c", type=float, metavar="X", help="keep: LSE-C >= X")
    v.add_argument("--max-lse-d", type=float, metavar="Y", help="keep: LSE-D <= Y")
    v.add_argument("--max-abs-offset", type=int_in(0), metavar="K", help="keep: |offset| <= K")
    v.add_argument(
        "--workers",
        type=int_in(1, WORKERS_LIMIT),
        default=2,
        metavar="N",
        help="videos prepared at once (decode, crops, MFCC, face detection) while one "
        "SyncNet runs batches mixed from all of them; never changes a number (at most "
        f"{WORKERS_LIMIT}: each holds a video in memory). Default: %(default)s",
    )
    v.add_argument(
        "--ray",
        nargs="?",
        const=LOCAL_RAY,
        metavar="ADDRESS",
        help="score on Ray workers, each with its own pipeline (paths must be the same on "
        "every node). ADDRESS: host:port, ray://host:port or 'auto'; without it: "
        "$RAY_ADDRESS, else the cluster started here, else a new local instance",
    )
    v.add_argument("--ray-workers", type=int_in(1), metavar="N", help="number of Ray workers")
    v.add_argument("--retry-failed", action="store_true", help="rescore videos that failed")
    v.add_argument(
        "--checkpoint-every",
        type=float_at_least(0),
        default=60.0,
        metavar="SECONDS",
        help="save the progress of a video being scored in the results store every SECONDS "
        "of video, so that a killed run goes on from there when rerun (numbers bit for bit "
        "those of an uninterrupted run; a changed file, setting or model starts it again "
        "from frame 0); 0: never. Not with --ray. Default: %(default)g",
    )
    v.add_argument("--quiet", action="store_true", help="no progress bar and no per-video rows")
    add_sync_options(p)
    add_avs_options(p, gt=False)
    add_timeline_options(p)
    p.set_defaults(func=run)


_VOLUME_ONLY = (
    "audio_dir",
    "db",
    "csv",
    "jsonl",
    "keep_list",
    "min_lse_c",
    "max_lse_d",
    "max_abs_offset",
    "ray",
    "ray_workers",
    "retry_failed",
)


def _stream_spec(text: str):
    from ..io.streams import parse_spec

    try:
        return parse_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _single_video(args) -> bool:
    """One video file and no option of a volume run: today's one-video output."""
    if len(args.inputs) != 1 or any(getattr(args, k) not in (None, False) for k in _VOLUME_ONLY):
        return False
    first = str(args.inputs[0])
    return not first.startswith("@") and not Path(first).is_dir()


def run(args) -> int:
    if args.workers < 1:
        raise InputError(None, "--workers must be at least 1", "bad_option")
    if args.gt_dir is None and (args.lpips is not None or args.lpips_trunk is not None):
        # LPIPS compares each video with its ground truth: without one there is nothing
        # to compute, and a silently ignored option would look like a scored column
        raise InputError(None, "--lpips/--lpips-trunk need --gt-dir", "bad_option")
    args.lpips = args.lpips or "alex"
    args.fail_on_verdicts = check_timeline_options(args)
    if args.audio_stream is not None and (args.audio is not None or args.audio_dir is not None):
        raise UsageError(
            "--audio-stream picks a stream of the video's own audio: not with --audio/--audio-dir"
        )
    if args.audio_stream is not None and args.ray is not None:
        raise UsageError("--audio-stream runs in this process, not with --ray")
    # --avs/--gt-dir/--audio-stream all go through the volume path even for one video:
    # rows, store, summary
    one_row = args.avs is None and args.gt_dir is None and args.audio_stream != "all"
    if _single_video(args) and one_row:
        args.video = Path(args.inputs[0])
        return run_one(args)
    if args.audio is not None:
        raise InputError(
            None,
            "--audio names the audio of one video; for many, use --audio-dir or an @LIST "
            "with video<TAB>audio lines",
            "bad_option",
        )
    if args.json or args.verbose:
        raise InputError(
            None, "--json/--verbose print one video; for many, use --jsonl FILE", "bad_option"
        )
    return run_many(args)


def _db_path(args) -> Path:
    if args.db is not None:
        return args.db
    for out in (args.csv, args.jsonl, args.keep_list):
        if out is not None:
            return out.parent / DEFAULT_DB
    return Path(DEFAULT_DB)


def run_many(args) -> int:
    from tqdm import tqdm

    from ..models.registry import fixture_warnings
    from ..sync import SyncScorer
    from ..sync import rows as out
    from ..sync.inputs import collect_jobs
    from ..sync.results import RunLock, SyncStore, lock_path
    from ..sync.segment_rows import write_segments
    from ..sync.timeline import row_timeline
    from ..sync.volume import LocalExecutor, VolumeRun

    keep_opts = (args.min_lse_c, args.max_lse_d, args.max_abs_offset)
    if any(x is not None for x in keep_opts) and args.keep_list is None:
        raise InputError(
            None, "--min-lse-c/--max-lse-d/--max-abs-offset need --keep-list", "bad_option"
        )
    if args.ray_workers is not None and args.ray is None:
        raise InputError(None, "--ray-workers needs --ray", "bad_option")
    db = _db_path(args)
    outputs = [p for p in (db, args.csv, args.jsonl, args.keep_list) if p is not None]
    jobs, ignored = collect_jobs(args.inputs, args.audio_dir, exclude=outputs)
    if args.gt_dir is not None:
        from ..sync.inputs import pair_gt

        jobs = pair_gt(jobs, args.gt_dir)
    if args.audio_stream is not None:
        from ..sync.streams import expand

        jobs = expand(jobs, args.audio_stream)
    if not args.quiet:
        for path, why in ignored:
            print(f"not scored: {shown(path)}: {why}", file=sys.stderr)
    if not jobs:
        raise InputError(None, "no video to score in " + " ".join(map(str, args.inputs)), "missing")
    settings = settings_from_args(args)
    avs_settings = avs_from_args(args)
    if args.ray is not None:
        from ..protocol.distributed import SyncRayExecutor

        if avs_settings is not None or args.gt_dir is not None:
            raise InputError(
                None, "sync --avs/--gt-dir run in this process, not with --ray", "bad_option"
            )
        executor = SyncRayExecutor(settings, address=args.ray, workers=args.ray_workers)
    else:
        avs = None
        if avs_settings is not None:
            from ..avs import AVSScorer

            avs = AVSScorer(avs_settings)
        pair = None
        if args.gt_dir is not None:
            from ..visual import VisualSettings
            from ..visual.pair import PairScorer

            pair = PairScorer(
                VisualSettings(
                    lpips=args.lpips,
                    lpips_trunk=args.lpips_trunk,
                    detector=args.detector if args.detector in SCRFD_NAMES else "scrfd_500m",
                    batch_size=args.batch_size,
                    backend=args.backend,
                )
            )
        scorer = SyncScorer(settings, concurrent=args.workers > 1)
        executor = LocalExecutor(scorer, workers=args.workers, avs=avs, pair=pair)
    with RunLock(lock_path(db)):
        store = SyncStore(db)
        try:
            run = VolumeRun(
                jobs,
                store,
                executor,
                retry_failed=args.retry_failed,
                checkpoint_every=args.checkpoint_every or None,
            )
            run.start()
            warnings = fixture_warnings(run.provenance)
            for w in warnings:
                print(f"lipleak-fast: warning: {w}", file=sys.stderr)
            bar = tqdm(
                total=len(jobs),
                unit="video",
                desc="sync",
                disable=args.quiet,
                dynamic_ncols=True,
                file=sys.stderr,
            )
            if not args.quiet:
                bar.write(out.format_header(), file=sys.stdout)

            def on_row(row: dict) -> None:
                if not args.quiet:
                    bar.write(out.format_row(row), file=sys.stdout)
                bar.update(1)

            counts = run.run(sys.argv[1:], on_row=on_row, on_skip=lambda job: bar.update(1))
            bar.close()
            rows = run.rows()
        finally:
            store.close()
    rule = settings.timeline_rule()  # verdicts re-derived under this run's gate
    for r in rows:
        r["timeline"] = row_timeline(r, rule)
    if args.segments is not None:
        write_segments(Path(args.segments), rows)
    if args.csv is not None:
        out.write_csv(args.csv, rows)
    if args.jsonl is not None:
        out.write_jsonl(args.jsonl, rows)
    if args.keep_list is not None:
        out.write_keep_list(args.keep_list, out.keep(rows, *keep_opts))
    print(out.format_summary(out.summarize(rows)))
    print(
        f"scored {counts.scored}, skipped {counts.skipped} already done, failed "
        f"{counts.failed}; run {run.hash}; results in {db}"
    )
    if any(r["status"] != "ok" for r in rows):
        return 4
    return FAIL_ON_EXIT if _fails(args, [r["timeline"] for r in rows]) else 0


def _fails(args, timelines: list[dict | None]) -> bool:
    """Some video got a ``--fail-on`` verdict."""
    return any(t is not None and t["verdict"] in args.fail_on_verdicts for t in timelines)


class FrameProgress:
    """A progress bar on stderr for one video: frames scored, frames/s and an ETA
    (detect mode's two passes count the video twice)."""

    def __init__(self, disable: bool = False):
        self.disable = disable or not sys.stderr.isatty()
        self.bar = None

    def __enter__(self) -> FrameProgress:
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.disable:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, unit="frame", desc="sync", file=sys.stderr, dynamic_ncols=True
            )
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def run_one(args) -> int:
    from ..models.registry import fixture_warnings
    from ..sync import SyncScorer

    if not args.video.exists():
        raise InputError(args.video, "no such file", "missing")
    if args.audio is not None and not args.audio.exists():
        raise InputError(args.audio, "no such audio file", "missing")
    from ..sync.pipeline import served

    scorer = SyncScorer(settings_from_args(args))
    stream = None
    if args.audio_stream is not None:
        from ..io.streams import choose

        stream = choose(args.video, args.audio_stream)
    with served(scorer) as one, FrameProgress(disable=args.no_progress) as progress:
        result = one.score(args.video, args.audio, stream=stream, progress=progress)
    provenance = scorer.describe()
    warnings = fixture_warnings(provenance)
    if args.segments is not None:
        from ..sync.results import row_from_result
        from ..sync.segment_rows import write_segments

        key = (str(args.video), "" if args.audio is None else str(args.audio))
        write_segments(Path(args.segments), [row_from_result(key, result)])
    status = FAIL_ON_EXIT if _fails(args, [result.timeline]) else 0
    if args.json:
        for w in warnings:  # on stderr as well, so that --json piped into a file still shows it
            print(f"lipleak-fast: warning: {w}", file=sys.stderr)
        out = {
            "result": result.to_dict(verbose=args.verbose),
            "provenance": provenance,
            "warnings": warnings,
        }
        json.dump(out, sys.stdout, indent=1)
        print()
        return status
    for w in warnings:
        print(f"WARNING: {w}")
    resampled = f", resampled from {result.src_fps:.3f} fps" if result.resampled else ""
    encoder = f" by {scorer.settings.ffmpeg}" if scorer.settings.reference_frames else ""
    shift = result.audio_shift_s
    placed = f", shifted {shift:+.3f} s onto the video's timeline" if shift else ""
    if result.audio_stream is not None:
        st = result.audio_stream
        placed = f" a:{st['number']} ({st['language'] or 'und'}, {st['codec']})" + placed
    print(
        f"{shown(result.video)}  ({result.n_frames} frames at 25 fps{resampled}; "
        f"frames: {result.frame_path}{encoder}; audio: {result.audio_source}{placed})"
    )
    if args.mode == "detect":
        for sh in result.shots:
            tracked = "" if sh.tracked else "  (shorter than --min-track: not tracked)"
            print(
                f"shot {sh.index:>3} frames {sh.start_frame:>5}-{sh.end_frame:<5} "
                f"{sh.start_s:9.2f}-{sh.end_s:.2f} s{tracked}"
            )
    print(f"{'track':>5} {'frames':>11} {'offset':>6} {'LSE-C':>8} {'LSE-D':>8} {'shot':>5}")
    for i, t in enumerate(result.tracks):
        print(
            f"{i:>5} {t.start_frame:>5}-{t.end_frame:<5} {t.offset:>6} {t.lse_c:>8.4f} "
            f"{t.lse_d:>8.4f} {t.shot:>5}"
        )
        if args.verbose:
            print("      mdist: " + " ".join(f"{x:.4f}" for x in t.mdist))
    print(
        f"{'video':>5} {'':>11} {result.offset:>6} {result.lse_c:>8.4f} {result.lse_d:>8.4f}"
        f"   ({_RULE_WORDS[result.track_rule]})"
    )
    for line in timeline_lines(result.timeline):
        print(line)
    d = provenance
    ckpt = d["models"]["syncnet"]["checkpoint"]
    print(
        f"settings {d['settings_hash']}: mode={args.mode} vshift={args.vshift}; "
        f"syncnet {ckpt['name']} sha256 {ckpt['sha256'][:16]}…; "
        f"backend {d['models']['syncnet']['backend']}"
    )
    return status

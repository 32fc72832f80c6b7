"""``lipleak-fast sync VIDEO``: offset, LSE-C and LSE-D of one video (SPEC §2)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import InputError

_RULE_WORDS = {
    "weighted-mean": "frame-weighted mean over tracks; offset of the longest track",
    "best": "the track with the highest LSE-C",
    "longest": "the longest track",
}

HELP = "LSE-C / LSE-D / offset of one video with SyncNet (per face track and per video)"


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
        type=int,
        default=32,
        metavar="N",
        help="SyncNet windows per batch; never changes a number. Default: %(default)s",
    )
    g.add_argument(
        "--vshift",
        type=int,
        default=15,
        help="offset search range in frames, ±N. Default: %(default)s",
    )
    g.add_argument(
        "--min-track",
        type=int,
        default=100,
        metavar="FRAMES",
        help="detect mode: keep face tracks longer than this (reference: 100)",
    )
    g.add_argument(
        "--min-face-size",
        type=float,
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
        "--backend",
        default="auto",
        choices=("auto", "tensorrt", "ort-cuda", "ort-tensorrt", "cpu"),
        help="inference backend; auto picks the best available (see `doctor`). "
        "Default: %(default)s",
    )
    g.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "fp16"),
        help="fp16 runs on TensorRT only and moves LSE slightly (recorded in the "
        "settings). Default: %(default)s",
    )
    g.add_argument(
        "--decoder",
        default="auto",
        choices=("auto", "cpu", "dali"),
        help="video decoder: DALI on the GPU when usable, else PyAV on the CPU. "
        "Default: %(default)s",
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
    )


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sync",
        help=HELP,
        description=HELP + ". Prints a table, or JSON with "
        "--json, including the settings and the sha256 of every model used.",
    )
    p.add_argument("video", type=Path, help="video file (any container/codec FFmpeg reads)")
    p.add_argument(
        "--audio",
        type=Path,
        metavar="FILE",
        help="score against this audio (wav or any media file) instead of the "
        "video's own audio track",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also give mdist (31 values) and per-frame confidence per track",
    )
    add_sync_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..models.registry import fixture_warnings
    from ..sync import SyncScorer

    if not args.video.exists():
        raise InputError(args.video, "no such file", "missing")
    if args.audio is not None and not args.audio.exists():
        raise InputError(args.audio, "no such audio file", "missing")
    scorer = SyncScorer(settings_from_args(args))
    result = scorer.score(args.video, args.audio)
    provenance = scorer.describe()
    warnings = fixture_warnings(provenance)
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
        return 0
    for w in warnings:
        print(f"WARNING: {w}")
    resampled = f", resampled from {result.src_fps:.3f} fps" if result.resampled else ""
    encoder = f" by {scorer.settings.ffmpeg}" if scorer.settings.reference_frames else ""
    print(
        f"{result.video}  ({result.n_frames} frames at 25 fps{resampled}; "
        f"frames: {result.frame_path}{encoder}; audio: {result.audio_source})"
    )
    print(f"{'track':>5} {'frames':>11} {'offset':>6} {'LSE-C':>8} {'LSE-D':>8}")
    for i, t in enumerate(result.tracks):
        print(
            f"{i:>5} {t.start_frame:>5}-{t.end_frame:<5} {t.offset:>6} {t.lse_c:>8.4f} "
            f"{t.lse_d:>8.4f}"
        )
        if args.verbose:
            print("      mdist: " + " ".join(f"{x:.4f}" for x in t.mdist))
    print(
        f"{'video':>5} {'':>11} {result.offset:>6} {result.lse_c:>8.4f} {result.lse_d:>8.4f}"
        f"   ({_RULE_WORDS[result.track_rule]})"
    )
    d = provenance
    ckpt = d["models"]["syncnet"]["checkpoint"]
    print(
        f"settings {d['settings_hash']}: mode={args.mode} vshift={args.vshift}; "
        f"syncnet {ckpt['name']} sha256 {ckpt['sha256'][:16]}…; "
        f"backend {d['models']['syncnet']['backend']}"
    )
    return 0

"""``sync``'s sync-over-time options (SPEC §11; docs/timeline.md): segments, the gate,
``--fail-on`` and ``--segments FILE``; what they add to the one-video table."""

from __future__ import annotations

import argparse
import math

from ..errors import InputError

FAIL_ON_EXIT = 5  # a video got a --fail-on verdict (docs/failures.md)


def add_timeline_options(p: argparse.ArgumentParser) -> None:
    from ..sync.timeline import DEFAULT_GATE, GATE_PRESETS, VERDICTS

    g = p.add_argument_group(
        "sync over time (SPEC §11, docs/timeline.md; av_offset_ms > 0: the audio leads)"
    )
    g.add_argument(
        "--segment",
        type=float,
        default=4.0,
        metavar="SECONDS",
        help="segment length: each face track (prealigned: the video) is scored again on "
        "runs of this many seconds of its windows, from the distances already computed "
        "(no model work); in the settings hash unless the default. Default: %(default)s",
    )
    g.add_argument(
        "--hop",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="a segment starts every SECONDS. Default: %(default)s",
    )
    g.add_argument(
        "--gate",
        default=DEFAULT_GATE,
        metavar="NAME",
        help=f"the sync tolerance a segment must meet: {', '.join(GATE_PRESETS)} or frames:K "
        "(|offset| >= K frames fails); re-derived from stored segments on a rerun, "
        "never rescored. Default: %(default)s",
    )
    g.add_argument(
        "--max-lead-ms", type=float, metavar="MS", help="replace the gate's audio-lead limit"
    )
    g.add_argument(
        "--max-lag-ms", type=float, metavar="MS", help="replace the gate's audio-lag limit"
    )
    g.add_argument(
        "--min-segment-lse-c",
        type=float,
        default=3.0,
        metavar="X",
        help="a segment with LSE-C below X is low_confidence and left out of the verdict. "
        "Default: %(default)s",
    )
    g.add_argument(
        "--fail-on",
        metavar="VERDICT[,...]",
        help=f"exit with status {FAIL_ON_EXIT} when a video's verdict is one of these "
        f"({', '.join(VERDICTS)}); a run with videos that failed to score exits 4 first",
    )
    g.add_argument(
        "--segments",
        metavar="FILE",
        help="write one line per segment of every video: CSV (.csv) or JSON lines (.jsonl)",
    )


def timeline_kwargs(args) -> dict:
    """The SyncSettings fields of these options (defaults for commands without them)."""
    return {
        "segment": getattr(args, "segment", 4.0),
        "hop": getattr(args, "hop", 2.0),
        "gate": getattr(args, "gate", "itu-bt1359"),
        "max_lead_ms": getattr(args, "max_lead_ms", None),
        "max_lag_ms": getattr(args, "max_lag_ms", None),
        "min_segment_lse_c": getattr(args, "min_segment_lse_c", 3.0),
    }


def check_timeline_options(args) -> set[str]:
    """Usage errors before anything is scored; returns the --fail-on verdicts."""
    from ..sync.segment_rows import segments_format
    from ..sync.timeline import VERDICTS, TimelineRule, parse_gate

    for name in ("segment", "hop"):
        v = getattr(args, name)
        if not (math.isfinite(v) and round(v * 25) >= 1):
            raise InputError(None, f"--{name} must be at least 0.04 s (one frame)", "bad_option")
    try:
        TimelineRule(
            parse_gate(args.gate, args.max_lead_ms, args.max_lag_ms), args.min_segment_lse_c
        )
    except ValueError as exc:
        raise InputError(None, f"--gate: {exc}", "bad_option") from None
    if args.segments is not None:
        segments_format(args.segments)
    fail_on = {v.strip() for v in (args.fail_on or "").split(",") if v.strip()}
    unknown = sorted(fail_on - set(VERDICTS))
    if unknown:
        raise InputError(
            None,
            f"--fail-on: unknown verdict {', '.join(unknown)}; choose from {', '.join(VERDICTS)}",
            "bad_option",
        )
    return fail_on


def timeline_lines(timeline: dict | None) -> list[str]:
    """The one-video table's timeline lines."""
    if timeline is None:
        return ["timeline: none (stored before segments existed; rescore to get them)"]
    t = timeline
    g = "-" if t["global_offset"] is None else f"{t['global_offset']:+d}"
    ms = "" if t["global_offset_ms"] is None else f" ({t['global_offset_ms']:+.0f} ms)"
    drift = t["drift_ms_per_min"]
    counts = ", ".join(f"{k} {n}" for k, n in t["segments"].items() if n)
    lines = [
        f"timeline: {t['verdict']} under {t['gate']['name']}; global offset {g}{ms}; drift "
        + ("-" if drift is None else f"{drift:+.2f} ms/min")
        + f"; segments: {counts or 'none'}  ({t['sign']})"
    ]
    for r in t["failing"]:
        lines.append(
            f"  fails {r['start_tc']} - {r['end_tc']}  ({r['start_s']:.2f}-{r['end_s']:.2f} s, "
            f"{r['segments']} segments, worst {r['worst_av_offset_ms']:+.0f} ms)"
        )
    return lines

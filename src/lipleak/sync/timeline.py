"""A video's sync over time from its segments: global offset, drift, gate, verdict (SPEC §11).

Everything here is derived from stored segment numbers (offset, LSE-C, loudness), never
from the model: a rerun with another gate or confidence threshold re-derives statuses,
verdicts and failing ranges from the results store without rescoring. The rules, and
where their numbers come from, are in docs/timeline.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..timecode import timecode
from .segments import MS_PER_FRAME, SCORING_FPS, STATUSES, segment_status

# (max lead, max lag) in ms, positive = audio leads (SPEC §11; docs/timeline.md)
GATE_PRESETS = {
    "itu-bt1359": (45.0, 125.0),  # ITU-R BT.1359-1: threshold of detectability
    "itu-bt1359-accept": (90.0, 185.0),  # ITU-R BT.1359-1: threshold of acceptability
    "ebu-r37": (40.0, 60.0),  # EBU R37-2007
    "atsc-is191": (15.0, 45.0),  # ATSC IS-191
}
DEFAULT_GATE = "itu-bt1359"
VERDICTS = (
    "in_sync",
    "global_offset",
    "drift_early",
    "drift_late",
    "local_errors",
    "not_measurable",
)
SIGN = "av_offset_ms > 0: the audio leads the video (ITU-R BT.1359 / EBU R37 sign)"
DRIFT_MIN_SEGMENTS = 3
DRIFT_MIN_SPAN_S = 30.0
_FRAMES = re.compile(r"frames:([1-9][0-9]*)")


@dataclass(frozen=True)
class Gate:
    """A segment fails when its av_offset_ms is outside [-max_lag_ms, +max_lead_ms], or,
    for ``frames:K``, when |offset| >= K frames."""

    name: str
    max_lead_ms: float | None = None
    max_lag_ms: float | None = None
    frames: int | None = None

    def fails(self, ms: float) -> bool:
        if self.frames is not None:
            return abs(ms) >= self.frames * MS_PER_FRAME
        return ms > self.max_lead_ms or ms < -self.max_lag_ms

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "max_lead_ms": self.max_lead_ms,
            "max_lag_ms": self.max_lag_ms,
            "frames": self.frames,
        }


def parse_gate(
    name: str = DEFAULT_GATE, max_lead_ms: float | None = None, max_lag_ms: float | None = None
) -> Gate:
    """A preset, ``frames:K``, or a preset with one or both limits replaced (its name then
    says so, e.g. ``itu-bt1359 (lead 30 ms)``). ValueError for anything else."""
    for what, v in (("max lead", max_lead_ms), ("max lag", max_lag_ms)):
        if v is not None and not (v >= 0 and np.isfinite(v)):
            raise ValueError(f"{what} must be a finite number of ms >= 0, got {v}")
    m = _FRAMES.fullmatch(name)
    if m:
        if max_lead_ms is not None or max_lag_ms is not None:
            raise ValueError("a frames:K gate has no ms limits; give one or the other")
        return Gate(name, frames=int(m.group(1)))
    if name not in GATE_PRESETS:
        raise ValueError(f"unknown gate {name!r}; choose {', '.join(GATE_PRESETS)} or frames:K")
    lead, lag = GATE_PRESETS[name]
    changed = []
    if max_lead_ms is not None:
        lead = float(max_lead_ms)
        changed.append(f"lead {lead:g} ms")
    if max_lag_ms is not None:
        lag = float(max_lag_ms)
        changed.append(f"lag {lag:g} ms")
    label = f"{name} ({', '.join(changed)})" if changed else name
    return Gate(label, max_lead_ms=lead, max_lag_ms=lag)


def restatus(segment: dict, min_lse_c: float) -> dict:
    """``segment`` (a ``Segment.to_dict()``) with its status for this threshold."""
    return {**segment, "status": segment_status(segment["lse_c"], segment["rms_dbfs"], min_lse_c)}


def global_offset(offsets: list[int]) -> int | None:
    """Median of the ok segments' offsets; the lower middle one on even counts."""
    if not offsets:
        return None
    return sorted(offsets)[(len(offsets) - 1) // 2]


def _centre_s(seg: dict) -> float:
    return (seg["start_s"] + seg["end_s"]) / 2


def drift(segments: list[dict]) -> tuple[float, float] | None:
    """(slope in ms per minute, intercept in ms at t = 0 min) of av_offset_ms against the
    segments' centre times: Theil–Sen, the median of the slopes of all pairs with distinct
    times (mean of the middle two on even counts) and the intercept median(y) - slope *
    median(t), as scipy.stats.theilslopes. None with fewer than 3 segments or their
    centres spanning under 30 s."""
    if len(segments) < DRIFT_MIN_SEGMENTS:
        return None
    secs = np.array([_centre_s(s) for s in segments])
    if secs.max() - secs.min() < DRIFT_MIN_SPAN_S:
        return None
    t = secs / 60.0
    y = np.array([s["av_offset_ms"] for s in segments], np.float64)
    dt = t[:, None] - t[None, :]
    dy = y[:, None] - y[None, :]
    pos = dt > 0
    slope = float(np.median(dy[pos] / dt[pos]))
    return slope, float(np.median(y) - slope * np.median(t))


def failing_ranges(failing: list[dict], src_fps: float) -> list[dict]:
    """Failing segments (of every track) merged where they overlap or touch, in time order."""
    out: list[dict] = []
    for s in sorted(failing, key=lambda s: (s["start_frame"], s["end_frame"])):
        if out and s["start_frame"] <= out[-1]["end_frame"] + 1:
            cur = out[-1]
            cur["end_frame"] = max(cur["end_frame"], s["end_frame"])
            cur["segments"] += 1
            if abs(s["av_offset_ms"]) > abs(cur["worst_av_offset_ms"]):
                cur["worst_av_offset_ms"] = s["av_offset_ms"]
        else:
            out.append(
                {
                    "start_frame": s["start_frame"],
                    "end_frame": s["end_frame"],
                    "segments": 1,
                    "worst_av_offset_ms": s["av_offset_ms"],
                }
            )
    for r in out:
        r["start_s"] = r["start_frame"] / SCORING_FPS
        r["end_s"] = (r["end_frame"] + 1) / SCORING_FPS
        r["start_tc"] = timecode(r["start_frame"], src_fps)
        r["end_tc"] = timecode(r["end_frame"], src_fps)
    return out


def verdict(ok: list[dict], gate: Gate, fit: tuple[float, float] | None) -> str:
    """The rule of docs/timeline.md, in its order."""
    if not ok:
        return "not_measurable"
    if not any(gate.fails(s["av_offset_ms"]) for s in ok):
        return "in_sync"
    if fit is not None:
        slope, icept = fit
        t = [_centre_s(s) / 60.0 for s in ok]
        y0, y1 = icept + slope * min(t), icept + slope * max(t)
        # the fitted line moves by a frame or more and crosses the gate within the span
        if abs(y1 - y0) >= MS_PER_FRAME and gate.fails(y0) != gate.fails(y1):
            return "drift_early" if slope > 0 else "drift_late"
    g = global_offset([s["offset"] for s in ok])
    if gate.fails(MS_PER_FRAME * g):
        return "global_offset"
    return "local_errors"


@dataclass(frozen=True)
class TimelineRule:
    """What turns segment numbers into statuses and a verdict; not in the settings hash."""

    gate: Gate
    min_lse_c: float = 3.0

    def __post_init__(self):
        if not np.isfinite(self.min_lse_c):
            raise ValueError(f"the segment LSE-C threshold must be finite, got {self.min_lse_c}")

    def to_dict(self) -> dict:
        return {"gate": self.gate.to_dict(), "min_segment_lse_c": self.min_lse_c}


def build_timeline(tracks: list[list[dict]], no_face: list[dict], src_fps: float, rule) -> dict:
    """The per-video timeline; ``tracks`` holds each track's segments (restatused in
    place for ``rule``), ``no_face`` the uncovered stretches."""
    for segs in tracks:
        segs[:] = [restatus(s, rule.min_lse_c) for s in segs]
    every = [s for segs in tracks for s in segs] + list(no_face)
    ok = [s for s in every if s["status"] == "ok"]
    fit = drift(ok)
    g = global_offset([s["offset"] for s in ok])
    counts = {k: sum(s["status"] == k for s in every) for k in STATUSES}
    return {
        **rule.to_dict(),
        "sign": SIGN,
        "segments": counts,
        "global_offset": g,
        "global_offset_ms": None if g is None else MS_PER_FRAME * g,
        "drift_ms_per_min": None if fit is None else fit[0],
        "verdict": verdict(ok, rule.gate, fit),
        "failing": failing_ranges([s for s in ok if rule.gate.fails(s["av_offset_ms"])], src_fps),
    }


def row_timeline(row: dict, rule: TimelineRule) -> dict | None:
    """The timeline of a stored row (``lipleak.sync.results``) under ``rule``, its tracks'
    segment statuses updated in place. None for a failed row and for a row stored before
    segments existed (rescore it to get them: ``--retry-failed`` does not, a new store
    does)."""
    tracks = row.get("tracks") or []
    if row["status"] != "ok" or not tracks or any("segments" not in t for t in tracks):
        return None
    detail = row.get("detail") or {}
    segs = [t["segments"] for t in tracks]
    return build_timeline(segs, detail.get("no_face") or [], detail["src_fps"], rule)

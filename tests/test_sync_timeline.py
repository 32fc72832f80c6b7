"""SPEC §11 per video: SMPTE timecodes (drop-frame included) against a label-by-label
oracle, the global offset, Theil–Sen drift against scipy, gates, verdicts (the rule of
docs/timeline.md) and merged failing ranges, all on constructed segments."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from lipleak.sync.timeline import (
    GATE_PRESETS,
    TimelineRule,
    build_timeline,
    drift,
    failing_ranges,
    global_offset,
    parse_gate,
)
from lipleak.timecode import exact_rate, smpte, source_frame, timecode


def labels(nominal: int, drop: int, count: int):
    """Every SMPTE label in order, skipping the dropped ones (SMPTE ST 12-1: frames
    0..drop-1 of each minute not divisible by 10)."""
    out = []
    h = m = s = f = 0
    while len(out) < count:
        if not (drop and s == 0 and f < drop and m % 10 != 0):
            out.append(f"{h:02d}:{m:02d}:{s:02d}{';' if drop else ':'}{f:02d}")
        f += 1
        if f == nominal:
            f, s = 0, s + 1
            if s == 60:
                s, m = 0, m + 1
                if m == 60:
                    m, h = 0, h + 1
    return out


@pytest.mark.parametrize(
    "fps,nominal,drop",
    [(30000 / 1001, 30, 2), (60000 / 1001, 60, 4), (25.0, 25, 0), (24000 / 1001, 24, 0)],
)
def test_smpte_labels_follow_the_oracle(fps, nominal, drop):
    n = nominal * 60 * 21  # past the 10- and 20-minute marks
    want = labels(nominal, drop, n)
    for i in list(range(0, n, 7)) + [1799, 1800, 1801, 17981, 17982, 17983]:
        if i < n:
            assert smpte(i, fps) == want[i], i


def test_known_drop_frame_values():
    ntsc = 30000 / 1001
    assert smpte(1799, ntsc) == "00:00:59;29"
    assert smpte(1800, ntsc) == "00:01:00;02"  # ;00 and ;01 do not exist
    assert smpte(17982, ntsc) == "00:10:00;00"  # the tenth minute keeps them
    assert smpte(107892, ntsc) == "01:00:00;00"  # one hour of wall clock
    assert smpte(3600, 60000 / 1001) == "00:01:00;04"
    assert smpte(90000, 25) == "01:00:00:00"
    assert exact_rate(29.97) == Fraction(30000, 1001)  # a rounded container rate


def test_timecode_maps_25_fps_frames_back_to_the_source():
    # 25-fps frame f (time f/25) shows the latest source frame at or before it
    assert [source_frame(f, 50) for f in (0, 1, 2, 13)] == [0, 2, 4, 26]
    assert [source_frame(f, 30000 / 1001) for f in (0, 1, 5, 25)] == [0, 1, 5, 29]
    # 25 frames = 1 s = 29.97 NTSC frames: frame 29 (1 s is 29.97 frames in)
    assert timecode(25, 30000 / 1001) == "00:00:00;29"
    assert timecode(1500, 30000 / 1001) == smpte(1798, 30000 / 1001) == "00:00:59;28"
    assert timecode(25, 25.0) == "00:00:01:00"
    assert [source_frame(f, 12.5) for f in (0, 1, 2, 3)] == [0, 0, 1, 1]


def seg(start_frame, offset, status="ok", length=100, lse_c=5.0, rms=-20.0):
    end = start_frame + length + 3
    return {
        "first_window": 0,
        "last_window": length - 1,
        "start_frame": start_frame,
        "end_frame": end,
        "start_s": start_frame / 25,
        "end_s": (end + 1) / 25,
        "start_tc": "",
        "end_tc": "",
        "offset": offset,
        "av_offset_ms": 40.0 * offset if offset is not None else None,
        "lse_c": lse_c if status != "no_face" else None,
        "lse_d": 7.0,
        "rms_dbfs": rms,
        "status": status,
    }


def test_global_offset_is_the_lower_middle():
    assert global_offset([3, -1, 2, 0]) == 0
    assert global_offset([5, 1, 3]) == 3
    assert global_offset([2]) == 2 and global_offset([]) is None


def test_drift_is_theil_sen_in_ms_per_minute():
    rng = np.random.default_rng(0)
    offsets = [int(x) for x in rng.integers(-3, 4, 40)]
    segs = [seg(50 * j, o) for j, o in enumerate(offsets)]
    slope, icept = drift(segs)
    t = np.array([(s["start_s"] + s["end_s"]) / 2 for s in segs]) / 60
    ref = stats.theilslopes([s["av_offset_ms"] for s in segs], t)
    assert slope == pytest.approx(ref.slope, rel=1e-12, abs=1e-9)
    assert icept == pytest.approx(ref.intercept, rel=1e-12, abs=1e-9)


def test_drift_needs_three_segments_over_30_seconds():
    assert drift([seg(0, 0), seg(1000, 1)]) is None  # two segments
    # centres 0..26 s apart: under 30 s
    assert drift([seg(0, 0), seg(325, 1), seg(650, 2)]) is None
    assert drift([seg(0, 0), seg(375, 1), seg(750, 2)]) is not None  # 30 s


def test_gates():
    assert set(GATE_PRESETS) == {"itu-bt1359", "itu-bt1359-accept", "ebu-r37", "atsc-is191"}
    itu = parse_gate("itu-bt1359")
    # [-125, +45] inclusive: 40 ms (1 frame lead) passes, 80 fails; -120 passes, -160 fails
    assert [itu.fails(ms) for ms in (40, 45, 80, -120, -125, -160)] == [
        False,
        False,
        True,
        False,
        False,
        True,
    ]
    ebu = parse_gate("ebu-r37")
    assert (ebu.fails(40), ebu.fails(-40), ebu.fails(-80)) == (False, False, True)
    atsc = parse_gate("atsc-is191")
    assert (atsc.fails(40), atsc.fails(-40), atsc.fails(0)) == (True, False, False)
    two = parse_gate("frames:2")
    assert [two.fails(40 * k) for k in (-2, -1, 0, 1, 2)] == [True, False, False, False, True]
    custom = parse_gate("ebu-r37", max_lead_ms=0)
    assert custom.name == "ebu-r37 (lead 0 ms)" and custom.fails(40) and not custom.fails(-40)
    both = parse_gate(max_lead_ms=10, max_lag_ms=20)
    assert (both.max_lead_ms, both.max_lag_ms) == (10, 20)
    for bad in (("frames:0",), ("frames:x",), ("smpte",), ("frames:2", 40.0)):
        with pytest.raises(ValueError):
            parse_gate(*bad)
    with pytest.raises(ValueError):
        parse_gate("ebu-r37", max_lag_ms=-1)


def timeline(segs, gate="itu-bt1359", min_lse_c=3.0, no_face=()):
    return build_timeline(
        [list(segs)], list(no_face), 25.0, TimelineRule(parse_gate(gate), min_lse_c)
    )


def test_verdicts():
    # every ok segment within the gate
    assert timeline([seg(50 * j, 1) for j in range(20)])["verdict"] == "in_sync"
    # nothing ok: silent, low confidence, no face
    t = timeline(
        [seg(0, 5, "silent", rms=-60), seg(50, 5, lse_c=1.0)], no_face=[seg(200, None, "no_face")]
    )
    assert t["verdict"] == "not_measurable"
    assert t["segments"] == {"ok": 0, "silent": 1, "low_confidence": 1, "no_face": 1}
    assert t["global_offset"] is None and t["drift_ms_per_min"] is None
    # a constant 3-frame lead (120 ms > 45): global offset
    assert timeline([seg(50 * j, 3) for j in range(20)])["verdict"] == "global_offset"
    # mostly in sync, two segments far off: local errors
    offs = [0] * 18 + [-6, -6]
    assert timeline([seg(50 * j, o) for j, o in enumerate(offs)])["verdict"] == "local_errors"
    # the audio leads more and more: 0 -> +4 frames over 40 s (fitted line crosses +45)
    early = [seg(50 * j, j // 4) for j in range(20)]
    t = timeline(early)
    assert t["verdict"] == "drift_early" and t["drift_ms_per_min"] > 0
    # the audio falls behind: 0 -> -6 frames (crosses -125)
    late = [seg(50 * j, -(j // 3)) for j in range(20)]
    assert timeline(late)["verdict"] == "drift_late"
    # a drift that stays out of the gate at both ends is a global offset
    far = [seg(50 * j, 5 + j // 5) for j in range(20)]
    assert timeline(far)["verdict"] == "global_offset"
    # the same segments under a looser gate: in sync
    assert timeline([seg(50 * j, 2) for j in range(20)], gate="itu-bt1359-accept")["verdict"] == (
        "in_sync"
    )


def test_statuses_are_rederived_from_the_stored_numbers():
    segs = [seg(50 * j, 0, lse_c=2.0 + 0.2 * j) for j in range(10)]
    t = timeline(segs, min_lse_c=3.0)
    assert t["segments"]["ok"] == 5 and t["segments"]["low_confidence"] == 5
    assert timeline(segs, min_lse_c=0.0)["segments"]["ok"] == 10
    assert t["min_segment_lse_c"] == 3.0 and t["gate"]["name"] == "itu-bt1359"
    assert "audio leads" in t["sign"]


def test_failing_ranges_merge_adjacent_segments():
    segs = [seg(0, 5), seg(50, 5), seg(100, 0), seg(300, -4), seg(404, 3)]
    # 0..103 and 50..153 overlap; 300..403 and 404..507 touch; 100..203 passes
    ranges = failing_ranges([s for s in segs if s["offset"] != 0], 30000 / 1001)
    got = [
        (r["start_frame"], r["end_frame"], r["segments"], r["worst_av_offset_ms"]) for r in ranges
    ]
    assert got == [(0, 153, 2, 200.0), (300, 507, 2, -160.0)]
    assert ranges[1]["start_s"] == 12.0 and ranges[1]["end_s"] == 508 / 25
    assert ranges[1]["start_tc"] == timecode(300, 30000 / 1001) == "00:00:11;29"
    t = timeline(segs, gate="frames:2")
    assert [(r["start_frame"], r["end_frame"]) for r in t["failing"]] == [(0, 153), (300, 507)]


def test_settings_hash_has_segments_but_not_the_gate():
    """--segment/--hop make numbers (hashed, except the defaults: stored hashes stay);
    the gate and threshold only re-derive verdicts (never hashed, never rescored)."""
    from lipleak.errors import LipleakError
    from lipleak.sync import SyncSettings

    base = SyncSettings()
    assert base.hash() == "5120ee5e8c87c7b8"  # the hash before segments existed
    regated = SyncSettings(gate="frames:2", min_segment_lse_c=1.0)
    assert regated.hash() == SyncSettings(max_lead_ms=10, max_lag_ms=20).hash() == base.hash()
    assert regated.as_dict()["gate"] == "frames:2"  # recorded with the run all the same
    assert len({base.hash(), SyncSettings(segment=2).hash(), SyncSettings(hop=1).hash()}) == 3
    assert SyncSettings(segment=4).hash() == base.hash()
    assert regated.timeline_rule().gate.frames == 2
    for bad in (
        {"gate": "nope"},
        {"segment": 0.01},
        {"hop": 0},
        {"gate": "frames:2", "max_lag_ms": 5},
        {"segment": float("nan")},
        {"min_segment_lse_c": float("nan")},
    ):
        with pytest.raises(LipleakError):
            SyncSettings(**bad)

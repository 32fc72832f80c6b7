"""Issue 23: can the mouth-motion signal (no SyncNet) time sync per segment?

The signal is the one ``metrics/mouth.py`` computes for leakage: the inner-lip aperture
per frame (SCRFD + PFLD landmarks) against the audio's RMS envelope (one 640-sample window
per 25-fps frame). A segment's lag is the lag in ±15 frames with the largest Pearson r
(``lagged_correlation``), as SyncNet's offset is the best of ±15 shifts.

Input: every real shared clip (the ``real*`` talking-face clips, each with its own audio)
played one after the other, as one cut video (about a minute). Its audio is then
    - delayed or advanced by ±1, ±2, ±3, ±5 and ±10 frames (audio-leads sign of SPEC §11:
      a delay of k frames is an offset of −k), or
    - stretched by 0.2 % and 1 % (a linear drift: the audio falls behind by that share
      of the elapsed time),
and cut into SPEC §11 segments (100 frames every 50). A segment counts when its audio is
speech (RMS above −45 dBFS) and it has a face on ≥ 80 % of its frames. Reported: the share
of such segments whose measured offset is within ±1 frame of the injected one, both as
measured (absolute) and after subtracting the same segment's lag on the unshifted audio
(relative: what it would be if a video's natural lip-audio lag were known), and the
drift slope's error (Theil–Sen over segment centres, ms per minute).

The rule of the issue: offer ``--timeline-signal mouth`` only if at least 80 % of the
segments are within ±1 frame (absolute).

    python bench/bench_mouth_timeline.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import theilslopes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CLIPS_DIR, SHARED, model_env, write_result  # noqa: E402

SHIFTS = (-10, -5, -3, -2, -1, 1, 2, 3, 5, 10)  # injected audio delay, frames
DRIFTS = (0.002, 0.01)
SEG, HOP = 100, 50  # SPEC §11 defaults: 4 s every 2 s
MAX_LAG = 15
SILENT_DBFS = -45.0


def apertures_and_audio():
    from lipleak.faces.landmarks import PFLD
    from lipleak.faces.mouth_roi import face_landmarks
    from lipleak.faces.scrfd import SCRFD
    from lipleak.io.audio import load_audio
    from lipleak.io.frames import iter_frames
    from lipleak.metrics.mouth import aperture
    from lipleak.models import store

    detector = SCRFD(store.locate("scrfd_500m"))
    pfld = PFLD(store.locate("pfld_68"))
    aps, audio, names = [], [], []
    for path in sorted(CLIPS_DIR.glob("real*.mp4")):
        lms = [lm for _, lm in face_landmarks(iter_frames(path, fps=25.0), detector, pfld)]
        ap = np.array([np.nan if lm is None else aperture(lm[None])[0] for lm in lms], np.float64)
        a = load_audio(path)
        n = min(len(ap), len(a) // 640)
        aps.append(ap[:n])
        audio.append(a[: n * 640])
        names.append(path.name)
    return np.concatenate(aps), np.concatenate(audio), names


def delayed(audio: np.ndarray, k: int) -> np.ndarray:
    """The audio ``k`` frames later (k < 0: earlier), same length, silence padded."""
    s = k * 640
    out = np.zeros_like(audio)
    if s >= 0:
        out[s:] = audio[: len(audio) - s]
    else:
        out[:s] = audio[-s:]
    return out


def stretched(audio: np.ndarray, d: float) -> np.ndarray:
    """The audio played ``d`` slower (nearest sample): at time t it is d·t behind."""
    idx = np.floor(np.arange(len(audio)) / (1 + d)).astype(np.int64)
    return audio[np.minimum(idx, len(audio) - 1)]


def segments(n: int) -> list[tuple[int, int]]:
    out = [(a, a + SEG) for a in range(0, n - SEG + 1, HOP)]
    if out and n - (out[-1][0] + HOP) >= SEG // 2:
        out.append((out[-1][0] + HOP, n))
    return out


def segment_lags(ap: np.ndarray, audio: np.ndarray, segs) -> list[int | None]:
    from lipleak.metrics.mouth import lagged_correlation, rms_envelope

    env = rms_envelope(audio, len(ap))
    out = []
    for a, b in segs:
        lags, r = lagged_correlation(ap[a:b], env[a:b], MAX_LAG)
        out.append(int(lags[int(np.nanargmax(r))]) if np.isfinite(r).any() else None)
    return out


def counted(ap: np.ndarray, audio: np.ndarray, segs) -> list[bool]:
    keep = []
    for a, b in segs:
        x = audio[a * 640 : b * 640].astype(np.float64)
        rms = np.sqrt((x * x).mean()) if len(x) else 0.0
        dbfs = 20 * np.log10(max(rms, 1e-9) / 32768)
        keep.append(dbfs >= SILENT_DBFS and np.isfinite(ap[a:b]).mean() >= 0.8)
    return keep


def main() -> int:
    scratch = tempfile.TemporaryDirectory()
    model_env(Path(scratch.name))
    from lipleak.models import store

    store.fetch("pfld_68", source=SHARED / "models")
    ap, audio, names = apertures_and_audio()
    segs = segments(len(ap))
    keep = counted(ap, audio, segs)
    base = segment_lags(ap, audio, segs)
    # measured offset (audio leads > 0) = the lag: the mouth moving L frames after the
    # sound (lagged_correlation's L > 0) means the sound leads by L
    shifts = {}
    for k in SHIFTS:
        lags = segment_lags(ap, delayed(audio, k), segs)
        want = -k
        absolute = [abs(lag - want) <= 1 for lag, ok in zip(lags, keep) if ok and lag is not None]
        relative = [
            abs((lag - b0) - want) <= 1
            for lag, b0, ok in zip(lags, base, keep)
            if ok and lag is not None and b0 is not None
        ]
        shifts[str(k)] = {
            "segments": len(absolute),
            "within_1_frame_absolute": round(float(np.mean(absolute)), 3),
            "within_1_frame_relative": round(float(np.mean(relative)), 3),
        }
    drifts = {}
    for d in DRIFTS:
        lags = segment_lags(ap, stretched(audio, d), segs)
        pts = [
            ((a + b) / 2 / 25 / 60, lag * 40.0)  # (minutes, offset ms)
            for (a, b), lag, ok in zip(segs, lags, keep)
            if ok and lag is not None
        ]
        t, ms = map(np.array, zip(*pts))
        slope = float(theilslopes(ms, t)[0])
        true = -d * 60_000.0  # ms per minute: the audio falls behind
        within = [
            abs(lag - (-d * (a + b) / 2)) <= 1
            for (a, b), lag, ok in zip(segs, lags, keep)
            if ok and lag is not None
        ]
        drifts[str(d)] = {
            "true_ms_per_min": round(true, 1),
            "measured_ms_per_min": round(slope, 1),
            "error_ms_per_min": round(slope - true, 1),
            "within_1_frame_absolute": round(float(np.mean(within)), 3),
        }
    overall = float(
        np.average(
            [v["within_1_frame_absolute"] for v in shifts.values()],
            weights=[v["segments"] for v in shifts.values()],
        )
    )
    payload = {
        "clips": names,
        "frames": len(ap),
        "segments": len(segs),
        "speech_segments_with_face": int(sum(keep)),
        "unshifted_lags": base,
        "shifts": shifts,
        "drifts": drifts,
        "within_1_frame_absolute_all_shifts": round(overall, 3),
        "offered": overall >= 0.8,
    }
    print(json.dumps(payload, indent=1))
    print(f"wrote {write_result('mouth_timeline', payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

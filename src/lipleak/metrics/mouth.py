"""Mouth motion: a leakage signal that needs no SyncNet (after KeySync).

Aperture, per frame, from 68 landmarks (300-W order):
    aperture = mean(‖p61 − p67‖, ‖p62 − p66‖, ‖p63 − p65‖) / ‖p48 − p54‖
i.e. the mean gap between the three facing inner-lip pairs, over the mouth width
(outer corners). Dimensionless, so face size and distance do not matter; ≈ 0 closed,
~0.2–0.5 wide open with PFLD on the shared clips.

- SI (silent driving audio): a leak-free generator keeps the mouth still, so report the
  fraction of frames with aperture > ``OPEN_THRESHOLD`` (0.1: the inner lips are apart by
  more than a tenth of the mouth width) and the aperture's standard deviation.
- AM / XM: Pearson correlation between the aperture and the driving audio's RMS envelope
  (int16 samples as-is, one 640-sample window per 25 fps frame at 16 kHz) at the best lag
  in ±``MAX_LAG`` frames (±0.2 s). Lag L pairs aperture[t + L] with envelope[t]: L > 0
  means the mouth moves after the sound. "Best" is the largest r (louder ↔ more open),
  not the largest |r|.

Fewer than ``MIN_FRAMES`` (25, 1 s) frames with a face and audio give no correlation.
Frames without a face may be given as NaN apertures: they are left out of every lag's
pairs (and of the SI statistics) without shifting the time axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

INNER_PAIRS = ((61, 67), (62, 66), (63, 65))
CORNERS = (48, 54)
OPEN_THRESHOLD = 0.1
MAX_LAG = 5  # frames; ±0.2 s at 25 fps
HOP = 640  # audio samples per video frame (16 kHz / 25 fps)
MIN_STD = 1e-6  # below this a series is constant: float32 landmark noise is ~1e-7
MIN_FRAMES = 25  # 1 s: fewer frames with audio and a face give no correlation


def aperture(landmarks: np.ndarray) -> np.ndarray:
    """float64[N] inner-lip aperture / mouth width from N×68×2 landmarks."""
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise InputError(None, f"landmarks must be N×68×2, got {lm.shape}", "bad_landmarks")
    gap = np.mean([np.linalg.norm(lm[:, a] - lm[:, b], axis=1) for a, b in INNER_PAIRS], axis=0)
    width = np.linalg.norm(lm[:, CORNERS[0]] - lm[:, CORNERS[1]], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(width > 0, gap / width, np.nan)


def _window_rms(x: np.ndarray, hop: int) -> np.ndarray:
    x = x.astype(np.float64).reshape(-1, hop)
    return np.sqrt((x * x).mean(axis=1))


def rms_envelope(audio, n_frames: int | None = None, hop: int = HOP) -> np.ndarray:
    """float64 RMS of consecutive ``hop``-sample windows (one per video frame); a partial
    last window is dropped, and at most ``n_frames`` values are returned.

    ``audio``: a 1-D array, or an iterable of 1-D chunks (streamed: reading stops once
    ``n_frames`` windows are full). Each window's value is computed from its own samples
    alone, so the chunking changes no bit.
    """
    if isinstance(audio, np.ndarray):
        chunks = (audio,)
        if audio.ndim != 1:
            raise InputError(
                None, f"audio must be mono 1-D samples, got {audio.shape}", "bad_audio"
            )
    else:
        chunks = audio
    out: list[np.ndarray] = []
    m = 0  # windows so far
    rest = np.zeros(0, np.int16)  # samples of a window not yet full
    for c in chunks:
        c = np.asarray(c)
        if c.ndim != 1:
            raise InputError(None, f"audio must be mono 1-D samples, got {c.shape}", "bad_audio")
        if n_frames is not None and m >= n_frames:
            break
        x = np.concatenate((rest, c)) if len(rest) else c
        k = len(x) // hop
        if n_frames is not None:
            k = min(k, n_frames - m)
        if k:
            out.append(_window_rms(x[: k * hop], hop))
            m += k
        rest = x[k * hop :]
    return np.concatenate(out) if out else np.zeros(0, np.float64)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3:
        return float("nan")
    x = x - x.mean()
    y = y - y.mean()
    sx, sy = np.sqrt((x * x).mean()), np.sqrt((y * y).mean())
    if sx < MIN_STD or sy == 0:
        return float("nan")
    return float((x * y).mean() / (sx * sy))


def lagged_correlation(
    ap: np.ndarray, envelope: np.ndarray, max_lag: int = MAX_LAG
) -> tuple[np.ndarray, np.ndarray]:
    """(lags −K..K, r per lag): r(L) = Pearson(ap[t + L], envelope[t]) over the overlap."""
    n = min(len(ap), len(envelope))
    ap, envelope = np.asarray(ap, np.float64)[:n], np.asarray(envelope, np.float64)[:n]
    lags = np.arange(-max_lag, max_lag + 1)
    r = np.full(len(lags), np.nan)
    for k, L in enumerate(lags):
        m = n - abs(int(L))  # overlap length
        if m >= 3:
            r[k] = _pearson(ap[max(L, 0) : max(L, 0) + m], envelope[max(-L, 0) : max(-L, 0) + m])
    return lags, r


@dataclass
class SilentMotion:
    open_fraction: float  # frames with aperture > threshold / frames with a face
    aperture_std: float  # population std over frames with a face
    aperture_mean: float
    n_frames: int
    threshold: float = OPEN_THRESHOLD


def silent_motion(ap: np.ndarray, threshold: float = OPEN_THRESHOLD) -> SilentMotion:
    """SI statistics of an aperture series (NaN frames left out)."""
    a = np.asarray(ap, np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise InputError(None, "mouth motion: no frame with landmarks", "no_face")
    return SilentMotion(
        float(np.mean(a > threshold)), float(a.std()), float(a.mean()), int(a.size), threshold
    )


@dataclass
class AudioMotion:
    corr: float  # best Pearson r over the lags; NaN when undefined (see reason)
    lag: int | None  # frames, None when undefined
    n_frames: int  # frames paired with audio
    reason: str | None = None  # why corr is NaN
    per_lag: dict[int, float] = field(default_factory=dict)


def audio_motion(ap: np.ndarray, audio, max_lag: int = MAX_LAG) -> AudioMotion:
    """AM/XM: best-lag correlation of the aperture with the driving audio's RMS envelope
    (``audio``: an array or an iterable of chunks, as ``rms_envelope`` takes)."""
    ap = np.asarray(ap, np.float64)
    env = rms_envelope(audio, len(ap))
    n = len(env)
    lags, r = lagged_correlation(ap[:n], env, max_lag)
    per_lag = {int(L): float(v) for L, v in zip(lags, r, strict=True)}
    a = ap[:n][np.isfinite(ap[:n])]
    if a.size >= MIN_FRAMES and np.isfinite(r).any():
        k = int(np.nanargmax(r))
        return AudioMotion(float(r[k]), int(lags[k]), n, None, per_lag)
    if a.size < MIN_FRAMES:
        reason = f"too few frames with audio and a face ({a.size} < {MIN_FRAMES})"
    elif a.std() < MIN_STD:
        reason = "mouth does not move (constant aperture)"
    elif env.std() == 0:
        reason = "audio envelope is constant (silent audio)"
    else:
        reason = "correlation undefined at every lag"
    return AudioMotion(float("nan"), None, n, reason, per_lag)

"""SMPTE timecodes at a video's native frame rate for frames counted at 25 fps (SPEC §11).

Scoring runs on 25-fps frames; a non-25-fps source was resampled by timestamp, the 25-fps
frame ``f`` (time ``f / 25``) showing the latest source frame at or before that time
(``lipleak.io.video``). A reviewer seeks in the source, so its times are given as the
timecode of *that* source frame: ``floor(f * fps / 25)``, computed on the exact rational
rate (29.97 is 30000/1001) so that no float rounding moves a frame.

Labels (SMPTE ST 12-1): HH:MM:SS:FF counting frames at the nominal rate (the integer rate
nearest the real one: 24 for 23.976, 30 for 29.97). 29.97 and 59.94 use drop-frame
labels, ``HH:MM:SS;FF``: frame numbers 0 and 1 (59.94: 0 to 3) are skipped at the start of
every minute except minutes divisible by 10, so the label stays within a few frames of the
wall clock. Hours wrap at 24.
"""

from __future__ import annotations

from fractions import Fraction

SCORING_FPS = 25
# 30000/1001 and 60000/1001: the NTSC rates that use drop-frame labels
_DROP_FRAME = {Fraction(30000, 1001): 2, Fraction(60000, 1001): 4}


def exact_rate(fps: float | Fraction) -> Fraction:
    """The rational rate a float rate stands for (29.97002997... -> 30000/1001)."""
    if isinstance(fps, Fraction):
        return fps
    if not fps > 0:
        raise ValueError(f"frame rate must be positive, got {fps!r}")
    rate = Fraction(fps).limit_denominator(1001)
    if abs(float(rate) - fps) > 1e-6 * fps:
        rate = Fraction(fps).limit_denominator(1_000_000)
    # 29.97 written as a decimal is the NTSC rate too (containers round it that way)
    for ntsc in _DROP_FRAME:
        if abs(float(ntsc) - float(rate)) < 5e-3:
            return ntsc
    return rate


def source_frame(frame25: int, fps: float | Fraction) -> int:
    """The source frame shown at 25-fps frame ``frame25`` (nearest earlier timestamp)."""
    rate = exact_rate(fps)
    return (frame25 * rate.numerator) // (SCORING_FPS * rate.denominator)


def smpte(frame: int, fps: float | Fraction) -> str:
    """The SMPTE label of source frame ``frame`` (counted from 0 = 00:00:00:00)."""
    if frame < 0:
        raise ValueError(f"frame index must not be negative, got {frame}")
    rate = exact_rate(fps)
    nominal = max(1, round(rate))
    drop = _DROP_FRAME.get(rate, 0)
    if drop:
        per_minute = nominal * 60 - drop  # labels in a minute that drops
        per_ten = nominal * 600 - 9 * drop  # labels in ten minutes
        tens, rest = divmod(frame, per_ten)
        # the first minute of ten keeps all its labels; each later one drops ``drop``
        dropped = 9 * drop * tens + (drop * ((rest - drop) // per_minute) if rest > drop else 0)
        frame += dropped
    ff = frame % nominal
    secs = frame // nominal
    sep = ";" if drop else ":"
    return f"{secs // 3600 % 24:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}{sep}{ff:02d}"


def timecode(frame25: int, fps: float | Fraction) -> str:
    """The SMPTE label, at the source's rate, of the frame shown at 25-fps frame ``frame25``."""
    return smpte(source_frame(frame25, fps), fps)

"""Sync over time: a track's offset search repeated on runs of its windows (SPEC §11).

No model work: a segment is §2's arithmetic (``_core.sync_stats``) on a subset of the
rows ``d[i, s]`` the track's offset search already computed, so a segment covering a
whole track gives that track's offset, LSE-C and LSE-D bit for bit.

Windows and frames: window ``i`` of a track pairs its frames ``i .. i + 4`` with the audio
under them. A segment of windows ``first .. last`` therefore sees the track's frames
``first .. last + 4``; ``start_frame``/``end_frame`` are those (inclusive, in 25-fps
frames of the video), ``start_s``/``end_s`` the times of the start of the first and of the
end of the last, ``start_tc``/``end_tc`` the SMPTE labels of the first and last frame at
the source's rate (``lipleak.timecode``). Its loudness is the RMS of the 16-kHz
samples under those frames, in dBFS against full scale 32768 (a full-scale square wave is
0 dBFS); digital silence has none (``rms_dbfs`` None).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .. import _core
from ..export.syncnet_shapes import SAMPLES_PER_FRAME, WINDOW_FRAMES
from ..timecode import SCORING_FPS, timecode

SILENT_DBFS = -45.0  # SPEC §11: a segment quieter than this is ``silent``
FULL_SCALE = 32768.0
MS_PER_FRAME = 1000 / SCORING_FPS
STATUSES = ("ok", "silent", "low_confidence", "no_face")


def windows_for(seconds: float) -> int:
    """Windows (= 25-fps frames) in ``seconds``: the segment length L and hop H."""
    return round(seconds * SCORING_FPS)


def segment_ranges(n_windows: int, length: int, hop: int) -> list[tuple[int, int]]:
    """(first, last) window of each segment of a track of ``n_windows`` windows, inclusive.

    Runs of ``length`` windows every ``hop``; after the last full run, the run from its
    start + ``hop`` to the end is a segment when it holds at least ``length / 2`` windows;
    a track shorter than ``length`` is one segment.
    """
    if length < 1 or hop < 1:
        raise ValueError(f"segment length and hop must be at least 1 window, got {length}, {hop}")
    if n_windows <= 0:
        return []
    if n_windows < length:
        return [(0, n_windows - 1)]
    starts = range(0, n_windows - length + 1, hop)
    out = [(k, k + length - 1) for k in starts]
    tail = starts[-1] + hop
    if 2 * (n_windows - tail) >= length:  # at least L/2 windows, L odd included
        out.append((tail, n_windows - 1))
    return out


def av_offset_ms(offset: int) -> float:
    """Frames to milliseconds at 25 fps; positive = the audio leads the video."""
    return MS_PER_FRAME * offset


def rms_dbfs(energy: np.ndarray, first_frame: int, last_frame: int) -> float | None:
    """RMS in dBFS of the samples under frames ``first_frame .. last_frame`` (inclusive),
    from the per-frame sums of squares (``AudioWindows.frame_energy``); None: all zero."""
    if last_frame >= len(energy):
        raise ValueError(f"frame {last_frame} has no complete audio (only {len(energy)} frames)")
    total = int(energy[first_frame : last_frame + 1].sum())
    if total == 0:
        return None
    rms = math.sqrt(total / ((last_frame - first_frame + 1) * SAMPLES_PER_FRAME))
    return 20 * math.log10(rms / FULL_SCALE)


def segment_status(lse_c: float | None, rms: float | None, min_lse_c: float) -> str:
    """``silent`` before ``low_confidence``: a quiet segment's confidence says nothing."""
    if lse_c is None:
        return "no_face"
    if rms is None or rms < SILENT_DBFS:
        return "silent"
    if lse_c < min_lse_c:
        return "low_confidence"
    return "ok"


@dataclass
class Segment:
    first_window: int | None  # of its track; None for a no_face stretch
    last_window: int | None
    start_frame: int  # 25-fps frames of the video, inclusive
    end_frame: int
    start_s: float
    end_s: float
    start_tc: str
    end_tc: str
    offset: int | None  # frames, positive = audio leads
    av_offset_ms: float | None
    lse_c: float | None
    lse_d: float | None
    rms_dbfs: float | None
    status: str

    def to_dict(self) -> dict:
        return asdict(self)


def _times(start_frame: int, end_frame: int, src_fps: float) -> dict:
    return {
        "start_frame": start_frame,
        "end_frame": end_frame,
        "start_s": start_frame / SCORING_FPS,
        "end_s": (end_frame + 1) / SCORING_FPS,
        "start_tc": timecode(start_frame, src_fps),
        "end_tc": timecode(end_frame, src_fps),
    }


def track_segments(
    distances: np.ndarray,
    energy: np.ndarray,
    track_start: int,
    length: int,
    hop: int,
    src_fps: float,
    min_lse_c: float,
) -> list[Segment]:
    """The segments of one track from its distance rows (N x S) and the per-frame audio
    energy of its stretch (frame 0 = the track's first frame)."""
    out = []
    for first, last in segment_ranges(len(distances), length, hop):
        r = _core.sync_stats(distances[first : last + 1])
        end = last + WINDOW_FRAMES - 1
        rms = rms_dbfs(energy, first, end)
        lse_c = float(r["lse_c"])
        out.append(
            Segment(
                first_window=first,
                last_window=last,
                **_times(track_start + first, track_start + end, src_fps),
                offset=int(r["offset"]),
                av_offset_ms=av_offset_ms(int(r["offset"])),
                lse_c=lse_c,
                lse_d=float(r["lse_d"]),
                rms_dbfs=rms,
                status=segment_status(lse_c, rms, min_lse_c),
            )
        )
    return out


def no_face_segments(
    n_frames: int, spans: list[tuple[int, int]], length: int, src_fps: float
) -> list[Segment]:
    """Detect mode: each stretch of at least ``length / 2`` frames that no track
    (``spans``: first and last frame, inclusive) covers, as one ``no_face`` segment."""
    covered = np.zeros(n_frames, bool)
    for a, b in spans:
        covered[a : b + 1] = True
    out, f = [], 0
    while f < n_frames:
        if covered[f]:
            f += 1
            continue
        g = f
        while g + 1 < n_frames and not covered[g + 1]:
            g += 1
        if 2 * (g - f + 1) >= length:
            out.append(
                Segment(
                    first_window=None,
                    last_window=None,
                    **_times(f, g, src_fps),
                    offset=None,
                    av_offset_ms=None,
                    lse_c=None,
                    lse_d=None,
                    rms_dbfs=None,
                    status="no_face",
                )
            )
        f = g + 1
    return out

"""Thumbnails of a review page's failing segments: the 25-fps frame at each one's start,
decoded by the scoring's own reader (``lipleak.io.video.iter_av_frames``: the same frame
the segment's numbers start from, rotation applied), as small JPEG data URIs.

One sequential decode per video that stops at the last frame wanted; only those frames are
converted and scaled.
"""

from __future__ import annotations

import base64
import logging

from ..timecode import SCORING_FPS

WIDTH = 160  # px; the page shows them at this size
THUMBS_PER_VIDEO = 6  # the first failing segments of a video get one
log = logging.getLogger(__name__)


def jpeg_data_uri(bgr, width: int = WIDTH) -> str:
    import cv2

    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def frames_at(path: str, wanted: list[int]) -> dict[int, str]:
    """{25-fps frame index: JPEG data URI} of the ``wanted`` frames that the video has."""
    from ..io.video import iter_av_frames, to_bgr

    todo = set(wanted)
    out: dict[int, str] = {}
    if not todo:
        return out
    last = max(todo)
    for f, frame in enumerate(iter_av_frames(path)):
        if f in todo:
            out[f] = jpeg_data_uri(to_bgr(frame))
        if f >= last:
            break
    return out


def failing_segments(entry: dict, limit: int = THUMBS_PER_VIDEO) -> list[tuple[int, int]]:
    """(track, segment) of the first ``limit`` failing segments, in time order."""
    found = [
        (tr["t0"][j], k, j)
        for k, tr in enumerate(entry["tracks"])
        for j, f in enumerate(tr["f"])
        if f
    ]
    return [(k, j) for _, k, j in sorted(found)[:limit]]


def add_thumbnails(videos: list[dict], progress=lambda done, total: None) -> int:
    """Fill each video entry's ``thumbs`` (``review.video_entry``) for its first failing
    segments; returns how many videos with such segments have no file to decode. A video
    that cannot be decoded gets none, with a warning: the page is still written."""
    missing = 0
    todo = [v for v in videos if v["tracks"]]
    for n, v in enumerate(todo):
        progress(n, len(todo))
        picks = failing_segments(v)
        v["thumbs"] = []
        if not picks:
            continue
        if not v["exists"]:
            missing += 1
            continue
        starts = {(k, j): round(v["tracks"][k]["t0"][j] * SCORING_FPS) for k, j in picks}
        try:
            got = frames_at(v["path"], sorted(set(starts.values())))
        except Exception as exc:  # noqa: BLE001 - one bad file must not cost the page
            log.warning("%s: no thumbnails: %s", v["name"], exc)
            continue
        for (k, j), f in starts.items():
            if f in got:
                tr = v["tracks"][k]
                v["thumbs"].append(
                    {"uri": got[f], "t": tr["t0"][j], "tc": tr["tc0"][j], "ms": tr["ms"][j]}
                )
        v["thumbs"].sort(key=lambda th: th["t"])
    progress(len(todo), len(todo))
    return missing

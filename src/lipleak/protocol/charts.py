"""Small PNG charts drawn with OpenCV (no plotting dependency): a scatter and a histogram."""

from __future__ import annotations

import math

import cv2
import numpy as np

W, H, M = 640, 420, 60  # size and margin
INK, GRID = (40, 40, 40), (225, 225, 225)
PALETTE = ((180, 110, 30), (50, 60, 200), (60, 150, 60))  # BGR: blue, red, green


def _canvas(title: str, xlabel: str, ylabel: str) -> np.ndarray:
    img = np.full((H, W, 3), 255, np.uint8)
    cv2.putText(img, title, (M, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.6, INK, 1, cv2.LINE_AA)
    cv2.putText(
        img, xlabel, (W // 2 - 60, H - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5, INK, 1, cv2.LINE_AA
    )
    (tw, _), _ = cv2.getTextSize(ylabel, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    lab = np.full((20, tw + 4, 3), 255, np.uint8)
    cv2.putText(lab, ylabel, (2, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, INK, 1, cv2.LINE_AA)
    lab = cv2.rotate(lab, cv2.ROTATE_90_COUNTERCLOCKWISE)
    y0 = max(0, H // 2 - lab.shape[0] // 2)
    img[y0 : y0 + lab.shape[0], 4 : 4 + lab.shape[1]] = lab[: H - y0]
    return img


def _range(values) -> tuple[float, float]:
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return 0.0, 1.0
    lo, hi = min(v), max(v)
    pad = (hi - lo) * 0.08 or 0.5
    return lo - pad, hi + pad


def _ticks(r, integer: bool, nticks: int = 5) -> list[float]:
    """Tick values inside ``r``: evenly spaced, or whole numbers (counts, offsets)."""
    if not integer:
        return [r[0] + i / nticks * (r[1] - r[0]) for i in range(nticks + 1)]
    step = max(1, math.ceil((r[1] - r[0]) / nticks))
    return [float(v) for v in range(math.ceil(r[0]), math.floor(r[1]) + 1, step)]


def _axes(img, xr, yr, nticks=5, xint: bool = False, yint: bool = False) -> None:
    for v in _ticks(xr, xint, nticks):
        x = _to_px(v, yr[0], xr, yr)[0]
        cv2.line(img, (x, M - 20), (x, H - M), GRID, 1)
        cv2.putText(
            img,
            f"{v:.3g}",
            (x - 14, H - M + 16),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.38,
            INK,
            1,
            cv2.LINE_AA,
        )
    for v in _ticks(yr, yint, nticks):
        y = _to_px(xr[0], v, xr, yr)[1]
        cv2.line(img, (M, y), (W - 20, y), GRID, 1)
        cv2.putText(
            img, f"{v:.3g}", (25, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38, INK, 1, cv2.LINE_AA
        )
    cv2.rectangle(img, (M, M - 20), (W - 20, H - M), INK, 1)


def _to_px(x, y, xr, yr) -> tuple[int, int]:
    px = M + (x - xr[0]) / (xr[1] - xr[0]) * (W - 20 - M)
    py = H - M - (y - yr[0]) / (yr[1] - yr[0]) * (H - 2 * M + 20)
    return int(round(px)), int(round(py))


def scatter(
    series: dict[str, list[tuple[float, float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    diagonal: bool = True,
) -> bytes:
    """PNG bytes: one colour per series, with the y = x line (equal scores on both axes)."""
    pts = [p for s in series.values() for p in s]
    lo, hi = _range([c for p in pts for c in p])
    xr = yr = (lo, hi)
    img = _canvas(title, xlabel, ylabel)
    _axes(img, xr, yr)
    if diagonal:
        cv2.line(
            img, _to_px(lo, lo, xr, yr), _to_px(hi, hi, xr, yr), (160, 160, 160), 1, cv2.LINE_AA
        )
    for i, (name, s) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        for x, y in s:
            cv2.circle(img, _to_px(x, y, xr, yr), 5, color, -1, cv2.LINE_AA)
        cv2.circle(img, (W - 150, 40 + 18 * i), 5, color, -1, cv2.LINE_AA)
        cv2.putText(
            img, name, (W - 138, 45 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, INK, 1, cv2.LINE_AA
        )
    return cv2.imencode(".png", img)[1].tobytes()


def histogram(
    series: dict[str, list[float]], title: str, xlabel: str, bins: int = 12, integer: bool = False
) -> bytes:
    """PNG bytes: side-by-side bars per series."""
    values = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    if integer and values:
        lo, hi = min(values) - 0.5, max(values) + 0.5
        bins = int(hi - lo)
    else:
        lo, hi = _range(values)
    edges = np.linspace(lo, hi, max(1, bins) + 1)
    counts = {
        k: np.histogram([v for v in s if v is not None and math.isfinite(v)], edges)[0]
        for k, s in series.items()
    }
    top = max([int(c.max()) for c in counts.values() if c.size] + [1])
    img = _canvas(title, xlabel, "videos")
    top_axis = top * 1.2  # headroom so the tallest bar stays clear of the legend
    _axes(img, (lo, hi), (0, top_axis), xint=integer, yint=True)
    k = max(1, len(series))
    for i, (name, c) in enumerate(counts.items()):
        color = PALETTE[i % len(PALETTE)]
        for j, n in enumerate(c):
            if n == 0:
                continue
            x0 = edges[j] + (edges[j + 1] - edges[j]) * i / k
            x1 = edges[j] + (edges[j + 1] - edges[j]) * (i + 1) / k
            p0 = _to_px(x0, 0, (lo, hi), (0, top_axis))
            p1 = _to_px(x1, n, (lo, hi), (0, top_axis))
            cv2.rectangle(img, (p0[0] + 1, p1[1]), (p1[0] - 1, p0[1]), color, -1)
        cv2.rectangle(img, (W - 155, 35 + 18 * i), (W - 145, 45 + 18 * i), color, -1)
        cv2.putText(
            img, name, (W - 138, 45 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, INK, 1, cv2.LINE_AA
        )
    return cv2.imencode(".png", img)[1].tobytes()

"""Report charts (OpenCV PNGs): what is drawn matches the data it is drawn from."""

from __future__ import annotations

import cv2
import numpy as np

from lipleak.protocol import charts


def _decode(png: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (charts.H, charts.W, 3)
    return img


def _mask(img: np.ndarray, colour) -> np.ndarray:
    """Pixels of exactly ``colour``, the legend (top right corner) left out."""
    m = np.all(img == np.array(colour, np.uint8), axis=-1)
    m[:80, charts.W - 160 :] = False
    return m


def test_integer_histogram_bar_heights_follow_counts():
    # offsets -2 x1, 0 x4, 3 x2: one bar per whole number, heights 1 : 4 : 2
    img = _decode(charts.histogram({"CR": [-2, 0, 0, 0, 0, 3, 3]}, "t", "offset", integer=True))
    bars = _mask(img, charts.PALETTE[0])
    plot = bars[charts.M - 20 : charts.H - charts.M, charts.M : charts.W - 20]
    cols = plot.sum(axis=0)
    heights = sorted({int(h) for h in cols if h > 0})
    assert len(heights) == 3
    h1, h2, h4 = heights
    assert abs(h2 / h1 - 2) < 0.05 and abs(h4 / h1 - 4) < 0.05
    # bars sit left to right in value order: -2 (1), 0 (4), 3 (2)
    runs = [int(cols[i]) for i in range(1, len(cols)) if cols[i] > 0 and cols[i - 1] == 0]
    assert runs == [h1, h4, h2]
    # headroom: the tallest bar stays below the legend rows
    assert not bars[:80].any()


def test_scatter_points_land_at_their_coordinates():
    img = _decode(charts.scatter({"CR": [(1.0, 1.0)], "AR": [(3.0, 2.0)]}, "t", "x", "y"))
    lo, hi = charts._range([1.0, 1.0, 3.0, 2.0])
    for colour, (x, y) in ((charts.PALETTE[0], (1.0, 1.0)), (charts.PALETTE[1], (3.0, 2.0))):
        ys, xs = np.nonzero(_mask(img, colour))
        px, py = charts._to_px(x, y, (lo, hi), (lo, hi))
        assert abs(xs.mean() - px) < 1.0 and abs(ys.mean() - py) < 1.0


def test_cell_fids_are_cached_by_feature_bytes(tmp_path, monkeypatch):
    """A cell's FID is computed once per exact set of feature files: rewriting the report
    reuses it, and changing one video's features recomputes that cell only."""
    import numpy as np

    from lipleak.protocol import reporting
    from lipleak.protocol.dataset import CELLS, GT_REF, GT_SETUP, features_path

    def cell_fid(gen, gt):  # a cheap stand-in: the test is about the cache, not the FID
        return float(sum(g.sum() for g in gen) - sum(t.sum() for t in gt))

    rng = np.random.default_rng(0)
    vh, stems = "abc123", ["v0", "v1"]
    videos = {}
    for s in stems:
        for setup, ref in [*CELLS, (GT_SETUP, GT_REF)]:
            p = features_path(tmp_path, vh, setup, ref, s)
            p.parent.mkdir(parents=True, exist_ok=True)
            np.save(p, rng.standard_normal((30, 8)).astype(np.float32))
            videos[(s, setup, ref)] = {"ssim": 0.5}
    calls = []

    def counting(gen, gt):
        calls.append(1)
        return cell_fid(gen, gt)

    monkeypatch.setattr("lipleak.metrics.fid.cell_fid", counting)
    first = reporting.cell_fids(tmp_path, vh, videos)
    assert len(first) == len(CELLS) and len(calls) == len(CELLS)
    for (setup, ref), v in first.items():  # the cached number is the computed one
        pairs = [
            (
                features_path(tmp_path, vh, setup, ref, s),
                features_path(tmp_path, vh, GT_SETUP, GT_REF, s),
            )
            for s in stems
        ]
        assert v == cell_fid((np.load(g) for g, _ in pairs), (np.load(t) for _, t in pairs))
    assert reporting.cell_fids(tmp_path, vh, videos) == first
    assert len(calls) == len(CELLS)  # all six from the cache
    setup, ref = CELLS[0]
    np.save(
        features_path(tmp_path, vh, setup, ref, "v1"),
        rng.standard_normal((30, 8)).astype(np.float32),
    )
    again = reporting.cell_fids(tmp_path, vh, videos)
    assert len(calls) == len(CELLS) + 1 and again[(setup, ref)] != first[(setup, ref)]
    assert {k: v for k, v in again.items() if k != (setup, ref)} == {
        k: v for k, v in first.items() if k != (setup, ref)
    }
    (tmp_path / ".lipleak" / "fid_cache.json").write_text("{not json")  # damaged: recompute
    assert reporting.cell_fids(tmp_path, vh, videos) == again
    assert len(calls) == 2 * len(CELLS) + 1

"""Fréchet Inception Distance (SPEC §3; reference: mseitzer/pytorch-fid).

A chain of small steps:

1. ``activations(model, crops)`` — stream Inception pool3 features, one batch at a time.
2. ``FeatureStats`` — accumulate n, Σx and Σxxᵀ in float64, so memory is one d×d matrix
   however many frames go in; shards (videos, workers) ``merge`` exactly.
3. ``FeatureStats.mean_cov()`` — μ and the unbiased covariance (what np.cov(rowvar=False)
   gives).
4. ``frechet_distance(μ1, Σ1, μ2, Σ2)`` — the distance, with pytorch-fid's eps and
   imaginary-part rules.

The talking-face convention pools the face crops of all frames of all videos of a cell
(one ``FeatureStats`` per cell, or per video merged per cell) against the GT crops;
``fid(gen_stats, gt_stats)`` gives the cell's number. ``cell_fid`` does that pooling from
per-video feature arrays, ``feature_files_fid`` from per-video ``.npy`` files (what
``score`` writes and ``report`` reads).

Public API, all of it: ``compute_stats`` runs an Inception model over crops from any
source; ``FeatureStats.save``/``load``/``merge`` keep and combine shards. The protocol
uses ``FeatureStats`` through ``cell_fid``/``feature_files_fid``.

Raw sums lose a little precision to cancellation in Σxxᵀ − n·μμᵀ; with float64 sums and
Inception features (non-negative, O(1)) this stays ~1e-12 relative to np.cov.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from scipy import linalg

from ..errors import InputError
from ..files import atomic_path

__all__ = [
    "EPS",
    "IMAG_TOL",
    "FeatureStats",
    "activations",
    "cell_fid",
    "compute_stats",
    "feature_files_fid",
    "fid",
    "frechet_distance",
]

EPS = 1e-6  # added to both covariances' diagonals when sqrtm is not finite (pytorch-fid)
IMAG_TOL = 1e-3  # largest |imaginary part| on sqrtm's diagonal that is still rounding


def activations(model, crops: Iterable[np.ndarray], batch_size: int = 32) -> Iterator[np.ndarray]:
    """Yield N×2048 float32 feature batches for a stream of BGR uint8 crops.

    ``model`` is a ``lipleak.models.inception.FIDInception`` (anything with
    ``features(list_of_crops) -> N×D``). Only ``batch_size`` crops are held at a time.
    """
    batch: list[np.ndarray] = []
    for crop in crops:
        batch.append(crop)
        if len(batch) == batch_size:
            yield model.features(batch)
            batch = []
    if batch:
        yield model.features(batch)


class FeatureStats:
    """Streaming first and second moments of feature vectors, in float64."""

    def __init__(self, dim: int = 2048):
        self.dim = dim
        self.n = 0
        self.sum = np.zeros(dim, np.float64)
        self.sum_outer = np.zeros((dim, dim), np.float64)

    def update(self, feats: np.ndarray) -> FeatureStats:
        """Add an N×dim batch of features."""
        x = np.asarray(feats, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise InputError(None, f"features must be N×{self.dim}, got {x.shape}", "bad_features")
        self.n += x.shape[0]
        self.sum += x.sum(axis=0)
        self.sum_outer += x.T @ x
        return self

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Add another accumulator's frames (exact: the sums just add)."""
        if other.dim != self.dim:
            raise InputError(
                None, f"cannot merge {other.dim}-d stats into {self.dim}-d", "bad_features"
            )
        self.n += other.n
        self.sum += other.sum
        self.sum_outer += other.sum_outer
        return self

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """μ (dim) and the unbiased covariance (dim×dim), as np.cov(rowvar=False)."""
        if self.n < 2:
            raise InputError(None, f"FID needs at least 2 frames, got {self.n}", "too_short")
        mu = self.sum / self.n
        cov = np.outer(mu, mu)  # in place from here: one d×d temporary, not four
        cov *= -self.n
        cov += self.sum_outer
        cov /= self.n - 1
        return mu, cov

    def save(self, path: str | Path) -> Path:
        """Write n, Σx, Σxxᵀ to an .npz (loadable and mergeable with ``load``)."""
        path = Path(path)
        # a file object, so np.savez cannot append .npz to the temporary name
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, n=np.int64(self.n), sum=self.sum, sum_outer=self.sum_outer)
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureStats:
        """Read what ``save`` wrote."""
        try:
            with np.load(path) as z:
                n, s, so = int(z["n"]), z["sum"], z["sum_outer"]
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(path, f"not a FeatureStats .npz ({exc})", "bad_stats") from exc
        if s.ndim != 1 or so.shape != (s.shape[0], s.shape[0]):
            raise InputError(path, f"inconsistent shapes {s.shape} / {so.shape}", "bad_stats")
        st = cls(s.shape[0])
        st.n, st.sum[:], st.sum_outer[:] = n, s, so
        return st


def compute_stats(
    model, crops: Iterable[np.ndarray], batch_size: int = 32, stats: FeatureStats | None = None
) -> FeatureStats:
    """Stream crops through the model into (a new or the given) ``FeatureStats``."""
    stats = stats if stats is not None else FeatureStats()
    for feats in activations(model, crops, batch_size):
        stats.update(feats)
    return stats


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = EPS
) -> float:
    """d² = ‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2·sqrtm(Σ1Σ2)), SPEC §3.

    If sqrtm is not finite (near-singular product), ``eps``·I is added to both Σ. An
    imaginary part on sqrtm's diagonal above 1e-3 in absolute value is an error
    (InputError, status ``fid_numerics``); smaller ones are rounding and dropped.
    """
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    sigma1, sigma2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise InputError(
            None,
            f"mismatched FID statistics {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}",
            "bad_features",
        )
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        worst = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if worst > IMAG_TOL:
            raise InputError(
                None,
                f"FID: sqrtm has an imaginary component {worst:.3g} > {IMAG_TOL}",
                "fid_numerics",
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(stats1: FeatureStats, stats2: FeatureStats) -> float:
    """FID between two accumulated sets (e.g. a cell's generated crops and its GT crops)."""
    mu1, s1 = stats1.mean_cov()
    mu2, s2 = stats2.mean_cov()
    return frechet_distance(mu1, s1, mu2, s2)


def cell_fid(
    gen_feature_arrays: Iterable[np.ndarray], gt_feature_arrays: Iterable[np.ndarray]
) -> float:
    """FID of a cell: all generated features pooled against all GT features (SPEC §3).

    Streams the arrays into two ``FeatureStats`` (one d×d matrix each, never a stack), so
    the iterables may load one video's features at a time. Never an average of per-video
    FIDs: how the frames are split into arrays cannot move the number.
    """
    gen, gt = FeatureStats(), FeatureStats()
    for a in gen_feature_arrays:
        gen.update(a)
    for a in gt_feature_arrays:
        gt.update(a)
    return fid(gen, gt)


def feature_files_fid(gen_files: Iterable[str | Path], gt_files: Iterable[str | Path]) -> float:
    """``cell_fid`` of per-video feature files (``.npy``, frames×dim), read one at a time."""
    return cell_fid((np.load(p) for p in gen_files), (np.load(p) for p in gt_files))

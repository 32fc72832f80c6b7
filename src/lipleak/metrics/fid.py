"""Fréchet Inception Distance (SPEC §3; reference: mseitzer/pytorch-fid).

A chain of small steps:

1. ``activations(model, crops)`` — stream Inception pool3 features, one batch at a time.
2. ``FeatureStats`` — accumulate n, Σx and Σxxᵀ in float64, so memory is one d×d matrix
   however many frames go in; shards (videos, workers) ``merge`` exactly. While a set has
   fewer than d frames it also keeps them (at most d−1 rows: bounded by one more d×d).
3. ``FeatureStats.mean_cov()`` — μ and the unbiased covariance (what np.cov(rowvar=False)
   gives); ``FeatureStats.factor()`` — F with FᵀF = Σ (centred frames / √(n−1)), when kept.
4. ``trace_sqrt_product(Σ1, Σ2[, F1, F2])`` — tr √(Σ1Σ2), the only costly term, as Σ√λ
   over the eigenvalues of Σ1Σ2, taken from symmetric PSD matrices with the same nonzero
   eigenvalues: Lᵀ Σ2 L with Σ1 = LLᵀ (Cholesky, d×d) when Σ1 is positive definite,
   S Σ2 S with S = √Σ1 from eigh (d×d) when it is not, F1 Σ2 F1ᵀ (k×k) when one set has
   k < d frames, or the singular values of F1 F2ᵀ (k1×k2) when both have.
5. ``frechet_distance(μ1, Σ1, μ2, Σ2[, factors])`` — ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2·(4).

Why not pytorch-fid's ``scipy.linalg.sqrtm(Σ1Σ2)``: only its trace is used, and a general
(non-symmetric) 2048² square root costs ~9–18 s on 2 cores, against ~1 s for Cholesky,
~1.6 s for eigh and well under a second for the factor paths; they agree within 3.2e-7
relative, the differences being sqrtm's rounding where Σ is singular
(``tests/test_fid.py``, ``bench/bench_fid.py``). pytorch-fid's rules:

- eps retry (add 1e-6·I to both Σ when sqrtm is not finite): eigh and the SVD of finite
  input are always finite, so there is nothing to retry. The product of two PSD matrices is
  diagonalisable with real λ ≥ 0, so its square root exists; a non-finite sqrtm is that
  algorithm's own breakdown on a singular product, and the retry then moves the number
  by ~1e-3 relative (8e-4 in the tests, n < d). scipy 1.17's sqrtm stayed finite on
  every singular product tried (n < d real and synthetic features, exact zeros).
- imaginary part (error above 1e-3 on sqrtm's diagonal, else dropped): eigenvalues that
  rounding pushes below 0 are clipped to 0, which is exactly the real part of their root.
- input that is not a pair of covariances within rounding (not finite, not symmetric, an
  eigenvalue below −1e-10 of the largest) goes to ``frechet_distance_sqrtm``, which is
  pytorch-fid's algorithm unchanged, so it gets pytorch-fid's answer or error.

The factor paths are also more accurate where Σ is singular (fewer than d+1 frames):
sqrtm and the d×d paths leave ~1e-6·(tr Σ1 + tr Σ2) of rounding in a set's FID
against itself, the factors ~1e-13.

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
    "PSD_TOL",
    "FeatureStats",
    "activations",
    "cell_fid",
    "compute_stats",
    "feature_files_fid",
    "fid",
    "frechet_distance",
    "frechet_distance_sqrtm",
    "trace_sqrt_product",
]

EPS = 1e-6  # added to both covariances' diagonals when sqrtm is not finite (pytorch-fid)
IMAG_TOL = 1e-3  # largest |imaginary part| on sqrtm's diagonal that is still rounding
# Rounding makes a covariance's smallest eigenvalues ~1e-16..1e-13 of its largest, either
# sign, and its two triangles equal to ~1e-16; anything beyond this is not a covariance.
PSD_TOL = 1e-10


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
    """Streaming first and second moments of feature vectors, in float64.

    While fewer than ``dim`` frames have gone in, the frames themselves are kept too
    (``rows``; at most dim−1 of them, as float32 when they came as float32): then Σ has
    rank < dim and ``factor`` gives Σ = FᵀF, which makes the Fréchet distance a small
    k×k problem. From the dim-th frame on they are dropped for good (``rows`` is None).
    """

    def __init__(self, dim: int = 2048):
        self.dim = dim
        self.n = 0
        self.sum = np.zeros(dim, np.float64)
        self.sum_outer = np.zeros((dim, dim), np.float64)
        self.rows: list[np.ndarray] | None = []

    def update(self, feats: np.ndarray) -> FeatureStats:
        """Add an N×dim batch of features."""
        src = np.asarray(feats)
        x = src.astype(np.float64, copy=False)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise InputError(None, f"features must be N×{self.dim}, got {x.shape}", "bad_features")
        self.n += x.shape[0]
        self.sum += x.sum(axis=0)
        self.sum_outer += x.T @ x
        if self.rows is not None and self.n < self.dim:
            # a copy (the caller may reuse its buffer); float32 → float64 later is exact
            self.rows.append(np.array(src, np.float32 if src.dtype == np.float32 else np.float64))
        else:
            self.rows = None
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
        if self.rows is not None and other.rows is not None and self.n < self.dim:
            self.rows = self.rows + other.rows
        else:
            self.rows = None
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

    def factor(self) -> np.ndarray | None:
        """F (n×dim, float64) with FᵀF = the covariance: the frames centred on μ and scaled
        by 1/√(n−1). None once ``dim`` frames have gone in (or for fewer than 2)."""
        if self.rows is None or self.n < 2:
            return None
        f = np.concatenate(self.rows).astype(np.float64)
        f -= self.sum / self.n
        f /= np.sqrt(self.n - 1)
        return f

    def save(self, path: str | Path) -> Path:
        """Write n, Σx, Σxxᵀ (and the kept rows, if any) to an .npz (see ``load``)."""
        path = Path(path)
        arrays = {"n": np.int64(self.n), "sum": self.sum, "sum_outer": self.sum_outer}
        if self.rows is not None:
            arrays["rows"] = np.concatenate(self.rows) if self.rows else np.zeros((0, self.dim))
        # a file object, so np.savez cannot append .npz to the temporary name
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureStats:
        """Read what ``save`` wrote."""
        try:
            with np.load(path) as z:
                n, s, so = int(z["n"]), z["sum"], z["sum_outer"]
                rows = z["rows"] if "rows" in z.files else None
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(path, f"not a FeatureStats .npz ({exc})", "bad_stats") from exc
        if s.ndim != 1 or so.shape != (s.shape[0], s.shape[0]):
            raise InputError(path, f"inconsistent shapes {s.shape} / {so.shape}", "bad_stats")
        if rows is not None and rows.shape != (n, s.shape[0]):
            raise InputError(path, f"rows {rows.shape} do not fit n={n}", "bad_stats")
        st = cls(s.shape[0])
        st.n, st.sum[:], st.sum_outer[:] = n, s, so
        # a file without rows (written with ≥ dim frames, or by an older version) still
        # gives the same distance, through the d×d path
        st.rows = [rows] if rows is not None and n < st.dim else None
        return st


def compute_stats(
    model, crops: Iterable[np.ndarray], batch_size: int = 32, stats: FeatureStats | None = None
) -> FeatureStats:
    """Stream crops through the model into (a new or the given) ``FeatureStats``."""
    stats = stats if stats is not None else FeatureStats()
    for feats in activations(model, crops, batch_size):
        stats.update(feats)
    return stats


def _checked_stats(mu1, sigma1, mu2, sigma2):
    """μ and Σ of both sets as float64 arrays of matching shapes (d and d×d)."""
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
    return mu1, sigma1, mu2, sigma2


def frechet_distance_sqrtm(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = EPS
) -> float:
    """pytorch-fid's algorithm as it is: ``scipy.linalg.sqrtm(Σ1Σ2)`` with its two rules.

    If sqrtm is not finite (near-singular product), ``eps``·I is added to both Σ. An
    imaginary part on sqrtm's diagonal above 1e-3 in absolute value is an error
    (InputError, status ``fid_numerics``); smaller ones are rounding and dropped.
    ``frechet_distance`` falls back to this for input that is not a pair of covariances
    within rounding, and the tests and ``bench/bench_fid.py`` use it as the oracle.
    """
    mu1, sigma1, mu2, sigma2 = _checked_stats(mu1, sigma1, mu2, sigma2)
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


def _symmetric(sigma: np.ndarray) -> np.ndarray | None:
    """Σ made exactly symmetric, or None if it is not symmetric within rounding.

    eigh reads one triangle only; sqrtm(Σ1Σ2) reads both, so an asymmetric input must go
    to the sqrtm path rather than be silently half-read.
    """
    scale = np.abs(sigma).max(initial=0.0)
    if np.abs(sigma - sigma.T).max(initial=0.0) > PSD_TOL * scale:
        return None
    return (sigma + sigma.T) / 2


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray | None:
    """√Σ = V diag(√w) Vᵀ from eigh, or None if Σ has an eigenvalue below −PSD_TOL·max|w|.

    Negative eigenvalues down to that level are rounding (a covariance is PSD) and count
    as 0; anything lower means the input is not a covariance.
    """
    w, v = linalg.eigh(sigma, driver="evd", check_finite=False)
    if w.min(initial=0.0) < -PSD_TOL * np.abs(w).max(initial=0.0):
        return None
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _trace_sqrt_psd(m: np.ndarray) -> float | None:
    """Σ√λ over the eigenvalues of a symmetric PSD matrix (None if it is not PSD).

    Σ√max(λ, 0) is what pytorch-fid's "drop the imaginary part" gives for the eigenvalues
    that rounding pushes just below 0: Re √λ = √max(λ, 0).
    """
    lam = linalg.eigh((m + m.T) / 2, eigvals_only=True, driver="evr", check_finite=False)
    if lam.min(initial=0.0) < -PSD_TOL * np.abs(lam).max(initial=0.0):
        return None
    return float(np.sqrt(np.clip(lam, 0, None)).sum())


def trace_sqrt_product(
    sigma1: np.ndarray,
    sigma2: np.ndarray,
    factor1: np.ndarray | None = None,
    factor2: np.ndarray | None = None,
) -> float | None:
    """tr √(Σ1Σ2) = Σ√λ over the eigenvalues λ of Σ1Σ2, without a general matrix sqrt.

    For PSD Σ1, Σ2 the product Σ1Σ2 is diagonalisable with real λ ≥ 0, and it has the
    nonzero eigenvalues of symmetric PSD matrices that eigh handles:

    - no factor: Lᵀ Σ2 L with Σ1 = LLᵀ (Cholesky) when Σ1 is positive definite, else
      S Σ2 S with S = √Σ1 (eigh of Σ1), all d×d;
    - ``factor1`` F1 (k×d, Σ1 = F1ᵀF1, k < d frames): F1 Σ2 F1ᵀ, k×k;
    - both factors: the λ are the squared singular values of F1 F2ᵀ (k1×k2), so the trace
      is its nuclear norm (singular values, not eigenvalues of (F1F2ᵀ)(F1F2ᵀ)ᵀ, whose
      rounding would be squared).

    eigh and the SVD of finite symmetric/real matrices return finite, real values, so
    pytorch-fid's two rules have nothing to act on here: its eps retry answers a
    non-finite sqrtm, and its imaginary part comes from eigenvalues that rounding pushes
    below 0 (clipped to 0 here, which is its real part). Returns None when Σ1 or Σ2 is
    not finite, not symmetric or not PSD within rounding (``PSD_TOL``): then the input is
    not a pair of covariances and the caller runs pytorch-fid's algorithm instead.
    """
    # a non-finite frame makes its Σ non-finite too, so this covers the factors as well
    if not (np.isfinite(sigma1).all() and np.isfinite(sigma2).all()):
        return None
    if factor1 is not None and factor2 is not None:  # Σ1, Σ2 themselves are not needed
        return float(linalg.svdvals(factor1 @ factor2.T, check_finite=False).sum())
    if factor1 is None and factor2 is not None:  # tr √(Σ1Σ2) = tr √(Σ2Σ1): same λ
        factor1, sigma1, sigma2 = factor2, sigma2, sigma1
    sigma2 = _symmetric(sigma2)
    if sigma2 is None:
        return None
    if factor1 is not None:
        return _trace_sqrt_psd(factor1 @ sigma2 @ factor1.T)
    sigma1 = _symmetric(sigma1)
    if sigma1 is None:
        return None
    try:
        # Σ1 = LLᵀ (full rank: ≥ d+1 frames): Lᵀ Σ2 L is similar to Σ1Σ2 (L⁻¹·Σ1Σ2·L),
        # and Cholesky costs a fraction of eigh with the same backward error
        chol = linalg.cholesky(sigma1, lower=True, check_finite=False)
        return _trace_sqrt_psd(chol.T @ sigma2 @ chol)
    except np.linalg.LinAlgError:  # not positive definite (singular, or not a covariance)
        root = _psd_sqrt(sigma1)
        return None if root is None else _trace_sqrt_psd(root @ sigma2 @ root)


def _trace(sigma: np.ndarray, factor: np.ndarray | None) -> float:
    """tr Σ; from the factor when there is one (‖F‖², the same rounding as its λ)."""
    if factor is None:
        return float(np.trace(sigma))
    if factor.ndim != 2 or factor.shape[1] != sigma.shape[0]:
        raise InputError(
            None, f"factor {factor.shape} does not fit Σ {sigma.shape}", "bad_features"
        )
    tr = float(np.einsum("ij,ij->", factor, factor))
    # a factor of another set would give a wrong number without any error: check it
    if abs(tr - float(np.trace(sigma))) > 1e-6 * max(tr, 1e-300):
        raise InputError(None, "FID: the factor is not one of this covariance", "bad_features")
    return tr


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = EPS,
    factor1: np.ndarray | None = None,
    factor2: np.ndarray | None = None,
) -> float:
    """d² = ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2·tr √(Σ1Σ2), SPEC §3.

    The trace of the square root comes from ``trace_sqrt_product`` (eigh, or the frames'
    factors Σ = FᵀF when given: ``FeatureStats.factor``). Input that is not a pair of
    covariances within rounding (not finite, not symmetric, an eigenvalue well below 0)
    goes to ``frechet_distance_sqrtm``, pytorch-fid's algorithm with its ``eps`` retry
    and imaginary-part error, so such input gets exactly pytorch-fid's answer or error.
    """
    mu1, sigma1, mu2, sigma2 = _checked_stats(mu1, sigma1, mu2, sigma2)
    tr1, tr2 = _trace(sigma1, factor1), _trace(sigma2, factor2)
    try:
        tr_covmean = trace_sqrt_product(sigma1, sigma2, factor1, factor2)
    except np.linalg.LinAlgError:  # LAPACK did not converge: never seen, but not fatal
        tr_covmean = None
    if tr_covmean is None:
        return frechet_distance_sqrtm(mu1, sigma1, mu2, sigma2, eps)
    diff = mu1 - mu2
    return float(diff @ diff + tr1 + tr2 - 2 * tr_covmean)


def fid(stats1: FeatureStats, stats2: FeatureStats) -> float:
    """FID between two accumulated sets (e.g. a cell's generated crops and its GT crops)."""
    mu1, s1 = stats1.mean_cov()
    mu2, s2 = stats2.mean_cov()
    return frechet_distance(mu1, s1, mu2, s2, factor1=stats1.factor(), factor2=stats2.factor())


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

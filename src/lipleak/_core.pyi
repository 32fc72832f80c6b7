"""Typed interface of the C++ core (csrc/). Plain functions over numpy arrays, no state.

Every function checks its input before the numeric work (which runs with the GIL
released) and raises ValueError for empty, too-short, NaN/inf, wrongly-shaped or
wrong-dtype arrays, TypeError for something that is not a numpy array. Dtypes are never
converted silently; non-contiguous arrays are accepted (copied).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import numpy as np
import numpy.typing as npt

class SyncStats(TypedDict):
    mdist: npt.NDArray[np.float64]
    """mean over frames of d[:, s], one value per shift (S = 2*vshift+1)"""
    best: int
    """argmin of mdist, the first index on ties"""
    offset: int
    """vshift - best (audio leads video by this many frames when positive)"""
    lse_d: float
    """LSE-D = min(mdist)"""
    lse_c: float
    """LSE-C = median(mdist) - min(mdist)"""
    fconf: npt.NDArray[np.float64]
    """median(mdist) - d[i, best], median-filtered (kernel 9, zero-padded ends), one per frame"""

def shift_distances(
    video: npt.NDArray[np.float32],
    audio: npt.NDArray[np.float32],
    vshift: int = 15,
    row0: int = 0,
) -> npt.NDArray[np.float64]:
    """Distances between video rows and shifted audio rows (SPEC §2).

    video: float32[N, D], audio: float32[M, D] (N, M, D >= 1, finite). With apad = vshift
    zero rows, audio, then zero rows without end:
    ``d[i, s] = ||video[i] - apad[row0 + i + s] + 1e-6||_2`` for s = 0 .. 2*vshift
    (1e-6 added to every component, like torch.nn.functional.pairwise_distance). Against real
    audio rows the differences and squares are float32 (as torch computes them) summed in 16
    fixed lanes promoted to double every 512 elements (relative error < 1e-6, the same bits on
    every CPU and thread count); padding rows and doubtful pairs are computed in double.
    row0 >= 0 lets a caller stream video in chunks against the full audio: the rows of
    ``shift_distances(video[a:b], audio, vshift, row0=a)`` equal rows a..b of the full call
    bit for bit. 0 <= vshift <= 100000. Returns float64[N, 2*vshift+1].
    """

def sync_stats(d: npt.NDArray[np.float64]) -> SyncStats:
    """LSE-C, LSE-D, offset and per-frame confidence of a distance matrix.

    d: float64[N, S], N >= 1, S = 2*vshift+1 odd, finite.
    """

def offset_search(
    video: npt.NDArray[np.float32],
    audio: npt.NDArray[np.float32],
    vshift: int = 15,
) -> SyncStats:
    """sync_stats(shift_distances(video, audio, vshift)); video and audio float32[N, D]."""

def offset_search_batch(
    videos: Sequence[npt.NDArray[np.float32]],
    audios: Sequence[npt.NDArray[np.float32]],
    vshift: int = 15,
) -> list[SyncStats]:
    """offset_search of each (videos[k], audios[k]) pair, items in parallel (OpenMP).

    Every item is validated first; results are identical to one offset_search per item.
    """

def mfcc(
    signal: npt.NDArray[np.int16],
    samplerate: int = 16000,
    *,
    first: int = 0,
    count: int | None = None,
    base: int = 0,
) -> npt.NDArray[np.float64]:
    """python_speech_features.mfcc(signal, samplerate) with every default (v0.6).

    signal: int16[n], n >= 1, sample values used as they are (not scaled).
    1000 <= samplerate <= 192000. Returns float64[T, 13],
    T = 1 + ceil((n - winlen) / winstep) (1 when n <= winlen; 400 / 160 samples at 16 kHz).

    Streaming: with ``base`` > 0, ``signal`` holds samples base .. base + n - 1 of a longer
    signal; rows ``first`` .. ``first + count - 1`` of that signal's MFCC are returned, bit
    for bit (samples past the end of ``signal`` count as the signal's end). The frames'
    samples, and the one before (pre-emphasis), must be in ``signal``: base <= first *
    winstep - 1 (ValueError otherwise). ``count`` defaults to every frame up to the end.
    """

def ssim(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """Per-frame SSIM, as skimage.metrics.structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1).

    a, b: uint8[F, H, W, C] or uint8[F, H, W] (grayscale; a single H x W x C image must be
    given a leading frame axis), same shape, H and W >= 11. Returns float64[F].
    """

def psnr(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """Per-frame PSNR 10*log10(255**2 / MSE), MSE in float64 over all pixels and channels.

    a, b: uint8[F, H, W(, C)], same shape. Identical frames give +inf (MSE = 0); callers
    that average must decide how to treat it. Returns float64[F].
    """

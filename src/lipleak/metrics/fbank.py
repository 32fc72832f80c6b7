"""AV-HuBERT's audio input (SPEC §9): log mel filterbank, 4-frame stacking, alignment, norm.

av_hubert (``avhubert/hubert_dataset.py``, ``load_feature`` and ``__getitem__``) prepares
the audio of a clip as:

1. ``python_speech_features.logfbank(wav, 16000)`` on the int16 samples: pre-emphasis 0.97
   (the first sample kept as is), 400-sample frames every 160 samples (25 ms / 10 ms), the
   last frame zero-padded (one frame when the clip has at most 400 samples, else
   ``1 + ceil((n - 400) / 160)``), power spectrum ``|rfft(frame, 512)|² / 512``, 26
   triangular mel filters on the bins ``floor(513 · mel2hz(m) / 16000)``, a zero filter
   energy replaced by float64 eps, natural log; then ``.astype(float32)``.
2. ``stacker``: zero rows appended up to a multiple of 4, then 4 consecutive 26-d rows
   concatenated into one 104-d row (one row per 25 fps video frame).
3. Alignment to the video: zero rows appended when there are fewer rows than video frames,
   the last rows dropped when there are more.
4. ``F.layer_norm(feats, feats.shape[1:])`` (``normalize: true`` in every published
   pretraining config): ``normalized_shape`` is the last axis only, so each 104-d row is
   normalised over its own 104 values (biased variance, eps 1e-5, no weight or bias).
   It is NOT a normalisation over time per feature (SPEC §9's wording); rows are
   independent, which is what lets the whole chain stream.

``logfbank`` is the one-shot filterbank; ``LogFbankStream`` computes the same rows from
consecutive chunks (the pre-emphasis of a chunk's first sample needs the previous chunk's
last sample, and a frame straddles chunks), holding at most one frame of samples.
``AvhubertAudio`` streams steps 1–4; ``avhubert_audio`` is its one-call form.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import InputError

SAMPLE_RATE = 16000
FRAME_LEN = 400  # round_half_up(0.025 * 16000), as psf's framesig rounds it
FRAME_STEP = 160  # round_half_up(0.010 * 16000)
NFFT = 512
N_FILTERS = 26
PREEMPH = 0.97
STACK = 4  # filterbank frames (100 Hz) per video frame (25 fps): stack_order_audio
FEAT_DIM = N_FILTERS * STACK  # 104, audio_feat_dim of the published configs
LN_EPS = 1e-5  # torch.nn.functional.layer_norm's default


def _hz2mel(hz):
    return 2595 * np.log10(1 + hz / 700.0)


def _mel2hz(mel):
    return 700 * (10 ** (mel / 2595.0) - 1)


def mel_filterbank(
    nfilt: int = N_FILTERS, nfft: int = NFFT, samplerate: int = SAMPLE_RATE
) -> np.ndarray:
    """psf's ``get_filterbanks`` (0 Hz to samplerate/2): float64 [nfilt, nfft//2 + 1].

    The band edges are whole FFT bins, floor((nfft + 1) · hz / samplerate), and each
    triangle rises over [edge j, edge j+1) and falls over [edge j+1, edge j+2).
    """
    mels = np.linspace(_hz2mel(0), _hz2mel(samplerate / 2), nfilt + 2)
    edges = np.floor((nfft + 1) * _mel2hz(mels) / samplerate)
    fb = np.zeros([nfilt, nfft // 2 + 1])
    for j in range(nfilt):
        lo, mid, hi = edges[j], edges[j + 1], edges[j + 2]
        for i in range(int(lo), int(mid)):
            fb[j, i] = (i - lo) / (mid - lo)
        for i in range(int(mid), int(hi)):
            fb[j, i] = (hi - i) / (hi - mid)
    return fb


_FB_T = np.ascontiguousarray(mel_filterbank().T)  # [257, 26]
_EPS = np.finfo(float).eps


def n_fbank_frames(n_samples: int) -> int:
    """Filterbank frames psf makes of ``n_samples`` samples (>= 1 sample)."""
    if n_samples <= FRAME_LEN:
        return 1
    return 1 + -(-(n_samples - FRAME_LEN) // FRAME_STEP)


def _log_energies(frames: np.ndarray) -> np.ndarray:
    """Pre-emphasised float64 frames [k, 400] -> log mel energies float64 [k, 26].

    The same operations in the same order as psf (``powspec``, ``fbank``, ``logfbank``),
    so the numbers agree bit for bit; the product with the filterbank is taken one row
    at a time so a row's value cannot depend on how many rows share the call (a BLAS
    may block a matrix product differently by its size).
    """
    pspec = 1.0 / NFFT * np.square(np.absolute(np.fft.rfft(frames, NFFT)))
    feat = np.empty((len(frames), N_FILTERS))
    for k in range(len(frames)):
        feat[k] = pspec[k] @ _FB_T
    feat = np.where(feat == 0, _EPS, feat)
    return np.log(feat)


def _check_chunk(chunk) -> np.ndarray:
    x = np.asarray(chunk)
    if x.ndim != 1:
        raise ValueError(f"audio chunks must be 1-D sample arrays, got shape {x.shape}")
    return x


class LogFbankStream:
    """``logfbank`` of a signal given as consecutive chunks, frame by frame.

    ``push(chunk)`` returns the rows whose 400 samples have all arrived (float64
    [k, 26], possibly k = 0); ``finish()`` returns the rest, zero-padded as psf pads the
    end. Concatenated, they equal ``logfbank`` of the whole signal bit for bit. Memory:
    less than one frame of samples is held between calls.
    """

    def __init__(self) -> None:
        self._prev = None  # last raw sample seen (pre-emphasis of the next chunk)
        self._buf = np.zeros(0)  # pre-emphasised samples from the next frame's start on
        self._seen = 0  # samples pushed so far
        self._done = 0  # frames returned so far
        self._finished = False

    def push(self, chunk) -> np.ndarray:
        if self._finished:
            raise RuntimeError("push after finish")
        x = _check_chunk(chunk)
        if len(x) == 0:
            return np.zeros((0, N_FILTERS))
        if self._prev is None:
            # psf: numpy.append(signal[0], signal[1:] - coeff * signal[:-1])
            y = np.append(x[0], x[1:] - PREEMPH * x[:-1])
        else:
            xc = np.concatenate([self._prev, x])
            y = xc[1:] - PREEMPH * xc[:-1]
        self._prev = x[-1:]
        self._seen += len(x)
        self._buf = np.concatenate([self._buf, y.astype(np.float64, copy=False)])
        start = self._done * FRAME_STEP  # sample index of self._buf[0]
        count = 0
        while (self._done + count) * FRAME_STEP + FRAME_LEN <= self._seen:
            count += 1
        return self._emit(count, start)

    def finish(self) -> np.ndarray:
        """The remaining rows; InputError "no_audio" when no sample was ever pushed."""
        if self._finished:
            raise RuntimeError("finish called twice")
        self._finished = True
        if self._seen == 0:
            raise InputError(None, "no audio samples for the filterbank", "no_audio")
        total = n_fbank_frames(self._seen)
        pad = (total - 1) * FRAME_STEP + FRAME_LEN - self._seen
        start = self._done * FRAME_STEP
        self._buf = np.concatenate([self._buf, np.zeros(pad)])
        return self._emit(total - self._done, start)

    def _emit(self, count: int, start: int) -> np.ndarray:
        if count == 0:
            return np.zeros((0, N_FILTERS))
        idx = (np.arange(count) * FRAME_STEP)[:, None] + np.arange(FRAME_LEN)[None, :]
        frames = self._buf[idx]
        self._done += count
        self._buf = self._buf[self._done * FRAME_STEP - start :]
        return _log_energies(frames)


def logfbank(signal) -> np.ndarray:
    """``python_speech_features.logfbank(signal, 16000)`` at its defaults: float64 [n, 26]."""
    s = LogFbankStream()
    head = s.push(signal)
    return np.concatenate([head, s.finish()])


def stack_frames(feats: np.ndarray, order: int = STACK) -> np.ndarray:
    """av_hubert's ``stacker``: zero rows up to a multiple of ``order``, then ``order``
    consecutive rows side by side: [n, d] -> [ceil(n / order), order * d], dtype kept."""
    n, d = feats.shape
    pad = -n % order
    if pad:
        feats = np.concatenate([feats, np.zeros((pad, d), feats.dtype)])
    return feats.reshape(-1, order * d)


def align_to_video(feats: np.ndarray, n_video: int) -> np.ndarray:
    """av_hubert's length rule: zero rows appended or the last rows dropped -> [n_video, d]."""
    diff = len(feats) - n_video
    if diff < 0:
        return np.concatenate([feats, np.zeros((-diff, feats.shape[1]), feats.dtype)])
    return feats[:n_video]


def layer_norm_rows(feats: np.ndarray, eps: float = LN_EPS) -> np.ndarray:
    """``F.layer_norm(x, x.shape[1:])`` on [T, d]: each row over its own d values.

    Computed in float64 from the float32 input and rounded once to float32; torch
    computes in float32, so the two differ by float32 rounding (a few 1e-7 relative).
    """
    x = feats.astype(np.float64)
    mean = x.mean(axis=1, keepdims=True)
    var = np.square(x - mean).mean(axis=1, keepdims=True)
    return ((x - mean) / np.sqrt(var + eps)).astype(np.float32)


class AvhubertAudio:
    """av_hubert's audio input streamed: int16 chunks in, normalised float32 [k, 104] out.

    ``n_video`` (the clip's video frame count) applies av_hubert's alignment: rows past
    it are never returned and ``finish`` pads with rows that normalise to zero, as the
    zero rows av_hubert appends do. ``n_video=None`` returns every stacked row.
    """

    def __init__(self, n_video: int | None = None) -> None:
        if n_video is not None and n_video < 0:
            raise ValueError(f"n_video must be >= 0, got {n_video}")
        self.n_video = n_video
        self._fbank = LogFbankStream()
        self._pending = np.zeros((0, N_FILTERS), np.float32)  # < STACK fbank rows
        self._out = 0  # rows returned so far

    def push(self, chunk) -> np.ndarray:
        return self._take(self._fbank.push(chunk), last=False)

    def finish(self) -> np.ndarray:
        rows = self._take(self._fbank.finish(), last=True)
        if self.n_video is not None and self._out < self.n_video:
            pad = np.zeros((self.n_video - self._out, FEAT_DIM), np.float32)
            self._out = self.n_video
            rows = np.concatenate([rows, pad])
        return rows

    def _take(self, fb: np.ndarray, last: bool) -> np.ndarray:
        # av_hubert casts the filterbank to float32 before stacking
        fb = np.concatenate([self._pending, fb.astype(np.float32)])
        whole = len(fb) - len(fb) % STACK
        self._pending = fb[whole:]
        rows = fb[:whole].reshape(-1, FEAT_DIM)
        if last and len(self._pending):
            rows = np.concatenate([rows, stack_frames(self._pending)])
            self._pending = self._pending[:0]
        if self.n_video is not None:
            rows = rows[: max(self.n_video - self._out, 0)]
        self._out += len(rows)
        return layer_norm_rows(rows)


def avhubert_audio(chunks: Iterable[np.ndarray], n_video: int | None = None) -> np.ndarray:
    """av_hubert's audio input for a clip from its 16 kHz int16 chunks: float32 [T, 104].

    T = ``n_video`` when given, else ceil(filterbank frames / 4).
    """
    s = AvhubertAudio(n_video)
    parts = [s.push(c) for c in chunks]
    parts.append(s.finish())
    return np.concatenate(parts)

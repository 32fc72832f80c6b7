"""Mouth motion: aperture, audio envelope, lagged correlation; behaviour on the real clips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import soundfile as sf

from conftest import CLIPS_DIR, SHARED_MODELS
from lipleak.errors import InputError
from lipleak.faces.landmarks import PFLD
from lipleak.faces.scrfd import SCRFD
from lipleak.metrics.mouth import (
    aperture,
    audio_motion,
    lagged_correlation,
    rms_envelope,
    silent_motion,
)

# Real recordings with their own audio: the mouth should follow the sound at lag ≈ 0.
REAL_SPEECH = [
    "real03_aoc",
    "real04_woman_glasses",
    "real05_cnn_anchor",
    "real07_reagan",
    "real08_feifeili",
    "real09_vox_rdj",
    "real11_suit_man",
]
GENERATED = ["gen01_suitman_wav2lip", "gen02_suitman_videoretalking", "gen03_suitman_sadtalker"]
MOTION_FLOOR = 0.005  # aperture std; the stillest speaker (real05, a news anchor) has 0.012


def synthetic_landmarks(gaps, width=40.0):
    """68 points with the inner-lip pairs (61,67), (62,66), (63,65) ``gaps`` apart and the
    mouth corners 48/54 ``width`` apart; every other point is irrelevant noise."""
    n = len(gaps)
    lm = np.random.default_rng(0).normal(100, 30, (n, 68, 2))
    lm[:, 48] = [80, 150]
    lm[:, 54] = [80 + width, 150]
    for (top, bottom), dx in zip([(61, 67), (62, 66), (63, 65)], [-8, 0, 8], strict=True):
        lm[:, top] = [100 + dx, 145]
        lm[:, bottom, 0] = 100 + dx
        lm[:, bottom, 1] = 145 + np.asarray(gaps)
    return lm


def test_aperture_is_the_inner_gap_over_the_width():
    ap = aperture(synthetic_landmarks([0.0, 4.0, 10.0], width=40.0))
    np.testing.assert_allclose(ap, [0.0, 0.1, 0.25], rtol=1e-12, atol=1e-15)
    lm = synthetic_landmarks([4.0])
    lm[0, 67] += [3.0, 0.0]  # a slanted pair: Euclidean distance 5
    assert aperture(lm)[0] == pytest.approx((5.0 + 4 + 4) / 3 / 40, rel=1e-12)
    with pytest.raises(InputError, match="N×68×2"):
        aperture(np.zeros((2, 20, 2)))


def test_rms_envelope_windows():
    rng = np.random.default_rng(1)
    audio = rng.integers(-3000, 3000, 640 * 7 + 100).astype(np.int16)  # partial last window
    env = rms_envelope(audio)
    ref = [
        np.sqrt(np.mean(audio[640 * k : 640 * (k + 1)].astype(np.float64) ** 2)) for k in range(7)
    ]
    np.testing.assert_allclose(env, ref, rtol=1e-12)
    assert len(rms_envelope(audio, n_frames=5)) == 5
    assert rms_envelope(np.full(1280, -32768, np.int16))[0] == 32768.0  # no int16 overflow


@pytest.mark.parametrize("chunk", [1, 333, 640, 641, 5000])
def test_rms_envelope_from_chunks_is_the_array_result(chunk):
    """Streamed (as `score` reads its audio) = whole array, bit for bit; reading stops once
    the frames are covered."""
    from lipleak.io.audio import array_chunks

    audio = np.random.default_rng(chunk).integers(-32768, 32767, 640 * 40 + 77).astype(np.int16)
    for n in (None, 0, 1, 17, 40, 41, 100):
        whole = rms_envelope(audio, n)
        got = rms_envelope(array_chunks(audio, chunk), n)
        assert got.dtype == np.float64 and np.array_equal(got, whole), (chunk, n)
    read = []

    def counted():
        for c in array_chunks(audio, chunk):
            read.append(len(c))
            yield c

    rms_envelope(counted(), 3)
    assert sum(read) < 640 * 3 + 2 * chunk + 640
    with pytest.raises(InputError, match="mono"):
        rms_envelope([np.zeros((2, 640), np.int16)])


def test_lagged_correlation_finds_a_known_delay():
    rng = np.random.default_rng(2)
    env = rng.random(120)
    ap = np.roll(env, 2) * 0.3 + 0.05  # the mouth follows the sound 2 frames later
    lags, r = lagged_correlation(ap, env, 5)
    assert list(lags) == list(range(-5, 6))
    assert lags[np.nanargmax(r)] == 2 and r[np.nanargmax(r)] == pytest.approx(1.0, abs=1e-12)
    for L, v in zip(lags, r, strict=True):  # each lag is Pearson on the overlap
        x = ap[max(L, 0) : 120 + min(L, 0)]
        y = env[max(-L, 0) : 120 - max(L, 0)]
        assert v == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)


def test_nan_frames_are_left_out_without_shifting_time():
    rng = np.random.default_rng(3)
    env = rng.random(100)
    ap = env.copy()
    ap[[10, 11, 50]] = np.nan  # no face in those frames
    lags, r = lagged_correlation(ap, env, 3)
    assert lags[np.nanargmax(r)] == 0 and np.nanmax(r) == pytest.approx(1.0, abs=1e-12)
    s = silent_motion(ap)
    assert s.n_frames == 97


def test_silent_motion_statistics():
    ap = np.array([0.0, 0.05, 0.2, 0.3])
    s = silent_motion(ap)
    assert s.open_fraction == 0.5 and s.threshold == 0.1
    assert s.aperture_std == pytest.approx(np.std(ap), rel=1e-12)
    with pytest.raises(InputError, match="no frame"):
        silent_motion(np.array([np.nan]))


def test_undefined_correlations_say_why():
    audio = np.random.default_rng(4).integers(-2000, 2000, 640 * 50).astype(np.int16)
    still = audio_motion(np.full(50, 0.12), audio)
    assert np.isnan(still.corr) and still.lag is None and "does not move" in still.reason
    moving = np.random.default_rng(5).random(50)
    silent = audio_motion(moving, np.zeros(640 * 50, np.int16))
    assert np.isnan(silent.corr) and "silent audio" in silent.reason
    short = audio_motion(moving[:4], audio)
    assert np.isnan(short.corr) and "too few frames" in short.reason


# -- real clips ----------------------------------------------------------------------------


def clip_aperture(det, pfld, name, n_frames=None, repeat_first=False):
    cap = cv2.VideoCapture(str(CLIPS_DIR / f"{name}.mp4"))
    frames = []
    while n_frames is None or len(frames) < n_frames:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    if repeat_first:
        frames = [frames[0]] * len(frames)
    boxes = []
    for f in frames:  # square crop around SCRFD's best box (see lipleak.faces.landmarks)
        b, s, _ = det.detect(f)
        boxes.append(b[int(np.argmax(s))])
    audio, sr = sf.read(CLIPS_DIR / f"{name}.wav", dtype="int16")
    assert sr == 16000 and audio.ndim == 1
    return aperture(pfld.landmarks(frames, boxes)), audio


@pytest.fixture(scope="module")
def models():
    return (
        SCRFD(SHARED_MODELS / "scrfd_500m.onnx", backend="cpu"),
        PFLD(SHARED_MODELS / "pfld_68.onnx", backend="cpu"),
    )


@pytest.fixture(scope="module")
def clip_apertures(models):
    return {name: clip_aperture(*models, name) for name in REAL_SPEECH + GENERATED}


@pytest.fixture(scope="module")
def clip_results(clip_apertures):
    return {
        name: (silent_motion(ap), audio_motion(ap, audio))
        for name, (ap, audio) in clip_apertures.items()
    }


@pytest.mark.parametrize("name", REAL_SPEECH + GENERATED)
def test_speech_clips_show_mouth_motion(clip_results, name):
    still, moving = clip_results[name]
    assert still.aperture_std > MOTION_FLOOR
    assert moving.corr > 0.15  # louder ↔ more open, at the best lag


@pytest.mark.parametrize(
    "name",
    [
        *REAL_SPEECH[:-1],
        # real11 correlates with its audio at every lag (r 0.33..0.49 over ±5, r(0) = 0.37) and
        # peaks at the edge, lag −5: the untouched VFR original peaks there too (next test), so
        # the recording, not our 25 fps path, puts it there. Its frames show why: the mouth is
        # shut through loud speech in frames 0–6 and wide open through silence in 83–86, as if
        # the sound came ~0.2 s after the lips (an AV offset in the source, or anticipatory
        # opening; without SyncNet's real weights this cannot be decided here).
        pytest.param(
            "real11_suit_man",
            marks=pytest.mark.xfail(
                strict=True, reason="the recording itself peaks at -0.24 s (see the VFR test)"
            ),
        ),
    ],
)
def test_real_speech_peaks_near_lag_zero(clip_results, name):
    _, moving = clip_results[name]
    assert abs(moving.lag) <= 2, moving.per_lag


def timestamped_correlation(ap, times, audio, sr, lags_ms):
    """r per lag from each frame's own timestamp: aperture at time t against the RMS of
    the 40 ms of audio from t - lag (lag > 0: the mouth moves after the sound)."""
    n = round(0.04 * sr)
    out = []
    for lag in lags_ms:
        starts = np.round((times - lag / 1000) * sr).astype(int)
        env = np.array(
            [
                np.sqrt(np.mean(audio[i : i + n] ** 2)) if 0 <= i <= len(audio) - n else np.nan
                for i in starts
            ]
        )
        ok = np.isfinite(env) & np.isfinite(ap)
        out.append(np.corrcoef(ap[ok], env[ok])[0, 1])
    return np.array(out)


def test_real11_lag_is_in_the_untouched_original(models, clip_apertures, clip_results):
    """An independent check of real11's timing: the VFR original (22.1 fps average, 44.1 kHz
    stereo), with no resampling at all: each decoded frame is paired with the audio at its
    own container timestamp. Its correlation peaks at the same lag (±1 frame) as our
    25 fps pipeline's does on real11, well on the mouth-leads side: the lag is the
    recording's, and our decode, resampling and envelope keep time."""
    import av

    det, pfld = models
    with av.open(str(CLIPS_DIR / "raw_vfr_suit_man.mp4")) as c:
        frames, times = [], []
        for f in c.decode(c.streams.video[0]):
            frames.append(f.to_ndarray(format="bgr24"))
            times.append(float(f.pts * f.time_base))
    with av.open(str(CLIPS_DIR / "raw_vfr_suit_man.mp4")) as c:
        st = c.streams.audio[0]
        sr, t0 = st.rate, None
        chunks = []
        for f in c.decode(st):
            t0 = float(f.pts * f.time_base) if t0 is None else t0
            chunks.append(f.to_ndarray().astype(np.float64).mean(axis=0))  # fltp: planar
    audio = np.concatenate(chunks)
    boxes = []
    for f in frames:
        b, s, _ = det.detect(f)
        boxes.append(b[int(np.argmax(s))])
    ap = aperture(pfld.landmarks(frames, boxes))
    lags_ms = np.arange(-320, 321, 40)  # whole 25 fps frames
    r = timestamped_correlation(ap, np.array(times) - t0, audio, sr, lags_ms)
    original_lag = int(lags_ms[np.nanargmax(r)]) // 40

    # our pipeline on real11, with the window widened to show where its peak really is
    ap11, audio11 = clip_apertures["real11_suit_man"]
    wide = audio_motion(ap11, audio11, max_lag=8)
    assert abs(original_lag - wide.lag) <= 1, (original_lag, wide.per_lag, r)
    assert original_lag <= -4 and wide.lag <= -4
    assert wide.lag == clip_results["real11_suit_man"][1].lag or wide.lag < -5


def test_a_repeated_frame_shows_no_motion(models):
    ap, audio = clip_aperture(*models, "real03_aoc", n_frames=60, repeat_first=True)
    s = silent_motion(ap)
    assert s.aperture_std < 1e-6 and s.n_frames == 60
    m = audio_motion(ap, audio)
    assert np.isnan(m.corr) and m.lag is None and "does not move" in m.reason

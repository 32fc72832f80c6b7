"""The per-video AVS scorer (lipleak.avs) on real clips with a random-weight AV-HuBERT.

Random weights carry no sync, so these tests prove the plumbing and invariances: the
scorer's numbers equal the metric arithmetic over features computed independently by the
PyTorch model on the same inputs; a video against itself gives AVS_m = AVS_v = 1; batch
size never changes a number; windows are computed alone.
"""

from __future__ import annotations

import numpy as np
import pytest

from lipleak.errors import InputError
from lipleak.io.audio import load_audio
from media import cut_clip, write_video

torch = pytest.importorskip("torch")

from lipleak.avs import AVSScorer, AVSSettings, windows  # noqa: E402
from lipleak.export.avhubert import load_checkpoint  # noqa: E402
from lipleak.export.avhubert_fixture import make_fixture  # noqa: E402
from lipleak.metrics.avs import avs  # noqa: E402

N = 40  # frames of the test clip (1.6 s)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_fixture(tmp_path_factory.mktemp("avs") / "tiny.pt", "tiny", seed=3)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, clips_dir):
    d = tmp_path_factory.mktemp("avs_clip")
    return cut_clip(clips_dir / "real03_aoc.mp4", d / "a.mp4", 25, N, width=320)


@pytest.fixture(scope="module")
def scorer(model_dir, tiny):
    return AVSScorer(AVSSettings(model=str(tiny), backend="cpu", batch_size=4))


def test_windows():
    assert windows(10, 0) == [(0, 10)]
    assert windows(10, 10) == [(0, 10)]
    assert windows(10, 25) == [(0, 10)]
    assert windows(10, 4) == [(0, 4), (4, 8), (8, 10)]


def test_scores_equal_pytorch_features_on_the_same_inputs(scorer, clip, tiny):
    audio = load_audio(clip)
    v, a = scorer.inputs(clip, audio)
    assert v.shape == (N, 88, 88) and a.shape == (N, 104)
    net = load_checkpoint(tiny)
    with torch.no_grad():
        tv = torch.from_numpy(v)[None, None]  # B×1×T×88×88
        ta = torch.from_numpy(a.T.copy())[None]  # B×104×T
        f_a = net.features(audio=ta)[0].numpy()
        f_v = net.features(video=tv)[0].numpy()
    got = scorer.score(clip, audio)
    assert set(got) == {"avs_u"}
    # onnxruntime vs PyTorch float rounding of the features: well under 1e-5 on a cosine
    assert got["avs_u"] == pytest.approx(avs(f_a, f_v), abs=1e-5)


def test_a_video_against_itself_gives_avs_m_and_avs_v_one(scorer, clip):
    audio = load_audio(clip)
    ref = scorer.reference(clip, audio)
    got = scorer.score(clip, audio, ref)
    assert got["avs_m"] == pytest.approx(1.0, abs=1e-6)
    assert got["avs_v"] == pytest.approx(1.0, abs=1e-6)
    assert got["avs_u"] == pytest.approx(ref.avs_u, abs=1e-12)


@pytest.mark.parametrize("window", [0, 8])
def test_batch_size_changes_no_number(model_dir, tiny, clip, window):
    audio = load_audio(clip)
    a = AVSScorer(AVSSettings(model=str(tiny), backend="cpu", batch_size=1, window=window))
    b = AVSScorer(AVSSettings(model=str(tiny), backend="cpu", batch_size=40, window=window))
    v, x = a.inputs(clip, audio)
    for mode in ("audio", "video", "av"):
        fa, fb = a.features(mode, v, x), b.features(mode, v, x)
        assert fa.shape == (N, fa.shape[1])
        np.testing.assert_allclose(fa, fb, rtol=0, atol=1e-5)


@pytest.mark.parametrize("window", [0, 8, 16])
def test_streamed_windows_and_scores_equal_the_one_shot_inputs(model_dir, tiny, clip, window):
    audio = load_audio(clip)
    sc = AVSScorer(AVSSettings(model=str(tiny), backend="cpu", batch_size=16, window=window))
    v, a = sc.inputs(clip, audio)
    got = list(sc.input_windows(clip, audio))
    assert [(s, len(x)) for s, x, _ in got] == [(s, e - s) for s, e in windows(N, window)]
    np.testing.assert_array_equal(np.concatenate([x for _, x, _ in got]), v)
    np.testing.assert_array_equal(np.concatenate([y for _, _, y in got]), a)
    ref = sc.reference(clip, audio)
    want_u = avs(sc.features("audio", v, a), sc.features("video", v, a))
    assert ref.avs_u == pytest.approx(want_u, abs=1e-7)
    np.testing.assert_allclose(ref.av, sc.features("av", v, a), rtol=0, atol=1e-6)
    # against a GT that is shorter: frames paired up to its end
    short = type(ref)(av=ref.av[:29], video=ref.video[:29] * 2.0, avs_u=0.0)
    got = sc.score(clip, audio, short)
    assert got["avs_u"] == pytest.approx(want_u, abs=1e-7)
    assert got["avs_m"] == pytest.approx(1.0, abs=1e-6)
    assert got["avs_v"] == pytest.approx(1.0, abs=1e-6)  # cosine ignores the scale


def test_audio_shorter_than_the_video_is_padded_as_av_hubert_pads(scorer, clip):
    audio = load_audio(clip)[: 20 * 640]  # 0.8 s under a 1.6-s video
    v, a = scorer.inputs(clip, audio)
    streamed = np.concatenate([y for _, _, y in scorer.input_windows(clip, audio)])
    np.testing.assert_array_equal(streamed, a)
    assert not a[-5:].any()  # the appended rows normalise to zero


def test_each_window_is_computed_alone(scorer, clip, model_dir, tiny):
    audio = load_audio(clip)
    w = AVSScorer(AVSSettings(model=str(tiny), backend="cpu", window=16))
    v, a = w.inputs(clip, audio)
    got = w.features("av", v, a)
    alone = np.concatenate(
        [scorer.features("av", v[s:e], a[s:e]) for s, e in [(0, 16), (16, 32), (32, N)]]
    )
    np.testing.assert_allclose(got, alone, rtol=0, atol=1e-5)


def test_faceless_video_is_an_input_error(scorer, tmp_path):
    path = write_video(
        tmp_path / "noface.mp4",
        [np.full((96, 128, 3), 40, np.uint8)] * 10,
        audio=np.zeros(6400, np.int16),
    )
    with pytest.raises(InputError) as err:
        scorer.score(path, np.zeros(6400, np.int16))
    assert err.value.status == "no_face"

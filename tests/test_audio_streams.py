"""Issue 24, item 2: which audio stream is scored (``sync --audio-stream N|lang:CODE|all``).

Oracles: the ffmpeg binary's own stream choice (``ffmpeg -i X -vn ...`` takes one audio
stream: default disposition, else the most channels) and its ``-map 0:a:N`` extraction
of each stream, passed to the scorer as a WAV (``--audio``).
"""

from __future__ import annotations

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf

from conftest import CLIPS_DIR
from lipleak.io.audio import load_audio
from lipleak.io.streams import audio_streams, choose, parse_spec
from media import cut_clip, noise_frames, write_video

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg(*args) -> None:
    subprocess.run(
        [FFMPEG, "-v", "error", "-nostdin", "-y", *map(str, args)], check=True, capture_output=True
    )


def tone(path, hz: float, channels: int, seconds: float = 2.0):
    t = np.arange(int(48000 * seconds)) / 48000
    x = 0.3 * np.sin(2 * np.pi * hz * t)[:, None] * np.linspace(1.0, 0.5, channels)
    sf.write(str(path), x, 48000)
    return path


def muxed(video, audios, out, langs=(), default=None):
    """``video`` with ``audios`` as its audio streams (AAC), languages and disposition."""
    cmd = ["-i", video]
    for a in audios:
        cmd += ["-i", a]
    cmd += ["-map", "0:v"] + [x for i in range(len(audios)) for x in ("-map", f"{i + 1}:a")]
    cmd += ["-c:v", "copy", "-c:a", "aac"]
    for i, lang in enumerate(langs):
        cmd += [f"-metadata:s:a:{i}", f"language={lang}"]
    for i in range(len(audios)):  # no default unless asked (mkv would mark the first)
        cmd += [f"-disposition:a:{i}", "default" if i == default else "0"]
    ffmpeg(*cmd, out)
    return out


def ffmpeg_choice(path, tmp_path) -> np.ndarray:
    wav = tmp_path / "choice.wav"
    ffmpeg("-i", path, "-vn", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", wav)
    return sf.read(str(wav), dtype="int16")[0]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    d = tmp_path_factory.mktemp("streams")
    video = write_video(d / "v.mp4", noise_frames(50, 64, 64))
    return d, video


@pytest.mark.parametrize(
    "channels, default, want",
    [((1, 2, 1), None, 1), ((1, 2, 1), 2, 2), ((2, 2, 1), None, 0), ((1, 1), 1, 1)],
    ids=["most-channels", "default-wins", "tie-first", "default-mono"],
)
def test_default_stream_is_ffmpegs_choice(parts, tmp_path, channels, default, want):
    d, video = parts
    audios = [tone(tmp_path / f"a{i}.wav", 200 + 90 * i, c) for i, c in enumerate(channels)]
    path = muxed(video, audios, tmp_path / "m.mkv", default=default)
    chosen = choose(path)
    assert chosen.number == want
    np.testing.assert_array_equal(
        load_audio(path, stream=chosen.number), ffmpeg_choice(path, tmp_path)
    )
    if want != 0:  # before: always the first stream
        assert not np.array_equal(load_audio(path), ffmpeg_choice(path, tmp_path))


def test_stream_by_number_and_language(parts, tmp_path):
    d, video = parts
    audios = [tone(tmp_path / f"a{i}.wav", 200 + 90 * i, 1) for i in range(3)]
    path = muxed(video, audios, tmp_path / "m.mkv", langs=("eng", "deu", "fra"))
    streams = audio_streams(path)
    assert [(s.number, s.language, s.codec) for s in streams] == [
        (0, "eng", "aac"),
        (1, "deu", "aac"),
        (2, "fra", "aac"),
    ]
    assert choose(path, parse_spec("lang:deu")).number == 1
    assert choose(path, parse_spec("2")).language == "fra"
    for n in range(3):
        wav = tmp_path / f"s{n}.wav"
        ffmpeg("-i", path, "-map", f"0:a:{n}", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", wav)
        np.testing.assert_array_equal(
            load_audio(path, stream=n), sf.read(str(wav), dtype="int16")[0]
        )
    from lipleak.errors import InputError

    with pytest.raises(InputError, match=r"no audio stream lang:ita \(it has a:0 \(eng, aac\)"):
        choose(path, parse_spec("lang:ita"))
    for bad in ("x", "lang:", "-1", "lang:e n"):
        with pytest.raises(ValueError):
            parse_spec(bad)


@pytest.mark.slow
def test_all_streams_equal_each_stream_as_a_wav_with_one_lip_pass(tmp_path, model_dir):
    """A real clip with three audio streams (its own audio, another clip's, its own 0.2 s
    late): ``--audio-stream all`` gives one row per stream, each equal to scoring that
    stream extracted to a WAV by ffmpeg and passed as the audio; the lip tower embeds
    each window once, not once per stream."""
    from lipleak.sync import SyncScorer, SyncSettings
    from lipleak.sync.inputs import VideoJob
    from lipleak.sync.results import SyncStore
    from lipleak.sync.streams import expand
    from lipleak.sync.volume import LocalExecutor, VolumeRun

    clip = cut_clip(CLIPS_DIR / "real03_aoc.mp4", tmp_path / "a.mp4", 0, 40, width=128)
    other = cut_clip(CLIPS_DIR / "real11_suit_man.mp4", tmp_path / "b.mp4", 0, 40, width=128)
    path = tmp_path / "master.mkv"
    ffmpeg(
        *("-i", clip, "-i", other, "-itsoffset", "0.2", "-i", clip),
        *("-map", "0:v", "-map", "0:a", "-map", "1:a", "-map", "2:a", "-c", "copy"),
        *("-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=deu"),
        *("-metadata:s:a:2", "language=fra", "-disposition:a:0", "default"),
        path,
    )
    scorer = SyncScorer(SyncSettings(syncnet="syncnet_v2_random", batch_size=8))
    jobs = expand([VideoJob(path, None)], "all")
    assert [j.key()[1] for j in jobs] == ["#a:0", "#a:1", "#a:2"]
    executor = LocalExecutor(scorer, workers=1)
    store = SyncStore(tmp_path / "s.sqlite")
    run = VolumeRun(jobs, store, executor)
    run.run([])
    rows = run.rows()
    store.close()
    assert [r["detail"]["audio_stream"]["language"] for r in rows] == ["eng", "deu", "fra"]
    assert executor.pipeline.stats.windows == rows[0]["tracks"][0]["n_windows"]  # one pass
    for n, row in enumerate(rows):
        wav = tmp_path / f"s{n}.wav"
        ffmpeg(
            *("-i", path, "-map", f"0:a:{n}", "-af", "aresample=async=1:first_pts=0"),
            *("-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", wav),
        )
        want = scorer.score(path, wav)
        assert row["status"] == "ok"
        assert (row["offset"], row["lse_c"], row["lse_d"]) == (want.offset, want.lse_c, want.lse_d)
    assert rows[2]["detail"]["audio_shift_s"] == pytest.approx(0.2, abs=0.03)
    assert (rows[0]["lse_c"], rows[0]["lse_d"]) != (rows[1]["lse_c"], rows[1]["lse_d"])

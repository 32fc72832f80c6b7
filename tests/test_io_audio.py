"""Audio loading vs ``ffmpeg -i IN -vn -ac 1 -ar 16000 -acodec pcm_s16le out.wav``."""

from __future__ import annotations

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf

from conftest import CLIPS, CLIPS_DIR, WAVS
from lipleak.errors import InputError
from lipleak.io.audio import load_audio, write_wav

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def cli_audio(src, tmp_path, sr: int = 16000) -> np.ndarray:
    out = tmp_path / f"{src.stem}_{src.suffix[1:]}_ref.wav"
    subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-nostdin",
            "-y",
            "-i",
            str(src),
            "-vn",
            "-ac",
            "1",
            "-ar",
            str(sr),
            "-acodec",
            "pcm_s16le",
            str(out),
        ],
        check=True,
    )
    data, rate = sf.read(str(out), dtype="int16")
    assert rate == sr and data.ndim == 1
    return data


@pytest.mark.parametrize("src", CLIPS + WAVS, ids=lambda p: p.name)
def test_shared_files_equal_cli(src, tmp_path):
    ours = load_audio(src)
    assert ours.dtype == np.int16 and ours.ndim == 1
    np.testing.assert_array_equal(ours, cli_audio(src, tmp_path))


@pytest.fixture(scope="module")
def noise():
    rng = np.random.default_rng(7)
    t = np.arange(48000 * 2) / 48000
    tone = 0.4 * np.sin(2 * np.pi * 440 * t)[:, None] * [1.0, 0.5]
    return (tone + 0.05 * rng.standard_normal((t.size, 2))).astype(np.float64)


@pytest.mark.parametrize(
    "case",
    ["48k_stereo_int16", "8k_mono_int16", "44k_stereo_float", "16k_mono_float", "22k_mono_aac_m4a"],
)
def test_synthetic_inputs_equal_cli(case, noise, tmp_path):
    rate = {"48k": 48000, "8k": 8000, "44k": 44100, "16k": 16000, "22k": 22050}[case.split("_")[0]]
    x = noise[: rate * 2 - 123]  # an odd length
    if "mono" in case:
        x = x[:, 0]
    src = tmp_path / f"{case}.wav"
    sf.write(str(src), x, rate, subtype="PCM_16" if "int16" in case else "FLOAT")
    if "aac" in case:  # a compressed container with encoder priming and end padding
        wav, src = src, tmp_path / f"{case}.m4a"
        subprocess.run([FFMPEG, "-v", "error", "-i", str(wav), "-c:a", "aac", str(src)], check=True)
    np.testing.assert_array_equal(load_audio(src), cli_audio(src, tmp_path))


def test_other_rate(tmp_path):
    src = CLIPS_DIR / "real11_suit_man.mp4"
    np.testing.assert_array_equal(load_audio(src, sr=22050), cli_audio(src, tmp_path, 22050))


def test_no_audio_and_missing(tmp_path):
    silent = tmp_path / "silent.mp4"
    subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-i",
            str(CLIPS_DIR / "real09_vox_rdj.mp4"),
            "-t",
            "0.5",
            "-an",
            "-c:v",
            "copy",
            str(silent),
        ],
        check=True,
    )
    with pytest.raises(InputError) as e:
        load_audio(silent)
    assert e.value.status == "no_audio"
    with pytest.raises(InputError) as e:
        load_audio(tmp_path / "absent.wav")
    assert e.value.status == "missing"
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF nonsense" * 10)
    with pytest.raises(InputError) as e:
        load_audio(junk)
    assert e.value.status == "not_a_video"


def test_write_wav_round_trip(tmp_path):
    x = np.random.default_rng(1).integers(-32768, 32767, 16001, dtype=np.int16)
    write_wav(tmp_path / "x.wav", x)
    np.testing.assert_array_equal(load_audio(tmp_path / "x.wav"), x)
    info = sf.info(str(tmp_path / "x.wav"))
    assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
    with pytest.raises(ValueError):
        write_wav(tmp_path / "y.wav", x.astype(np.float32))

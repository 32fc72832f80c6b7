"""Issue 12, acceptance 3: a cut-off file is a ``decode_error`` in every mode and command.

Three kinds of bad file, each made from one whole 3.2-s 64x64 clip whose mp4 index comes
first (faststart), so the header survives the cut and states the whole length:

- ``truncated``: the bytes stop at 26 %; both streams stop early, the audio where the video
  does, so a reader that stops with the audio never meets the cut;
- ``midpacket``: the bytes stop in the middle of a video packet half-way through;
- ``empty``: the bytes stop where the first packet starts: both streams are declared,
  with their length, and hold no data.

Each goes through ``sync`` (prealigned, prealigned ``--reference-frames``, detect, and
``--decoder dali``) and ``score DIR``, which all refuse it with one line; the whole clip is
scored by ``sync`` and ``score``. A file whose audio stream is declared but empty is
refused too.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import av
import pytest

from lipleak.errors import InputError
from lipleak.io.audio import load_audio, write_wav
from lipleak.io.container import check_complete
from lipleak.io.video import iter_frames
from media import noise_frames, speech_like, write_video

SECONDS = 3.2
KINDS = ("truncated", "midpacket", "empty")
# what each kind's one line says, whichever path meets it
REASON = {
    "truncated": "file is truncated: its video stops at",
    "midpacket": "file is truncated: its video stops at",
    "empty": "video stream has no decodable frame",
}
MODES = {
    "prealigned": (),
    "reference-frames": ("--reference-frames",),
    "detect": ("--mode", "detect"),
    # checked before the decoder is chosen: the same answer with or without a GPU
    "dali": ("--decoder", "dali"),
}


def packets(path: Path) -> list[tuple[str, int, int]]:
    """(stream type, byte position, size) of every packet with data, in file order."""
    with av.open(str(path)) as c:
        return [(p.stream.type, p.pos, p.size) for p in c.demux() if p.size]


def cut_files(whole: Path, folder: Path) -> dict[str, Path]:
    data = whole.read_bytes()
    pk = packets(whole)
    video = [p for p in pk if p[0] == "video"]
    _, pos, size = video[len(video) // 2]
    cuts = {
        "truncated": len(data) * 26 // 100,
        "midpacket": pos + size // 2,
        "empty": min(p[1] for p in pk),
    }
    out = {}
    for kind, n in cuts.items():
        out[kind] = folder / f"{kind}.mp4"
        out[kind].write_bytes(data[:n])
    return out


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("truncated")
    n = round(SECONDS * 25)
    whole = write_video(
        d / "whole.mp4",
        noise_frames(n, 64, 64),
        audio=speech_like(SECONDS),
        container_options={"movflags": "+faststart"},
    )
    files = cut_files(whole, d)
    files["whole"] = whole
    return files


@pytest.fixture(scope="module")
def env(model_dir):
    return {**os.environ, "LIPLEAK_MODEL_DIR": str(model_dir)}


def cli(env, *args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "lipleak", *map(str, args), "--syncnet", "syncnet_v2_random"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_the_files_are_what_they_say(media):
    """The header of every cut file states the whole clip; the data stops early."""
    for kind in KINDS:
        with av.open(str(media[kind])) as c:
            v = c.streams.video[0]
            assert float(v.duration * v.time_base) == pytest.approx(SECONDS, abs=0.05)
            assert c.streams.audio
    assert not packets(media["empty"])
    assert len(packets(media["truncated"])) < len(packets(media["whole"])) // 2


@pytest.mark.parametrize("kind", KINDS)
def test_check_complete_refuses_what_the_readers_refuse(media, kind):
    with pytest.raises(InputError) as e:
        check_complete(media[kind])
    assert e.value.status == "decode_error" and REASON[kind] in e.value.cause
    # a reader of every frame meets the same cut, with the same words
    with pytest.raises(InputError) as e:
        for _ in iter_frames(media[kind]):
            pass
    assert e.value.status == "decode_error" and REASON[kind] in e.value.cause
    # and so does a reader of the audio
    with pytest.raises(InputError) as e:
        load_audio(media[kind])
    assert e.value.status == "decode_error"
    words = "no decodable samples" if kind == "empty" else "file is truncated: its audio"
    assert words in e.value.cause


def test_whole_file_passes(media):
    check_complete(media["whole"])
    assert sum(1 for _ in iter_frames(media["whole"])) == round(SECONDS * 25)
    assert len(load_audio(media["whole"])) == round(SECONDS * 16000)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_sync_refuses_in_every_mode(env, media, kind, mode):
    proc = cli(env, "sync", media[kind], *MODES[mode])
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(media[kind]) in err and REASON[kind] in err, err


def test_sync_scores_the_whole_file(env, media):
    proc = cli(env, "sync", media["whole"], "--json")
    assert proc.returncode == 0, proc.stderr
    assert '"n_frames": 80' in proc.stdout


def test_sync_refuses_a_truncated_audio_file(env, media):
    """--audio: the audio file is checked as the video is, before anything is scored."""
    proc = cli(env, "sync", media["whole"], "--audio", media["truncated"])
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert str(media["truncated"]) in err and "file is truncated: its audio stops at" in err


def empty_audio_mkv(path: Path) -> Path:
    """Whole video and a declared audio stream without a packet (Matroska keeps an empty
    track; the mp4 muxer drops it)."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width = vs.height = 64
        vs.pix_fmt = "yuv420p"
        a = out.add_stream("aac", rate=16000)
        a.layout = "mono"
        for f in noise_frames(round(SECONDS * 25), 64, 64):
            out.mux(vs.encode(av.VideoFrame.from_ndarray(f, format="bgr24")))
        out.mux(vs.encode())
    return path


# not "dali": there a machine without DALI stops first (a setup error, exit 1)
@pytest.mark.parametrize("mode", ["prealigned", "reference-frames", "detect"])
def test_sync_refuses_an_empty_audio_stream(env, tmp_path, mode):
    p = empty_audio_mkv(tmp_path / "noaudiodata.mkv")
    with av.open(str(p)) as c:
        assert c.streams.audio and not [k for k in c.demux(c.streams.audio[0]) if k.size]
    proc = cli(env, "sync", p, *MODES[mode])
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert str(p) in err and "audio stream has no decodable samples" in err, err


def test_score_refuses_every_kind(env, media, tmp_path):
    """GT stems cut off (their own audio, and an intact sibling wav: then the video is
    what is cut), and a cut-off generation of a whole GT."""
    gt, am = tmp_path / "DIR" / "gt", tmp_path / "DIR" / "AM" / "CR"
    gt.mkdir(parents=True)
    am.mkdir(parents=True)
    for kind in KINDS:
        (gt / f"{kind}.mp4").write_bytes(media[kind].read_bytes())
        (gt / f"{kind}_wav.mp4").write_bytes(media[kind].read_bytes())
        write_wav(gt / f"{kind}_wav.wav", load_audio(media["whole"]))
    (gt / "whole.mp4").write_bytes(media["whole"].read_bytes())
    (am / "whole.mp4").write_bytes(media["truncated"].read_bytes())
    proc = cli(env, "score", tmp_path / "DIR", "--no-visual", "--quiet", "--decoder", "cpu")
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    con = sqlite3.connect(tmp_path / "DIR" / "results.sqlite")
    try:
        rows = {
            (stem, setup): (status, reason)
            for stem, setup, status, reason in con.execute(
                "SELECT stem, setup, status, reason FROM units WHERE grp = 'sync'"
            )
        }
    finally:
        con.close()
    assert rows[("whole", "GT")][0] == "ok"
    for kind in KINDS:
        # the GT audio is read first (its AM/XM/SI generations need it too)
        status, reason = rows[(kind, "GT")]
        assert status == "failed" and reason.startswith("decode_error: GT audio: "), reason
        words = "no decodable samples" if kind == "empty" else "file is truncated: its audio"
        assert words in reason, reason
        status, reason = rows[(f"{kind}_wav", "GT")]
        assert status == "failed" and reason.startswith(f"decode_error: {REASON[kind]}"), reason
    status, reason = rows[("whole", "AM")]
    assert status == "failed" and reason.startswith("decode_error: file is truncated"), reason

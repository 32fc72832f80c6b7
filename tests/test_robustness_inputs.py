"""Issue 6, acceptance 1: every kind of bad or unusual input goes through ``score DIR``.

For each input the run finishes, the item ends with a status and a one-line reason in the
results store and in results.csv / report.md, the good items are scored, and the exit
status follows the policy (0 all scored, 4 some videos failed). Cheap cases share one
protocol directory scored once (``--no-visual``); face cases (detect mode and the visual
metrics) share a second one built from a real clip; the 4K clip has its own run so that
its peak memory can be measured. All media are made here with the imageio-ffmpeg binary,
PyAV and soundfile; nothing is committed.
"""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

import synth
from conftest import CLIPS_DIR
from lipleak.io.audio import load_audio
from lipleak.io.video import iter_frames, probe
from media import write_video

pytestmark = pytest.mark.slow  # whole-CLI acceptance runs over many generated inputs

PY = sys.executable
FF = imageio_ffmpeg.get_ffmpeg_exe()
SYNCNET = ("--syncnet", "syncnet_v2_random")


def ff(*args) -> None:
    subprocess.run([FF, "-v", "error", "-y", *map(str, args)], check=True, timeout=120)


def score(root: Path, *extra, db: Path | None = None, maxrss: bool = False):
    """``lipleak-fast score`` in a child; with ``maxrss`` its peak RSS (KiB) is printed."""
    args = ["score", str(root), *SYNCNET, "--quiet", *map(str, extra)]
    if db is not None:
        args += ["--db", str(db)]
    if maxrss:
        # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark (pytest's, GBs
        # after the clip tests) into a vforked child across exec.
        code = (
            "import sys; from lipleak.cli import main; rc = main(sys.argv[1:]); "
            "print('MAXRSS', [x.split()[1] for x in open('/proc/self/status') "
            "if x.startswith('VmHWM')][0], file=sys.stderr); sys.exit(rc)"
        )
        cmd = [PY, "-c", code, *args]
    else:
        cmd = [PY, "-m", "lipleak", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def units(db: Path, grp: str = "sync") -> dict[tuple[str, str, str], dict]:
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = con.execute(
            "SELECT stem, setup, reference, status, reason, detail FROM units WHERE grp = ?", (grp,)
        ).fetchall()
        n_metric = dict(
            ((s, st, r), n)
            for s, st, r, n in con.execute(
                "SELECT stem, setup, reference, COUNT(*) FROM results WHERE grp = ? "
                "GROUP BY stem, setup, reference",
                (grp,),
            )
        )
    finally:
        con.close()
    out = {}
    for s, st, r, status, reason, detail in rows:
        out[(s, st, r)] = {
            "status": status,
            "reason": reason,
            "detail": json.loads(detail),
            "n_metric_rows": n_metric.get((s, st, r), 0),
        }
    return out


def csv_failures(root: Path) -> dict[tuple[str, str, str], str]:
    with open(root / "results.csv", newline="") as f:
        rows = list(csv.reader(f))
    width = len(rows[0])
    return {(r[0], r[1], r[2]): r[width] for r in rows[1:] if len(r) > width}


def assert_failed(u: dict, root: Path, key: tuple, *statuses: str) -> None:
    """The unit failed with one of ``statuses``: one-line reason in store, csv and report."""
    row = u[key]
    assert row["status"] == "failed", (key, row)
    status, _, cause = row["reason"].partition(": ")
    assert status in statuses, (key, row["reason"])
    assert cause and "\n" not in row["reason"] and "Traceback" not in row["reason"]
    assert csv_failures(root)[key] == f"failed (sync): {row['reason']}"
    assert row["reason"] in (root / "report.md").read_text()


def assert_scored(u: dict, key: tuple) -> dict:
    row = u[key]
    assert row["status"] == "ok", (key, row)
    assert row["n_metric_rows"] == 5  # lse_c, lse_d, offset, n_frames, n_tracks
    d = row["detail"]
    assert np.isfinite(d["lse_c"]) and np.isfinite(d["lse_d"]) and d["n_frames"] > 5
    return d


# ------------------------------------------------------------------------------ media


def wav_variants(src_wav: Path, folder: Path, stem: str) -> dict[str, Path]:
    """The GT audio as stereo 48 kHz, 8 kHz mono, float32 and clipped WAVs."""
    a = sf.read(str(src_wav), dtype="int16")[0].astype(np.float64)
    out = {}
    st48 = resample_poly(a, 3, 1) / 32768
    sf.write(
        folder / f"{stem}_stereo48k.wav", np.stack([st48, 0.5 * st48], 1), 48000, subtype="PCM_16"
    )
    sf.write(folder / f"{stem}_mono8k.wav", resample_poly(a, 1, 2) / 32768, 8000, subtype="PCM_16")
    sf.write(folder / f"{stem}_float.wav", (a / 32768).astype(np.float32), 16000, subtype="FLOAT")
    sf.write(
        folder / f"{stem}_clipped.wav",
        np.clip(a * 20, -32768, 32767).astype(np.int16),
        16000,
        subtype="PCM_16",
    )
    for k in ("stereo48k", "mono8k", "float", "clipped"):
        out[k] = folder / f"{stem}_{k}.wav"
    return out


def build_inputs_dir(root: Path) -> dict[str, str]:
    """DIR/gt with good synthetic clips and one stem per bad or unusual input; AM/CR with
    generations of the good clips (one shorter, one longer than its GT). Returns the
    expected outcome per GT stem: "ok" or the allowed failure statuses joined by '|'."""
    gt, am = root / "gt", root / "AM" / "CR"
    gt.mkdir(parents=True)
    am.mkdir(parents=True)
    work = root.parent / "work"
    work.mkdir()
    expect: dict[str, str] = {}
    good = [synth.make_clip(gt / f"good{i}.mp4", 200 + i, seconds=1.2) for i in range(2)]
    expect.update(good0="ok", good1="ok")
    base = synth.make_clip(work / "base.mp4", 300, seconds=2.0)
    base_wav = base.with_suffix(".wav")

    # generated videos shorter (0.6 s) and longer (2 s) than their 1.2-s GT
    frames = list(iter_frames(good[0]))
    write_video(am / "good0.mp4", frames[:15], audio=load_audio(good[0])[: 15 * 640])
    frames1 = list(iter_frames(good[1]))
    write_video(am / "good1.mp4", frames1 + frames1[:20], audio=load_audio(good[1]))

    # truncated: moov first (faststart) so the header survives and the frames stop early
    ff("-i", base, "-c", "copy", "-movflags", "+faststart", work / "fast.mp4")
    data = (work / "fast.mp4").read_bytes()
    (gt / "truncated.mp4").write_bytes(data[: len(data) * 2 // 5])
    # the same, video only with an intact sibling wav: the video decoder meets the cut
    ff("-i", base, "-an", "-c", "copy", "-movflags", "+faststart", work / "fast_v.mp4")
    data = (work / "fast_v.mp4").read_bytes()
    (gt / "truncated_video.mp4").write_bytes(data[: len(data) * 2 // 5])
    shutil.copy(base_wav, gt / "truncated_video.wav")
    # truncated with the moov atom at the end (how PyAV and most tools write): unreadable
    data = base.read_bytes()
    (gt / "truncated_nomoov.mp4").write_bytes(data[: len(data) // 2])
    (gt / "zero.mp4").write_bytes(b"")
    (gt / "text.mp4").write_text("this is a text file, not a video\n")
    expect.update(
        truncated="decode_error",
        truncated_video="decode_error",
        truncated_nomoov="not_a_video",
        zero="not_a_video",
        text="not_a_video",
    )

    ff("-i", base, "-an", "-c", "copy", gt / "noaudio.mp4")  # no sibling wav either
    ff("-i", base, "-vn", "-c:a", "copy", gt / "audioonly.mp4")
    expect.update(noaudio="no_audio", audioonly="no_video_stream")

    # one frame, and 0.1 s of video and audio
    ff("-i", base, "-frames:v", "1", "-an", gt / "oneframe.mp4")
    shutil.copy(base_wav, gt / "oneframe.wav")
    ff("-i", base, "-t", "0.1", gt / "tenth.mp4")
    expect.update(oneframe="too_short", tenth="too_short")

    # other frame rates, resampled to 25 fps; the VFR clip as it is
    for name, rate in (("fps60", "60"), ("fps23976", "24000/1001"), ("fps30", "30")):
        ff(
            "-i",
            base,
            "-vf",
            f"fps={rate}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "copy",
            gt / f"{name}.mp4",
        )
        expect[name] = "ok"
    (gt / "vfr.mp4").symlink_to(CLIPS_DIR / "raw_vfr_suit_man.mp4")
    expect["vfr"] = "ok"

    # pixel formats and geometry
    ff(
        "-i",
        base,
        "-vf",
        "scale=223:301",
        "-pix_fmt",
        "yuv444p",
        "-c:v",
        "libx264",
        "-c:a",
        "copy",
        gt / "odd223x301.mp4",
    )
    ff("-i", base, "-vf", "scale=160:128", "-c:a", "copy", work / "wide.mp4")
    ff("-display_rotation", "90", "-i", work / "wide.mp4", "-c", "copy", gt / "rotated.mp4")
    ff("-i", base, "-pix_fmt", "gray", "-c:v", "libx264", "-c:a", "copy", gt / "gray.mp4")
    ff("-i", base, "-pix_fmt", "yuv420p10le", "-c:v", "libx264", "-c:a", "copy", gt / "tenbit.mp4")
    expect.update(odd223x301="ok", rotated="ok", gray="ok", tenbit="ok")

    # audio formats as the GT sibling .wav (the video's own track is left out)
    for kind, wav in wav_variants(base_wav, work, "base").items():
        ff("-i", base, "-an", "-c", "copy", gt / f"wav_{kind}.mp4")
        shutil.copy(wav, gt / f"wav_{kind}.wav")
        expect[f"wav_{kind}"] = "ok"

    # names with spaces and non-ASCII characters, in GT and in a cell
    odd = "a clip — été 日本"
    shutil.copy(good[0], gt / f"{odd}.mp4")
    shutil.copy(good[0].with_suffix(".wav"), gt / f"{odd}.wav")
    shutil.copy(good[0], am / f"{odd}.mp4")
    expect[odd] = "ok"
    return expect


@pytest.fixture(scope="module")
def inputs_run(model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs") / "DIR"
    expect = build_inputs_dir(root)
    proc = score(root, "--no-visual")
    return root, expect, proc


def test_run_finishes_with_exit_4_and_no_traceback(inputs_run):
    root, expect, proc = inputs_run
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    data = json.loads((root / "results.json").read_text())
    failed = {f["stem"] for f in data["failures"]}
    assert failed == {s for s, e in expect.items() if e != "ok"}


@pytest.mark.parametrize(
    "stem",
    [
        "truncated",
        "truncated_video",
        "truncated_nomoov",
        "zero",
        "text",
        "noaudio",
        "audioonly",
        "oneframe",
        "tenth",
    ],
)
def test_bad_input_fails_with_a_status_and_one_line_reason(inputs_run, stem):
    root, expect, _ = inputs_run
    u = units(root / "results.sqlite")
    assert_failed(u, root, (stem, "GT", "-"), *expect[stem].split("|"))
    # its row in the store carries no numbers, and the good videos were scored
    assert u[(stem, "GT", "-")]["n_metric_rows"] == 5
    for good in ("good0", "good1"):
        assert_scored(u, (good, "GT", "-"))


def test_truncated_reason_says_where_decoding_stopped(inputs_run):
    root, _, _ = inputs_run
    u = units(root / "results.sqlite")
    # with audio, the GT audio's check (a packet pass, before any decoding) meets the cut
    reason = u[("truncated", "GT", "-")]["reason"]
    assert "GT audio: file is truncated: its audio stops at" in reason, reason
    reason = u[("truncated_video", "GT", "-")]["reason"]
    assert "file is truncated: its video stops at" in reason


@pytest.mark.parametrize(
    "stem,src_fps", [("fps60", 60.0), ("fps23976", 24000 / 1001), ("fps30", 30.0)]
)
def test_other_frame_rates_are_resampled_and_scored(inputs_run, stem, src_fps):
    root, _, _ = inputs_run
    d = assert_scored(units(root / "results.sqlite"), (stem, "GT", "-"))
    assert d["resampled"] is True and d["src_fps"] == pytest.approx(src_fps, rel=1e-4)
    # 2 s of video at 25 fps; scoring stops with the audio (2 s: 50 frames)
    assert abs(d["n_frames"] - 50) <= 1


def test_variable_frame_rate_clip_is_scored(inputs_run):
    root, _, _ = inputs_run
    d = assert_scored(units(root / "results.sqlite"), ("vfr", "GT", "-"))
    info = probe(CLIPS_DIR / "raw_vfr_suit_man.mp4")
    assert d["resampled"] is True
    assert d["n_frames"] <= info.n_frames and d["n_frames"] >= info.n_frames - 2


@pytest.mark.parametrize("stem", ["odd223x301", "rotated", "gray", "tenbit"])
def test_unusual_geometry_and_pixel_formats_are_scored(inputs_run, stem):
    root, _, _ = inputs_run
    d = assert_scored(units(root / "results.sqlite"), (stem, "GT", "-"))
    assert abs(d["n_frames"] - 50) <= 1


def test_rotation_metadata_is_applied(inputs_run):
    root, _, _ = inputs_run
    info = probe(root / "gt" / "rotated.mp4")
    assert info.rotation in (90, 270) and (info.width, info.height) == (128, 160)
    frame = next(iter_frames(root / "gt" / "rotated.mp4"))
    assert frame.shape == (160, 128, 3)


@pytest.mark.parametrize("kind", ["stereo48k", "mono8k", "float", "clipped"])
def test_gt_wav_formats_are_scored(inputs_run, kind):
    root, _, _ = inputs_run
    d = assert_scored(units(root / "results.sqlite"), (f"wav_{kind}", "GT", "-"))
    assert abs(d["n_frames"] - 50) <= 1
    # every format decodes to 2 s of 16 kHz mono int16 (the resamplers keep the length)
    a = load_audio(root / "gt" / f"wav_{kind}.wav")
    assert a.dtype == np.int16 and abs(len(a) - 32000) <= 8


def test_generated_shorter_or_longer_than_gt(inputs_run):
    root, _, _ = inputs_run
    u = units(root / "results.sqlite")
    gt0 = assert_scored(u, ("good0", "GT", "-"))
    short = assert_scored(u, ("good0", "AM", "CR"))
    long_ = assert_scored(u, ("good1", "AM", "CR"))
    assert gt0["n_frames"] == 30
    assert short["n_frames"] == 15  # the shorter video is scored over its own length
    # the longer one stops where the GT audio (1.2 s = 30 frames) ends: later frames
    # cannot enter a SyncNet window
    assert long_["n_frames"] == 30


def test_names_with_spaces_and_non_ascii(inputs_run):
    root, _, _ = inputs_run
    u = units(root / "results.sqlite")
    odd = "a clip — été 日本"
    gt = assert_scored(u, (odd, "GT", "-"))
    am = assert_scored(u, (odd, "AM", "CR"))
    assert (am["lse_c"], am["lse_d"]) == (gt["lse_c"], gt["lse_d"])  # the same file
    with open(root / "results.csv", newline="", encoding="utf-8") as f:
        assert sum(r[0] == odd for r in csv.reader(f)) == 2


# ------------------------------------------------------------------------ faces


def _real_frames(name: str, n: int, size: int) -> tuple[list[np.ndarray], np.ndarray]:
    import cv2

    src = CLIPS_DIR / f"{name}.mp4"
    frames = []
    for f in iter_frames(src):
        frames.append(cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA))
        if len(frames) == n:
            break
    return frames, load_audio(src)[: n * 640]


N_FACE = 40  # 1.6 s


@pytest.fixture(scope="module")
def faces_dir(model_dir, tmp_path_factory):
    """Detect mode on real faces (160 px): a good GT, a faceless GT, two faces side by
    side, a face that slides out of the frame; generations of the good one: shorter
    (AM/CR), longer (AM/AR) and faceless (SI/CR)."""
    root = tmp_path_factory.mktemp("faces") / "DIR"
    gt = root / "gt"
    gt.mkdir(parents=True)
    a, audio = _real_frames("real09_vox_rdj", N_FACE, 160)
    b, _ = _real_frames("real07_reagan", N_FACE, 160)
    write_video(gt / "face.mp4", a, audio=audio)
    grey = [np.full_like(f, 120) for f in a]
    write_video(gt / "noface.mp4", grey, audio=audio)
    write_video(
        gt / "twofaces.mp4", [np.hstack([x, y]) for x, y in zip(a, b, strict=True)], audio=audio
    )
    slide = []
    for i, f in enumerate(a):  # 8 px a frame to the right: gone after ~20 frames
        g = np.full_like(f, 120)
        s = min(160, 8 * i)
        g[:, s:] = f[:, : 160 - s]
        slide.append(g)
    write_video(gt / "leaves.mp4", slide, audio=audio)
    for cell, frames in (("AM/CR", a[:20]), ("AM/AR", a + a[:20]), ("SI/CR", grey)):
        (root / cell).mkdir(parents=True)
        write_video(root / cell / "face.mp4", frames, audio=audio[: len(frames) * 640])
    return root


@pytest.fixture(scope="module")
def faces_detect(faces_dir):
    db = faces_dir / "detect.sqlite"
    proc = score(
        faces_dir,
        "--mode",
        "detect",
        "--min-track",
        "10",
        "--min-face-size",
        "40",
        "--no-visual",
        "--no-report",
        db=db,
    )
    return units(db), proc


N_VIS = 10  # the visual metrics cost ~0.5 s a frame on a busy 2-core box: keep it short


@pytest.fixture(scope="module")
def faces_visual(model_dir, tmp_path_factory):
    """Visual metrics on a good and a faceless GT; generations of the good one: shorter
    (AM/CR), longer (AM/AR) and faceless (SI/CR)."""
    root = tmp_path_factory.mktemp("visual") / "DIR"
    (root / "gt").mkdir(parents=True)
    a, audio = _real_frames("real09_vox_rdj", N_VIS, 160)
    grey = [np.full_like(f, 120) for f in a]
    write_video(root / "gt" / "face.mp4", a, audio=audio)
    write_video(root / "gt" / "noface.mp4", grey, audio=audio)
    for cell, frames in (("AM/CR", a[:6]), ("AM/AR", a + a[:5]), ("SI/CR", grey)):
        (root / cell).mkdir(parents=True)
        write_video(root / cell / "face.mp4", frames, audio=audio[: len(frames) * 640])
    return root, score(root, "--no-fid")  # the test reads per-video rows and reasons only


def test_detect_mode_faces(faces_detect, faces_dir):
    u, proc = faces_detect
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    row = u[("noface", "GT", "-")]
    assert row["status"] == "failed" and row["reason"].startswith("no_face: no face track")
    assert "\n" not in row["reason"]
    one = assert_scored(u, ("face", "GT", "-"))
    assert len(one["tracks"]) == 1 and one["tracks"][0]["end_frame"] == N_FACE - 1
    two = assert_scored(u, ("twofaces", "GT", "-"))
    assert len(two["tracks"]) == 2  # each face is its own track, both scored
    for t in two["tracks"]:
        assert (t["start_frame"], t["end_frame"]) == (0, N_FACE - 1)
    # the face that leaves the frame: its track ends where the detector loses it, and
    # only those frames are scored; the rest of the video is not part of any track
    gone = assert_scored(u, ("leaves", "GT", "-"))
    (t,) = gone["tracks"]
    assert t["start_frame"] == 0 and 10 <= t["end_frame"] < 25, t
    # a generated video without a face fails in detect mode; the shorter one scores
    si = u[("face", "SI", "CR")]
    assert si["status"] == "failed" and si["reason"].startswith("no_face:")
    assert assert_scored(u, ("face", "AM", "CR"))["n_frames"] == 20


def test_visual_metrics_faces(faces_visual):
    faces_dir, proc = faces_visual
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    v = units(faces_dir / "results.sqlite", "visual")
    row = v[("noface", "GT", "-")]
    assert row["status"] == "failed" and row["reason"] == (
        f"no_face: no face found in any of its {N_VIS} frames"
    )
    assert csv_failures(faces_dir)[("noface", "GT", "-")] == f"failed (visual): {row['reason']}"
    assert row["reason"] in (faces_dir / "report.md").read_text()
    assert v[("face", "GT", "-")]["status"] == "ok", v[("face", "GT", "-")]
    data = json.loads((faces_dir / "results.json").read_text())
    by = {(x["stem"], x["setup"], x["reference"]): x for x in data["videos"]}
    short, long_, faceless = (
        by[("face", "AM", "CR")],
        by[("face", "AM", "AR")],
        by[("face", "SI", "CR")],
    )
    # shorter: compared over its own 6 frames; longer: over the GT's 10, the rest counted
    con = sqlite3.connect(faces_dir / "results.sqlite")
    m = {
        (s, st, r, k): val
        for s, st, r, k, val in con.execute(
            "SELECT stem, setup, reference, metric, value FROM results WHERE grp = 'visual'"
        )
    }
    con.close()
    assert m[("face", "AM", "CR", "n_frames_compared")] == 6
    assert m[("face", "AM", "AR", "n_frames_compared")] == N_VIS
    assert m[("face", "AM", "AR", "n_frames_gen")] == N_VIS + 5
    # the first 10 frames of the longer video are the GT's: same pictures up to the codec
    assert long_["ssim"] > 0.9 and short["ssim"] > 0.9
    # a faceless generation is scored on the GT's boxes; every frame counts as faceless
    assert m[("face", "SI", "CR", "n_no_face_gen")] == N_VIS
    assert faceless["ssim"] < short["ssim"]


def test_4k_video_memory_stays_bounded(model_dir, tmp_path):
    """3 s of 3840x2160: scored (prealigned) with a peak RSS well below what holding its
    frames at once would need on top of the models (75 x 24.9 MB = 1.9 GB)."""
    root = tmp_path / "DIR"
    gt = root / "gt"
    gt.mkdir(parents=True)
    synth.make_clip(gt / "small.mp4", 400, seconds=1.0)
    base = synth.make_clip(tmp_path / "base.mp4", 401, seconds=3.0)
    ff(
        "-i",
        base,
        "-vf",
        "scale=3840:2160",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        "30",
        "-c:a",
        "copy",
        gt / "uhd.mp4",
    )
    assert (probe(gt / "uhd.mp4").width, probe(gt / "uhd.mp4").height) == (3840, 2160)
    proc = score(root, "--no-visual", maxrss=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rss_mib = int(proc.stderr.split("MAXRSS")[1].split()[0]) / 1024
    u = units(root / "results.sqlite")
    assert assert_scored(u, ("uhd", "GT", "-"))["n_frames"] == 75
    print(f"peak RSS scoring 3 s of 4K: {rss_mib:.0f} MiB")
    # ~760 MiB observed; holding the clip's frames would add 1.9 GB to the ~0.6 GB of models.
    assert rss_mib < 1500, rss_mib

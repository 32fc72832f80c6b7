"""Synthetic talking faces and synthetic "generators" with a known answer.

Clips: a drawn face (160x160, 25 fps) whose mouth opening follows the RMS envelope of a
speech-like signal (harmonic syllables with pauses), written with PyAV as H.264 + AAC
with a sibling 16 kHz PCM .wav holding the exact samples.

Generators, runnable as a ``generate --cmd`` (``python tests/synth.py NAME --video {video}
--audio {audio} --out {out} --ref-frames {ref_frames}``):
- ``honest``: repaints the mouth with the opening of the *driving* audio's envelope.
- ``leaky``: copies the mouth of the reference frame (CR: the current frame, so the GT lips
  come through whatever the audio; AR: the first listed reference frame).
- ``remux``: real clips; the input video stream copied and muxed with the driving audio
  ("perfectly leaky": the lips are the GT lips).
- ``freeze``: real clips; every frame is the reference frame (CR: the current frame).
All of them put the driving audio into the output container.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import soundfile as sf

SR = 16000
FPS = 25
SIZE = 160
HOP = SR // FPS  # audio samples per video frame
MOUTH_CENTER = (80, 116)
MOUTH_BOX = (52, 100, 108, 134)  # x0, y0, x1, y1: the region generators repaint


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Harmonic syllables (random f0, 3-5 Hz rate) separated by gaps and pauses; int16."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SR))
    out = np.zeros(n)
    t = 0.1 + 0.1 * rng.random()
    while t < seconds - 0.1:
        dur = rng.uniform(0.12, 0.3)
        i0, i1 = int(t * SR), min(n, int((t + dur) * SR))
        tt = np.arange(i1 - i0) / SR
        f0 = rng.uniform(100, 220)
        syl = sum(np.sin(2 * np.pi * f0 * h * tt + rng.random() * 6) / h for h in range(1, 6))
        syl = syl + 0.3 * rng.standard_normal(tt.size)
        out[i0:i1] += syl * np.hanning(tt.size) * rng.uniform(0.5, 1.0)
        t += dur + (rng.uniform(0.25, 0.4) if rng.random() < 0.2 else rng.uniform(0.03, 0.1))
    out += 0.01 * rng.standard_normal(n)
    return np.clip(out / np.abs(out).max() * 12000, -32768, 32767).astype(np.int16)


def mouth_openings(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """Per video frame mouth opening in [0, 1] from the RMS of that frame's 40 ms of audio."""
    a = np.zeros(n_frames * HOP)
    m = min(a.size, audio.size)
    a[:m] = audio[:m].astype(np.float64)
    rms = np.sqrt((a.reshape(n_frames, HOP) ** 2).mean(axis=1))
    peak = rms.max()
    return np.zeros(n_frames) if peak == 0 else np.clip(rms / peak, 0, 1) ** 0.7


def draw_mouth(img: np.ndarray, opening: float) -> None:
    cv2.ellipse(img, MOUTH_CENTER, (20, 2 + int(round(14 * opening))), 0, 0, 360, (40, 30, 140), -1)
    cv2.line(
        img,
        (MOUTH_CENTER[0] - 20, MOUTH_CENTER[1]),
        (MOUTH_CENTER[0] + 20, MOUTH_CENTER[1]),
        (30, 20, 90),
        1,
    )


def draw_face(seed: int, opening: float) -> np.ndarray:
    rng = np.random.default_rng(seed)  # colours depend on the clip only, not on the frame
    bg = rng.integers(40, 200, 3)
    skin = (int(rng.integers(120, 190)), int(rng.integers(150, 200)), int(rng.integers(190, 240)))
    img = np.empty((SIZE, SIZE, 3), np.uint8)
    img[:] = bg
    cv2.ellipse(img, (80, 84), (52, 66), 0, 0, 360, skin, -1)
    for x in (60, 100):
        cv2.circle(img, (x, 66), 7, (250, 250, 250), -1)
        cv2.circle(img, (x, 66), 3, (40, 30, 20), -1)
    cv2.line(img, (80, 74), (76, 96), (90, 110, 150), 2)
    draw_mouth(img, opening)
    return img


def write_video(path: str | Path, frames, audio: np.ndarray | None) -> None:
    """Frames (BGR uint8, iterable) at 25 fps as H.264, plus mono int16 16 kHz audio as AAC."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.pix_fmt = "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "16"}
        aout = out.add_stream("aac", rate=SR, layout="mono") if audio is not None else None
        for i, img in enumerate(frames):
            if i == 0:
                vs.height, vs.width = img.shape[:2]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
            out.mux(vs.encode(frame))
        out.mux(vs.encode())
        if aout is not None and audio.size:
            frame = av.AudioFrame.from_ndarray(
                audio.reshape(1, -1).astype(np.int16), format="s16", layout="mono"
            )
            frame.sample_rate = SR
            frame.pts = 0
            frame.time_base = Fraction(1, SR)
            out.mux(aout.encode(frame))
            out.mux(aout.encode())


def make_clip(path: str | Path, seed: int, seconds: float = 2.0) -> Path:
    """A synthetic GT clip at ``path`` (.mp4), its exact audio at ``path.with_suffix('.wav')``."""
    path = Path(path)
    audio = speech_like(seconds, seed)
    n = int(round(seconds * FPS))
    op = mouth_openings(audio, n)
    write_video(path, (draw_face(seed, o) for o in op), audio)
    sf.write(str(path.with_suffix(".wav")), audio, SR, subtype="PCM_16")
    return path


def make_set(folder: str | Path, n: int, seconds: float = 2.0, seed0: int = 100) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [make_clip(folder / f"synth{i:02d}.mp4", seed0 + i, seconds) for i in range(n)]


def read_frames(path: str | Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


def read_wav(path: str | Path) -> np.ndarray:
    a, sr = sf.read(str(path), dtype="int16", always_2d=True)
    if sr != SR:
        raise SystemExit(f"{path}: expected {SR} Hz audio, got {sr}")
    return a[:, 0]


def _ref_index(ref_frames: str, t: int, n: int) -> int:
    if ref_frames in ("", "current"):
        return t
    return min(int(ref_frames.split(",")[0]), n - 1)


def gen_honest(video, audio, out, ref_frames) -> None:
    frames = read_frames(video)
    drive = read_wav(audio)
    op = mouth_openings(drive, len(frames))
    x0, y0, x1, y1 = MOUTH_BOX

    def paint(img, o):
        img = img.copy()
        skin = img[y0 - 4, (x0 + x1) // 2].tolist()  # above the box: face skin
        img[y0:y1, x0:x1] = skin
        draw_mouth(img, o)
        return img

    write_video(out, (paint(f, o) for f, o in zip(frames, op, strict=True)), drive)


def gen_leaky(video, audio, out, ref_frames) -> None:
    frames = read_frames(video)
    x0, y0, x1, y1 = MOUTH_BOX

    def paint(t):
        img = frames[t].copy()
        r = _ref_index(ref_frames, t, len(frames))
        img[y0:y1, x0:x1] = frames[r][y0:y1, x0:x1]
        return img

    write_video(out, (paint(t) for t in range(len(frames))), read_wav(audio))


def gen_freeze(video, audio, out, ref_frames) -> None:
    frames = read_frames(video)
    n = len(frames)
    write_video(out, (frames[_ref_index(ref_frames, t, n)] for t in range(n)), read_wav(audio))


def gen_remux(video, audio, out, ref_frames) -> None:
    import imageio_ffmpeg

    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-v",
        "error",
        "-y",
        "-i",
        str(video),
        "-i",
        str(audio),
        "-map",
        "0:v:0",
        "-map",
        "1:a:0",
        "-c:v",
        "copy",
        "-c:a",
        "aac",
        str(out),
    ]
    subprocess.run(cmd, check=True)


GENERATORS = {"honest": gen_honest, "leaky": gen_leaky, "freeze": gen_freeze, "remux": gen_remux}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="synthetic talking-face generators for tests")
    p.add_argument("generator", choices=sorted(GENERATORS))
    p.add_argument("--video", required=True)
    p.add_argument("--audio", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--ref-frames", default="current")
    p.add_argument("--fail-on", default="", help="exit 1 (after writing half a file) for this stem")
    a = p.parse_args(argv)
    if a.fail_on and Path(a.video).stem == a.fail_on:
        Path(a.out).write_bytes(b"half a video")
        print(f"synthetic failure for {a.video}", file=sys.stderr)
        return 1
    GENERATORS[a.generator](a.video, a.audio, a.out, a.ref_frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())

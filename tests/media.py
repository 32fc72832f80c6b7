"""Small media writers for tests: videos and wavs are made, never committed."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_lossless(path, frames):
    """FFV1 in Matroska: decodes back to exactly these BGR frames."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("ffv1", rate=25)
        vs.height, vs.width = frames[0].shape[:2]
        vs.pix_fmt = "bgr0"
        for f in frames:
            for pkt in vs.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="bgr24")
            ):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
    return path


def write_video(
    path: Path,
    frames: np.ndarray | list,
    fps: int = 25,
    audio: np.ndarray | None = None,
    sr: int = 16000,
    codec: str = "libx264",
    container_options: dict[str, str] | None = None,
) -> Path:
    """Write BGR uint8 frames (and optional mono int16 audio) to an mp4/mkv with PyAV.

    ``container_options``: muxer options, e.g. ``{"movflags": "+faststart"}`` for an mp4
    whose index precedes the data.
    """
    path = Path(path)
    with av.open(str(path), "w", options=container_options or {}) as out:
        h, w = frames[0].shape[:2]
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height = w - w % 2, h - h % 2
        vs.pix_fmt = "yuv420p"
        if codec == "libx264":
            vs.options = {"crf": "18", "preset": "veryfast"}
        if audio is not None:
            ast = out.add_stream("aac", rate=sr)
            ast.layout = "mono"
        for f in frames:
            f = np.ascontiguousarray(f[: vs.height, : vs.width])
            for pkt in vs.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
        if audio is not None:
            chunk = 1024
            for i in range(0, len(audio), chunk):
                a = np.ascontiguousarray(audio[i : i + chunk].reshape(1, -1).astype(np.int16))
                fr = av.AudioFrame.from_ndarray(a, format="s16", layout="mono")
                fr.sample_rate = sr
                fr.pts = i
                for pkt in ast.encode(fr):
                    out.mux(pkt)
            for pkt in ast.encode():
                out.mux(pkt)
    return path


def noise_frames(n: int, h: int = 96, w: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return np.stack([np.roll(base, i, axis=1) for i in range(n)])


def speech_like(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """Amplitude-modulated noise with pauses: enough for MFCC/SyncNet to see structure."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    env = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 2
    sig = env * (0.6 * np.sin(2 * np.pi * 220 * t) + 0.4 * rng.standard_normal(t.size))
    return (sig / np.abs(sig).max() * 12000).astype(np.int16)


def cut_clip(src: Path, dst: Path, start: int, n_frames: int, width: int = 256, **kw) -> Path:
    """Frames ``start .. start + n_frames - 1`` (at 25 fps) of a real clip and the audio
    under them, scaled to ``width`` pixels wide, as a new mp4: many short real talking-face
    videos from the few shared ones."""
    import cv2

    from lipleak.io.audio import load_audio
    from lipleak.io.frames import iter_frames

    frames = []
    for i, f in enumerate(iter_frames(src, fps=25.0)):
        if i >= start + n_frames:
            break
        if i >= start:
            h = round(f.shape[0] * width / f.shape[1]) // 2 * 2
            frames.append(cv2.resize(f, (width, h), interpolation=cv2.INTER_AREA))
    audio = load_audio(src)[start * 640 : (start + n_frames) * 640]
    return write_video(dst, frames, audio=audio, **kw)


def read_frames(path: Path, indices) -> list[np.ndarray]:
    """The frames at ``indices`` of a video as OpenCV decodes them (BGR uint8), in the
    order asked; fails naming the file when it has fewer frames."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    out, i, want = {}, 0, set(indices)
    while len(out) < len(want):
        ok, frame = cap.read()
        if not ok:
            break
        if i in want:
            out[i] = frame
        i += 1
    cap.release()
    assert len(out) == len(want), path
    return [out[i] for i in indices]

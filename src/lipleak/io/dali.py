"""GPU video decoding with NVIDIA DALI, falling back to the CPU decoder; and prefetching.

``iter_frames`` has the contract of ``lipleak.io.video.iter_frames`` — BGR uint8 H×W×3
frames at 25 fps, bounded memory — plus optional crop and resize, and picks the decoder:
DALI (NVDEC) when it is installed, the caller found a GPU (``choose_decoder``'s ``gpu``:
this package does not probe hardware) and the file is something NVDEC and DALI's reader
handle exactly (H.264/HEVC, constant 25 fps, no rotation, no JPEG round trip); otherwise
the CPU decoder. ``choose_decoder`` says which and why; pass its answer to
``iter_frames(choice=...)``.

Pixels: NVDEC's YUV->RGB conversion and DALI's resize are not libswscale/cv2, so GPU
frames differ from the CPU ones by a few levels (tests on a GPU report the maximum
difference). Scores that must match the reference are made with the CPU decoder; the GPU
decoder is opt-in for throughput (``decoder="auto"`` or ``"dali"``; the default of the
project's pipeline stays with whoever calls this).

``iter_gpu_chunks`` keeps frames on the GPU: each chunk is a DALI GPU tensor exposing
``__cuda_array_interface__``, which the TensorRT backend accepts as an input without a
host round trip.

``prefetch`` overlaps loading of the next items (decoding the next videos, reading their
audio) with the work on the current one, in a bounded background-thread window; it is
used with the CPU decoder as much as with DALI.
"""

from __future__ import annotations

import importlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import InputError, LipleakError
from . import frames as io_frames
from . import video as cpu_video

DALI_CODECS = ("h264", "hevc")
DECODERS = ("auto", "dali", "cpu")


# -------------------------------------------------------------------- availability


class Gpu(Protocol):
    """What decoding needs to know of a GPU: ``lipleak.runtime.probe.GpuInfo`` is one."""

    name: str


# (the GPU to decode on, or None and why there is none): what
# ``lipleak.runtime.probe.probe_gpu()`` returns. The caller probes; io never looks for GPUs
# itself, so that it stays below the runtime.
GpuProbe = tuple[Gpu | None, str]

NO_GPU_GIVEN: GpuProbe = (None, "no GPU probe was passed in")


def dali_available(gpu: Gpu | None, why: str) -> tuple[bool, str]:
    """Whether DALI can decode on ``gpu`` here, and why (not); ``why`` says why there is no
    GPU when ``gpu`` is None. Pass ``*lipleak.runtime.probe.probe_gpu(device_id)``."""
    try:
        dali = importlib.import_module("nvidia.dali")
    except ImportError as exc:
        return False, f"nvidia-dali not installed ({exc}); install the 'gpu' extra"
    except Exception as exc:  # noqa: BLE001 - a DALI built for another CUDA fails on import
        return False, f"nvidia-dali import failed: {type(exc).__name__}: {exc}"
    if gpu is None:
        return False, f"DALI {getattr(dali, '__version__', '?')} installed but {why}"
    return True, f"DALI {getattr(dali, '__version__', '?')} on {gpu.name}"


@dataclass(frozen=True)
class DecoderChoice:
    decoder: str  # "dali" or "cpu"
    reason: str


def choose_decoder(
    path: str | Path,
    decoder: str = "auto",
    reference_frames: bool = False,
    info: cpu_video.VideoInfo | None = None,
    gpu: GpuProbe = NO_GPU_GIVEN,
) -> DecoderChoice:
    """Which decoder ``iter_frames`` will use for ``path``, and why.

    ``gpu`` is the caller's ``lipleak.runtime.probe.probe_gpu()``; without it there is no
    GPU to decode on. ``decoder="dali"`` makes an unusable GPU path an error
    (LipleakError) instead of a fallback; bad files raise InputError from the probe
    either way.
    """
    if decoder not in DECODERS:
        raise LipleakError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
    if decoder == "cpu":
        return DecoderChoice("cpu", "asked for the CPU decoder")
    reasons = []
    ok, why = dali_available(*gpu)
    if not ok:
        reasons.append(why)
    info = info or cpu_video.probe(path)
    if info.codec not in DALI_CODECS:
        reasons.append(f"codec {info.codec} is not one of {', '.join(DALI_CODECS)}")
    if info.needs_resample:
        reasons.append(f"{info.src_fps:g} fps / variable frame rate needs timestamp resampling")
    if info.rotation:
        reasons.append(f"rotated {info.rotation} degrees (DALI does not autorotate)")
    if reference_frames:
        reasons.append("the reference JPEG round trip runs on the CPU")
    if not reasons:
        return DecoderChoice("dali", why)
    if decoder == "dali":
        raise LipleakError(f"{path}: the DALI decoder cannot be used: " + "; ".join(reasons))
    return DecoderChoice("cpu", "; ".join(reasons))


# ------------------------------------------------------------------- transforms


def _check_geometry(crop, size) -> None:
    if crop is not None and (len(crop) != 4 or min(crop[2:]) <= 0 or min(crop[:2]) < 0):
        raise LipleakError(f"crop must be (y, x, h, w) with h, w > 0, got {crop}")
    if size is not None and (len(size) != 2 or min(size) <= 0):
        raise LipleakError(f"size must be (width, height) > 0, got {size}")


def cpu_transform(frame: np.ndarray, crop=None, size=None) -> np.ndarray:
    """The CPU twin of the DALI graph: crop (y, x, h, w) then cv2.resize to size (w, h)
    with cv2's defaults (bilinear), as the SPEC's prealigned mode does."""
    if crop is not None:
        y, x, h, w = crop
        if y + h > frame.shape[0] or x + w > frame.shape[1]:
            raise InputError(
                None, f"crop {crop} exceeds the {frame.shape[1]}x{frame.shape[0]} frame", "bad_crop"
            )
        frame = frame[y : y + h, x : x + w]
    if size is not None and (frame.shape[1], frame.shape[0]) != tuple(size):
        import cv2

        frame = cv2.resize(frame, tuple(size))
    return np.ascontiguousarray(frame)


# ----------------------------------------------------------------------- DALI


@dataclass
class GpuChunk:
    """``frames``: DALI TensorGPU (F, H, W, 3) BGR uint8, valid until the next chunk is
    requested; only the first ``n_valid`` frames are real (the last chunk is padded);
    ``start``: index of the first frame in the video."""

    frames: Any
    n_valid: int
    start: int


def _build_pipeline(
    path: str, sequence_length: int, crop, size, device_id: int, num_threads: int = 2
):
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(
        batch_size=1, num_threads=num_threads, device_id=device_id, prefetch_queue_depth=2
    )
    def pipe():
        # readers.video (legacy NVDEC reader) is in DALI 1.x and 2.x with these arguments;
        # step = sequence_length gives non-overlapping chunks in order; pad_sequences
        # keeps the last, short chunk (zero frames after the end).
        frames = fn.readers.video(
            device="gpu",
            filenames=[path],
            sequence_length=sequence_length,
            step=sequence_length,
            random_shuffle=False,
            pad_sequences=True,
            image_type=types.RGB,
            dtype=types.UINT8,
            name="reader",
        )
        if crop is not None:
            y, x, h, w = crop
            frames = fn.slice(
                frames, start=[y, x], shape=[h, w], axis_names="HW", out_of_bounds_policy="error"
            )
        if size is not None:
            frames = fn.resize(
                frames,
                resize_x=size[0],
                resize_y=size[1],
                interp_type=types.INTERP_LINEAR,
                antialias=False,
            )
        return fn.color_space_conversion(frames, image_type=types.RGB, output_type=types.BGR)

    p = pipe()
    p.build()
    return p


def _epoch_size(pipe) -> int:
    n = pipe.epoch_size("reader")
    return int(n if not isinstance(n, dict) else next(iter(n.values())))


def iter_gpu_chunks(
    path: str | Path,
    n_frames: int,
    sequence_length: int = 32,
    crop=None,
    size=None,
    device_id: int = 0,
) -> Iterator[GpuChunk]:
    """Decode ``path`` on the GPU in chunks of ``sequence_length`` frames that stay on the
    GPU. ``n_frames`` (from ``lipleak.io.video.probe``) bounds the padded last chunk."""
    _check_geometry(crop, size)
    pipe = _build_pipeline(str(path), sequence_length, crop, size, device_id)
    try:
        start = 0
        for _ in range(_epoch_size(pipe)):
            (out,) = pipe.run()
            n_valid = max(0, min(sequence_length, n_frames - start))
            if n_valid:
                yield GpuChunk(out.as_tensor(), n_valid, start)
            start += sequence_length
    finally:
        del pipe


def _iter_dali_frames(path, n_frames, sequence_length, crop, size, device_id):
    for chunk in iter_gpu_chunks(path, n_frames, sequence_length, crop, size, device_id):
        host = np.asarray(chunk.frames.as_cpu())  # (1, F, H, W, 3) or (F, H, W, 3)
        host = host.reshape(-1, *host.shape[-3:])
        for i in range(chunk.n_valid):
            yield np.ascontiguousarray(host[i])


# --------------------------------------------------------------------- frames


def iter_frames(
    path: str | Path,
    *,
    crop=None,
    size=None,
    decoder: str = "auto",
    reference_frames: bool = False,
    ffmpeg: str | None = None,
    sequence_length: int = 32,
    device_id: int = 0,
    choice: DecoderChoice | None = None,
    info: cpu_video.VideoInfo | None = None,
) -> Iterator[np.ndarray]:
    """BGR uint8 frames at 25 fps, cropped (y, x, h, w) and resized to ``size`` (w, h) if
    asked, from DALI or the CPU decoder (see ``choose_decoder``).

    A caller that already probed the file or chose the decoder passes ``info``/``choice``
    so that the file is not probed again. If DALI fails before its first frame (e.g. a
    profile NVDEC does not support) the CPU decoder takes over, unless ``decoder="dali"``;
    a failure after frames were yielded is an InputError, since the caller already
    consumed part of the video.
    """
    _check_geometry(crop, size)
    if info is None and (choice is None or choice.decoder == "dali"):
        info = cpu_video.probe(path)  # DALI needs n_frames to cut its padded last chunk
    choice = choice or choose_decoder(path, decoder, reference_frames, info)
    if choice.decoder == "dali":
        yielded = 0
        try:
            for frame in _iter_dali_frames(
                path, info.n_frames, sequence_length, crop, size, device_id
            ):
                yielded += 1
                yield frame
            return
        except (RuntimeError, ValueError, OSError) as exc:  # DALI raises RuntimeError
            if yielded or decoder == "dali":
                raise InputError(
                    path,
                    f"GPU decode failed after {yielded} frames: {str(exc).splitlines()[0][:200]}",
                    "decode_error",
                ) from None
    for frame in io_frames.iter_frames(path, reference_frames=reference_frames, ffmpeg=ffmpeg):
        yield cpu_transform(frame, crop, size)


# ------------------------------------------------------------------- prefetch


@dataclass
class Prefetched:
    item: Any
    value: Any = None
    error: BaseException | None = None


def prefetch(
    items: Iterable, load: Callable[[Any], Any], depth: int = 2, workers: int = 1
) -> Iterator[Prefetched]:
    """Yield ``Prefetched(item, load(item))`` in input order while the next ``depth`` loads
    run in background threads.

    At most ``depth`` results wait in memory, so memory is bounded by ``depth`` loaded
    items. An exception from ``load`` is returned in ``.error`` for that item (a bad video
    does not stop a batch); stopping the iteration cancels loads not yet started.
    Threads suit decoding: PyAV, OpenCV and DALI release the GIL while they work.
    """
    if depth < 1 or workers < 1:
        raise LipleakError(f"prefetch needs depth >= 1 and workers >= 1, got {depth}, {workers}")

    def run(item):
        try:
            return Prefetched(item, load(item))
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, per item
            return Prefetched(item, None, exc)

    it = iter(items)
    window: deque[Future] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lipleak-prefetch")
    try:
        for item in it:
            window.append(pool.submit(run, item))
            if len(window) >= depth:
                break
        while window:
            done = window.popleft().result()
            nxt = next(it, _END)
            if nxt is not _END:
                window.append(pool.submit(run, nxt))
            yield done
    finally:
        for f in window:
            f.cancel()
        pool.shutdown(wait=False, cancel_futures=True)


_END = object()


def prefetch_frames(
    paths: Iterable[str | Path], depth: int = 2, **frame_opts
) -> Iterator[Prefetched]:
    """Decode whole videos ahead of use: ``.value`` is a (N, H, W, 3) uint8 array.

    Meant for short clips with a crop/size that makes frames small (e.g. 224×224): the
    window holds ``depth`` decoded videos.
    """

    def load(path):
        frames = list(iter_frames(path, **frame_opts))
        if not frames:
            raise InputError(path, "no frames decoded", "decode_error")
        return np.stack(frames)

    return prefetch(paths, load, depth=depth)


__all__ = [
    "DALI_CODECS",
    "NO_GPU_GIVEN",
    "DecoderChoice",
    "Gpu",
    "GpuChunk",
    "GpuProbe",
    "Prefetched",
    "choose_decoder",
    "cpu_transform",
    "dali_available",
    "iter_frames",
    "iter_gpu_chunks",
    "prefetch",
    "prefetch_frames",
]

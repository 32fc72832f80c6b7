"""GPU video decoding with NVIDIA DALI, falling back to the CPU decoder; and prefetching.

``iter_frames`` has the contract of ``lipleak.io.video.iter_frames`` — BGR uint8 H×W×3
frames at 25 fps, bounded memory — plus optional crop and resize, and picks the decoder:
DALI (NVDEC) when it is installed, the caller found a GPU (``choose_decoder``'s ``gpu``:
this package does not probe hardware) and the file is something NVDEC and DALI's reader
handle exactly (H.264/HEVC, constant 25 fps, no rotation, no JPEG round trip); otherwise
the CPU decoder. ``choose_decoder`` says which and why; pass its answer to
``iter_frames(choice=...)``.

Pixels: NVDEC's YUV->RGB conversion and DALI's resize are not libswscale/cv2, so GPU
frames differ from the CPU ones by a few levels (tests on a GPU report the difference
frame by frame). Scores that must match the reference are made with the CPU decoder,
which is the default of the scoring settings; the GPU decoder is opt-in for throughput
(``decoder="auto"`` or ``"dali"``) and hashed into the settings, so GPU- and CPU-decoded
rows never share a settings hash.

One DALI pipeline serves many videos: pipelines are built per (sequence length, crop,
size, device) around ``fn.experimental.inputs.video``, which decodes an encoded file fed
with ``Pipeline.feed_input`` (``fn.readers.video`` takes its file names when the pipeline
is built, so it would need one pipeline per video). Idle pipelines wait in a small pool;
a thread takes one for a whole video, so videos decoded at once never share one.

``iter_gpu_chunks`` keeps frames on the GPU: each chunk is a DALI GPU tensor exposing
``__cuda_array_interface__``, which the TensorRT backend accepts as an input without a
host round trip.

``prefetch`` overlaps loading of the next items (decoding the next videos, reading their
audio) with the work on the current one, in a bounded background-thread window; it is
used with the CPU decoder as much as with DALI.
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
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

log = logging.getLogger(__name__)


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
        return (
            False,
            f"nvidia-dali not installed ({exc}); install the 'gpu-cu12' or 'gpu-cu13' extra",
        )
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


PipelineKey = tuple  # (sequence_length, crop, size, device_id, num_threads)


def _build_pipeline(sequence_length: int, crop, size, device_id: int, num_threads: int = 2):
    """A pipeline that decodes whatever encoded video is fed to its "video" input."""
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(
        batch_size=1, num_threads=num_threads, device_id=device_id, prefetch_queue_depth=1
    )
    def pipe():
        # inputs.video (DALI >= 1.25, also 2.x) on the "mixed" backend decodes with NVDEC;
        # each run returns the next sequence of the fed file, "partial" makes the last one
        # short instead of padded, so its length shows where the video ends. A prefetch
        # depth of 1 keeps DALI from running ahead into a video not fed yet (running with
        # no data queued is an error).
        frames = fn.experimental.inputs.video(
            name="video",
            device="mixed",
            sequence_length=sequence_length,
            last_sequence_policy="partial",
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


class PipelinePool:
    """Idle DALI pipelines by their parameters, at most ``keep`` of each.

    ``take`` hands a pipeline to one caller for one video (building one when none is
    idle); ``give_back`` returns it for the next video. A pipeline whose video was not read
    to the end still holds that video's frames, so it is dropped instead (``discard``).
    """

    def __init__(self, keep: int = 2):
        self.keep = keep
        self._idle: dict[PipelineKey, list] = {}
        self._lock = threading.Lock()
        self.built = 0

    def take(self, key: PipelineKey):
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop()
        pipe = _build_pipeline(*key)
        with self._lock:
            self.built += 1
        return pipe

    def give_back(self, key: PipelineKey, pipe) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.keep:
                idle.append(pipe)

    def discard(self, key: PipelineKey, pipe) -> None:
        del pipe  # its GPU memory goes with the last reference

    def clear(self) -> None:
        with self._lock:
            self._idle.clear()


PIPELINES = PipelinePool()


def _shape(t) -> tuple[int, ...]:
    # DALI's TensorGPU.shape is a method; arrays (and test doubles) have an attribute
    shape = t.shape
    return tuple(shape() if callable(shape) else shape)


def iter_gpu_chunks(
    path: str | Path,
    n_frames: int,
    sequence_length: int = 32,
    crop=None,
    size=None,
    device_id: int = 0,
) -> Iterator[GpuChunk]:
    """Decode ``path`` on the GPU in chunks of ``sequence_length`` frames that stay on the
    GPU. ``n_frames`` (from ``lipleak.io.video.probe``) says how many sequences the file
    gives; a sequence of another length than expected (the decoder and the probe disagree
    on the frame count) is a RuntimeError rather than frames of the wrong video."""
    _check_geometry(crop, size)
    key = (
        int(sequence_length),
        None if crop is None else tuple(crop),
        None if size is None else tuple(size),
        int(device_id),
        2,
    )
    runs = math.ceil(n_frames / sequence_length) if n_frames > 0 else 0
    pipe = PIPELINES.take(key)
    finished = False
    try:
        pipe.feed_input("video", [np.fromfile(str(path), dtype=np.uint8)])
        start = 0
        for i in range(runs):
            (out,) = pipe.run()
            t = out.as_tensor()
            shape = _shape(t)
            want = min(sequence_length, n_frames - start)
            got = shape[-4] if len(shape) >= 4 else -1
            if got != want:
                raise RuntimeError(
                    f"DALI gave {got} frames for sequence {i} of {runs}, the probe expects "
                    f"{want} ({n_frames} frames in all)"
                )
            yield GpuChunk(t, want, start)
            start += sequence_length
        finished = True
    finally:
        if finished:
            PIPELINES.give_back(key, pipe)
        else:
            PIPELINES.discard(key, pipe)


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
    on_fallback: Callable[[str], None] | None = None,
) -> Iterator[np.ndarray]:
    """BGR uint8 frames at 25 fps, cropped (y, x, h, w) and resized to ``size`` (w, h) if
    asked, from DALI or the CPU decoder (see ``choose_decoder``).

    A caller that already probed the file or chose the decoder passes ``info``/``choice``
    so that the file is not probed again. If DALI fails before its first frame (e.g. a
    profile NVDEC does not support, a DALI that cannot build the pipeline) the CPU decoder
    takes over with a logged warning and ``on_fallback(reason)`` is called, unless
    ``decoder="dali"``; a failure after frames were yielded is an InputError, since the
    caller already consumed part of the video from the GPU decoder.
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
        except Exception as exc:  # noqa: BLE001 - DALI raises RuntimeError, builds raise more
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            if yielded or decoder == "dali":
                hint = "; score it with --decoder cpu" if yielded else ""
                raise InputError(
                    path,
                    f"GPU decode failed after {yielded} frames: {first}{hint}",
                    "decode_error",
                ) from None
            reason = f"DALI failed before the first frame ({type(exc).__name__}: {first})"
            log.warning("%s: %s; decoding on the CPU instead", path, reason)
            if on_fallback is not None:
                on_fallback(reason)
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
    "PIPELINES",
    "DecoderChoice",
    "Gpu",
    "GpuChunk",
    "GpuProbe",
    "PipelinePool",
    "Prefetched",
    "choose_decoder",
    "cpu_transform",
    "dali_available",
    "iter_frames",
    "iter_gpu_chunks",
    "prefetch",
    "prefetch_frames",
]

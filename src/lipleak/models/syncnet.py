"""SyncNet v2 towers behind the runtime interface: lip windows and MFCC windows → embeddings.

The checkpoint (``syncnet_v2.model`` or a file in its format) is exported once to two ONNX
files (``lipleak.models.onnx_files`` says where); later runs only open them. Exporting
needs torch (the ``export`` extra); scoring does not.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..export.syncnet_shapes import (
    EMBED_DIM,
    EMBEDDING_OUTPUT,
    LIPS_INPUT,
    LIPS_SHAPE,
    MFCC_INPUT,
    MFCC_SHAPE,
    WINDOW_FRAMES,
)
from ..runtime import Runtime, open_model
from ..runtime.probe import cpu_threads
from . import onnx_files, registry, store


def resolve_checkpoint(name_or_path: str | Path) -> tuple[Path, str, str | None]:
    """(path, sha256, registry name or None) of a registry name or a checkpoint path.

    A registry name must be in the model dir with the registry's sha256. A path is taken
    as given; it is named after the registry entry with the same sha256, if any.
    """
    if isinstance(name_or_path, str) and name_or_path in registry.MODELS:
        spec = registry.get(name_or_path)
        if spec.kind != "syncnet":
            raise ModelError(f"{name_or_path} is a {spec.kind} model, not a SyncNet checkpoint")
        path = store.locate(spec.name)
        return path, store.verify(spec.name, path), spec.name
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        known = ", ".join(n for n, s in registry.MODELS.items() if s.kind == "syncnet")
        raise ModelError(f"{path}: no such SyncNet checkpoint (a file, or one of: {known})")
    sha = store.file_sha256(path)
    spec = registry.by_sha256(sha)
    return path, sha, spec.name if spec else None


FRAME_SHAPE = (LIPS_SHAPE[2], LIPS_SHAPE[3], LIPS_SHAPE[0])  # one crop: H × W × BGR


def _check_run(run: np.ndarray) -> np.ndarray:
    if run.dtype != np.uint8 or run.ndim != 4 or run.shape[1:] != FRAME_SHAPE:
        raise ValueError(
            f"a run of lip crops must be uint8 N×{'×'.join(map(str, FRAME_SHAPE))}, "
            f"got {run.dtype} {run.shape}"
        )
    if len(run) < WINDOW_FRAMES:
        raise ValueError(f"a run of lip crops needs {WINDOW_FRAMES} frames, got {len(run)}")
    return np.ascontiguousarray(run)


def run_windows(run) -> int:
    """How many windows a run of consecutive crops gives: window k is frames k .. k+4."""
    return len(run) - WINDOW_FRAMES + 1


def lip_windows(frames: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Every window of a run of consecutive crops: uint8[n, 224, 224, 3] →
    float32[n - 4, 3, 5, 224, 224], window k holding frames k .. k+4 in the layout of
    ``lipleak.metrics.sync.lip_window``. Each frame is converted once, not once per window
    it enters; uint8 values are exact in float32, so this equals that reference bit for
    bit."""
    n = run_windows(frames)
    if out is None:
        out = np.empty((max(n, 0), 3, WINDOW_FRAMES, *frames.shape[1:3]), np.float32)
    if n <= 0:
        return out
    planar = frames.transpose(0, 3, 1, 2).astype(np.float32)  # n × 3 × H × W
    for t in range(WINDOW_FRAMES):
        out[:, :, t] = planar[t : t + n]
    return out


def device_lip_windows(frames: list, dtype):
    """``lip_windows`` in torch, on whatever device the frames are: uint8 N×H×W×3 runs →
    their (N-4)×3×5×H×W windows, concatenated, in ``dtype`` (0..255 are exact in fp32,
    fp16 and bf16, so the windows equal the host-made ones converted to ``dtype``)."""
    import torch

    out = []
    for f in frames:
        # N × 3 × H × W, converted once per frame. contiguous(): a permuted tensor keeps
        # its strides through .to() and stack(), and channels-last windows make torch
        # pick other convolution kernels, i.e. other bits than the host's NCDHW windows
        planar = f.permute(0, 3, 1, 2).to(dtype).contiguous()
        n = run_windows(planar)
        out.append(torch.stack([planar[t : t + n] for t in range(WINDOW_FRAMES)], dim=2))
    return out[0] if len(out) == 1 else torch.cat(out)


def _check_batch(x: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != len(shape) + 1 or x.shape[1:] != shape:
        raise ValueError(f"{what} must be B×{'×'.join(map(str, shape))}, got {x.shape}")
    return x


class SyncNet:
    """The two SyncNet towers as ONNX models on one backend. Embeddings are not normalised."""

    def __init__(
        self, checkpoint: Path, sha256: str, name: str | None, lips: Runtime, audio: Runtime
    ):
        self.checkpoint = checkpoint
        self.sha256 = sha256
        self.name = name
        self.lips = lips
        self.audio = audio
        self._scratch = threading.local()  # per thread: host windows of embed_lip_frames
        self._lip_thread: ThreadPoolExecutor | None = None  # submit_lip_frames, made on use
        self._lip_thread_lock = threading.Lock()

    # batches a scorer may leave with submit_lip_frames before it waits for the oldest
    lip_in_flight = 1

    @classmethod
    def load(
        cls,
        name_or_path: str | Path = "syncnet_v2",
        backend: str = "auto",
        onnx_root: Path | None = None,
        precision: str = "fp32",
        max_batch: int = 64,
    ) -> SyncNet:
        """Open SyncNet from a registry name (in the model dir) or a checkpoint path.

        The ONNX towers are exported on first use (``onnx_root`` overrides the
        ``model_dir()/onnx`` folder they go in); each file appears atomically, so
        concurrent first runs never open a half-written model.
        """
        path, sha, name = resolve_checkpoint(name_or_path)
        files = onnx_files.syncnet_towers(path, sha, onnx_root)
        return cls(
            path,
            sha,
            name,
            open_model(files["lips"], backend, precision=precision, max_batch=max_batch),
            open_model(files["audio"], backend, precision=precision, max_batch=max_batch),
        )

    def embed_lips(self, x: np.ndarray, runtime: Runtime | None = None) -> np.ndarray:
        """B×3×5×224×224 float32 (five BGR frames, 0..255) → B×1024 float32.

        ``runtime``: one of ``lip_replicas()`` instead of the tower itself."""
        x = _check_batch(x, LIPS_SHAPE, "lip windows")
        if len(x) == 0:
            return np.zeros((0, EMBED_DIM), np.float32)
        return (runtime or self.lips).run({LIPS_INPUT: x})[EMBEDDING_OUTPUT]

    def embed_lip_frames(self, runs: list[np.ndarray], runtime: Runtime | None = None):
        """The embeddings of every window of each run of consecutive lip crops, in order.

        A run is uint8 N×224×224×3 (BGR) with N ≥ 5 and gives N − 4 windows (window k:
        frames k .. k+4). What travels is the crops: a backend that can make the windows
        itself (the torch backend, ``run_prepared``) gets the uint8 frames, 1/20 of the
        float32 windows' bytes, and builds them on its device; otherwise they are built
        here into a buffer this thread reuses. The same numbers either way (the windows
        are equal bit for bit). ``runtime``: one of ``lip_replicas()``.
        """
        runs = [_check_run(r) for r in runs]
        n = sum(map(run_windows, runs))
        if n == 0:
            return np.zeros((0, EMBED_DIM), np.float32)
        rt = runtime or self.lips
        on_device = getattr(rt, "run_prepared", None)
        if on_device is not None:
            out = on_device(runs, lambda f, dtype: {LIPS_INPUT: device_lip_windows(f, dtype)})
            return out[EMBEDDING_OUTPUT]
        buf = getattr(self._scratch, "windows", None)
        if buf is None or len(buf) < n:
            buf = self._scratch.windows = np.empty((n, *LIPS_SHAPE), np.float32)
        x, i = buf[:n], 0
        for r in runs:
            k = run_windows(r)
            lip_windows(r, x[i : i + k])
            i += k
        return rt.run({LIPS_INPUT: x})[EMBEDDING_OUTPUT]

    def submit_lip_frames(self, runs: list[np.ndarray]) -> Future:
        """``embed_lip_frames(runs)`` on the tower's own thread; the caller goes on (decoding
        the next frames, running the audio tower) while it runs. One thread: batches run
        in the order submitted, each with the backend's own threads, as before."""
        if self._lip_thread is None:
            with self._lip_thread_lock:
                if self._lip_thread is None:
                    self._lip_thread = ThreadPoolExecutor(1, thread_name_prefix="lip-tower")
        return self._lip_thread.submit(self.embed_lip_frames, runs)

    def lip_replicas(self, n: int) -> list[Runtime]:
        """``n`` lip towers that can run at the same time, one per serving thread.

        On the CPU backend: ``n`` onnxruntime sessions of the same ONNX file, each given
        its share of the cores. Two batches of one thread each run faster than one batch
        on two threads (``bench/bench_volume.py``), and no number changes: onnxruntime's
        CPU kernels give the same bits for any thread count (``tests/test_sync_volume.py``
        compares with single-video scoring). The torch backend on CUDA: the tower itself
        ``n`` times, so that ``n`` threads serve it: ``TorchRuntime.run_prepared`` holds
        its lock only while queuing a batch, so one thread's uploads and window making
        overlap the GPU's work on another's batch. Elsewhere (TensorRT, onnxruntime on a
        GPU: their runs hold the device to the end) the tower itself, once.
        """
        info = self.lips.describe()
        if (
            n > 1
            and info.backend == "torch"
            and str(info.details.get("device", "")).startswith("cuda")
        ):
            return [self.lips] * n
        if n <= 1 or info.backend != "cpu":
            return [self.lips]
        cores = cpu_threads()
        threads = max(1, cores // n)
        return [open_model(info.model_path, "cpu", threads=threads) for _ in range(n)]

    def audio_for_threads(self) -> Runtime:
        """The audio tower for many threads calling at once (the pipeline's workers).

        On the CPU backend a session of its own opened ``concurrent`` (one thread per
        call, ``runtime.open_model``): no pool thread spins between ops beside the lip
        tower's sessions (``sync DIR`` +7 % windows/s on two cores, ``bench/README.md``).
        The same bits: onnxruntime's CPU kernels give them for any thread count (the
        pipeline's rows equal single-video scoring, ``tests/test_sync_volume.py``).
        Elsewhere the tower itself.
        """
        info = self.audio.describe()
        if info.backend != "cpu":
            return self.audio
        return open_model(info.model_path, "cpu", concurrent=True)

    def embed_audio(self, x: np.ndarray, runtime: Runtime | None = None) -> np.ndarray:
        """B×1×13×20 float32 MFCC windows → B×1024 float32 (``runtime``: one from
        ``audio_for_threads()`` instead of the tower itself)."""
        x = _check_batch(x, MFCC_SHAPE, "MFCC windows")
        if len(x) == 0:
            return np.zeros((0, EMBED_DIM), np.float32)
        return (runtime or self.audio).run({MFCC_INPUT: x})[EMBEDDING_OUTPUT]

    def describe(self) -> dict:
        """What computed the embeddings: checkpoint, ONNX files and backend (for results)."""
        lips, audio = self.lips.describe(), self.audio.describe()
        return {
            "checkpoint": {"name": self.name, "path": str(self.checkpoint), "sha256": self.sha256},
            "onnx": {
                "lips": {"path": lips.model_path, "sha256": lips.model_sha256},
                "audio": {"path": audio.model_path, "sha256": audio.model_sha256},
            },
            "backend": lips.backend,
            "runtime": asdict(lips),
        }

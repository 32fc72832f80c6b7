"""GPU-decoder selection and its CPU fallback, crop/resize twin, and the prefetcher.

Runs everywhere: DALI is absent on CI, so the fallback is what is exercised for real;
the DALI path itself is tested in test_gpu.py on a GPU machine.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from fractions import Fraction

import cv2
import numpy as np
import pytest

from lipleak.errors import InputError, LipleakError
from lipleak.io import dali
from lipleak.io import video as cpu_video
from lipleak.runtime.probe import probe_gpu


def write_video(path, n=12, w=64, h=48, codec="libx264", fps=25):
    """A small synthetic clip with distinct frames (a moving gradient)."""
    import av

    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=Fraction(fps))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if codec == "libx264":
            s.options = {"crf": "18", "preset": "ultrafast"}
        yy, xx = np.mgrid[0:h, 0:w]
        for i in range(n):
            img = np.stack(
                [(xx * 4 + i * 9) % 256, (yy * 5 + i * 3) % 256, np.full_like(xx, (i * 20) % 256)],
                -1,
            ).astype(np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    return path


@pytest.fixture(scope="module")
def h264(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4")


def test_dali_unavailable_here_with_reason():
    ok, why = dali.dali_available(*probe_gpu())
    assert ok is False
    assert "nvidia-dali not installed" in why or "no CUDA GPU" in why


def test_fallback_gives_the_cpu_frames(h264):
    choice = dali.choose_decoder(h264, gpu=probe_gpu())
    assert choice.decoder == "cpu" and ("nvidia-dali" in choice.reason or "GPU" in choice.reason)
    got = list(dali.iter_frames(h264))
    want = list(cpu_video.iter_frames(h264))
    assert len(got) == len(want) == 12
    for a, b in zip(got, want, strict=True):
        assert a.dtype == np.uint8 and a.shape == (48, 64, 3) and a.flags.c_contiguous
        np.testing.assert_array_equal(a, b)


def test_fallback_crop_and_resize_match_cv2(h264):
    crop, size = (4, 8, 32, 40), (24, 20)
    got = list(dali.iter_frames(h264, crop=crop, size=size))
    for a, full in zip(got, cpu_video.iter_frames(h264), strict=True):
        ref = cv2.resize(full[4:36, 8:48], (24, 20), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(a, ref)
        assert a.shape == (20, 24, 3)


def test_crop_outside_frame_is_input_error(h264):
    with pytest.raises(InputError, match="exceeds the 64x48 frame"):
        list(dali.iter_frames(h264, crop=(40, 0, 20, 10)))
    with pytest.raises(LipleakError, match="crop must be"):
        list(dali.iter_frames(h264, crop=(0, 0, 0, 10)))


def _pretend_dali(monkeypatch):
    monkeypatch.setattr(dali, "dali_available", lambda gpu, why: (True, "DALI 9.9 on fake GPU"))


def _info(**over):
    base = dict(
        path="x.mp4",
        width=64,
        height=48,
        src_fps=25.0,
        duration_s=1.0,
        n_frames=25,
        needs_resample=False,
        has_audio=False,
        codec="h264",
        rotation=0,
    )
    base.update(over)
    return cpu_video.VideoInfo(**base)


@pytest.mark.parametrize(
    "over,reference,expect",
    [
        ({}, False, None),
        ({"codec": "hevc"}, False, None),
        ({"codec": "mpeg4"}, False, "codec mpeg4 is not one of h264, hevc"),
        ({"needs_resample": True, "src_fps": 22.1}, False, "22.1 fps / variable frame rate"),
        ({"rotation": 90}, False, "rotated 90 degrees"),
        ({}, True, "reference JPEG round trip"),
    ],
)
def test_choose_decoder_rules(monkeypatch, over, reference, expect):
    _pretend_dali(monkeypatch)
    c = dali.choose_decoder("x.mp4", "auto", reference, info=_info(**over))
    if expect is None:
        assert c == dali.DecoderChoice("dali", "DALI 9.9 on fake GPU")
    else:
        assert c.decoder == "cpu" and expect in c.reason
        with pytest.raises(LipleakError, match="DALI decoder cannot be used"):
            dali.choose_decoder("x.mp4", "dali", reference, info=_info(**over))


def test_choose_decoder_explicit_cpu_and_unknown():
    assert dali.choose_decoder("x.mp4", "cpu").decoder == "cpu"
    with pytest.raises(LipleakError, match="unknown decoder 'nvdec'"):
        dali.choose_decoder("x.mp4", "nvdec")


def test_real_mpeg4_file_falls_back_for_codec(monkeypatch, tmp_path):
    _pretend_dali(monkeypatch)
    path = write_video(tmp_path / "m4.mp4", n=5, codec="mpeg4")
    c = dali.choose_decoder(path)
    assert c.decoder == "cpu" and "codec mpeg4" in c.reason
    assert len(list(dali.iter_frames(path))) == 5


def test_dali_failure_before_first_frame_falls_back(monkeypatch, h264):
    """A GPU decode that fails at once (e.g. an NVDEC-unsupported profile) hands over to
    the CPU decoder; one that fails midway is an InputError for that video."""
    _pretend_dali(monkeypatch)

    def broken(*a, **k):
        raise RuntimeError("[DALI] Decoder: unsupported chroma format\nmore")
        yield  # pragma: no cover

    monkeypatch.setattr(dali, "_iter_dali_frames", broken)
    assert dali.choose_decoder(h264).decoder == "dali"
    got = list(dali.iter_frames(h264))
    np.testing.assert_array_equal(np.stack(got), np.stack(list(cpu_video.iter_frames(h264))))
    with pytest.raises(InputError, match="GPU decode failed after 0 frames: .*unsupported chroma"):
        list(dali.iter_frames(h264, decoder="dali"))

    def midway(*a, **k):
        yield np.zeros((48, 64, 3), np.uint8)
        raise RuntimeError("NVDEC error")

    monkeypatch.setattr(dali, "_iter_dali_frames", midway)
    with pytest.raises(InputError, match="after 1 frames: NVDEC error"):
        list(dali.iter_frames(h264))


class FakeTensorGPU:
    """DALI 2.x's TensorGPU as iter_gpu_chunks uses it: ``shape()`` is a method."""

    def __init__(self, frames: np.ndarray):
        self._frames = frames

    def shape(self):
        return list(self._frames.shape)

    def as_cpu(self):
        return self._frames


class FakePipe:
    """A pipeline around fn.experimental.inputs.video: ``feed_input`` queues a file, each
    ``run`` gives its next sequence (the last one short), running dry is an error."""

    def __init__(self, key, frames_per_file=None):
        self.key, self.queue, self.fed = key, deque(), []
        self.frames_per_file = frames_per_file or {}

    def feed_input(self, name, batch):
        assert name == "video" and len(batch) == 1 and batch[0].dtype == np.uint8
        n = self.frames_per_file.get(batch[0].nbytes, 70)
        self.fed.append(batch[0].nbytes)
        seq = self.key[0]
        # frame i of this file is filled with the file's size + i, to see which file it is
        frames = [np.full((1, 2, 2, 3), (batch[0].nbytes + i) % 256, np.uint8) for i in range(n)]
        for s in range(0, n, seq):
            self.queue.append(np.concatenate(frames[s : s + seq])[None])

    def run(self):
        if not self.queue:
            raise RuntimeError("[DALI] no data for inputs.video")
        t = FakeTensorGPU(self.queue.popleft())

        class Out:
            def as_tensor(inner):
                return t

        return (Out(),)


@pytest.fixture
def pool(monkeypatch):
    """A fresh pipeline pool whose pipelines are FakePipes; ``pool.pipes`` lists them."""
    p = dali.PipelinePool()
    p.pipes = []

    def build(*key):
        pipe = FakePipe(key)
        p.pipes.append(pipe)
        return pipe

    monkeypatch.setattr(dali, "PIPELINES", p)
    monkeypatch.setattr(dali, "_build_pipeline", build)
    return p


def _file(tmp_path, name, nbytes):
    path = tmp_path / name
    path.write_bytes(b"x" * nbytes)
    return path


def test_dali_chunk_bookkeeping(pool, tmp_path):
    """Chunks in order; the last, short one says where the video ends."""
    f = _file(tmp_path, "a.mp4", 10)
    chunks = list(dali.iter_gpu_chunks(f, n_frames=70, sequence_length=32))
    assert [(c.n_valid, c.start) for c in chunks] == [(32, 0), (32, 32), (6, 64)]
    assert chunks[2].frames.shape() == [1, 6, 2, 2, 3]


def test_one_pipeline_serves_many_videos(pool, tmp_path):
    """One DALI pipeline was built per video; now one per parameters, reused."""
    a, b = _file(tmp_path, "a.mp4", 10), _file(tmp_path, "b.mp4", 20)
    for path in (a, b, a):
        frames = list(dali._iter_dali_frames(path, 70, 32, None, None, 0))
        assert len(frames) == 70
        size = path.stat().st_size
        assert [int(f[0, 0, 0]) for f in frames] == [(size + i) % 256 for i in range(70)]
    assert pool.built == 1 and pool.pipes[0].fed == [10, 20, 10]
    # other crop/size/sequence length: another pipeline
    list(dali.iter_gpu_chunks(a, 70, 32, crop=(0, 0, 2, 2)))
    list(dali.iter_gpu_chunks(a, 70, 16))
    assert pool.built == 3


def test_pipeline_is_not_shared_by_videos_decoded_at_once(pool, tmp_path):
    a, b = _file(tmp_path, "a.mp4", 10), _file(tmp_path, "b.mp4", 20)
    ga, gb = dali.iter_gpu_chunks(a, 70, 32), dali.iter_gpu_chunks(b, 70, 32)
    first_a, first_b = next(ga), next(gb)
    assert pool.built == 2 and pool.pipes[0] is not pool.pipes[1]
    assert int(first_a.frames.as_cpu()[0, 0, 0, 0, 0]) == 10
    assert int(first_b.frames.as_cpu()[0, 0, 0, 0, 0]) == 20
    list(ga), list(gb)
    list(dali.iter_gpu_chunks(a, 70, 32))
    assert pool.built == 2  # both went back to the pool


def test_unfinished_video_drops_its_pipeline(pool, tmp_path):
    """A consumer that stops early (the scorer stops with the audio) leaves frames of that
    video queued: the pipeline must not decode the next video after them."""
    a, b = _file(tmp_path, "a.mp4", 10), _file(tmp_path, "b.mp4", 20)
    gen = dali.iter_gpu_chunks(a, 70, 32)
    next(gen)
    gen.close()
    chunks = list(dali.iter_gpu_chunks(b, 70, 32))
    assert pool.built == 2 and int(chunks[0].frames.as_cpu()[0, 0, 0, 0, 0]) == 20


def test_frame_count_disagreement_is_an_error(pool, tmp_path):
    a = _file(tmp_path, "a.mp4", 10)
    with pytest.raises(RuntimeError, match="DALI gave 6 frames for sequence 2 of 3"):
        list(dali.iter_gpu_chunks(a, n_frames=72, sequence_length=32))
    list(dali.iter_gpu_chunks(a, 70, 32))
    assert pool.built == 2  # the pipeline that disagreed was not reused


def test_auto_falls_back_on_any_dali_error(monkeypatch, h264, caplog):
    """Not only RuntimeError: a DALI that cannot build the pipeline (TypeError,
    ImportError...) was an unhandled error for the video; with auto it falls back."""
    _pretend_dali(monkeypatch)
    for exc in (TypeError("inputs.video() got an unexpected keyword"), ImportError("libnvcuvid")):

        def broken(*a, exc=exc, **k):
            raise exc
            yield  # pragma: no cover

        monkeypatch.setattr(dali, "_iter_dali_frames", broken)
        reasons = []
        with caplog.at_level("WARNING", logger="lipleak.io.dali"):
            got = list(dali.iter_frames(h264, on_fallback=reasons.append))
        assert len(got) == 12 and reasons and type(exc).__name__ in reasons[0]
        assert "decoding on the CPU instead" in caplog.text
        with pytest.raises(InputError, match="GPU decode failed after 0 frames"):
            list(dali.iter_frames(h264, decoder="dali"))


# --------------------------------------------------------- the scorer's VideoFrames


def test_video_frames_auto_falls_back_and_says_cpu(monkeypatch, h264):
    """decoder="auto" in the scorer: a DALI failure was a per-video decode error (the
    frames asked DALI with decoder="dali"); now the CPU decodes it and the row says so."""
    from lipleak.sync import frames as sync_frames

    _pretend_dali(monkeypatch)
    monkeypatch.setattr(sync_frames, "probe_gpu", lambda: (object(), "fake GPU"))
    calls = []

    def broken(*a, **k):
        calls.append(a)
        raise RuntimeError("[DALI] Decoder: unsupported chroma format")
        yield  # pragma: no cover

    monkeypatch.setattr(dali, "_iter_dali_frames", broken)
    vf = sync_frames.VideoFrames.open(h264, "auto", False)
    assert vf.decoder == "dali"
    want = np.stack(list(cpu_video.iter_frames(h264)))
    np.testing.assert_array_equal(np.stack(list(vf.decode())), want)
    assert vf.decoder == "cpu" and "unsupported chroma" in vf.fallback
    # the second pass (detect mode) stays on the CPU: DALI is not tried again
    np.testing.assert_array_equal(np.stack(list(vf.decode())), want)
    assert len(calls) == 1

    strict = sync_frames.VideoFrames.open(h264, "dali", False)
    with pytest.raises(InputError, match="GPU decode failed after 0 frames"):
        list(strict.decode())


def test_video_frames_second_pass_does_not_switch_decoder(monkeypatch, h264):
    """A video whose first pass came from DALI fails on the second rather than mixing
    GPU-detected faces with CPU frames."""
    from lipleak.sync import frames as sync_frames

    _pretend_dali(monkeypatch)
    monkeypatch.setattr(sync_frames, "probe_gpu", lambda: (object(), "fake GPU"))
    passes = []

    def flaky(*a, **k):
        passes.append(1)
        if len(passes) > 1:
            raise RuntimeError("NVDEC lost")
        yield from cpu_video.iter_frames(h264)

    monkeypatch.setattr(dali, "_iter_dali_frames", flaky)
    vf = sync_frames.VideoFrames.open(h264, "auto", False)
    assert len(list(vf.decode())) == 12 and vf.decoder == "dali"
    with pytest.raises(InputError, match="GPU decode failed after 0 frames: NVDEC lost"):
        list(vf.decode())


# ------------------------------------------------------------- decoder in the hash


def test_decoder_defaults_to_cpu_and_is_hashed():
    from lipleak.cli import build_parser
    from lipleak.sync import SyncSettings

    default = SyncSettings()
    assert default.decoder == "cpu" and "decoder" not in default.hashed_dict()
    # stored hashes of CPU-decoded runs stay valid (test_io_ffmpeg_jpeg pins this one)
    assert default.hash() == "5120ee5e8c87c7b8"
    hashes = {d: SyncSettings(decoder=d).hash() for d in ("cpu", "dali", "auto")}
    assert len(set(hashes.values())) == 3
    assert SyncSettings(decoder="dali").hashed_dict()["decoder"] == "dali"
    args = build_parser().parse_args(["sync", "v.mp4"])
    assert args.decoder == "cpu"


# ------------------------------------------------------------------- prefetch


def test_prefetch_overlaps_and_is_bounded():
    started, lock = [], threading.Lock()
    item1_started = threading.Event()

    def load(i):
        with lock:
            started.append(i)
        if i == 1:
            item1_started.set()
        return i * 10

    consumed = []
    for p in dali.prefetch(range(6), load, depth=2):
        if p.item == 0:
            # While the consumer works on item 0, item 1 is being loaded already.
            assert item1_started.wait(5)
        time.sleep(0.02)
        with lock:
            # never more than depth items loaded ahead of the consumer
            assert len(started) <= len(consumed) + 1 + 2
        consumed.append(p.item)
        assert p.value == p.item * 10 and p.error is None
    assert consumed == list(range(6))


def test_prefetch_keeps_order_and_passes_errors():
    def load(i):
        time.sleep(0.05 if i % 2 == 0 else 0.0)  # later items finish first
        if i == 3:
            raise InputError(f"v{i}.mp4", "no video stream", "no_video_stream")
        return i

    out = list(dali.prefetch(range(6), load, depth=3, workers=3))
    assert [p.item for p in out] == list(range(6))
    assert [p.value for p in out] == [0, 1, 2, None, 4, 5]
    assert isinstance(out[3].error, InputError) and out[3].error.status == "no_video_stream"


def test_prefetch_stop_early_cancels_the_rest():
    calls = []

    def load(i):
        calls.append(i)
        time.sleep(0.01)
        return i

    gen = dali.prefetch(range(100), load, depth=2)
    assert next(gen).item == 0
    gen.close()
    time.sleep(0.1)
    assert len(calls) <= 4


def test_prefetch_frames_decodes_ahead(h264, tmp_path):
    bad = tmp_path / "nope.mp4"
    bad.write_bytes(b"not a video")
    out = list(dali.prefetch_frames([h264, bad, h264], size=(32, 24)))
    assert out[0].value.shape == (12, 24, 32, 3) and out[0].value.dtype == np.uint8
    assert isinstance(out[1].error, InputError) and out[1].error.status == "not_a_video"
    np.testing.assert_array_equal(out[0].value, out[2].value)


def test_prefetch_rejects_bad_depth():
    with pytest.raises(LipleakError, match="depth >= 1"):
        list(dali.prefetch([1], lambda x: x, depth=0))

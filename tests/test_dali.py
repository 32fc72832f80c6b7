"""GPU-decoder selection and its CPU fallback, crop/resize twin, and the prefetcher.

Runs everywhere: DALI is absent on CI, so the fallback is what is exercised for real;
the DALI path itself is tested in test_gpu.py on a GPU machine.
"""

from __future__ import annotations

import threading
import time
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


def test_dali_chunk_bookkeeping(monkeypatch):
    """The padded last chunk is trimmed to the video's frame count."""

    class FakePipe:
        def __init__(self):
            self.i = 0

        def epoch_size(self, name):
            assert name == "reader"
            return 3

        def run(self):
            self.i += 1

            class Out:
                def as_tensor(inner):
                    return f"chunk{self.i}"

            return (Out(),)

    monkeypatch.setattr(dali, "_build_pipeline", lambda *a, **k: FakePipe())
    chunks = list(dali.iter_gpu_chunks("x.mp4", n_frames=70, sequence_length=32))
    assert [(c.frames, c.n_valid, c.start) for c in chunks] == [
        ("chunk1", 32, 0),
        ("chunk2", 32, 32),
        ("chunk3", 6, 64),
    ]


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

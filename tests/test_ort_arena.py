"""onnxruntime's CPU sessions share one arena that grows by what is asked
(``runtime.onnxrt.shared_cpu_arena``): the default arena grows by powers of two and a
long run with batches of many sizes touched ever more of it (``bench/bench_ort_arena.py``).
Only where tensors live changes, not a number."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from conftest import SHARED_MODELS
from lipleak.runtime import open_model


def _entry(rt) -> str:
    return rt.session.get_session_options().get_session_config_entry("session.use_env_allocators")


def test_cpu_sessions_share_the_arena_and_give_the_same_bits():
    import onnxruntime as ort

    from lipleak.runtime.onnxrt import shared_cpu_arena

    path = SHARED_MODELS / "pfld_68.onnx"
    rt = open_model(path, "cpu")
    assert _entry(rt) == "1" and _entry(open_model(path, "cpu", concurrent=True)) == "1"
    assert shared_cpu_arena(ort) and shared_cpu_arena(ort)  # registered once, then reused
    # the same bits as a session with its own default arena
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = rt.threads
    own = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = own.get_inputs()[0].name
    x = np.random.default_rng(0).uniform(0, 1, (3, 3, 112, 112)).astype(np.float32)
    for n in (3, 1, 2):
        want = own.run(None, {name: x[:n]})
        got = rt.session.run(None, {name: x[:n]})
        assert all(np.array_equal(a, b) for a, b in zip(want, got, strict=True))


def test_an_arena_registered_before_ours_does_not_break_sessions():
    """Another library (or the user) registered a CPU allocator first (onnxruntime's docs
    say a second one is an error; 1.32 accepts it): the sessions still open and run."""
    code = f"""
import onnxruntime as ort
info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
ort.create_and_register_allocator(info, None)
from lipleak.runtime import open_model
from lipleak.runtime.onnxrt import shared_cpu_arena
rt = open_model({str(SHARED_MODELS / "pfld_68.onnx")!r}, "cpu")
import numpy as np
y = rt.run(dict([(rt.inputs[0].name, np.zeros((1, 3, 112, 112), np.float32))]))
print(shared_cpu_arena(ort) in (True, False), len(y) > 0)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]

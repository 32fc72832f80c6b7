"""The GPU check's one shot, rehearsed on the CPU (issue 25).

A lent GPU machine allows one run of ``bench/gpu_check.sh``: nothing may lose it. Here the
check's driver (``bench/gpu_check.py``: ``Check``, the same code the GPU run uses) runs on
tiny fake stages with each stage made to fail in turn (``--fail``), and the JSON it
leaves must hold every other stage's results and name the failure; the budget plan, the
steady-state rates and the GPU busy figure are checked for their arithmetic; and
``gpu_check.sh`` must install the carried project wheel when the build on the machine
fails (a stand-in ``python`` that fails the build).
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
gc = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("gpu_check", gc)  # dataclasses look their module up there
_spec.loader.exec_module(gc)

STAGES = [p.stage for p in gc.PLAN]
# what each --fail name makes fail (the setup steps that have a fallback)
SETUP_POINTS = {"setup.syncnet", "setup.long_clips", "setup.inception"}


class FakeStages(gc.Stages):
    """Every step of the check, tiny: setup makes names, the stages fill in numbers.
    Each stage first reads the JSON on disk: the stage before it must be saved there."""

    def __init__(self, args, tmp: Path, out_path: Path, boom: dict | None = None):
        super().__init__(args, tmp, tmp / "shared")
        self.out_path = out_path
        self.boom = boom or {}  # stage -> exception raised after filling some numbers
        self.calls: list[str] = []
        self.saved_before: dict[str, dict] = {}

    def _seen(self, name: str) -> None:
        self.calls.append(name)
        self.saved_before[name] = json.loads(self.out_path.read_text())["stages"]

    def environment(self):
        return {"device": "fake", "cuda_available": True}

    def models(self):
        return ["scrfd_500m", "pfld_68"]

    def clips(self):
        c = [Path("real03_aoc.mp4"), Path("real07_reagan.mp4")]
        return c, c

    def syncnet(self, sources):
        return self.tmp / "calibrated.model"

    def syncnet_fallback(self, sources):
        return self.tmp / "plain.model"

    def towers(self, ckpt):
        return None

    def long_clips(self, sources):
        return [self.tmp / f"{s.stem}_250f.mp4" for s in sources]

    def inception(self):
        return {"what": "fake Inception-v3", "path": "i.onnx"}

    def inception_fallback(self):
        return {"what": "fake stand-in", "path": "s.onnx"}

    def videos(self, long_clips):
        return [Path(f"{i:05d}.mp4") for i in range(8)]

    def _fill(self, name, out, **numbers):
        self._seen(name)
        out.update(fake=name, **numbers)
        if name in self.boom:
            raise self.boom[name]
        return out

    def agreement(self, out, ckpt, clips, box):
        rows = [
            {c.name: 1, "fp32": {"abs_d_lse_c": 1e-6, "abs_d_lse_d": 2e-6, "offset_equal": True}}
            for c in clips
        ]
        return self._fill("agreement", out, lse=rows, summary=gc.agreement_summary(rows))

    def lse_speed(self, out, ckpt, videos, precision, box):
        vpm = {"fp32": 1200.0, "fp16": 2500.0, "bf16": 3100.0}[precision]
        return self._fill(f"lse_{precision}", out, videos_per_min=vpm, lip_tower_busy_share=0.9)

    def all_metrics(self, out, ckpt, long_clips, inception, box):
        return self._fill("all_metrics", out, videos_per_min=520.0, inception=inception["what"])

    def cuda_graphs(self, out, ckpt, box):
        return self._fill("cuda_graphs", out, fp32={"speedup": 1.1})


def args_for(tmp: Path, fail: str = "", budget: float = 60.0, dry: bool = True):
    return SimpleNamespace(dry_run=dry, budget_s=budget, fail=fail, seconds=10, frames=250, out=tmp)


@pytest.fixture
def plan_in_tenths(monkeypatch):
    """The plan at a tenth of a second a stage (dry and GPU columns alike)."""
    monkeypatch.setattr(gc, "PLAN", tuple(gc.Planned(p.stage, 0.1, 0.01, 0.1) for p in gc.PLAN))


def rehearse(tmp_path: Path, fail: str = "", boom=None, budget: float = 60.0):
    out = tmp_path / "gpu_check_rehearsal.json"
    stages = FakeStages(args_for(tmp_path, fail, budget), tmp_path, out, boom)
    gc.Check(args_for(tmp_path, fail, budget), stages, out).run()
    return json.loads(out.read_text()), stages


def stage_result(r: dict, stage: str):
    if stage.startswith("lse_"):
        return r["lse_only"].get(stage[4:])
    return r.get(stage)


@pytest.mark.parametrize("fail", ["setup", *STAGES])
def test_each_stage_failing_leaves_every_other_result(tmp_path, plan_in_tenths, fail):
    r, stages = rehearse(tmp_path, fail)
    failed = {f["stage"] for f in r["failures"]}
    if fail == "setup":
        # each setup step that failed took its fallback; every stage still ran
        assert failed == SETUP_POINTS
        assert r["setup"]["fallbacks"] == {
            "syncnet": "taken",
            "long_clips": "taken",
            "inception": "taken",
        }
        assert "NOT calibrated" in r["setup"]["syncnet"]
        assert r["all_metrics"]["inception"] == "fake stand-in"
    else:
        assert failed == {fail}
        assert r["stages"][fail]["status"] == "failed"
        assert "injected" in stage_result(r, fail)["error"]
        assert r["verdicts"]["failed"] == [fail]
    for f in r["failures"]:
        assert "InjectedFailure" in f["error"] and "InjectedFailure" in f["traceback"]
    for stage in STAGES:
        if stage == fail:
            continue
        assert r["stages"][stage]["status"] == "ok", stage
        assert stage_result(r, stage)["fake"] == stage
    # they ran in the order of the plan (priority), each after the one before was saved
    assert stages.calls == [s for s in STAGES if s != fail]
    for k, stage in enumerate(stages.calls[1:], 1):
        assert stages.calls[k - 1] in stages.saved_before[stage]
    assert list(r["stages"]) == STAGES
    assert r["injected_failures"] == [fail]


def test_a_real_exception_keeps_what_the_stage_measured(tmp_path, plan_in_tenths):
    r, _ = rehearse(tmp_path, boom={"lse_fp32": ZeroDivisionError("videos / 0 s")})
    fp32 = r["lse_only"]["fp32"]
    assert fp32["videos_per_min"] == 1200.0  # filled in before it raised
    assert fp32["error"] == "ZeroDivisionError('videos / 0 s')"
    (f,) = r["failures"]
    assert f["stage"] == "lse_fp32" and "ZeroDivisionError" in f["traceback"]
    assert r["lse_only"]["fp16"]["fake"] == "lse_fp16"
    assert r["verdicts"]["lse_only_fp32_videos_per_min"] == [1200.0, True]


def test_setup_and_its_fallbacks_failing_still_writes_the_json(tmp_path, plan_in_tenths):
    r, stages = rehearse(tmp_path, fail="setup,fallback")
    assert r["environment"] == {"device": "fake", "cuda_available": True}
    assert {f["stage"] for f in r["failures"]} == SETUP_POINTS | {
        "fallback.syncnet",
        "fallback.long_clips",
        "fallback.inception",
    }
    assert stages.calls == []
    for stage in STAGES:
        assert r["stages"][stage]["status"] == "skipped"
        assert "the SyncNet checkpoint" in r["stages"][stage]["why"]
    assert len(r["skipped"]) == len(STAGES)
    assert r["verdicts"]["lse_fp32_within_1e-3_of_cpu"] is None


def test_a_setup_step_without_fallback_costs_only_what_needs_it(tmp_path, plan_in_tenths):
    r, _ = rehearse(tmp_path, fail="setup_videos")
    assert [f["stage"] for f in r["failures"]] == ["setup_videos"]
    status = {k: v["status"] for k, v in r["stages"].items()}
    assert status == {s: ("skipped" if s.startswith("lse_") else "ok") for s in STAGES}
    assert "needs videos" in r["stages"]["lse_fp32"]["why"]


def test_no_time_left_skips_the_lowest_priority_first(tmp_path, monkeypatch):
    """Each fake stage takes 0.3 s of a plan of 0.2 s: the budget runs out, and what goes
    is the end of the plan (bf16, then graphs), never agreement or fp32."""
    monkeypatch.setattr(gc, "PLAN", tuple(gc.Planned(p.stage, 0.2, 0.2, 0.2) for p in gc.PLAN))
    monkeypatch.setattr(gc, "RESERVE_S", 0.0)

    class Slow(FakeStages):
        def _fill(self, name, out, **numbers):
            time.sleep(0.3)
            return super()._fill(name, out, **numbers)

    out = tmp_path / "r.json"
    args = args_for(tmp_path, budget=1.05)
    gc.Check(args, Slow(args, tmp_path, out), out).run()
    r = json.loads(out.read_text())
    status = [r["stages"][s]["status"] for s in STAGES]
    assert status[:3] == ["ok", "ok", "ok"]
    assert status[-1] == "skipped" and "no time left" in r["stages"]["lse_bf16"]["why"]
    assert status == sorted(status, key=lambda s: s != "ok")  # no ok after a skip


def test_budget_boxes_follow_the_plan():
    """The GPU plan: spare time scales every remaining stage up alike; a shortfall is
    taken from the stages after the current one; under the floor a stage is skipped;
    the dry run is never scaled up."""
    plan = {p.stage: p for p in gc.PLAN}
    total = sum(p.seconds for p in gc.PLAN)
    b = gc.Budget(0)
    b.end = time.monotonic() + gc.RESERVE_S + 2 * total
    box, planned = b.box("agreement", set(), dry=False)
    assert planned == plan["agreement"].seconds
    assert box == pytest.approx(2 * planned, rel=1e-3)
    box, _ = b.box("agreement", set(), dry=True)
    assert box == plan["agreement"].dry  # not scaled
    b.end = time.monotonic() + gc.RESERVE_S + 100  # less than the plan: priority order
    assert b.box("agreement", set(), dry=False)[0] == plan["agreement"].seconds
    done = {"agreement"}
    assert b.box("lse_fp32", done, dry=False)[0] == pytest.approx(plan["lse_fp32"].seconds)
    b.end = time.monotonic() + gc.RESERVE_S + plan["lse_bf16"].floor / 2
    assert b.box("lse_bf16", set(STAGES) - {"lse_bf16"}, dry=False)[0] is None


def test_the_gpu_plan_fits_the_script_budget():
    """docs/gpu.md's plan: the stages plus what runs before them fit in the 480 s that
    gpu_check.sh has (its steps 1-4 and setup, as planned there)."""
    before = 10 + 45 + 5 + 30 + 10 + 40  # wheels, build, versions, pytest, start, setup
    kept_back = 10  # gpu_check.sh hands gpu_check.py what is left less 10 s
    assert before + sum(p.seconds for p in gc.PLAN) + gc.RESERVE_S + kept_back <= 480
    assert [p.stage for p in gc.PLAN][:3] == ["agreement", "lse_fp32", "all_metrics"]


# ------------------------------------------------------------------------ steady state


def test_steady_window_skips_start_up_and_drain():
    # 2 workers: the first two completions are start-up (t=10 after a slow warm-up), then
    # one video every second; jobs stop at t=20; the drain after it is slower
    done = [(10.0, 250), (10.5, 250)] + [(11.0 + k, 250) for k in range(10)] + [(25.0, 250)]
    w = gc.steady_window(done, workers=2, stop=20.0)
    assert w["t0"] == 10.5 and w["t1"] == 20.0  # the first completion after the stop
    assert w["videos"] == 10 and w["frames"] == 2500 and w["seconds"] == pytest.approx(9.5)
    assert gc.steady_window(done[:1], 2, 20.0) is None
    short = gc.steady_window([(1.0, 10), (2.0, 10)], workers=4, stop=9.0)
    assert short["videos"] == 1 and short["seconds"] == 1.0  # fewer than workers: from the first


# --------------------------------------------------------------------- the busy figure


class FakeGpu:
    """One CUDA stream in virtual time: work queues behind the work before it, an event
    completes when the stream reaches it (``time.perf_counter`` is the host clock)."""

    def __init__(self):
        self.free_at = 0.0
        self.lock = threading.Lock()

    def now(self):
        return time.perf_counter()

    def event(self):
        return SimpleNamespace(t=max(self.now(), self.free_at))

    def enqueue(self, start, seconds):
        """Work queued right behind the event ``start``: it runs from when the stream
        reaches that event."""
        self.free_at = start.t + seconds


class FakeRuntime:
    """What the shared lip tower's serving threads call on CUDA: the lock held only while
    a batch is queued (start event, work, end event), the wait for it outside. Its busy
    clock is the one TorchRuntime uses (lipleak.runtime.torch_backend.BusyClock)."""

    def __init__(self, gpu: FakeGpu, batch_s: float):
        from lipleak.runtime.torch_backend import BusyClock

        self.gpu, self.batch_s, self._busy, self.host_busy = gpu, batch_s, None, 0.0
        self.make_clock = BusyClock
        self.host_lock = threading.Lock()

    def start_busy_clock(self):
        self._busy = self.make_clock("fake-cuda")
        return self._busy

    def stop_busy_clock(self):
        clock, self._busy = self._busy, None
        return clock

    def run_batch(self):
        t0 = time.perf_counter()
        with self.gpu.lock:
            start = self.gpu.event()
            self.gpu.enqueue(start, self.batch_s)
            end = self.gpu.event()
        time.sleep(max(0.0, end.t - time.perf_counter()))  # the blocking event's wait
        if self._busy is not None:
            self._busy.add(end.t - start.t)
        with self.host_lock:  # what TowerStats.busy_s adds up, per thread
            self.host_busy += time.perf_counter() - t0


def test_busy_share_is_gpu_time_not_the_threads_summed():
    """Two serving threads over one stream: each thread's host interval covers the other's
    queued batch too, so their sum (the old figure) nears 2x the wall while the stream was
    busy about once; the events' figure is the stream's time, at most the wall."""
    rt = FakeRuntime(FakeGpu(), batch_s=0.02)
    clock = rt.start_busy_clock()
    t0 = time.perf_counter()

    def serve():
        for _ in range(10):
            rt.run_batch()

    threads = [threading.Thread(target=serve) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t1 = time.perf_counter()
    rt.stop_busy_clock()
    fig = gc.tower_busy(clock, (t0, t1), None)
    assert clock.calls == 20
    assert fig["gpu_busy_s"] == pytest.approx(20 * 0.02, rel=1e-6)
    assert 0.5 < fig["gpu_busy_share"] <= 1.0 and "warning" not in fig
    assert rt.host_busy / (t1 - t0) > 1.3  # the summed host figure overstates
    # the steady window counts the batches done inside it
    steady = {"t0": t0, "t1": t1, "seconds": t1 - t0}
    assert gc.tower_busy(clock, (t0, t1), steady)["gpu_busy_share_steady"] == pytest.approx(
        fig["gpu_busy_share"]
    )
    half = {"t0": t0, "t1": t0 + (t1 - t0) / 2, "seconds": (t1 - t0) / 2}
    assert gc.tower_busy(clock, (t0, t1), half)["gpu_busy_share_steady"] <= 1.0


def test_busy_share_above_one_is_flagged_not_clipped():
    from lipleak.runtime.torch_backend import BusyClock

    clock = BusyClock("fake")
    for k in range(3):
        clock.add(1.0, at=float(k + 1))
    fig = gc.tower_busy(clock, (0.0, 2.0), None)
    assert fig["gpu_busy_share"] == 1.5 and "overlap" in fig["warning"]
    assert clock.seconds_between(0.5, 2.0) == 2.0
    assert gc.tower_busy(None, (0.0, 1.0), None)["gpu_busy_share"] is None


# ------------------------------------------------------- gpu_check.sh: the carried wheel


STUB = """#!/usr/bin/env bash
# a stand-in for the GPU machine's python3: logs each call; the build fails when told
echo "$*" >> "$STUB_LOG"
case "$*" in
  "-m pip show"*) exit 1 ;;
  *"pip install"*" .")
    [ -n "${STUB_BUILD_FAILS:-}" ] && { echo "c++: not found"; exit 1; }
    touch "$STUB_DIR/built"; exit 0 ;;
  *"pip install"*"lipleak_fast"*".whl") touch "$STUB_DIR/wheel"; exit 0 ;;
  *"pip install"*) exit 0 ;;
  "-c import lipleak, lipleak._core")
    if [ -n "${STUB_IMPORT_FAILS:-}" ] && [ ! -e "$STUB_DIR/wheel" ]; then
      echo "ImportError: undefined symbol"; exit 1
    fi
    exit 0 ;;
esac
exit 0
"""


def run_install(tmp_path: Path, wheel: bool = True, **env):
    stub = tmp_path / "python3"
    stub.write_text(STUB)
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    carry = tmp_path / "carry"
    (carry / "wheels").mkdir(parents=True)
    (carry / "wheels" / "av-18.1.0-cp311-abi3-manylinux_2_28_x86_64.whl").write_bytes(b"")
    (carry / "project").mkdir()
    if wheel:
        (carry / "project" / "lipleak_fast-0.1.0-cp312-cp312-linux_x86_64.whl").write_bytes(b"")
    out = tmp_path / "out"
    e = {
        **os.environ,
        "PYTHON": str(stub),
        "LIPLEAK_GPU_CARRY": str(carry),
        "OUT": str(out),
        "STUB_LOG": str(tmp_path / "calls.txt"),
        "STUB_DIR": str(tmp_path),
        **env,
    }
    p = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), "--install-only"],
        env=e,
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    log = (out / "gpu_check_log.txt").read_text()
    return p, calls, log


def test_a_failed_build_installs_the_carried_wheel(tmp_path):
    p, calls, log = run_install(tmp_path, STUB_BUILD_FAILS="1")
    assert p.returncode == 0, log
    assert "project build failed; installing the carried wheel" in log
    assert "lipleak-fast: carried wheel lipleak_fast-0.1.0-cp312" in log
    build = next(i for i, c in enumerate(calls) if c.endswith(" ."))
    wheel = next(i for i, c in enumerate(calls) if "lipleak_fast-0.1.0-cp312" in c)
    assert build < wheel and "--no-index" in calls[wheel] and "--force-reinstall" in calls[wheel]
    assert "av-18.1.0" in next(c for c in calls if "av-18.1.0" in c)  # missing: installed
    assert "done (--install-only)" in log


def test_a_build_that_does_not_import_installs_the_carried_wheel(tmp_path):
    p, _, log = run_install(tmp_path, STUB_IMPORT_FAILS="1")
    assert p.returncode == 0, log
    assert "the build does not import: ImportError: undefined symbol" in log
    assert (tmp_path / "built").exists() and (tmp_path / "wheel").exists()


def test_a_build_that_works_keeps_the_build(tmp_path):
    p, calls, log = run_install(tmp_path)
    assert p.returncode == 0, log
    assert "lipleak-fast: built on the machine" in log
    assert not any("lipleak_fast" in c for c in calls)


def test_no_build_and_no_wheel_stops_saying_so(tmp_path):
    p, _, log = run_install(tmp_path, wheel=False, STUB_BUILD_FAILS="1")
    assert p.returncode == 2
    assert "no carried project wheel: nothing to measure with" in log

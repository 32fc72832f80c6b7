"""``lipleak-fast doctor``: every component with a status and a reason, --json, and what
auto picks — on this machine for real, and on a faked GPU machine."""

from __future__ import annotations

import json

import pytest

from lipleak import cli
from lipleak.commands import doctor
from lipleak.io import dali
from lipleak.runtime import probe

COMPONENTS = [
    "python",
    "lipleak-fast",
    "numpy",
    "opencv",
    "av (PyAV)",
    "onnxruntime",
    "torch (export, torch backend)",
    "onnx (export, torch backend)",
    "onnx2torch (torch backend)",
    "nvidia driver",
    "cuda runtime",
    "cuda-python",
    "tensorrt",
    "dali",
]


def run_cli(capsys, *argv):
    rc = cli.main(["doctor", *argv])
    return rc, capsys.readouterr().out


def test_json_on_this_machine(capsys):
    """No GPU (CI has none; conftest hides a real one from tests not marked gpu): doctor
    must say so, with reasons, and pick the CPU backend. TensorRT may still be installed."""
    rc, out = run_cli(capsys, "--json")
    rep = json.loads(out)
    names = [c["name"] for c in rep["components"]]
    for n in COMPONENTS + ["gpu"]:
        assert n in names, n
    by = {c["name"]: c for c in rep["components"]}
    for n in ("gpu", "dali"):
        assert by[n]["ok"] is False and by[n]["detail"], n
    assert by["tensorrt"]["ok"] is (probe.probe_tensorrt()[0] is not None)
    assert "no CUDA GPU" in by["gpu"]["detail"]
    assert by["onnxruntime"]["ok"] and "CPUExecutionProvider" in by["onnxruntime"]["detail"]
    assert set(rep["backends"]) == {"tensorrt", "ort-cuda", "ort-tensorrt", "torch", "cpu"}
    assert rep["backends"]["cpu"]["ok"] is True
    for b in ("tensorrt", "ort-cuda", "ort-tensorrt"):
        assert rep["backends"][b]["ok"] is False and rep["backends"][b]["detail"], b
    assert rep["auto"]["backend"] == "cpu" and "tensorrt:" in rep["auto"]["detail"]
    assert rc == 0


def test_text_on_this_machine(capsys):
    rc, out = run_cli(capsys)
    lines = out.splitlines()
    for n in COMPONENTS:
        row = [ln for ln in lines if ln.startswith(n + " ")]
        assert row, n
    gpu_row = next(ln for ln in lines if ln.startswith("gpu "))
    assert "absent" in gpu_row and "no CUDA GPU" in gpu_row
    assert any(ln.startswith("auto -> cpu: ") for ln in lines)
    assert rc == 0


@pytest.fixture(autouse=True)
def fresh_probes():
    """Tests here fake different hardware: no probe answer may leak between them."""
    probe.clear_cache()
    yield
    probe.clear_cache()


GPU = probe.GpuInfo(0, "NVIDIA H100 80GB HBM3", "9.0", 81559, "550.54.15", "12.4", "cuda-python")


def test_faked_gpu_machine(monkeypatch, capsys):
    monkeypatch.setattr(probe, "probe_gpus", lambda: ([GPU], ""))
    monkeypatch.setattr(probe, "probe_gpu", lambda index=0: (GPU, ""))
    monkeypatch.setattr(probe, "probe_tensorrt", lambda: ("10.9.0.34", ""))
    monkeypatch.setattr(probe, "probe_cuda_python", lambda: ("12.8.0", ""))
    monkeypatch.setattr(
        probe,
        "probe_torch",
        lambda: (probe.TorchInfo("2.13.0", "1.5.15", "NVIDIA H100 80GB HBM3"), ""),
    )
    monkeypatch.setattr(
        probe,
        "probe_ort",
        lambda: (
            ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
            "",
            "1.22",
        ),
    )
    monkeypatch.setattr(
        dali, "dali_available", lambda gpu, why: (False, "nvidia-dali not installed (fake)")
    )
    rc, out = run_cli(capsys, "--json")
    rep = json.loads(out)
    by = {c["name"]: c for c in rep["components"]}
    assert by["gpu 0"]["ok"] and "H100" in by["gpu 0"]["detail"] and "9.0" in by["gpu 0"]["detail"]
    assert by["nvidia driver"]["version"] == "550.54.15"
    assert by["cuda runtime"]["version"] == "12.4"
    assert by["tensorrt"] == {
        "name": "tensorrt",
        "ok": True,
        "version": "10.9.0.34",
        "detail": "",
        "required": False,
    }
    assert by["dali"]["ok"] is False and "fake" in by["dali"]["detail"]
    assert all(b["ok"] for b in rep["backends"].values())
    assert rep["auto"]["backend"] == "tensorrt"
    assert rc == 0


def test_no_backend_exits_nonzero(monkeypatch, capsys):
    monkeypatch.setattr(
        probe, "probe_ort", lambda: (None, "onnxruntime not importable (fake)", None)
    )
    rc, out = run_cli(capsys)
    assert rc == 1
    assert "onnxruntime            MISSING" in out
    assert "auto -> nothing: no backend can run models here" in out


@pytest.mark.parametrize("argv", [["doctor", "--bogus"]])
def test_bad_flag_is_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_collect_is_plain_data():
    rep = doctor.collect()
    assert json.loads(json.dumps(rep)) == rep

"""facecolor-export: help, refusals with exit code 1, and the run without TensorRT."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from export_testkit import TINY

from facecolor.checkpoint import CheckpointError, save_checkpoint
from facecolor.export.cli import main
from facecolor.errors import Unavailable
from facecolor.export.files import read_sidecar
from facecolor.export.onnx import export_onnx
from facecolor.models import build_generator


def _invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_help_explains_and_ends_with_an_example():
    result = _invoke("--help")
    assert result.exit_code == 0
    assert "--engine" in result.output and "--max-batch" in result.output and "--no-check" in result.output
    assert result.output.rstrip().splitlines()[-1].strip().startswith("facecolor-export ")


def test_mounted_on_the_facecolor_group_and_as_a_module():
    from facecolor.cli import main as group

    result = CliRunner().invoke(group, ["export", "--help"])
    assert result.exit_code == 0 and "CHECKPOINT" in result.output
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    module = subprocess.run(
        [sys.executable, "-m", "facecolor.export", "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert module.returncode == 0 and "facecolor-export" in module.stdout


@pytest.mark.parametrize("damage", ["truncated", "random-bytes"])
def test_corrupted_checkpoint_is_refused_with_exit_1(damage, checkpoint, tmp_path):
    bad = tmp_path / "bad.safetensors"
    if damage == "truncated":
        data = checkpoint("pug").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    else:
        bad.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError):
        export_onnx(bad, tmp_path / "x.onnx")
    result = _invoke(bad, "--onnx", tmp_path / "bad.onnx")
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "checkpoint" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors"]


def test_checkpoint_of_another_preset_is_refused_with_exit_1(tmp_path):
    # pug's weights under gpsagd's model config: a file that reads fine but cannot be loaded.
    pug = build_generator("pug", **TINY)
    mismatched = save_checkpoint(tmp_path / "mismatched.safetensors", pug, build_generator("gpsagd", **TINY).config)
    with pytest.raises(CheckpointError, match="do not match"):
        export_onnx(mismatched, tmp_path / "x.onnx")
    result = _invoke(mismatched, "--onnx", tmp_path / "m.onnx")
    assert result.exit_code == 1
    assert "Error: " in result.output and "gpsagd" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mismatched.safetensors"]


def test_usage_errors_exit_2(checkpoint, tmp_path):
    assert _invoke(tmp_path / "missing.safetensors").exit_code == 2
    assert _invoke(checkpoint("pug"), "--max-batch", "1").exit_code == 2
    same = tmp_path / "same.onnx"
    assert _invoke(checkpoint("pug"), "--onnx", same, "--fp16-onnx", same).exit_code == 2
    assert _invoke(checkpoint("pug"), "--engine", tmp_path / "x.engine").exit_code == 2
    assert _invoke(checkpoint("pug"), "--opt-batch", "8").exit_code == 2  # without --engine


def test_without_tensorrt_onnx_files_are_written_and_engine_step_exits_1(cli_without_tensorrt):
    result, out = cli_without_tensorrt
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "pip install facecolor[tensorrt]" in result.output and "'tensorrt'" in result.output
    assert f"saved {out / 'pug.onnx'}" in result.output and f"saved {out / 'pug.fp16.onnx'}" in result.output
    assert " MB, " in result.output or " kB, " in result.output
    assert "max |Δab|" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["pug.fp16.onnx", "pug.fp16.onnx.json", "pug.onnx", "pug.onnx.json"]
    assert read_sidecar(out / "pug.fp16.onnx")["check"]["passed"] is True
    assert read_sidecar(out / "pug.onnx")["batch"]["max"] == 16


def test_library_raises_typed_error_without_tensorrt(gpsagd_fp16, monkeypatch, tmp_path):
    from facecolor.export.tensorrt import build_engine, current_machine

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(Unavailable, match=r"pip install facecolor\[tensorrt\]"):
        current_machine()
    with pytest.raises(Unavailable, match="tensorrt"):
        build_engine(gpsagd_fp16, tmp_path / "m.plan", max_batch=4)
    assert list(tmp_path.iterdir()) == []

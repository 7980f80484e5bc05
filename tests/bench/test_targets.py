"""Backend names, default targets, the reference, precisions; unavailable backends say why."""

from __future__ import annotations

import json
import shutil

import click
import pytest

from facecolor.bench import BenchError, targets
from facecolor.bench.cli import _compare
from facecolor.errors import Unavailable
from facecolor.runtime.backends import select


def test_compare_keeps_order_and_lists_valid_names():
    assert _compare(None, None, "ort-cpu, torch-fp32,ort-cpu") == ("ort-cpu", "torch-fp32")
    with pytest.raises(click.BadParameter, match="torch-fp32, torch-fp16, ort-cpu, ort-cuda, trt"):
        _compare(None, None, "onnx")


def test_default_targets_follow_the_engine_kind(tmp_path):
    assert targets.default_targets(tmp_path / "m.plan", "cuda") == ["trt"]
    assert targets.default_targets(tmp_path / "m.onnx", "cpu") == ["ort-cpu"]
    assert targets.default_targets(tmp_path / "m.onnx", "cuda") == ["ort-cuda"]
    assert targets.default_targets(tmp_path / "m.safetensors", "cuda") == ["torch-fp32", "torch-fp16"]
    assert targets.default_targets(tmp_path / "m.safetensors", "cpu") == ["torch-fp32"]
    with pytest.raises(BenchError, match=".plan, an .onnx or a .safetensors"):
        targets.check_engine(tmp_path / "m.pt")


def test_reference_from_sidecar_flag_or_engine(tiny):
    found = targets.resolve_reference(tiny["onnx"], None)
    assert (found.path, found.how, found.warning) == (tiny["checkpoint"], "engine sidecar", "")
    assert targets.resolve_reference(tiny["perturbed"], tiny["checkpoint"]).how == "--reference"
    assert targets.resolve_reference(tiny["checkpoint"], None).how == "the engine itself"


def test_changed_checkpoint_is_flagged(tiny, tmp_path):
    onnx = shutil.copy(tiny["onnx"], tmp_path / "m.onnx")
    checkpoint = shutil.copy(tiny["checkpoint"], tmp_path / "m.safetensors")
    (tmp_path / "m.onnx.json").write_text(json.dumps(
        {"source_checkpoint": {"path": "m.safetensors", "sha256": "0" * 64}}))  # relative path
    found = targets.resolve_reference(onnx, None)
    assert found.path.resolve() == checkpoint.resolve()
    assert "changed since m.onnx was exported" in found.warning


def test_no_reference_anywhere(tiny, tmp_path, monkeypatch):
    import facecolor.runtime.backends as backends

    def no_shipped():
        raise backends.ModelNotFound("no shipped model: pass --model or run make train")

    monkeypatch.setattr(targets, "shipped_model", no_shipped)  # what the bench looks up
    lone = shutil.copy(tiny["onnx"], tmp_path / "lone.onnx")
    with pytest.raises(BenchError, match="pass --reference CHECKPOINT"):
        targets.resolve_reference(lone, None)


def test_precision_from_sidecar_or_weights(tiny, tmp_path):
    assert select.precision_of(tiny["onnx"]) == "fp32"
    lone = shutil.copy(tiny["perturbed"], tmp_path / "lone.onnx")
    assert select.precision_of(lone) == "fp32"  # no sidecar: float32 initializers


@pytest.mark.skipif(select.cuda_available(), reason="checks the reasons given without a GPU")
@pytest.mark.parametrize("name, says", [
    ("trt", "no CUDA device"), ("ort-cuda", "no CUDA device"), ("torch-fp16", "no CUDA device"),
])
def test_gpu_targets_are_unavailable_without_a_gpu(tiny, name, says):
    with pytest.raises(Unavailable, match=says):
        targets.open_target(name, tiny["onnx"], tiny["checkpoint"], "cpu", 4)


def test_ort_cpu_opens_the_runtime_backend(tiny):
    backend, artifact, precision = targets.open_target("ort-cpu", tiny["onnx"], tiny["checkpoint"], "cpu", 4)
    try:
        assert backend.name == "onnxruntime-cpu" and precision == "fp32" and artifact == tiny["onnx"]
        assert backend.render_size == 64
    finally:
        backend.close()

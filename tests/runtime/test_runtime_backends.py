"""The CPU backends and the choice between backends (what runs, and the reason it gives)."""

from __future__ import annotations

import numpy as np
import pytest

from facecolor.runtime.backends import ModelNotFound, Unavailable, open_backend
from facecolor.runtime.backends import select as select_module
from facecolor.runtime.backends.base import Backend
from facecolor.runtime.backends.onnxruntime import OnnxRuntimeBackend
from facecolor.runtime.backends.torch_backend import TorchBackend

BATCH = np.random.default_rng(0).uniform(-1, 1, (3, 1, 64, 64)).astype(np.float32)


def check_contract(backend, batch=BATCH):
    assert isinstance(backend, Backend)
    ab = backend.predict_ab(batch)
    assert isinstance(ab, np.ndarray) and ab.dtype == np.float32 and ab.shape == (len(batch), 2, 64, 64)
    assert np.abs(ab).max() <= 1.0
    return ab


def test_onnxruntime_and_torch_agree(tiny_onnx, tiny_checkpoint):
    with OnnxRuntimeBackend(tiny_onnx) as ort_backend, TorchBackend(tiny_checkpoint) as torch_backend:
        assert (ort_backend.name, torch_backend.name) == ("onnxruntime-cpu", "torch-cpu")
        assert ort_backend.render_size == torch_backend.render_size == 64
        assert ort_backend.model.preset == torch_backend.model.preset == "pug"
        np.testing.assert_allclose(check_contract(ort_backend), check_contract(torch_backend), atol=1e-4)
        check_contract(ort_backend, BATCH[:1])  # any batch size


def test_onnx_fixed_size_refuses_another_render_size(tiny_onnx):
    with pytest.raises(Unavailable, match="takes 64x64 renders, not 128"):
        OnnxRuntimeBackend(tiny_onnx, render_size=128)


def test_auto_on_cpu_is_onnxruntime_with_reason(tiny_checkpoint, tiny_onnx):
    backend, reason = open_backend(tiny_checkpoint, "auto", batch_size=4)
    with backend:
        assert backend.name == "onnxruntime-cpu"
        assert reason.startswith("backend: onnxruntime-cpu on CPU (")
        assert "no CUDA device" in reason
        assert backend.model.preset == "pug"  # the checkpoint's identity, not the cached ONNX's
        check_contract(backend)


def test_onnx_model_file_and_device_cpu(tiny_onnx):
    backend, reason = open_backend(tiny_onnx, "cpu", batch_size=4)
    with backend:
        assert backend.name == "onnxruntime-cpu" and "--device cpu" in reason
        assert backend.model.preset == "pug"  # from the ONNX metadata facecolor-export writes


def test_other_render_size_selects_torch(tiny_checkpoint):
    backend, reason = open_backend(tiny_checkpoint, "cpu", batch_size=2, render_size=128)
    with backend:
        assert backend.name == "torch-cpu" and backend.render_size == 128
        assert "--render-size 128 differs from the model's 64" in reason
        assert backend.predict_ab(np.zeros((1, 1, 128, 128), np.float32)).shape == (1, 2, 128, 128)


def test_export_failure_falls_back_to_torch_and_says_so(tiny_checkpoint, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(select_module, "cached_onnx", broken)  # the export cache, as select calls it
    backend, reason = open_backend(tiny_checkpoint, "cpu", batch_size=2)
    with backend:
        assert backend.name == "torch-cpu"
        assert "ONNX export failed (RuntimeError: exporter exploded)" in reason


def test_plan_needs_cuda(tmp_path):
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"engine")
    with pytest.raises(Unavailable, match="a .plan runs only with TensorRT"):
        open_backend(plan, "auto", batch_size=4)


def test_device_cuda_without_cuda_is_refused(tiny_onnx):
    with pytest.raises(Unavailable, match="--device cuda"):
        open_backend(tiny_onnx, "cuda", batch_size=4)


def test_missing_and_unknown_models(tmp_path, monkeypatch):
    with pytest.raises(ModelNotFound, match="model not found"):
        open_backend(tmp_path / "nope.onnx", batch_size=4)
    weird = tmp_path / "model.pt"
    weird.write_bytes(b"pickle")
    with pytest.raises(ModelNotFound, match=".safetensors checkpoint, an .onnx or a .plan"):
        open_backend(weird, batch_size=4)
    monkeypatch.setattr(select_module, "SHIPPED_MODEL", "missing-model.safetensors")
    with pytest.raises(ModelNotFound, match="no shipped model: pass --model or run make train"):
        open_backend(None, batch_size=4)


def test_torch_precision_is_fp32_on_cpu_and_fp16_is_refused_there(tiny_checkpoint):
    with TorchBackend(tiny_checkpoint) as backend:
        assert backend.precision == "fp32" and backend.name == "torch-cpu"
    with pytest.raises(Unavailable, match="CUDA only"):
        TorchBackend(tiny_checkpoint, precision="fp16")
    with pytest.raises(Unavailable, match="fp16 or fp32"):
        TorchBackend(tiny_checkpoint, precision="int8")

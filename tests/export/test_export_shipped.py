"""The shipped model itself through the fp16 export: what `make export` and TensorRT start from."""

from __future__ import annotations

import pytest

from facecolor.export.check import TOLERANCES
from facecolor.export.files import read_sidecar
from facecolor.export.onnx import export_onnx
from facecolor.runtime.backends import shipped_model


@pytest.mark.slow
def test_shipped_model_exports_to_a_checked_fp16_onnx(tmp_path):
    """Trained weights, not a tiny random model: they once failed the check on noise input."""
    fp32 = export_onnx(shipped_model(), tmp_path / "shipped.onnx", max_batch=8)
    fp16 = export_onnx(shipped_model(), tmp_path / "shipped.fp16.onnx", fp16=True, max_batch=8, fp32_onnx=fp32)
    check = read_sidecar(fp16)["check"]
    assert check["passed"] is True
    by_name = {c["name"]: c for c in check["comparisons"]}
    tolerance = TOLERANCES["fp16"]
    # Image-like input: far inside the image tolerance (psag, whose encoder the exporter scales
    # into fp16's range: 0.019 on ONNX Runtime CPU; 0.8 without the scaling).
    assert by_name["synthetic-portrait"]["max_ab"] < tolerance.max_ab / 10
    assert by_name["synthetic-portrait"]["mean_ab"] <= tolerance.mean_ab
    assert all(c["mean_ab"] <= tolerance.noise_mean_ab for c in check["comparisons"])

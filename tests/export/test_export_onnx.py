"""ONNX export: one file, dynamic batch, opset <= 20, L -> ab, checked against PyTorch."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from export_testkit import PRESETS, TINY

from facecolor.checkpoint import load_generator
from facecolor.color import AB_SCALE, COLOR_CONVENTION
from facecolor.export import check as check_module
from facecolor.export.check import TOLERANCES, Tolerance, check_onnx, compare, image_inputs, synthetic_portraits
from facecolor.export.errors import ExportCheckError, ExportError
from facecolor.export.files import read_sidecar, sha256_file
from facecolor.export.onnx import OPSET, export_onnx, fp16_path


def _run_both(onnx_path, checkpoint_path, batch: int, seed: int):
    """ONNX Runtime and PyTorch on the same fresh random L/50-1 batch (not the export's own)."""
    generator, _ = load_generator(checkpoint_path)
    x = torch.rand(batch, 1, TINY["render_size"], TINY["render_size"], generator=torch.Generator().manual_seed(seed)) * 2 - 1
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (onnx_ab,) = session.run(None, {"L": x.numpy()})
    with torch.no_grad():
        torch_ab = generator(x).numpy()
    return onnx_ab, torch_ab


@pytest.mark.parametrize("preset", PRESETS)
def test_fp32_export_is_one_checked_file_with_dynamic_batch(preset, exported, checkpoint):
    path = exported(preset)
    written = {p.name for p in path.parent.iterdir()}
    assert {f"{preset}.onnx", f"{preset}.onnx.json"} <= written
    assert written <= {f"{preset}.onnx", f"{preset}.onnx.json", f"{preset}.fp16.onnx", f"{preset}.fp16.onnx.json"}

    model = onnx.load(str(path))
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    opset = {o.domain: o.version for o in model.opset_import}
    assert opset.get("", opset.get("ai.onnx")) <= OPSET
    assert [i.name for i in model.graph.input] == ["L"]
    assert [o.name for o in model.graph.output] == ["ab"]
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, 64, 64]
    props = {p.key: p.value for p in model.metadata_props}
    assert props["facecolor.preset"] == preset
    assert props["facecolor.color_convention"] == COLOR_CONVENTION
    assert props["facecolor.source_sha256"] == sha256_file(checkpoint(preset))

    # Batch 1 and batch 7 from the same file, on inputs the export's own check never saw.
    for batch, seed in ((1, 11), (7, 12)):
        onnx_ab, torch_ab = _run_both(path, checkpoint(preset), batch, seed)
        assert onnx_ab.shape == (batch, 2, 64, 64)
        assert np.abs(onnx_ab - torch_ab).max() <= 1e-4


@pytest.mark.parametrize("preset", PRESETS)
def test_fp32_sidecar_describes_the_file(preset, exported, checkpoint):
    path = exported(preset)
    document = json.loads(path.with_name(path.name + ".json").read_text())
    assert document["precision"] == "fp32"
    assert document["opset"] <= 20
    assert document["sha256"] == sha256_file(path)
    assert document["size_bytes"] == path.stat().st_size
    assert document["source_checkpoint"]["sha256"] == sha256_file(checkpoint(preset))
    assert document["model_config"]["preset"] == preset
    assert document["color_convention"] == COLOR_CONVENTION
    assert document["inputs"] == [
        {"name": "L", "dtype": "float32", "shape": ["batch", 1, 64, 64], "meaning": "CIE L* / 50 - 1, in [-1, 1]"}
    ]
    assert document["outputs"][0]["name"] == "ab" and document["outputs"][0]["dtype"] == "float32"
    assert document["batch"] == {"min": 1, "max": 16, "traced_with": 2}
    check = document["check"]
    assert check["passed"] is True
    assert {c["name"] for c in check["comparisons"]} >= {"random-b1", "random-b7", "synthetic-portrait"}
    assert {c["batch"] for c in check["comparisons"]} >= {1, 7}
    assert check["max_abs_diff_ab_cielab"] <= 1e-4 * AB_SCALE
    assert document["torch_version"] == torch.__version__


def test_fp16_export_within_tolerance_with_fp32_io_and_attention(gpsagd_fp16, checkpoint):
    model = onnx.load(str(gpsagd_fp16))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    for value in (*model.graph.input, *model.graph.output):
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # The attention's MatMul and Softmax compute in fp32.
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.input)}
    attention = [n for n in inferred.graph.node if n.op_type in ("MatMul", "Softmax")]
    assert attention, "gpsagd has self-attention"
    for node in attention:
        assert all(types.get(name) == onnx.TensorProto.FLOAT for name in node.input), node.name

    document = read_sidecar(gpsagd_fp16)
    assert document["precision"] == "fp16"
    assert document["inputs"][0]["dtype"] == "float32" and document["outputs"][0]["dtype"] == "float32"
    assert {"MatMul", "Softmax"} <= set(document["fp16_conversion"]["ops_kept_fp32"])
    assert document["check"]["passed"] is True

    tolerance = TOLERANCES["fp16"]
    for batch, seed in ((1, 21), (7, 22)):  # random noise: its own max, the common mean
        onnx_ab, torch_ab = _run_both(gpsagd_fp16, checkpoint("gpsagd"), batch, seed)
        diff = np.abs(onnx_ab - torch_ab) * AB_SCALE
        assert diff.max() <= tolerance.noise_max_ab and diff.mean() <= tolerance.mean_ab


def test_failing_check_writes_nothing_and_says_by_how_much(checkpoint, exported, tmp_path, monkeypatch):
    monkeypatch.setitem(check_module.TOLERANCES, "fp16", Tolerance(max_ab=0.0, mean_ab=0.0, noise_max_ab=0.0))
    out = tmp_path / "strict.fp16.onnx"
    with pytest.raises(ExportCheckError) as caught:
        export_onnx(checkpoint("gpsagd"), out, fp16=True, max_batch=16, fp32_onnx=exported("gpsagd"))
    message = str(caught.value)
    assert "missed by" in message and "not written" in message and "random-b7" in message
    assert caught.value.report is not None and not caught.value.report.passed
    assert list(tmp_path.iterdir()) == []  # no file, no sidecar, no temporary left behind


@pytest.mark.parametrize("strict", ["noise", "image"])
def test_noise_and_image_inputs_are_held_to_their_own_max(checkpoint, exported, tmp_path, monkeypatch, strict):
    """A miss on one kind of input names that kind's tolerance and only its inputs."""
    loose, tight = 100.0, 0.0
    tolerance = Tolerance(max_ab=tight if strict == "image" else loose, mean_ab=loose,
                          noise_max_ab=tight if strict == "noise" else loose)
    monkeypatch.setitem(check_module.TOLERANCES, "fp16", tolerance)
    with pytest.raises(ExportCheckError) as caught:
        export_onnx(checkpoint("gpsagd"), tmp_path / "x.fp16.onnx", fp16=True, max_batch=16,
                    fp32_onnx=exported("gpsagd"))
    missed = {c.name for c in caught.value.report.misses()}
    assert missed == ({"random-b1", "random-b7"} if strict == "noise" else {"synthetic-portrait"})
    assert f"tolerance for {'noise' if strict == 'noise' else 'image-like'} inputs 0" in str(caught.value)


def test_fp16_refuses_an_fp32_export_of_another_checkpoint(checkpoint, exported, tmp_path):
    with pytest.raises(ExportError, match="another checkpoint"):
        export_onnx(checkpoint("pug"), tmp_path / "x.fp16.onnx", fp16=True, max_batch=16, fp32_onnx=exported("gpsagd"))
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_refused_before_any_work(checkpoint, tmp_path):
    with pytest.raises(ExportError, match="max_batch"):
        export_onnx(checkpoint("pug"), tmp_path / "x.onnx", max_batch=1)
    with pytest.raises(ExportError, match=".onnx"):
        export_onnx(checkpoint("pug"), tmp_path / "x.bin")
    with pytest.raises(ExportError, match="fp16=True"):
        export_onnx(checkpoint("pug"), tmp_path / "x.onnx", fp32_onnx=tmp_path / "y.onnx")


def test_compare_reports_cielab_units_and_psnr():
    reference = np.zeros((2, 2, 4, 4), np.float32)
    candidate = reference.copy()
    candidate[0, 0, 0, 0] = 0.01  # 1.1 CIELAB units on one value
    result = compare("x", reference, candidate)
    assert result.max_ab == pytest.approx(1.1)
    assert result.mean_ab == pytest.approx(1.1 / 64)
    assert result.psnr_db == pytest.approx(10 * math.log10(4 / (0.01**2 / 64)))
    assert compare("same", reference, reference).psnr_db == math.inf
    assert compare("nan", reference, np.full_like(reference, np.nan)).max_ab == math.inf


def test_synthetic_portraits_are_smooth_valid_l():
    portraits = synthetic_portraits(64)
    assert portraits.shape == (2, 1, 64, 64) and portraits.dtype == torch.float32
    assert portraits.min() >= -1 and portraits.max() <= 1
    assert not torch.equal(portraits[0], portraits[1])


def test_fp16_path_naming(tmp_path):
    assert fp16_path(tmp_path / "gpsagd.onnx") == tmp_path / "gpsagd.fp16.onnx"


def test_real_images_join_the_check(exported, checkpoint, tmp_path):
    import cv2

    gray = np.tile(np.linspace(0, 255, 90, dtype=np.uint8), (60, 1))  # landscape 8-bit gray
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    color = np.zeros((120, 80, 3), np.uint8)  # portrait-shaped color (sepia-ish) JPEG
    color[:] = (60, 110, 160)
    cv2.imwrite(str(tmp_path / "sepia.jpg"), color)
    paths = [tmp_path / "gray.png", tmp_path / "sepia.jpg"]
    tensor = image_inputs(paths, 64)
    assert tensor.shape == (2, 1, 64, 64) and tensor.min() >= -1 and tensor.max() <= 1

    generator, _ = load_generator(checkpoint("pug"))
    report = check_onnx(exported("pug"), generator, precision="fp32", size=64, images=paths)
    assert [c.name for c in report.comparisons][-1] == "images" and report.passed
    with pytest.raises(ExportCheckError, match="cannot read"):
        image_inputs([tmp_path / "missing.png"], 64)


def test_an_encoder_out_of_fp16s_range_is_scaled_and_its_fp16_export_passes(tmp_path):
    """ImageNet encoders reach 10^4 on noise: the fp16 file failed by tens of units before."""
    from facecolor.checkpoint import save_checkpoint
    from facecolor.models import build_generator

    torch.manual_seed(0)
    generator = build_generator("gpsagd", **TINY)
    with torch.no_grad():
        convs = [m for m in generator.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
        convs[0].weight.mul_(100)  # encoder activations in the thousands
        generator.train()(torch.rand(16, 1, 64, 64) * 2 - 1)  # statistics that match them
    path = save_checkpoint(tmp_path / "loud.safetensors", generator.eval(), generator.config)
    fp32 = export_onnx(path, tmp_path / "loud.onnx", max_batch=8)
    fp16 = export_onnx(path, tmp_path / "loud.fp16.onnx", fp16=True, max_batch=8, fp32_onnx=fp32)
    for file in (fp32, fp16):
        document = read_sidecar(file)
        assert document["encoder_activations_divided_by"] >= 8 and document["check"]["passed"] is True


def test_an_encoder_in_range_is_traced_as_it_is(checkpoint, exported):
    assert read_sidecar(exported("gpsagd"))["encoder_activations_divided_by"] == 1.0

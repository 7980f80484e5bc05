"""The bench on a CUDA GPU: PyTorch fp32/fp16 (``-m gpu``) and a TensorRT plan (``-m tensorrt``).

Run on a CUDA machine with ``pytest -m gpu tests/bench`` and ``pytest -m tensorrt tests/bench``;
skipped by default (pyproject's addopts) and wherever torch sees no GPU.
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from facecolor.bench.cli import main

FAST = ["--batch-sizes", "1,16", "--min-time", "0.1", "--min-runs", "3", "--quiet"]

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device")


def bench_json(tmp_path, *args) -> tuple[object, dict]:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, [*map(str, args), "--json", str(out), *FAST], catch_exceptions=False)
    return result, json.loads(out.read_text())


def check_timed_on_gpu(row: dict) -> None:
    assert row["status"] == "ok" and row["device"] == "cuda"
    for result in row["latency"]:
        assert result["status"] == "ok" and result["timer"] == "cuda-events"
        assert result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"]
        assert result["images_per_s"] == pytest.approx(result["batch_size"] * 1000 / result["p50_ms"])


@pytest.mark.gpu
@needs_cuda
def test_torch_fp32_and_fp16_on_cuda(tiny, tmp_path):
    """What make gpu-check runs, small: parity on photos, the pipeline and codecs on synthetic scans."""
    result, report = bench_json(tmp_path, "--engine", tiny["checkpoint"], "--data", tiny["data"], "--device", "cuda",
                                "--pipeline-images", "40")
    assert result.exit_code == 0, result.output
    assert list(report["rows"]) == ["torch-fp32", "torch-fp16"]  # the default for a checkpoint on CUDA
    assert report["system"]["gpu"]["name"] in result.output
    fp32, fp16 = report["rows"]["torch-fp32"], report["rows"]["torch-fp16"]
    check_timed_on_gpu(fp32)
    check_timed_on_gpu(fp16)
    assert (fp32["precision"], fp16["precision"]) == ("fp32", "fp16")
    assert fp32["parity"]["agreement"]["max_dab"] <= 1.0  # TF32 at most, vs true fp32
    assert fp16["parity"]["agreement"]["nonfinite"] == 0
    assert all(gate["passed"] is not False for gate in fp16["gates"])
    assert fp16["pipeline"]["status"] in ("ok",) or fp16["pipeline"]["status"].startswith("unavailable")
    codec = report["codec"]["cuda"]  # the GPU codec once, for the first CUDA row
    assert codec["status"] == "ok" and (codec["images"], codec["nvjpeg_files"], codec["cpu_files"]) == (40, 40, 0)
    for step in ("decode", "encode"):
        assert codec["nvjpeg_alone"][step]["images"] == 40 and codec["nvjpeg_alone"][step]["images_per_s"] > 0
        assert f"nvJPEG {step} alone of the 40 JPEGs in memory" in result.output
    if fp32["pipeline"]["status"] == "ok":  # else unavailable, as for fp16 above
        assert fp32["pipeline"]["codec_images_per_s"] == codec["images_per_s"]
        assert fp32["pipeline"]["target_ratio"] == 0.8 and "torch-fp32: pipeline / GPU codec" in result.output


@pytest.mark.gpu
@needs_cuda
def test_perturbed_onnx_fails_on_gpu_too(tiny, tmp_path):
    result, report = bench_json(tmp_path, "--engine", tiny["perturbed"], "--reference", tiny["checkpoint"],
                                "--data", tiny["data"], "--compare", "ort-cpu,torch-fp16", "--no-pipeline")
    assert result.exit_code == 1 and "max |Δab|" in result.output
    assert report["rows"]["torch-fp16"]["status"] == "ok"  # the reference's own fp16 run still passes
    assert all(g["passed"] is not False for g in report["rows"]["torch-fp16"]["gates"])


@pytest.mark.tensorrt
@needs_cuda
def test_tensorrt_plan_matches_its_checkpoint(tiny, tmp_path):
    pytest.importorskip("tensorrt")
    from facecolor.export.onnx import export_onnx
    from facecolor.export.tensorrt import build_engine

    onnx16 = export_onnx(tiny["checkpoint"], tmp_path / "tiny.fp16.onnx", fp16=True, max_batch=16)
    plan = build_engine(onnx16, tmp_path / "tiny.plan", max_batch=16)
    result, report = bench_json(tmp_path, "--engine", plan, "--data", tiny["data"], "--compare", "trt,torch-fp16")
    assert result.exit_code == 0, result.output
    assert report["reference"]["how"] == "engine sidecar"  # plan -> its ONNX -> the checkpoint
    row = report["rows"]["trt"]
    check_timed_on_gpu(row)
    assert row["precision"] == "fp16" and row["backend"] == "tensorrt"
    assert all(gate["passed"] for gate in row["gates"])

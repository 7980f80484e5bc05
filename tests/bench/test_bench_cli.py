"""The bench end to end on the CPU: a tiny ONNX export against its checkpoint.

Numbers are checked for consistency, never for speed: timings on a shared CPU vary."""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

from facecolor.bench import measure
from facecolor.bench.cli import main
from facecolor.bench.report import BenchReport, Row, format_report
from facecolor.cli import main as facecolor_main

#: Keep timing short (the numbers are not asserted).
FAST = ["--batch-sizes", "1,4", "--min-time", "0.05", "--min-runs", "3", "--quiet"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("command, args", [(main, ["--help"]), (facecolor_main, ["bench", "--help"])])
def test_help_has_an_example(command, args):
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0
    assert "Examples:" in result.output and "bench --engine models/gpsagd.onnx" in result.output
    for flag in ("--engine", "--reference", "--data", "--batch-sizes", "--json", "--compare", "--fid-weights"):
        assert flag in result.output


@pytest.fixture(scope="module")
def run(tiny, tmp_path_factory):
    """One full run: ONNX Runtime CPU and (unavailable) TensorRT, with truth data and JSON."""
    out = tmp_path_factory.mktemp("bench-run") / "bench.json"
    result = invoke("--engine", tiny["onnx"], "--data", tiny["data"], "--compare", "ort-cpu,trt",
                    "--json", out, *FAST)
    return result, json.loads(out.read_text())


def test_run_passes_and_prints_the_table(run):
    result, _ = run
    assert result.exit_code == 0, result.output
    for heading in ("CPU: ", "torch ", "ONNX Runtime ", "TensorRT ", "Latency", "Parity", "PASSED"):
        assert heading in result.output


def test_json_header_and_reference(run, tiny):
    _, report = run
    assert report["format"] == "facecolor-bench" and report["passed"] is True and report["failures"] == []
    assert report["system"]["cpu"] and report["system"]["cores"] >= 1
    assert set(report["system"]["versions"]) >= {"torch", "tensorrt", "onnxruntime"}
    assert report["reference"]["how"] == "engine sidecar"
    assert report["reference"]["path"] == str(tiny["checkpoint"])
    assert report["data"]["images"] == 5 and report["data"]["has_truth"] is True
    assert list(report["rows"]) == ["ort-cpu", "trt"]


def test_latency_numbers_are_consistent(run):
    row = run[1]["rows"]["ort-cpu"]
    assert row["status"] == "ok" and row["backend"] == "onnxruntime-cpu" and row["precision"] == "fp32"
    assert [r["batch_size"] for r in row["latency"]] == [1, 4]
    for result in row["latency"]:
        assert result["status"] == "ok" and result["runs"] >= 3
        assert 0 < result["min_ms"] <= result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"] <= result["max_ms"]
        assert result["images_per_s"] == pytest.approx(result["batch_size"] * 1000 / result["p50_ms"])


def test_unmodified_export_agrees_with_its_reference(run):
    report = run[1]
    parity = report["rows"]["ort-cpu"]["parity"]
    reference = report["reference_scores"]
    for key in ("psnr", "hist", "ciede2000"):
        assert parity["scores"][key] == pytest.approx(reference[key], abs=1e-3)
        assert parity["delta"][key] == pytest.approx(parity["scores"][key] - reference[key])
    assert abs(parity["delta"]["psnr"]) <= 0.1 and abs(parity["delta"]["hist"]) <= 0.005
    agreement = parity["agreement"]
    assert agreement["max_dab"] < 0.05 and agreement["mean_dab"] <= agreement["max_dab"]
    assert agreement["psnr"] > 60 and agreement["nonfinite"] == 0
    gates = report["rows"]["ort-cpu"]["gates"]
    assert [g["status"] for g in gates] == ["pass", "pass", "pass"]
    assert parity["scores"]["fid"] is None and "FID" in report["fid_note"]  # no Inception weights here


def test_unavailable_backend_is_a_row_not_a_crash(run):
    row = run[1]["rows"]["trt"]
    assert row["status"].startswith("unavailable: ")
    assert "TensorRT" in row["status"] or "CUDA" in row["status"]
    assert row["latency"] == [] and row["parity"] is None and row["gates"] == []


def test_pipeline_rate_beside_codec_rate(run):
    report = run[1]
    codec = report["codec"]["cpu"]
    assert codec["images"] == 5 and codec["images_per_s"] > 0
    pipeline = report["rows"]["ort-cpu"]["pipeline"]
    assert pipeline["status"] == "ok" and pipeline["images"] == 5
    assert pipeline["ratio"] == pytest.approx(pipeline["images_per_s"] / codec["images_per_s"])


def test_pipeline_on_synthetic_scans(tiny, tmp_path):
    out = tmp_path / "bench.json"
    result = invoke("--engine", tiny["onnx"], "--limit", "2", "--batch-sizes", "1", "--min-time", "0",
                    "--min-runs", "1", "--pipeline-images", "3", "--quiet", "--json", out)
    assert result.exit_code == 0, result.output
    assert "the same 3 synthetic 1024x1280 gray JPEG files" in result.output
    report = json.loads(out.read_text())
    assert report["settings"]["pipeline_images"] == 3 and report["codec"]["cpu"]["images"] == 3
    assert report["rows"]["ort-cpu"]["pipeline"]["images"] == 3 and report["data"]["images"] == 2
    conflict = CliRunner().invoke(main, ["--engine", str(tiny["onnx"]), "--pipeline-images", "3", "--no-pipeline"])
    assert conflict.exit_code == 2 and "drop --no-pipeline" in conflict.output


def test_gpu_codec_figures_and_figure_of_merit(run, tmp_path):
    """The GPU codec's code on torchvision's CPU codec (the CUDA run is tests/bench/test_gpu.py),
    and how the report shows a CUDA row: nvJPEG alone, pipeline / GPU codec against 0.80."""
    files = tuple(sorted(measure.make_dataset(tmp_path / "in", 3, 80, 64).iterdir()))
    codec = measure.gpu_codec_rate(measure.PipelineFolder(tmp_path / "in", files), tmp_path, 2, 90, device="cpu")
    assert codec["status"] == "ok" and (codec["nvjpeg_files"], codec["cpu_files"]) == (3, 0)
    for step in ("decode", "encode"):
        assert codec["nvjpeg_alone"][step]["images"] == 3 and codec["nvjpeg_alone"][step]["images_per_s"] > 0
    document = copy.deepcopy(run[1])  # the module's one run, left as it is for the other tests
    rows = {name: Row(**row) for name, row in document.pop("rows").items()}
    report = BenchReport(**{key: value for key, value in document.items()
                            if key not in ("format", "format_version", "passed", "failures")}, rows=rows)
    report.codec["cuda"] = codec
    report.rows["ort-cpu"].pipeline.update(ratio=0.79, target_ratio=measure.GPU_TARGET)
    text = format_report(report)
    assert "nvJPEG decode alone of the 3 JPEGs in memory (no reads or writes, batch 2)" in text
    assert "nvJPEG encode alone of the 3 JPEGs" in text
    assert "ort-cpu: pipeline / GPU codec 0.79, target >= 0.80 (issue 4): NOT met" in text


def test_perturbed_engine_fails_the_gate(tiny, tmp_path):
    out = tmp_path / "bench.json"
    result = invoke("--engine", tiny["perturbed"], "--reference", tiny["checkpoint"], "--data", tiny["data"],
                    "--batch-sizes", "2", "--min-time", "0", "--min-runs", "1", "--no-pipeline", "--quiet",
                    "--json", out)
    assert result.exit_code == 1
    assert "gate failed" in result.output and "max |Δab|" in result.output and "over by" in result.output
    report = json.loads(out.read_text())
    assert report["passed"] is False
    failed = [g for g in report["rows"]["ort-cpu"]["gates"] if g["passed"] is False]
    assert "max |Δab|" in [g["name"] for g in failed]


def test_without_data_only_agreement_on_the_examples(tiny):
    result = invoke("--engine", tiny["onnx"], "--limit", "2", "--batch-sizes", "1", "--min-time", "0",
                    "--min-runs", "1", "--no-pipeline", "--quiet")
    assert result.exit_code == 0, result.output
    assert "no ground truth: agreement only" in result.output
    assert "n/a   ort-cpu: |ΔPSNR| not checked (no --data" in result.output


def test_bad_flags_and_files(tiny, tmp_path):
    result = CliRunner().invoke(main, ["--engine", str(tiny["onnx"]), "--compare", "onnx"])
    assert result.exit_code == 2 and "choose from torch-fp32" in result.output
    result = CliRunner().invoke(main, ["--engine", str(tiny["onnx"]), "--batch-sizes", "1,x"])
    assert result.exit_code == 2
    wrong = tmp_path / "model.pt"
    wrong.write_bytes(b"")
    result = CliRunner().invoke(main, ["--engine", str(wrong)])
    assert result.exit_code == 1 and result.output.startswith("Error: ") and "facecolor-export" in result.output

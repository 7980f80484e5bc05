"""The throughput harness runs end to end on a few small images and writes its JSON."""

from __future__ import annotations

import json

import cv2
import pytest
import torch
from click.testing import CliRunner

from facecolor.bench import measure, targets, throughput
from facecolor.bench.measure import make_dataset
from facecolor.bench.throughput import main


def test_help_has_an_example():
    result = CliRunner().invoke(main, ["rounds", "--help"])
    assert result.exit_code == 0 and "Example: python -m facecolor.bench.throughput rounds" in result.output
    result = CliRunner().invoke(main, ["ray", "--help"])
    assert result.exit_code == 0 and "Example: python -m facecolor.bench.throughput ray" in result.output


def test_synthetic_portraits_are_gray_and_sized(tmp_path):
    make_dataset(tmp_path, 1, 80, 64)
    image = cv2.imread(str(tmp_path / "portrait_00000.jpg"), cv2.IMREAD_UNCHANGED)
    assert image.shape == (80, 64) and image.dtype.name == "uint8" and image.std() > 10


def test_small_run_writes_numbers(tmp_path, tiny):
    out = tmp_path / "bench.json"
    args = ["rounds", "--images", "5", "--size", "64x80", "--data", str(tmp_path / "data"), "--model", str(tiny["onnx"]),
            "--model-seconds", "0.05", "--rounds", "2", "--json", str(out)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    numbers = json.loads(out.read_text())
    assert numbers["failed"] == 0 and numbers["images"] == 5 and numbers["backend"] == "onnxruntime-cpu"
    assert sorted(r["images"] for r in numbers["rounds"]) == [2, 3]  # every image once, in two slices
    assert numbers["end_to_end_images_per_s"] > 0 and numbers["model_alone_images_per_s"] > 0
    assert "median ratio of 2 rounds" in result.output and 0 < numbers["cpu_bound_ratio"]

    again = CliRunner().invoke(main, args[:-2] + ["--rounds", "3"], catch_exceptions=False)  # same folder
    assert again.exit_code == 0 and "round 3/3" in again.output
    assert sorted(p.name for p in (tmp_path / "data").rglob("*.jpg")) == [f"portrait_{i:05d}.jpg" for i in range(5)]


def test_gpu_harness_says_when_there_is_no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(main, ["gpu", "--count", "4"])
    assert result.exit_code == 1 and "torch sees no CUDA device" in result.output
    helped = CliRunner().invoke(main, ["gpu", "--help"])
    assert helped.exit_code == 0 and "--plan" in helped.output and "--pipeline-backend" in helped.output


def test_gpu_harness_plumbing_on_the_cpu(monkeypatch, tmp_path, tiny):
    """The gpu command's rows, table, JSON and exit code, with its CUDA-only pieces swapped for
    the CPU ones (the real thing runs under ``make gpu-check``)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(throughput, "system_info", lambda: {"gpu": {"name": "fake", "cuda": "0"},
                                                            "versions": {"torch": torch.__version__}})
    monkeypatch.setattr(throughput, "nvjpeg_alone", lambda files, batch, quality, step:
                        measure._rate(len(files), 1.0))
    monkeypatch.setattr(throughput, "gpu_codec_rate", lambda folder, workdir, batch, quality:
                        measure.codec_rate(folder, workdir))
    monkeypatch.setattr(throughput, "open_target", lambda name, path, checkpoint, device, max_batch:
                        targets.open_target("ort-cpu", tiny["onnx"], checkpoint, "cpu", max_batch))
    monkeypatch.setattr(throughput, "make_dataset", lambda folder, count, height, width, quality:
                        measure.make_dataset(folder, count, 80, 64, quality))
    out = tmp_path / "gpu.json"
    args = ["gpu", "--count", "3", "--batch", "2", "--repeats", "2", "--model", str(tiny["checkpoint"]),
            "--pipeline-backend", "onnxruntime-cpu", "--json", str(out)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert list(rows) == ["nvjpeg_decode", "nvjpeg_encode", "nvjpeg_decode_encode", "model_onnxruntime-cpu_b64",
                          "model_onnxruntime-cpu_b256", "end_to_end"]
    assert all(row["status"] == "ok" for row in rows.values())
    end_to_end = rows["end_to_end"]
    assert end_to_end["images"] == 3 and len(end_to_end["runs_images_per_s"]) == 2
    assert end_to_end["batch_size"] == 2 and end_to_end["peak_gpu_memory_gib"] is None  # a CPU backend here
    codec = rows["nvjpeg_decode_encode"]["images_per_s"]
    assert end_to_end["ratio"] == pytest.approx(end_to_end["images_per_s"] / codec)
    assert "end-to-end / codec alone" in result.output and "note: trt: not measured (pass --plan" in result.output

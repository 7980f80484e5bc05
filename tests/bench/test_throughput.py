"""The throughput harness runs end to end on a few small images and writes its JSON."""

from __future__ import annotations

import json

import cv2
from click.testing import CliRunner

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

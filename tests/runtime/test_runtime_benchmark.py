"""The runtime benchmark runs end to end on a few small images and writes its JSON."""

from __future__ import annotations

import json

from click.testing import CliRunner

from facecolor.runtime.benchmark import main, synthetic_portrait


def test_help_has_an_example():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "Example: python -m facecolor.runtime.benchmark" in result.output


def test_synthetic_portraits_are_gray_and_sized():
    image = synthetic_portrait(80, 64, seed=1)
    assert image.shape == (80, 64) and image.dtype.name == "uint8" and image.std() > 10


def test_small_run_writes_numbers(tmp_path, tiny_onnx):
    out = tmp_path / "bench.json"
    args = ["--images", "3", "--size", "64x80", "--data", str(tmp_path / "data"), "--model", str(tiny_onnx),
            "--model-seconds", "0.05", "--json", str(out)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    numbers = json.loads(out.read_text())
    assert numbers["failed"] == 0 and numbers["images"] == 3 and numbers["backend"] == "onnxruntime-cpu"
    assert numbers["end_to_end_images_per_s"] > 0 and numbers["model_alone_images_per_s"] > 0
    assert "ratio" in result.output and 0 < numbers["cpu_bound_ratio"]

"""Shared fixtures of the export tests: tiny checkpoints and their exports, made once a session.

Tracing a model to ONNX is the slow part (seconds even for a width-0.125 model), so every
export that several tests read is a session fixture. Checkpoints are "trained-like": the
self-attention's gamma (0 at init, which would make attention a no-op) and BatchNorm's
running statistics are set away from their initial values, so the exported graphs carry
real attention and normalisation arithmetic.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from export_testkit import write_checkpoint


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("export-checkpoints")


@pytest.fixture(scope="session")
def checkpoint(checkpoint_dir):
    """checkpoint(preset) -> path of a tiny trained-like checkpoint, written once."""
    made: dict[str, Path] = {}

    def get(preset: str) -> Path:
        if preset not in made:
            made[preset] = write_checkpoint(checkpoint_dir / f"{preset}.safetensors", preset)
        return made[preset]

    return get


@pytest.fixture(scope="session")
def cli_without_tensorrt(checkpoint, tmp_path_factory):
    """``facecolor-export pug.safetensors --onnx .../pug.onnx --engine .../pug.plan --max-batch 16``
    run once while ``tensorrt`` cannot be imported: (click result, output folder).

    pug's exports come from this run, as a user would make them, so the CLI's files are the
    ones the ONNX tests check, and the suite traces each preset once (tracing is the slow part).
    """
    from click.testing import CliRunner

    from facecolor.export.cli import main

    folder = tmp_path_factory.mktemp("cli-pug")
    args = [checkpoint("pug"), "--onnx", folder / "pug.onnx", "--engine", folder / "pug.plan", "--max-batch", "16"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` fails, installed or not
        result = CliRunner().invoke(main, [str(a) for a in args])
    return result, folder


@pytest.fixture(scope="session")
def exported(checkpoint, cli_without_tensorrt, tmp_path_factory):
    """exported(preset) -> the checked fp32 ONNX (max batch 16) of checkpoint(preset)."""
    from facecolor.export.onnx import export_onnx

    made: dict[str, Path] = {"pug": cli_without_tensorrt[1] / "pug.onnx"}

    def get(preset: str) -> Path:
        if preset not in made:
            folder = tmp_path_factory.mktemp(f"onnx-{preset}")
            made[preset] = export_onnx(checkpoint(preset), folder / f"{preset}.onnx", max_batch=16)
        return made[preset]

    return get


@pytest.fixture(scope="session")
def gpsagd_fp16(checkpoint, exported, tmp_path_factory) -> Path:
    """The checked fp16 ONNX of the tiny gpsagd, converted from its fp32 export."""
    from facecolor.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("onnx-gpsagd-fp16") / "gpsagd.fp16.onnx"
    return export_onnx(checkpoint("gpsagd"), out, fp16=True, max_batch=16, fp32_onnx=exported("gpsagd"))

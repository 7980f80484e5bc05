"""The command line: help for every command, usage errors, and errors that say how to fix."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from facecolor.checkpoint import read_checkpoint
from facecolor.models import PRESETS
from facecolor.train.cli import main
from train_testkit import invoke, train_args


@pytest.mark.parametrize("command", [[], ["eval"], *[[name] for name in PRESETS]])
def test_every_command_has_help_ending_with_an_example(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example: facecolor-train" in result.output
    if command and command != ["eval"]:
        assert "--data" in result.output and "--init" in result.output and PRESETS[command[0]].name in result.output
        assert "--stop-after-epochs" not in result.output  # a test hook, hidden


def test_group_lists_presets_and_eval():
    result = CliRunner().invoke(main, ["--help"])
    assert "eval" in result.output and "gpsagd" in result.output and "pug" in result.output


def test_unknown_preset_lists_the_valid_ones():
    result = CliRunner().invoke(main, ["nope", "--help"])
    assert result.exit_code == 2
    assert "unknown preset 'nope'" in result.output and "gpsagd" in result.output


def test_missing_required_options_are_usage_errors(tiny_data):
    result = CliRunner().invoke(main, ["pug", "--data", str(tiny_data["train"])])
    assert result.exit_code == 2 and "--val" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_device_cuda_without_cuda_is_a_clear_error(tiny_data, tmp_path):
    result = invoke(train_args("pug", tiny_data, tmp_path / "run", "--device", "cuda"))
    assert result.exit_code == 1
    assert "--device cuda was asked for" in result.output and "--device cpu" in result.output


def test_amp_on_cpu_is_refused(tiny_data, tmp_path):
    result = invoke(train_args("pug", tiny_data, tmp_path / "run", "--device", "cpu", "--amp", "fp16"))
    assert result.exit_code == 1 and "needs a CUDA device" in result.output  # fp16: no CPU path


def test_init_with_an_l1_only_preset_continues_pretraining(tiny_data, tmp_path, gpsagd_run):
    out, _ = gpsagd_run
    result = invoke(train_args("psag", tiny_data, tmp_path / "run", "--init", out / "gpsagd.safetensors"))
    assert result.exit_code == 0, result.output
    recipe = read_checkpoint(tmp_path / "run" / "psag.safetensors").recipe
    assert recipe["stages"] == [{"stage": "pretrain_g", "epochs": 1}]
    assert recipe["init"]["preset"] == "gpsagd" and recipe["skipped_stages"] == []


def test_init_from_another_architecture_is_an_error(tiny_data, tmp_path, gpsagd_run):
    out, _ = gpsagd_run
    result = invoke(train_args("gprg", tiny_data, tmp_path / "run", "--init", out / "gpsagd.safetensors"))
    assert result.exit_code == 1 and "does not fit 'gprg'" in result.output

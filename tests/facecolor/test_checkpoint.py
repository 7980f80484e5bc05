"""Checkpoints rebuild their own generator, refuse what they cannot load, and never unpickle."""

import json

import pytest
import torch

from facecolor.checkpoint import (
    CheckpointError,
    load_generator,
    read_checkpoint,
    save_checkpoint,
    save_half_copy,
)
from facecolor.models import build_generator


@pytest.fixture
def tiny_checkpoint(tmp_path):
    torch.manual_seed(0)
    generator = build_generator("psag", width=0.125, render_size=64).eval()
    path = save_checkpoint(tmp_path / "psag.safetensors", generator, generator.config,
                           recipe={"epochs": 1}, data={"train": 3}, metrics={"psnr": 20.0})
    return path, generator


def test_a_checkpoint_rebuilds_the_same_generator(tiny_checkpoint):
    path, generator = tiny_checkpoint
    loaded, checkpoint = load_generator(path)
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), generator(x))
    assert checkpoint.preset == "psag" and checkpoint.render_size == 64
    assert checkpoint.recipe == {"epochs": 1} and checkpoint.metrics == {"psnr": 20.0}


def test_half_copy_is_half_the_size_and_colors_the_same(tiny_checkpoint, tmp_path):
    path, generator = tiny_checkpoint
    half = save_half_copy(path, tmp_path / "half.safetensors")
    assert half.stat().st_size < 0.6 * path.stat().st_size
    loaded, checkpoint = load_generator(half)
    assert checkpoint.metrics["weights_dtype"] == "float16"
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert (loaded(x) - generator(x)).abs().max() * 110 < 0.5  # CIELAB units


@pytest.mark.parametrize("damage", ["truncate", "garbage", "not-facecolor"])
def test_damaged_or_foreign_files_are_refused_with_a_reason(tiny_checkpoint, tmp_path, damage):
    path, _ = tiny_checkpoint
    bad = tmp_path / "bad.safetensors"
    if damage == "truncate":
        bad.write_bytes(path.read_bytes()[:1000])
    elif damage == "garbage":
        bad.write_bytes(b"\x00\x01pickle?" * 100)
    else:
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(2)}, str(bad))
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        read_checkpoint(bad)


def test_weights_of_another_preset_are_refused(tiny_checkpoint, tmp_path):
    path, _ = tiny_checkpoint
    other = build_generator("pug", width=0.125, render_size=64)
    config = read_checkpoint(path).model_config
    mismatched = save_checkpoint(tmp_path / "mixed.safetensors", other, config)
    with pytest.raises(CheckpointError, match="do not match preset 'psag'"):
        load_generator(mismatched)


def test_another_color_convention_is_refused(tiny_checkpoint, tmp_path):
    from safetensors.torch import safe_open, save_file

    path, _ = tiny_checkpoint
    with safe_open(str(path), framework="pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        document = json.loads(handle.metadata()["facecolor"])
    document["model_config"]["color_convention"] = "something-else"
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata={"facecolor": json.dumps(document)})
    with pytest.raises(CheckpointError, match="color convention"):
        read_checkpoint(tmp_path / "old.safetensors")


def test_missing_file_says_so(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "nope.safetensors")

"""Helpers of the export tests (a uniquely named module: conftest.py names clash across folders)."""

from __future__ import annotations

from pathlib import Path

import torch

TINY = {"render_size": 64, "width": 0.125}
PRESETS = ("pug", "gpsagd", "prg")


def make_trained_like(generator: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Move attention gammas and BatchNorm statistics off their initial values, in place."""
    generator_rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in generator.named_parameters():
            if name.endswith("gamma"):
                parameter.fill_(0.7)
        for module in generator.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                shape = module.running_mean.shape
                module.running_mean.copy_((torch.rand(shape, generator=generator_rng) - 0.5) * 0.2)
                module.running_var.copy_(0.5 + torch.rand(shape, generator=generator_rng) * 1.5)
    return generator


def write_checkpoint(path: Path, preset: str, seed: int = 0) -> Path:
    """A tiny trained-like checkpoint of ``preset`` at ``path``."""
    from facecolor.checkpoint import save_checkpoint
    from facecolor.models import build_generator

    torch.manual_seed(seed)
    generator = make_trained_like(build_generator(preset, **TINY), seed)
    return save_checkpoint(path, generator, generator.config, recipe={"test": True})

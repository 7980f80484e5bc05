"""The Triton colorize kernel, run by Triton's CPU interpreter, against the CPU path's colorize.

``test_gpu_path.py`` runs this file in a pytest subprocess with ``TRITON_INTERPRET=1``, which
must be set before Triton is imported (``@triton.jit`` reads it); its name keeps the normal
collection away from it. The CPU path's ``runtime.render.colorize_image`` is the one reference:
the GPU path's own fallback for what the kernel does not take.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch
from runtime_helpers import portrait

from facecolor.color import lightness
from facecolor.runtime.geometry import fit_geometry
from facecolor.runtime.gpu.render import GpuImage, _colorize_fused, postprocess, preprocess
from facecolor.runtime.render import colorize_image

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="needs TRITON_INTERPRET=1")
RNG = np.random.default_rng(3)


def _ab(count: int, size: int) -> np.ndarray:
    """Network-like ab/110: smooth, within tanh's range, saturating in places."""
    noise = RNG.normal(size=(count, 2, size, size)).astype(np.float32)
    return np.tanh(np.stack([[cv2.GaussianBlur(c, (0, 0), 2) * 4 for c in n] for n in noise]))


def _compare(light: np.ndarray, ab_norm: np.ndarray, size: int, bits: int) -> np.ndarray:
    """|kernel - colorize_image| per value, HWC, for one group of same-size images."""
    geometry = fit_geometry(*light.shape[1:], size)
    assert geometry.shrinks
    ours = _colorize_fused(torch.from_numpy(light), torch.from_numpy(ab_norm), geometry, bits)
    assert ours.dtype == (torch.uint8 if bits == 8 else torch.int32) and ours.is_contiguous()
    ours = ours.permute(0, 2, 3, 1).numpy().astype(np.int64)
    dtype = np.uint8 if bits == 8 else np.uint16
    reference = np.stack([colorize_image(l, ab, geometry, dtype) for l, ab in zip(light, ab_norm)])
    assert ours.shape == reference.shape == (len(light), *light.shape[1:], 3)
    return np.abs(ours - reference.astype(np.int64))


@pytest.mark.parametrize("shape", [(97, 61), (40, 90), (300, 240), (33, 7)])
def test_kernel_matches_the_cpu_path(shape):
    light = lightness(portrait(*shape))
    diff = _compare(np.stack([light, light[::-1].copy()]), _ab(2, 32), 32, 8)
    assert diff.max() <= 1 and diff.mean() < 0.01, f"{shape}: max {diff.max()} mean {diff.mean():.4f}"


def test_kernel_16_bit():
    light = lightness(portrait(30, 20, np.uint16))[None]
    diff = _compare(light, _ab(1, 16), 16, 16)
    assert diff.max() <= 32, f"max {diff.max()}"  # 0.05% of 16-bit full scale


@pytest.mark.parametrize("shape, bits", [((45, 31), 8), ((20, 52), 8), ((24, 24), 16)])
def test_kernel_on_noise(shape, bits):
    light = RNG.uniform(0, 100, (2, *shape)).astype(np.float32)
    ab = np.tanh(RNG.normal(size=(2, 2, 16, 16))).astype(np.float32)
    diff = _compare(light, ab, 16, bits) / (255.0 if bits == 8 else 65535.0)
    assert diff.max() <= (1 / 255 if bits == 8 else 2e-3), f"{shape} {bits}-bit: max {diff.max():.2e}"


def test_kernel_over_the_whole_lab_box():
    """Every L*a*b* the network can produce, in gamut or far outside it: 41 L* planes, each with
    a 45x45 grid of a*b* over [-110, 110] (upsampled, so between the grid points too)."""
    grid = np.linspace(-1.0, 1.0, 45, dtype=np.float32)
    ab = np.stack(np.meshgrid(grid, grid))[None].repeat(41, 0)  # [41, 2, 45, 45]
    light = np.linspace(0, 100, 41, dtype=np.float32)[:, None, None] * np.ones((1, 90, 90), np.float32)
    diff = _compare(light, ab, 45, 16) / 65535.0
    assert diff.max() < 2e-3, f"max |diff| {diff.max():.2e} in sRGB"  # OpenCV interpolates its gamma table


def test_gray_output_keeps_the_input_lightness():
    gray = portrait(64, 48)
    light = lightness(gray)[None]
    geometry = fit_geometry(64, 48, 32)
    out = _colorize_fused(torch.from_numpy(light), torch.zeros(1, 2, 32, 32), geometry, 8)[0].permute(1, 2, 0).numpy()
    assert np.abs(out.astype(int) - gray[:, :, None].astype(int)).max() <= 1
    assert np.abs(lightness(out) - light[0]).mean() < 0.1


def test_postprocess_dispatch():
    """Mixed groups, interleaved rows and a small image (the host path) through ``postprocess``."""
    shapes = [(40, 30), (25, 25), (40, 30), (10, 12)]
    images = [GpuImage(torch.from_numpy(RNG.integers(0, 256, (1, *s), dtype=np.uint8))) for s in shapes]
    batch = preprocess(images, 16)
    ab = torch.from_numpy(np.tanh(RNG.normal(size=(4, 2, 16, 16))).astype(np.float32))
    fused = postprocess(batch, ab, use_triton=True)
    host = postprocess(batch, ab, use_triton=False)
    for index, (a, b) in enumerate(zip(fused, host)):
        assert a.shape == b.shape == (3, *shapes[index]) and a.dtype == b.dtype
        assert (a.long() - b.long()).abs().max() <= (0 if index == 3 else 1), index

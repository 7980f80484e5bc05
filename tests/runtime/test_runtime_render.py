"""The CPU math between full resolution and the render: L* kept, padding cropped, sizes exact."""

from __future__ import annotations

import numpy as np
import pytest
from runtime_helpers import portrait

from facecolor import color
from facecolor.runtime.geometry import fit_geometry
from facecolor.runtime.render import colorize_image, full_lightness, quantize, render_lightness, upsample_ab_planes
from facecolor.scratch import Scratch


def test_full_lightness_gray_and_gray_in_rgb_agree():
    gray = portrait(50, 40)
    np.testing.assert_allclose(full_lightness(np.dstack([gray] * 3)), full_lightness(gray), atol=1e-4)
    assert full_lightness(gray).dtype == np.float32
    assert full_lightness(gray[::-1, ::-1]).flags.c_contiguous  # views in, contiguous out


def test_render_is_square_normalised_and_edge_padded():
    lightness = full_lightness(portrait(300, 100))
    g = fit_geometry(300, 100, 64)
    render = render_lightness(lightness, g)
    assert render.shape == (64, 64) and render.dtype == np.float32
    assert -1.0 <= render.min() and render.max() <= 1.0
    y0, y1, x0, x1 = g.crop
    np.testing.assert_array_equal(render[:, :x0], np.repeat(render[:, x0:x0 + 1], x0, axis=1))
    np.testing.assert_array_equal(render[:, x1:], np.repeat(render[:, x1 - 1:x1], 64 - x1, axis=1))


@pytest.mark.parametrize("height, width", [(300, 100), (100, 300), (40, 30)])
def test_padding_never_colors_the_image(height, width):
    """ab predicted in the padding (here: strongly red) must not reach the full-size output."""
    g = fit_geometry(height, width, 64)
    y0, y1, x0, x1 = g.crop
    ab = np.zeros((2, 64, 64), np.float32)
    ab[0] = 0.9  # red everywhere ...
    ab[1] = -0.5
    ab[:, y0:y1, x0:x1] = 0.1  # ... except in the valid box
    full = np.dstack(upsample_ab_planes(ab, g))
    assert full.shape == (height, width, 2) and full.dtype == np.float32
    np.testing.assert_allclose(full, 11.0, atol=1e-4)  # 0.1 * 110 everywhere, borders included


def test_upsample_clamps_to_the_ab_range():
    g = fit_geometry(64, 64, 64)
    full = np.dstack(upsample_ab_planes(np.full((2, 64, 64), 3.0, np.float32), g))
    assert full.max() == pytest.approx(color.AB_SCALE)


def test_quantize_matches_the_color_module():
    rgb = np.random.default_rng(0).random((40, 30, 3)).astype(np.float32)
    rgb[0, :3, 0] = [0.5 / 255, 1.5 / 255, 254.5 / 255]  # (nearly) half levels
    rgb[1, :3, 0] = [-0.01, 1.02, 0.5]  # out of range: saturated, not mirrored; an exact tie
    for dtype in (np.uint8, np.uint16):
        np.testing.assert_array_equal(quantize(rgb, dtype), color.to_dtype(rgb, dtype))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_colorize_keeps_lightness(dtype):
    gray = portrait(120, 90, dtype)
    lightness = full_lightness(gray)
    ab_norm = np.stack([np.full((32, 32), 12.0), np.full((32, 32), 18.0)]).astype(np.float32) / 110  # skin tone
    rgb = colorize_image(lightness, ab_norm, fit_geometry(120, 90, 32), dtype)
    assert rgb.dtype == dtype and rgb.shape == (120, 90, 3)
    delta = np.abs(color.lightness(rgb) - lightness)
    assert delta.mean() < (0.2 if dtype == np.uint8 else 0.02)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_full_lightness_equals_the_color_module(dtype):
    gray = portrait(70, 50, dtype)
    np.testing.assert_array_equal(full_lightness(gray), color.lightness(gray))
    np.testing.assert_array_equal(full_lightness(gray.T), color.lightness(gray.T))  # strided view


def test_reused_work_arrays_give_the_same_colors_for_every_size():
    """The writer threads reuse their arrays between images; images of other sizes (and a
    16-bit one between them) must come out exactly as with fresh arrays."""
    scratch = Scratch()
    rng = np.random.default_rng(1)
    for height, width, dtype in [(120, 90, np.uint8), (60, 200, np.uint16), (120, 90, np.uint8), (61, 47, np.uint8)]:
        lightness = full_lightness(portrait(height, width, dtype))
        g = fit_geometry(height, width, 32)
        ab = rng.uniform(-0.6, 0.6, (2, 32, 32)).astype(np.float32)
        expected = colorize_image(lightness, ab, g, dtype)  # fresh arrays
        np.testing.assert_array_equal(colorize_image(lightness, ab, g, dtype, scratch), expected)


def test_scratch_keeps_nothing_above_its_budget():
    scratch = Scratch(max_bytes=1000)
    small = scratch.array("x", (10, 10), np.float32)  # 400 bytes: kept
    assert scratch.array("x", (10, 10), np.float32) is small
    assert scratch.array("y", (20, 10), np.float32) is not scratch.array("y", (20, 10), np.float32)  # 800: not
    scratch.array("x", (5, 10), np.float32)  # a new shape replaces the old one in the budget
    assert scratch.kept_bytes == 200

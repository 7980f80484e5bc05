"""The color convention against skimage.color on dense grids (DESIGN §2)."""

import warnings

import numpy as np
import pytest
import torch

from facecolor import color

skcolor = pytest.importorskip("skimage.color")


def _srgb_cube(steps: int = 48) -> np.ndarray:
    """Every sRGB color on a steps^3 grid, as an (steps^3)x1x3 float image."""
    axis = np.linspace(0.0, 1.0, steps)
    r, g, b = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([r, g, b], axis=-1).reshape(-1, 1, 3)


def _lab_box() -> np.ndarray:
    """L* 0..100 and a*, b* over -128..127, in and far out of the sRGB gamut."""
    lightness, a, b = np.meshgrid(
        np.linspace(0, 100, 26), np.linspace(-128, 127, 35), np.linspace(-128, 127, 35), indexing="ij"
    )
    return np.stack([lightness, a, b], axis=-1).reshape(-1, 1, 3)


def _skimage_lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns about the negative Z it clips
        return np.clip(skcolor.lab2rgb(lab), 0.0, 1.0)


def test_numpy_rgb_to_lab_matches_skimage_over_the_cube():
    rgb = _srgb_cube()
    np.testing.assert_allclose(color.rgb_to_lab(rgb), skcolor.rgb2lab(rgb), atol=1e-3)


def test_numpy_lab_to_rgb_matches_skimage_in_and_out_of_gamut():
    lab = _lab_box()
    np.testing.assert_allclose(color.lab_to_rgb(lab), _skimage_lab_to_rgb(lab), atol=1e-3)


def test_fast_lab_to_rgb_stays_within_a_third_of_an_8bit_level():
    lab = _lab_box().astype(np.float32)
    error = np.abs(color.lab_to_rgb_fast(lab) - _skimage_lab_to_rgb(lab))
    assert error.max() < 1.5e-3  # measured 1.23e-3; 1/255 = 3.9e-3


def test_torch_conversions_match_skimage_over_the_cube():
    rgb = _srgb_cube()
    batch = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None]
    lab = color.rgb_to_lab_torch(batch)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(lab, skcolor.rgb2lab(rgb), atol=1e-3)
    box = _lab_box()
    back = color.lab_to_rgb_torch(torch.from_numpy(box.astype(np.float32)).permute(2, 0, 1)[None])
    np.testing.assert_allclose(back[0].permute(1, 2, 0).numpy(), _skimage_lab_to_rgb(box), atol=1e-3)


@pytest.mark.parametrize("dtype, peak", [(np.uint8, 255), (np.uint16, 65535)])
def test_gray_levels_have_the_lightness_of_equal_rgb(dtype, peak):
    levels = np.arange(0, peak + 1, max(1, peak // 1023), dtype=dtype).reshape(1, -1)
    expected = skcolor.rgb2lab(np.repeat(levels[..., None], 3, axis=2) / peak)[..., 0]
    np.testing.assert_allclose(color.lightness(levels), expected, atol=1e-3)
    np.testing.assert_allclose(color.lightness(levels[..., None]), expected, atol=1e-3)


@pytest.mark.parametrize("dtype, peak", [(np.uint8, 255), (np.uint16, 65535)])
def test_color_and_sepia_inputs_reduce_to_their_lightness(dtype, peak):
    rng = np.random.default_rng(0)
    image = rng.integers(0, peak + 1, size=(9, 11, 3)).astype(dtype)
    expected = skcolor.rgb2lab(image / peak)[..., 0]
    np.testing.assert_allclose(color.lightness(image), expected, atol=1e-3)
    rgba = np.concatenate([image, np.full((9, 11, 1), peak, dtype)], axis=2)
    np.testing.assert_allclose(color.lightness(rgba), expected, atol=1e-3)


def test_network_scaling_maps_lab_ranges_to_unit_interval():
    assert color.normalize_l(np.array([0.0, 50.0, 100.0])).tolist() == [-1.0, 0.0, 1.0]
    assert color.denormalize_l(color.normalize_l(37.5)) == pytest.approx(37.5)
    assert color.denormalize_ab(color.normalize_ab(-64.0)) == pytest.approx(-64.0)
    assert color.normalize_ab(110.0) == 1.0


def test_split_and_join_round_trip_a_color_batch():
    rgb = torch.rand(2, 3, 8, 8)
    l_norm, ab_norm = color.split_lab_torch(rgb)
    assert l_norm.shape == (2, 1, 8, 8) and ab_norm.shape == (2, 2, 8, 8)
    assert l_norm.min() >= -1 and l_norm.max() <= 1 and ab_norm.abs().max() <= 1
    torch.testing.assert_close(color.join_lab_torch(l_norm, ab_norm), rgb, atol=1e-4, rtol=0)


def test_join_lab_keeps_the_given_lightness():
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, size=(16, 16), dtype=np.uint8)
    lightness = color.lightness(gray)
    ab = np.stack([np.full_like(lightness, 12.0), np.full_like(lightness, 20.0)], axis=2)
    out = color.to_dtype(color.join_lab(lightness, ab), np.uint8)
    in_gamut = (lightness > 15) & (lightness < 85)
    assert np.abs(color.lightness(out) - lightness)[in_gamut].mean() < 0.5


def test_to_unit_rgb_rejects_what_is_not_an_image():
    with pytest.raises(color.ColorError, match="shape"):
        color.to_unit_rgb(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(color.ColorError, match="pixel type"):
        color.to_unit_rgb(np.zeros((4, 4), np.int64))
    assert color.to_unit_rgb(np.full((2, 2), 65535, np.uint16)).shape == (2, 2, 3)

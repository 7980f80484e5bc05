"""The one definition of facecolor's color convention (DESIGN §2).

Every stage (training, export checks, runtime, bench, metrics) imports its sRGB <-> CIELAB
conversions and network scaling from here, so the convention can only change in one place.

- sRGB is D65; CIE L*a*b* with L* in [0, 100].
- Network input is ``L/50 - 1`` (in [-1, 1]); network output is ``ab/110`` through tanh.
- A gray pixel g (8 or 16 bit) is sRGB (g, g, g).

numpy functions use the exact CIE formulas (OpenCV's float32 Lab was measured 0.58 L*a*b*
units off skimage); full-resolution output uses OpenCV's Lab -> sRGB (``lab_to_rgb_fast``),
15x faster and within a third of an 8-bit level; gray inputs go through an exact lookup table.
torch functions use kornia, which runs batched on any device and is differentiable. All are
checked against ``skimage.color`` on a dense grid in ``tests/facecolor/test_color.py``.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import torch

from facecolor.scratch import FRESH, Scratch

#: Version tag stored in every checkpoint, ONNX sidecar and output metadata.
COLOR_CONVENTION = "srgb-d65-cielab:L/50-1:ab/110-tanh:v1"
L_SCALE = 50.0
AB_SCALE = 110.0


class ColorError(ValueError):
    """An array that cannot be interpreted as an image in the color convention."""


# --------------------------------------------------------------------------- scaling


def normalize_l(lightness):
    """L* in [0, 100] -> network input in [-1, 1] (works on numpy arrays and tensors)."""
    return lightness / L_SCALE - 1.0


def denormalize_l(l_norm):
    """Network input in [-1, 1] -> L* in [0, 100]."""
    return (l_norm + 1.0) * L_SCALE


def normalize_ab(ab):
    """a*b* in CIELAB units -> network target, ab/110 (about [-1, 1] for real colors)."""
    return ab / AB_SCALE


def denormalize_ab(ab_norm):
    """Network output (tanh, [-1, 1]) -> a*b* in CIELAB units."""
    return ab_norm * AB_SCALE


# --------------------------------------------------------------------------- numpy


def to_unit_rgb(image: np.ndarray) -> np.ndarray:
    """Any 8/16-bit or float image, HxW or HxWx{1,3,4}, -> float32 HxWx3 RGB in [0, 1].

    Gray becomes (g, g, g); alpha is dropped (the colorizer works on the visible pixels only).
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ColorError(f"expected an HxW or HxWx{{1,3,4}} image, got shape {image.shape}")
    image = image[:, :, :3]
    if image.dtype == np.uint8:
        unit = image.astype(np.float32) / 255.0
    elif image.dtype == np.uint16:
        unit = image.astype(np.float32) / 65535.0
    elif np.issubdtype(image.dtype, np.floating):
        unit = np.clip(image.astype(np.float32), 0.0, 1.0)
    else:
        raise ColorError(f"unsupported pixel type {image.dtype}; use uint8, uint16 or float")
    if unit.shape[2] == 1:
        unit = np.repeat(unit, 3, axis=2)
    return np.ascontiguousarray(unit)


# --------------------------------------------------------------------------- the constants
# Two named sets, each used as a whole. Nothing outside this module restates a number of them.

#: The exact CIE set, as in IEC 61966-2-1 and skimage.color: D65 reference white (X, Y, Z),
#: the sRGB primaries (linear sRGB -> XYZ; its middle row gives Y), where the CIE f(t) switches
#: from cube root to linear ((6/29)^3) and the slope of its linear part.
CIE_WHITE_D65 = (0.95047, 1.0, 1.08883)
CIE_RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
CIE_EPSILON = 0.008856
CIE_SLOPE = 7.787

#: OpenCV's float Lab -> sRGB set (modules/imgproc/src/color_lab.cpp), which the fast
#: full-resolution path (``lab_to_rgb_fast``) runs and the GPU postprocess reproduces: its D65
#: white, its XYZ -> linear sRGB matrix, and L* = ``OPENCV_KAPPA`` * Y below ``OPENCV_L_BREAK``.
OPENCV_WHITE_D65 = (0.950456, 1.0, 1.088754)
OPENCV_XYZ_TO_RGB = ((3.240479, -1.53715, -0.498535), (-0.969256, 1.875991, 0.041556),
                     (0.055648, -0.204043, 1.057311))
OPENCV_KAPPA = 903.3
OPENCV_L_BREAK = 8.0  # where the two parts of f meet in L*: CIE_EPSILON * OPENCV_KAPPA, as OpenCV rounds it

_WHITE_D65 = np.array(CIE_WHITE_D65, dtype=np.float64)
_RGB_TO_XYZ = np.array(CIE_RGB_TO_XYZ, dtype=np.float64)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_EPSILON = CIE_EPSILON
_KAPPA = CIE_SLOPE


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """sRGB's decoding curve on values in [0, 1] (the GPU path's per-channel tables use it too)."""
    return np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def _linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, None)
    return np.where(linear > 0.0031308, 1.055 * linear ** (1 / 2.4) - 0.055, linear * 12.92)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """float HxWx3 sRGB in [0, 1] -> float32 HxWx3 L*a*b* (L* in [0, 100]).

    Exact CIE formulas (OpenCV's float32 Lab was measured 0.58 units off skimage, too far for
    DESIGN §2's 1e-3), so this is for metrics, training and tests, not full-resolution hot paths.
    """
    xyz = srgb_to_linear(np.asarray(rgb, dtype=np.float64)) @ _RGB_TO_XYZ.T / _WHITE_D65
    f = np.where(xyz > _EPSILON, np.cbrt(xyz), _KAPPA * xyz + 16.0 / 116.0)
    lab = np.stack(
        [116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )
    return lab.astype(np.float32)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """float HxWx3 L*a*b* -> float32 HxWx3 sRGB in [0, 1], exact; out-of-gamut values clipped.

    f(Z) is clipped at 0 before inverting f, then RGB to [0, 1], exactly as skimage and kornia.
    """
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    fz = np.clip(fy - lab[..., 2] / 200.0, 0.0, None)
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fz], axis=-1)
    xyz = np.where(f > 0.2068966, f**3, (f - 16.0 / 116.0) / _KAPPA) * _WHITE_D65
    return np.clip(_linear_to_srgb(xyz @ _XYZ_TO_RGB.T), 0.0, 1.0).astype(np.float32)


def lab_to_rgb_fast(lab: np.ndarray) -> np.ndarray:
    """float32 HxWx3 L*a*b* -> float32 sRGB in [0, 1] through OpenCV, for full-resolution output.

    Measured on a 1280x1024 image with 2 threads: 6 ms against 90 ms (kornia) and 200 ms
    (skimage). OpenCV's gamma approximation leaves at most 1.3e-3 (a third of an 8-bit level)
    against lab_to_rgb; b* is first limited so that f(Z) >= 0, which matches lab_to_rgb's
    clipping of colors far out of gamut.
    """
    lightness_, a, b = cv2.split(np.ascontiguousarray(lab, dtype=np.float32))
    return lab_planes_to_rgb(lightness_, a, b)


def lab_planes_to_rgb(
    lightness_: np.ndarray, a: np.ndarray, b: np.ndarray, *, clip: bool = True, scratch: Scratch = FRESH
) -> np.ndarray:
    """Contiguous float32 HxW planes (``b`` is overwritten) -> float32 sRGB HxWx3 in [0, 1].

    The b* limit runs on a contiguous plane rather than a strided channel (measured 27 -> 19 ms
    per 1.3 MP image). ``clip=False`` leaves values slightly outside [0, 1] for a caller that
    saturates anyway (``runtime.render.quantize``); ``scratch`` supplies reused work arrays
    (see ``facecolor.scratch``), the result included.
    """
    shape = lightness_.shape
    limit = scratch.array("b_limit", shape, np.float32)
    np.multiply(lightness_, 200.0 / 116.0, out=limit)
    np.add(limit, 16.0 * 200.0 / 116.0, out=limit)
    np.minimum(b, limit, out=b)
    lab = cv2.merge([lightness_, a, b], dst=scratch.array("lab", (*shape, 3), np.float32))
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB, dst=scratch.array("rgb", (*shape, 3), np.float32))
    return np.clip(rgb, 0.0, 1.0, out=rgb) if clip else rgb


@functools.lru_cache(maxsize=4)
def level_tables(levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per gray level: linear-light value and L* of (g, g, g); exact and far cheaper per pixel
    (``lightness`` reads them, and so do the runtime's 8-bit LUT and the GPU path's gray table)."""
    ramp = np.arange(levels, dtype=np.float64) / (levels - 1)
    linear = srgb_to_linear(ramp)
    return linear.astype(np.float32), _lightness_from_luminance(linear).astype(np.float32)


def _lightness_from_luminance(y: np.ndarray) -> np.ndarray:
    f = np.where(y > _EPSILON, np.cbrt(y), _KAPPA * y + 16.0 / 116.0)
    return 116.0 * f - 16.0


def lightness(image: np.ndarray) -> np.ndarray:
    """L* (float32 HxW, [0, 100]) of any 8/16-bit or float image, gray or color.

    Color and toned (sepia) inputs are reduced to their L*, as DESIGN §2 asks: only the
    luminance Y matters, so no full Lab conversion is done.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.dtype in (np.uint8, np.uint16):
        linear_table, lightness_table = level_tables(256 if image.dtype == np.uint8 else 65536)
        if image.ndim == 2:
            return lightness_table[image]
        y = linear_table[image] @ _RGB_TO_XYZ[1].astype(np.float32)
    else:
        y = srgb_to_linear(to_unit_rgb(image).astype(np.float64)) @ _RGB_TO_XYZ[1]
    return _lightness_from_luminance(y).astype(np.float32)


def join_lab(lightness_: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Full-resolution L* (HxW) and a*b* (HxWx2) -> float32 sRGB in [0, 1] (HxWx3), fast path.

    This is the runtime's output step: the original L* joined with the predicted a*b*.
    """
    a, b = cv2.split(np.ascontiguousarray(ab, dtype=np.float32))
    return lab_planes_to_rgb(np.ascontiguousarray(lightness_, dtype=np.float32), a, b)


def to_dtype(rgb: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float sRGB in [0, 1] -> uint8 or uint16 with rounding (the inverse of to_unit_rgb).

    The product is taken in float64, where ``float32 * 255`` is exact, so a value just above a
    half level rounds up instead of being rounded onto the half first (as OpenCV does too).
    """
    peak = 65535.0 if np.dtype(dtype) == np.uint16 else 255.0
    return np.clip(np.rint(np.asarray(rgb, dtype=np.float64) * peak), 0, peak).astype(dtype)


# --------------------------------------------------------------------------- torch


def rgb_to_lab_torch(rgb: torch.Tensor) -> torch.Tensor:
    """float Bx3xHxW sRGB in [0, 1], any device -> Bx3xHxW L*a*b* on the same device."""
    import kornia.color

    return kornia.color.rgb_to_lab(rgb.float())


def lab_to_rgb_torch(lab: torch.Tensor) -> torch.Tensor:
    """float Bx3xHxW L*a*b*, any device -> Bx3xHxW sRGB in [0, 1] (clipped)."""
    import kornia.color

    return kornia.color.lab_to_rgb(lab.float(), clip=True)


def split_lab_torch(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sRGB batch in [0, 1] -> (network input L in [-1, 1], Bx1xHxW; target ab/110, Bx2xHxW)."""
    lab = rgb_to_lab_torch(rgb)
    return normalize_l(lab[:, :1]), normalize_ab(lab[:, 1:])


def join_lab_torch(l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
    """Network input and output -> sRGB batch in [0, 1] (Bx3xHxW float32)."""
    lab = torch.cat([denormalize_l(l_norm.float()), denormalize_ab(ab_norm.float())], dim=1)
    return lab_to_rgb_torch(lab)

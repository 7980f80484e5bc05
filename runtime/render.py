"""CPU math between the full-resolution image and the network's square render (DESIGN §2).

    pixels --full_lightness--> L* (HxW) --render_lightness--> L/50-1 (SxS) --network--> ab/110 (2xSxS)
    ab/110 --colorize_image(upsample_ab_planes, then with the full L*)--> sRGB uint8/uint16 (HxWx3)

Only the render goes through the network; the output keeps the input's own full-resolution
L*, so sharpness is never lost. Full-size work is OpenCV/numpy on float32 in host memory.
"""

from __future__ import annotations


import cv2
import numpy as np

from facecolor import color
from facecolor.runtime.geometry import Geometry
from facecolor.scratch import FRESH, Scratch


def gray_levels(bits: int) -> np.ndarray:
    """float32 ``[2**bits]``: L* of sRGB (g, g, g) for every level g: ``color.lightness``'s own
    cached table (the GPU path's too)."""
    return color.level_tables(1 << bits)[1]


def gray_view(pixels: np.ndarray) -> np.ndarray:
    """HxWx3 pixels with R == G == B (common for scans) as the HxW view of one channel, so that
    they are read as gray (the exact table; a third of the GPU path's upload); others as given."""
    equal = pixels.ndim == 3 and all(np.array_equal(pixels[:, :, 0], pixels[:, :, c]) for c in (1, 2))
    return pixels[:, :, 0] if equal else pixels


def full_lightness(pixels: np.ndarray) -> np.ndarray:
    """uint8/uint16 HxW or HxWx3 RGB (any strides) -> L* float32 HxW in [0, 100], contiguous.

    8-bit gray goes through ``cv2.LUT`` on ``color.lightness``'s own 256 values: the same result,
    4x faster than numpy's gather.
    """
    pixels = gray_view(pixels)
    if pixels.ndim == 2 and pixels.dtype == np.uint8:
        return cv2.LUT(np.ascontiguousarray(pixels), gray_levels(8))
    return np.ascontiguousarray(color.lightness(pixels), dtype=np.float32)


def render_lightness(lightness: np.ndarray, geometry: Geometry) -> np.ndarray:
    """L* float32 HxW [0, 100] -> network input float32 SxS in [-1, 1] (L/50-1), edge-padded."""
    g = geometry
    interpolation = cv2.INTER_AREA if g.shrinks else cv2.INTER_LINEAR
    small = cv2.resize(lightness, (g.inner_width, g.inner_height), interpolation=interpolation)
    padded = cv2.copyMakeBorder(small, *g.padding, cv2.BORDER_REPLICATE)
    return color.normalize_l(padded).astype(np.float32, copy=False)


def upsample_ab_planes(
    ab_norm: np.ndarray, geometry: Geometry, scratch: Scratch = FRESH
) -> tuple[np.ndarray, np.ndarray]:
    """Network output float32 2xSxS (ab/110) -> a* and b* as two clamped float32 HxW planes.

    The padding is cropped off first, so no border color leaks in. Clamping the small crop is
    the same as clamping after a bilinear upsample, which cannot leave the range of its
    inputs, and 1000x cheaper. Separate planes are what the Lab->sRGB step takes, so no
    full-size split is spent on them.
    """
    g = geometry
    y0, y1, x0, x1 = g.crop
    crop = color.denormalize_ab(ab_norm[:, y0:y1, x0:x1]).astype(np.float32)
    np.clip(crop, -color.AB_SCALE, color.AB_SCALE, out=crop)
    interpolation = cv2.INTER_LINEAR if g.shrinks else cv2.INTER_AREA
    size = (g.width, g.height)
    return tuple(
        cv2.resize(plane, size, dst=scratch.array(name, (g.height, g.width), np.float32), interpolation=interpolation)
        for name, plane in (("a", crop[0]), ("b", crop[1]))
    )


def quantize(rgb: np.ndarray, dtype: np.dtype, scratch: Scratch = FRESH) -> np.ndarray:
    """float32 sRGB HxWx3 -> uint8 or uint16, rounded half to even and saturated (values
    outside [0, 1] included); the same result as ``color.to_dtype``, in one OpenCV pass."""
    dtype = np.dtype(dtype)
    rgb = np.ascontiguousarray(rgb, dtype=np.float32)
    out = scratch.array("quantized", rgb.shape, dtype)
    peak = float(np.iinfo(dtype).max)
    # One channel in OpenCV's eyes, so the scalar multiplies every value, not only channel 0.
    cv2.multiply(rgb.reshape(rgb.shape[0], -1), peak, dst=out.reshape(out.shape[0], -1),
                 dtype=cv2.CV_8U if dtype == np.uint8 else cv2.CV_16U)
    return out


def colorize_image(
    lightness: np.ndarray, ab_norm: np.ndarray, geometry: Geometry, dtype: np.dtype = np.uint8,
    scratch: Scratch = FRESH,
) -> np.ndarray:
    """Full-res L* float32 HxW and the network's 2xSxS output -> sRGB HxWx3 of ``dtype``; with a
    ``scratch``, the result is one of its arrays."""
    a, b = upsample_ab_planes(ab_norm, geometry, scratch)
    lightness = np.ascontiguousarray(lightness, dtype=np.float32)
    rgb = color.lab_planes_to_rgb(lightness, a, b, clip=False, scratch=scratch)  # quantize saturates
    return quantize(rgb, dtype, scratch)

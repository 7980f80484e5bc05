"""GPU preprocessing: decoded pixels -> full-resolution L* and the network's square render.

L* is the CPU path's (DESIGN §2): gray levels read it from a table made by
``color.lightness`` itself, colour pixels go through per-channel sRGB -> Y tables and
``116 f(Y) - 16`` (within 1e-3). OpenCV's resizes (INTER_AREA shrinking, INTER_LINEAR
enlarging) are separable linear maps, so ``Rh @ L @ Rw^T`` resizes a group of same-size images
in one batched GEMM, exactly (in true float32, torch's default: TF32 matmuls would cost about
1e-3 of L/50-1). Every function takes tensors on any device: the tests run them on the CPU.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from facecolor.color import CIE_EPSILON, CIE_RGB_TO_XYZ, CIE_SLOPE, normalize_l
from facecolor.color import lightness as cpu_lightness
from facecolor.runtime.geometry import Geometry, fit_geometry

#: sRGB (D65) -> Y weights, the middle row of the RGB->XYZ matrix of ``facecolor.color``.
Y_WEIGHTS = CIE_RGB_TO_XYZ[1]


@dataclass
class GpuImage:
    """One decoded upright image: ``pixels`` ``[1|3, H, W]`` on the device, uint8 for 8-bit
    images, int32 holding 0..65535 for 16-bit ones (torch's uint16 has too few ops on CUDA)."""

    pixels: torch.Tensor
    bits: int = 8


@dataclass
class Group:
    """Images of one size and kind: their ``indices`` in the batch and their ``lightness``, float32
    ``[B, H, W]`` L* in [0, 100] on the device, kept for the postprocess to join with ab."""

    indices: list[int]
    geometry: Geometry
    bits: int
    lightness: torch.Tensor


@dataclass
class PreparedBatch:
    """``l_norm``: the backend's input, float32 ``[N, 1, S, S]`` in ``[-1, 1]`` (L/50 - 1),
    contiguous, on the device; ``groups`` cover indices 0..N-1 exactly once."""

    l_norm: torch.Tensor
    groups: list[Group]


def batch_rows(indices: list[int], device: torch.device) -> slice | torch.Tensor:
    """``indices`` as an index along the batch: a slice (a view, no host-to-device copy) when
    they are one run, as in nearly every batch."""
    first = indices[0]
    if indices == list(range(first, first + len(indices))):
        return slice(first, first + len(indices))
    return torch.tensor(indices, device=device)


# --------------------------------------------------------------------------- constants


@functools.lru_cache(maxsize=2)
def gray_table(bits: int) -> torch.Tensor:
    """float32 ``[2**bits]``: L* of sRGB (g, g, g) for every level g."""
    ramp = np.arange(1 << bits, dtype=np.uint8 if bits == 8 else np.uint16)[None]
    return torch.from_numpy(cpu_lightness(ramp)[0].astype(np.float32))


@functools.lru_cache(maxsize=2)
def rgb_tables(bits: int) -> torch.Tensor:
    """float32 ``[3, 2**bits]``: each channel's Y weight times the linear sRGB of every level,
    decoded in float64."""
    unit = np.arange(1 << bits, dtype=np.float64) / ((1 << bits) - 1)
    linear = np.where(unit <= 0.04045, unit / 12.92, ((unit + 0.055) / 1.055) ** 2.4)
    return torch.from_numpy(np.outer(Y_WEIGHTS, linear).astype(np.float32))


@functools.lru_cache(maxsize=256)
def resize_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """float32 ``[n_out, n_in]``: the linear map OpenCV's resize applies along one axis.

    Shrinking: each output pixel averages the input interval ``[d s, (d+1) s)`` (s = n_in /
    n_out), weighted by overlap, which is INTER_AREA exactly (its fast integer-scale path gives
    the same averages). Enlarging or equal: bilinear with half-pixel centres and clamped edges,
    which is INTER_LINEAR (and ``F.interpolate(mode="bilinear", align_corners=False)``).
    """
    matrix = np.zeros((n_out, n_in), dtype=np.float64)
    scale = n_in / n_out
    if n_in > n_out:
        for d in range(n_out):
            start, stop = d * scale, min((d + 1) * scale, n_in)
            for s in range(int(np.floor(start)), int(np.ceil(stop))):
                matrix[d, s] = min(stop, s + 1) - max(start, s)
        matrix /= matrix.sum(axis=1, keepdims=True)
    else:
        for d in range(n_out):
            src = max((d + 0.5) * scale - 0.5, 0.0)
            s0 = min(int(np.floor(src)), n_in - 1)
            s1 = min(s0 + 1, n_in - 1)
            frac = src - s0
            matrix[d, s0] += 1.0 - frac
            matrix[d, s1] += frac
    return torch.from_numpy(matrix.astype(np.float32))


@functools.lru_cache(maxsize=512)
def on_device(device: torch.device, build: Callable[..., torch.Tensor], *args: int) -> torch.Tensor:
    """``build(*args)`` (one of the CPU tables above) on ``device``, uploaded once."""
    return build(*args).to(device)


# --------------------------------------------------------------------------- the math


def lightness_from_pixels(pixels: torch.Tensor, bits: int) -> torch.Tensor:
    """L* of a stack of images: ``pixels`` ``[B, 1|3, H, W]``, uint8 or int32 (see GpuImage), any
    device -> float32 ``[B, H, W]`` in ``[0, 100]``, contiguous, on the same device."""
    if pixels.ndim != 4 or pixels.shape[1] not in (1, 3):
        raise ValueError(f"expected [B, 1|3, H, W] pixels, got {tuple(pixels.shape)}")
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, not {bits}")
    index = pixels.to(torch.int32)
    if pixels.shape[1] == 1:
        return on_device(pixels.device, gray_table, bits)[index[:, 0]]
    tables = on_device(pixels.device, rgb_tables, bits)
    y = tables[0][index[:, 0]]
    y += tables[1][index[:, 1]]
    y += tables[2][index[:, 2]]
    f = torch.where(y > CIE_EPSILON, torch.pow(y, 1.0 / 3.0), CIE_SLOPE * y + 16.0 / 116.0)
    return 116.0 * f - 16.0


def render(lightness: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """Full-resolution L* (float32 ``[B, H, W]`` in ``[0, 100]``, geometry's size, any device) ->
    the network input: float32 ``[B, 1, S, S]`` in ``[-1, 1]`` (L/50 - 1), contiguous, same
    device; resized into the inner box, edge-padded to the square (``geometry.padding``)."""
    rows = on_device(lightness.device, resize_matrix, geometry.height, geometry.inner_height)  # [h, H]
    cols = on_device(lightness.device, resize_matrix, geometry.width, geometry.inner_width)  # [w, W]
    inner = normalize_l(torch.matmul(torch.matmul(rows, lightness), cols.T)).unsqueeze(1)  # [B, 1, h, w]
    top, bottom, left, right = geometry.padding
    if top or bottom or left or right:
        inner = F.pad(inner, (left, right, top, bottom), mode="replicate")
    return inner.contiguous()


def preprocess(images: Sequence[GpuImage], render_size: int) -> PreparedBatch:
    """One batch, grouped by size and kind, on the images' device and the current stream."""
    if not images:
        raise ValueError("an empty batch has nothing to preprocess")
    device = images[0].pixels.device
    l_norm = torch.empty((len(images), 1, render_size, render_size), dtype=torch.float32, device=device)
    kinds: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        kinds.setdefault((*image.pixels.shape, image.bits), []).append(index)
    groups = []
    for (_, height, width, bits), indices in kinds.items():
        geometry = fit_geometry(height, width, render_size)
        pixels = [images[i].pixels for i in indices]
        stack = torch.stack(pixels) if len(pixels) > 1 else pixels[0].unsqueeze(0)  # one image: a view
        lightness = lightness_from_pixels(stack, bits)
        del stack
        l_norm[batch_rows(indices, device)] = render(lightness, geometry)
        groups.append(Group(indices, geometry, bits, lightness))
    return PreparedBatch(l_norm, groups)

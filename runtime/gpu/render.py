"""The GPU path's LAB math on both sides of the network, as ``runtime.render`` is the CPU path's,
and to its results. Every function takes tensors on any device: the tests run them on the CPU.

Preprocess: L* is the CPU path's (DESIGN §2): gray levels read it from a table made by
``color.lightness`` itself, colour pixels go through per-channel sRGB -> Y tables and
``116 f(Y) - 16`` (within 1e-3). OpenCV's resizes (INTER_AREA shrinking, INTER_LINEAR
enlarging) are separable linear maps, so ``Rh @ L @ Rw^T`` resizes a group of same-size images
in one batched GEMM, exactly (in true float32, torch's default: TF32 would cost 1e-3 of L/50-1).

Postprocess: ab is cropped, clamped and resized as the CPU path does it, joined with the image's
own L*, and converted with OpenCV's float Lab -> sRGB formula and constants as
``color.join_lab`` runs it (f(Z) >= 0 far out of gamut; the exact transfer curve where OpenCV
interpolates a table). For images larger than the render (all real photos) that is one Triton
kernel on CUDA: 4 bytes of L* and a few cached ab taps read per pixel, 3 (or 12) written, where
eager torch makes about twenty-five full-resolution float32 passes (notes/tensorrt-onnx.md
measured them at more than half the codec's budget). What the kernel does not take (images no
larger than the render, CUDA without Triton, the CPU in tests) goes through the CPU path's own
``colorize_image`` on host copies, which is also the reference the kernel is tested against
(through Triton's interpreter): one definition of the output, not a torch twin of it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from facecolor.color import (
    AB_SCALE, CIE_EPSILON, CIE_RGB_TO_XYZ, CIE_SLOPE, OPENCV_KAPPA, OPENCV_L_BREAK, OPENCV_WHITE_D65,
    OPENCV_XYZ_TO_RGB, normalize_l, srgb_to_linear,
)
from facecolor.errors import Unavailable
from facecolor.runtime.geometry import Geometry, fit_geometry
from facecolor.runtime.render import colorize_image, gray_levels

# Triton is imported at module level so that the kernel's globals (``tl``) resolve when Triton
# compiles it; without Triton the module still imports and the host path is used.
try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - Triton ships with torch's CUDA wheels
    triton = tl = None


@dataclass
class GpuImage:
    """One decoded upright image: ``pixels`` ``[1|3, H, W]`` on the device, uint8 for 8-bit
    images, int32 holding 0..65535 for 16-bit ones (torch's uint16 has too few ops on CUDA)."""

    pixels: torch.Tensor
    bits: int = 8


@dataclass
class Group:
    """Images of one size and kind: their ``indices`` in the batch and their ``lightness``, float32
    ``[B, H, W]`` L* in [0, 100], contiguous, on the device, kept for the postprocess to join with
    ab; ``rows``, the indices as made once for both sides (``batch_rows``)."""

    indices: list[int]
    geometry: Geometry
    bits: int
    lightness: torch.Tensor
    rows: slice | torch.Tensor


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


def rgb_tables(bits: int) -> np.ndarray:
    """float32 ``[3, 2**bits]``: each channel's Y weight (the middle row of ``facecolor.color``'s
    RGB->XYZ matrix) times the linear sRGB of every level, decoded in float64. (Built once per
    device: ``on_device`` caches the upload, as for ``resize_matrix``.)"""
    unit = np.arange(1 << bits, dtype=np.float64) / ((1 << bits) - 1)
    return np.outer(CIE_RGB_TO_XYZ[1], srgb_to_linear(unit)).astype(np.float32)


def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """float32 ``[n_out, n_in]``: the linear map OpenCV's resize applies along one axis.

    Shrinking: each output pixel averages the input interval ``[d s, (d+1) s)`` (s = n_in /
    n_out), weighted by overlap, which is INTER_AREA exactly (its fast integer-scale path gives
    the same averages). Enlarging or equal: bilinear with half-pixel centres and clamped edges,
    which is INTER_LINEAR (and ``F.interpolate(mode="bilinear", align_corners=False)``).
    """
    scale = n_in / n_out
    inputs = np.arange(n_in)  # input pixel s covers [s, s + 1)
    if n_in > n_out:
        edges = np.arange(n_out + 1) * scale  # output pixel d covers [edges[d], edges[d + 1])
        overlap = np.minimum(edges[1:, None], inputs + 1) - np.maximum(edges[:-1, None], inputs)
        matrix = np.maximum(overlap, 0.0)
        matrix /= matrix.sum(axis=1, keepdims=True)
    else:
        src = np.maximum((np.arange(n_out) + 0.5) * scale - 0.5, 0.0)[:, None]
        s0 = np.minimum(np.floor(src), n_in - 1)
        frac = src - s0
        matrix = (1.0 - frac) * (inputs == s0) + frac * (inputs == np.minimum(s0 + 1, n_in - 1))
    return matrix.astype(np.float32)


@functools.lru_cache(maxsize=512)
def on_device(device: torch.device, build: Callable[..., np.ndarray], *args: int) -> torch.Tensor:
    """``build(*args)`` (one of the host tables above, or ``gray_levels``) on ``device``, uploaded once."""
    return torch.from_numpy(build(*args)).to(device)


# --------------------------------------------------------------------------- preprocess


def lightness_from_pixels(pixels: torch.Tensor, bits: int) -> torch.Tensor:
    """Stacked ``GpuImage.pixels`` ``[B, 1|3, H, W]``, any device -> their ``Group.lightness``."""
    if pixels.ndim != 4 or pixels.shape[1] not in (1, 3):
        raise ValueError(f"expected [B, 1|3, H, W] pixels, got {tuple(pixels.shape)}")
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, not {bits}")
    index = pixels.to(torch.int32)
    if pixels.shape[1] == 1:
        return on_device(pixels.device, gray_levels, bits)[index[:, 0]]
    tables = on_device(pixels.device, rgb_tables, bits)
    y = tables[0][index[:, 0]]
    y += tables[1][index[:, 1]]
    y += tables[2][index[:, 2]]
    f = torch.where(y > CIE_EPSILON, torch.pow(y, 1.0 / 3.0), CIE_SLOPE * y + 16.0 / 116.0)
    return 116.0 * f - 16.0


def render(lightness: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """A group's ``Group.lightness`` -> its rows of ``PreparedBatch.l_norm``, same device: resized
    into the inner box, edge-padded to the square (``geometry.padding``)."""
    rows = on_device(lightness.device, resize_matrix, geometry.height, geometry.inner_height)  # [h, H]
    cols = on_device(lightness.device, resize_matrix, geometry.width, geometry.inner_width)  # [w, W]
    inner = normalize_l(torch.matmul(torch.matmul(rows, lightness), cols.T)).unsqueeze(1)  # [B, 1, h, w]
    top, bottom, left, right = geometry.padding
    return F.pad(inner, (left, right, top, bottom), mode="replicate")  # contiguous, padded or not


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
        pixels = [images[i].pixels for i in indices]  # stacked for the call only; one image as a view
        lightness = lightness_from_pixels(torch.stack(pixels) if len(pixels) > 1 else pixels[0].unsqueeze(0), bits)
        rows = batch_rows(indices, device)
        l_norm[rows] = render(lightness, geometry)
        groups.append(Group(indices, geometry, bits, lightness, rows))
    return PreparedBatch(l_norm, groups)


# --------------------------------------------------------------------------- postprocess in triton


if triton is not None:

    @triton.jit
    def _ab_at(plane, i00, i01, i10, i11, wy, wx, mask, ab_scale):
        """One ab/110 plane at the four bilinear taps of each pixel -> clamped CIELAB units."""
        v00 = tl.load(plane + i00, mask=mask, other=0.0)
        v01 = tl.load(plane + i01, mask=mask, other=0.0)
        v10 = tl.load(plane + i10, mask=mask, other=0.0)
        v11 = tl.load(plane + i11, mask=mask, other=0.0)
        value = (1.0 - wy) * ((1.0 - wx) * v00 + wx * v01) + wy * ((1.0 - wx) * v10 + wx * v11)
        return tl.minimum(tl.maximum(value * ab_scale, -ab_scale), ab_scale)

    @triton.jit
    def _colorize_kernel(
        light_ptr,  # float32 [B, H, W], contiguous
        ab_ptr,  # float32 [B, 2, S, S], contiguous
        out_ptr,  # uint8 or int32 [B, 3, H, W], contiguous
        height, width, size, top, left, inner_h, inner_w, scale_y, scale_x, peak,
        ab_scale, white_x, white_z, kappa, slope, l_break,  # facecolor.color's, passed in
        m00, m01, m02, m10, m11, m12, m20, m21, m22,  # OPENCV_XYZ_TO_RGB, row by row
        BLOCK: tl.constexpr,
    ):
        image = tl.program_id(1).to(tl.int64)
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        npix = height * width
        mask = offs < npix
        yy = offs // width
        xx = offs - yy * width
        light = tl.load(light_ptr + image * npix + offs, mask=mask, other=0.0)

        # Bilinear taps in the crop, as torch's upsample_bilinear2d (align_corners=False).
        sy = tl.maximum((yy.to(tl.float32) + 0.5) * scale_y - 0.5, 0.0)
        sx = tl.maximum((xx.to(tl.float32) + 0.5) * scale_x - 0.5, 0.0)
        y0 = sy.to(tl.int32)
        x0 = sx.to(tl.int32)
        wy = sy - y0.to(tl.float32)
        wx = sx - x0.to(tl.float32)
        y1 = tl.minimum(y0 + 1, inner_h - 1)
        x1 = tl.minimum(x0 + 1, inner_w - 1)
        plane = size * size
        a_plane = ab_ptr + image * 2 * plane
        i00 = (top + y0) * size + left + x0
        i01 = (top + y0) * size + left + x1
        i10 = (top + y1) * size + left + x0
        i11 = (top + y1) * size + left + x1
        a = _ab_at(a_plane, i00, i01, i10, i11, wy, wx, mask, ab_scale)
        b = _ab_at(a_plane + plane, i00, i01, i10, i11, wy, wx, mask, ab_scale)

        # CIELAB -> XYZ with OpenCV's constants.
        low = light <= l_break
        fy = tl.where(low, slope * (light / kappa) + 16.0 / 116.0, (light + 16.0) / 116.0)
        y = tl.where(low, light / kappa, fy * fy * fy)
        fx = fy + a / 500.0
        fz = tl.maximum(fy - b / 200.0, 0.0)
        x = tl.where(fx <= 6.0 / 29.0, (fx - 16.0 / 116.0) / slope, fx * fx * fx) * white_x
        z = tl.where(fz <= 6.0 / 29.0, (fz - 16.0 / 116.0) / slope, fz * fz * fz) * white_z

        out = out_ptr + image * 3 * npix + offs
        for channel in tl.static_range(3):
            if channel == 0:
                linear = m00 * x + m01 * y + m02 * z
            elif channel == 1:
                linear = m10 * x + m11 * y + m12 * z
            else:
                linear = m20 * x + m21 * y + m22 * z
            linear = tl.minimum(tl.maximum(linear, 0.0), 1.0)
            curve = 1.055 * tl.exp2(tl.log2(tl.maximum(linear, 1e-12)) * (1.0 / 2.4)) - 0.055
            encoded = tl.where(linear <= 0.0031308, 12.92 * linear, curve)
            level = tl.minimum(tl.maximum(tl.floor(encoded * peak + 0.5), 0.0), peak)
            tl.store(out + channel * npix, level.to(out_ptr.dtype.element_ty), mask=mask)


def _colorize_fused(lightness: torch.Tensor, ab_norm: torch.Tensor, geometry: Geometry, bits: int) -> torch.Tensor:
    """One group through the kernel, on the current stream; only for ``geometry.shrinks`` (the
    kernel samples ab bilinearly). Tensors on one CUDA device, or the CPU under
    ``TRITON_INTERPRET=1``."""
    count, height, width = (int(n) for n in lightness.shape)
    peak, dtype = (255.0, torch.uint8) if bits == 8 else (65535.0, torch.int32)
    out = torch.empty((count, 3, height, width), dtype=dtype, device=lightness.device)
    block = 1024
    _colorize_kernel[(triton.cdiv(height * width, block), count)](
        lightness.contiguous(), ab_norm.contiguous(), out,
        height, width, geometry.render_size, geometry.top, geometry.left, geometry.inner_height, geometry.inner_width,
        geometry.inner_height / height, geometry.inner_width / width, peak,
        AB_SCALE, OPENCV_WHITE_D65[0], OPENCV_WHITE_D65[2], OPENCV_KAPPA, CIE_SLOPE, OPENCV_L_BREAK,
        *(float(m) for row in OPENCV_XYZ_TO_RGB for m in row),
        BLOCK=block,
    )
    return out


def _colorize_on_host(lightness: torch.Tensor, ab_norm: torch.Tensor, geometry: Geometry, bits: int) -> torch.Tensor:
    """One group through the CPU path's ``colorize_image`` on host copies, returned to the device
    in the kernel's layout and dtypes."""
    dtype = np.uint8 if bits == 8 else np.uint16
    pairs = zip(lightness.cpu().numpy(), ab_norm.cpu().numpy())
    rgb = np.stack([colorize_image(light, ab, geometry, dtype) for light, ab in pairs])  # [B, H, W, 3]
    if bits == 16:
        rgb = rgb.astype(np.int32)
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).to(lightness.device).contiguous()


# --------------------------------------------------------------------------- postprocess


def postprocess(
    batch: PreparedBatch, ab_norm: torch.Tensor, *, use_triton: bool | None = None, max_bits: int = 16
) -> list[torch.Tensor]:
    """``ab_norm``: the backend's float32 ``[N, 2, S, S]`` ab/110 for ``batch.l_norm``, on its
    device. Returns N contiguous ``[3, H, W]`` tensors on the device, in batch order: uint8 for
    8-bit inputs (or ``max_bits=8``), int32 in [0, 65535] for 16-bit ones. ``use_triton``: None
    runs the kernel on CUDA when Triton imports, True requires it, False never runs it."""
    if use_triton and triton is None:
        raise Unavailable("use_triton=True, but triton cannot be imported: install torch's CUDA wheel or pass "
                          "use_triton=None")
    if max_bits not in (8, 16):
        raise ValueError(f"output bits must be 8 or 16, not {max_bits}")
    count = len(batch.l_norm)
    if ab_norm.shape[0] != count or ab_norm.shape[1] != 2:
        raise ValueError(f"ab has shape {tuple(ab_norm.shape)}, expected [{count}, 2, S, S]")
    ab_norm = ab_norm.float().contiguous()
    fused = ab_norm.is_cuda and triton is not None if use_triton is None else use_triton
    results: list[torch.Tensor | None] = [None] * count
    for group in batch.groups:
        colorize = _colorize_fused if fused and group.geometry.shrinks else _colorize_on_host
        ab = ab_norm[group.rows]
        stacked = colorize(group.lightness, ab, group.geometry, min(group.bits, max_bits))
        for position, index in enumerate(group.indices):
            results[index] = stacked[position]
    return results  # type: ignore[return-value]

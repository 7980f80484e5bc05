"""GPU preprocessing: decoded pixels -> full-resolution L* and the network's square render.

For a batch of decoded images (any mix of sizes, gray or colour, 8 or 16 bit) this computes,
on the images' device:

1. **L*** at full resolution, float32 ``[H, W]`` in ``[0, 100]``:
   - gray: a lookup table of 256 or 65536 entries built from ``facecolor.color.lightness`` on
     the CPU, so a gray level g gives exactly the L* of sRGB (g, g, g) the CPU path computes
     (DESIGN §2), never nvJPEG's luma;
   - colour: sRGB -> linear through per-channel tables (pre-multiplied by the D65 Y weights),
     Y by summing them, then ``L = 116 f(Y) - 16`` with the CIE f of ``facecolor.color``;
     within 1e-3 of ``facecolor.color.lightness``.
2. **The render**: the long side resized to ``render_size`` as ``runtime/geometry.py`` says:
   exact area averaging when shrinking (what OpenCV's ``INTER_AREA`` computes), bilinear with
   half-pixel centres when enlarging (``INTER_LINEAR``). Both are separable linear maps, done
   as two matrix products ``Rh @ L @ Rw^T``, so a whole group of same-size images is resized
   by one batched GEMM with no per-image Python loop and no approximation (in true float32:
   torch's default; a process that enables TF32 matmuls gets about 1e-3 of L/50-1 error).
   Then edge padding to the square and ``L/50 - 1``.

Images are grouped by (size, channels, bits): each group is one stack of tensors, processed
together. The full-resolution L* of each group is kept (``Group.lightness``) for the
postprocess, which joins it with the predicted ab; the decoded pixels are no longer needed
once this returns, so their memory goes back to the allocator.

Every function takes tensors on any device; the tests run them on the CPU against the CPU path.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
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
    """One decoded image on the device, EXIF orientation already applied.

    ``pixels``: ``[C, H, W]`` with C = 1 (gray) or 3 (RGB, alpha dropped); dtype uint8 for
    8-bit images (0..255) or int32 holding 0..65535 for 16-bit ones (torch's uint16 supports too
    few ops on CUDA); device: the GPU (or the CPU in tests).
    """

    pixels: torch.Tensor
    bits: int = 8

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[2])

    @property
    def group_key(self) -> tuple[int, int, int, int]:
        return self.height, self.width, self.channels, self.bits


@dataclass
class Group:
    """Images of one size and kind inside a batch.

    ``indices``: their positions in the batch (and in ``PreparedBatch.l_norm``).
    ``lightness``: float32 ``[B, H, W]`` L* in ``[0, 100]``, contiguous, on the device.
    """

    indices: list[int]
    geometry: Geometry
    bits: int
    lightness: torch.Tensor


@dataclass
class PreparedBatch:
    """What the backend and the postprocess need from one batch.

    ``l_norm``: float32 ``[N, 1, S, S]`` in ``[-1, 1]`` (``L/50 - 1``), contiguous, on the
    device; the backend's input. ``groups`` cover indices 0..N-1 exactly once.
    """

    l_norm: torch.Tensor
    groups: list[Group]

    def __len__(self) -> int:
        return int(self.l_norm.shape[0])


# --------------------------------------------------------------------------- lookup tables


@functools.lru_cache(maxsize=2)
def _gray_table_cpu(bits: int) -> torch.Tensor:
    levels = 1 << bits
    dtype = np.uint8 if bits == 8 else np.uint16
    ramp = np.arange(levels, dtype=dtype).reshape(1, levels)
    return torch.from_numpy(cpu_lightness(ramp).reshape(levels).astype(np.float32))


@functools.lru_cache(maxsize=2)
def _rgb_tables_cpu(bits: int) -> torch.Tensor:
    """``[3, levels]`` float32: weight_c * linear(v / peak), the sRGB decoding in float64."""
    levels = 1 << bits
    unit = np.arange(levels, dtype=np.float64) / (levels - 1)
    linear = np.where(unit <= 0.04045, unit / 12.92, ((unit + 0.055) / 1.055) ** 2.4)
    return torch.from_numpy(np.stack([w * linear for w in Y_WEIGHTS]).astype(np.float32))


class DeviceConstants:
    """The lookup tables and resize matrices of one device, uploaded once and owned here.

    A GpuPreprocessor holds one; ``clear()`` drops them all (the one place they are freed).
    Functions below build a temporary one when none is passed (tests, one-off calls).
    """

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self._tables: dict[tuple[str, int], torch.Tensor] = {}
        self._matrices: dict[tuple[int, int], torch.Tensor] = {}

    def gray(self, bits: int) -> torch.Tensor:
        """float32 ``[2**bits]``: L* of sRGB (g, g, g) for every level g, on the device."""
        if bits not in (8, 16):
            raise ValueError(f"bits must be 8 or 16, not {bits}")
        key = ("gray", bits)
        if key not in self._tables:
            self._tables[key] = _gray_table_cpu(bits).to(self.device)
        return self._tables[key]

    def rgb(self, bits: int) -> torch.Tensor:
        """float32 ``[3, 2**bits]``: Y weight times linear sRGB of every level, per channel."""
        if bits not in (8, 16):
            raise ValueError(f"bits must be 8 or 16, not {bits}")
        key = ("rgb", bits)
        if key not in self._tables:
            self._tables[key] = _rgb_tables_cpu(bits).to(self.device)
        return self._tables[key]

    def resize(self, n_in: int, n_out: int) -> torch.Tensor:
        """float32 ``[n_out, n_in]`` resize map (see ``resize_matrix``) on the device."""
        key = (n_in, n_out)
        matrix = self._matrices.get(key)
        if matrix is None:
            if len(self._matrices) >= 512:  # a run over thousands of distinct sizes
                self._matrices.clear()
            matrix = self._matrices[key] = resize_matrix(n_in, n_out).to(self.device)
        return matrix

    def clear(self) -> None:
        self._tables.clear()
        self._matrices.clear()


def lightness_from_pixels(
    pixels: torch.Tensor, bits: int, constants: DeviceConstants | None = None
) -> torch.Tensor:
    """L* of a stack of images.

    ``pixels``: ``[B, C, H, W]``, C = 1 or 3, uint8 or int32 (see GpuImage), any device.
    Returns float32 ``[B, H, W]`` in ``[0, 100]``, contiguous, on the same device.
    """
    if pixels.ndim != 4 or pixels.shape[1] not in (1, 3):
        raise ValueError(f"expected [B, 1|3, H, W] pixels, got {tuple(pixels.shape)}")
    constants = constants or DeviceConstants(pixels.device)
    index = pixels.to(torch.int32)
    if pixels.shape[1] == 1:
        return constants.gray(bits)[index[:, 0]]
    tables = constants.rgb(bits)
    y = tables[0][index[:, 0]]
    y += tables[1][index[:, 1]]
    y += tables[2][index[:, 2]]
    f = torch.where(y > CIE_EPSILON, torch.pow(y, 1.0 / 3.0), CIE_SLOPE * y + 16.0 / 116.0)
    return 116.0 * f - 16.0


# --------------------------------------------------------------------------- resizing


@functools.lru_cache(maxsize=256)
def resize_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """float32 ``[n_out, n_in]``: the linear map OpenCV's resize applies along one axis.

    Shrinking: each output pixel averages the input interval ``[d s, (d+1) s)`` (s = n_in /
    n_out), weighted by overlap, which is INTER_AREA exactly (its fast integer-scale path gives
    the same averages). Enlarging or equal: bilinear with half-pixel centres and clamped edges,
    which is INTER_LINEAR (and ``F.interpolate(mode="bilinear", align_corners=False)``).
    Built in float64 on the CPU; cached per size pair.
    """
    matrix = np.zeros((n_out, n_in), dtype=np.float64)
    scale = n_in / n_out
    if n_in > n_out:
        for d in range(n_out):
            start, stop = d * scale, min((d + 1) * scale, n_in)
            first, last = int(np.floor(start)), int(np.ceil(stop))
            for s in range(first, last):
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


def render(
    lightness: torch.Tensor, geometry: Geometry, constants: DeviceConstants | None = None
) -> torch.Tensor:
    """Full-resolution L* -> the network input.

    ``lightness``: float32 ``[B, H, W]`` in ``[0, 100]`` with H, W = geometry's size, any device.
    Returns float32 ``[B, 1, S, S]`` in ``[-1, 1]`` (``L/50 - 1``), contiguous, same device:
    resized into the inner box, edge-padded to the square (``geometry.padding``).
    """
    constants = constants or DeviceConstants(lightness.device)
    rows = constants.resize(geometry.height, geometry.inner_height)  # [h, H]
    cols = constants.resize(geometry.width, geometry.inner_width)  # [w, W]
    inner = torch.matmul(torch.matmul(rows, lightness), cols.T)  # [B, h, w]
    inner = normalize_l(inner).unsqueeze(1)
    top, bottom, left, right = geometry.padding
    if top or bottom or left or right:
        inner = F.pad(inner, (left, right, top, bottom), mode="replicate")
    return inner.contiguous()


# --------------------------------------------------------------------------- the stage


class GpuPreprocessor:
    """Batches of GpuImage -> PreparedBatch, on one device, for one render size."""

    def __init__(self, render_size: int, device: torch.device | str) -> None:
        self.render_size = int(render_size)
        self.device = torch.device(device)
        self.constants = DeviceConstants(self.device)

    def __call__(self, images: Sequence[GpuImage]) -> PreparedBatch:
        """Group ``images`` by kind, compute L* and the render for each group.

        Runs on the current torch stream; the returned tensors are valid once it reaches them.
        """
        if not images:
            raise ValueError("an empty batch has nothing to preprocess")
        size = self.render_size
        l_norm = torch.empty((len(images), 1, size, size), dtype=torch.float32, device=self.device)
        by_kind: dict[tuple[int, int, int, int], list[int]] = {}
        for index, image in enumerate(images):
            by_kind.setdefault(image.group_key, []).append(index)
        groups = []
        for (height, width, _, bits), indices in by_kind.items():
            geometry = fit_geometry(height, width, size)
            if len(indices) == 1:
                stack = images[indices[0]].pixels.unsqueeze(0)
            else:
                stack = torch.stack([images[i].pixels for i in indices])
            lightness = lightness_from_pixels(stack, bits, self.constants)
            del stack
            rendered = render(lightness, geometry, self.constants)
            if indices == list(range(indices[0], indices[0] + len(indices))):
                l_norm[indices[0]:indices[0] + len(indices)] = rendered
            else:
                l_norm[torch.tensor(indices, device=self.device)] = rendered
            groups.append(Group(indices, geometry, bits, lightness))
        return PreparedBatch(l_norm, groups)

    def close(self) -> None:
        """Drop the device tables and matrices."""
        self.constants.clear()

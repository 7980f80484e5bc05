"""GPU decoding: baseline JPEGs in batches through nvJPEG, everything else uploaded from the CPU.

``triage`` reads a file's JPEG header (``jpeg.read_jpeg_info``, no pixel decoded) and says
whether nvJPEG's batched hardware decoder should get it. Those that should are decoded by
``NvjpegDecoder.decode`` in batches:

- gray JPEGs (one component) with ``ImageReadMode.GRAY``: for a one-component JPEG nvJPEG's Y
  *is* the stored gray level g, which the preprocess turns into the L* of sRGB (g, g, g);
- colour JPEGs with ``ImageReadMode.RGB``, whose L* the preprocess computes from R, G, B (never
  from nvJPEG's luma, which is not L*);
- the EXIF orientation (nvJPEG ignores it) applied on the GPU with flips and transposes.

If nvJPEG fails a batch (it returns nothing for the whole batch when one file fails), each
file of that batch is tried alone; a file that still fails is handed back as an NvjpegError
for the CPU decoder, which either decodes it or reports why it cannot. Progressive, lossless,
arithmetic, 12-bit, CMYK/YCCK and RGB-coded JPEGs, files without an end marker (truncated)
and non-JPEGs never reach nvJPEG: ``triage`` sends them to the CPU decoder, and ``upload``
moves what that decoder returns onto the GPU.

Streams: torchvision decodes on a private stream and makes the current stream wait for it, but
nvJPEG's hardware engine may write its outputs before work already queued on the current
stream has run (pytorch/vision#9606: memory the caching allocator recycled can be overwritten).
So decoding runs on this decoder's own stream, which is drained before each nvJPEG call, and
nothing else is queued on it but the orientation fixes and uploads. Consumers on other streams
wait for ``ready_event()`` and record the tensors on their stream (``cuda.hand_over``).

All torchvision image-codec calls of the GPU path live here and in ``encode.py`` (torchvision
0.29 deprecates them in favour of TorchCodec; one place to change).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_jpeg

from facecolor.runtime.gpu.cuda import (
    NvjpegError,
    cuda_errors,
    drain,
    mark,
    new_stream,
    on_stream,
    torch_device,
)
from facecolor.runtime.gpu.jpeg import JpegHeaderError, JpegInfo, read_jpeg_info
from facecolor.runtime.gpu.preprocess import GpuImage

@dataclass(frozen=True)
class Triage:
    """Where a file goes: nvJPEG (``info`` set, ``reason`` None) or the CPU (``reason`` set)."""

    info: JpegInfo | None
    reason: str | None

    @property
    def on_gpu(self) -> bool:
        return self.reason is None


def triage(data: bytes | bytearray | memoryview, max_pixels: int | None = None) -> Triage:
    """Decide from the header alone whether nvJPEG decodes ``data``.

    The CPU decoder gets: non-JPEGs, JPEGs nvJPEG handles badly or not at all (see
    ``JpegInfo.gpu_rejection``), truncated files (no end marker after the last scan: the CPU
    decoder reports them as the CPU path does, where nvJPEG would return gray rows), and files
    over ``max_pixels`` (the CPU decoder raises the pixel-limit error: one wording for both
    paths).
    """
    if not isinstance(data, (bytes, bytearray)):
        data = bytes(data)
    try:
        info = read_jpeg_info(data)
    except JpegHeaderError as error:
        return Triage(None, f"not decodable by nvJPEG: {error}")
    reason = info.gpu_rejection()
    if reason is None and max_pixels is not None and info.height * info.width > max_pixels:
        reason = f"{info.width}x{info.height} is over the pixel limit"
    if reason is None and is_truncated(data):
        reason = "truncated JPEG"
    return Triage(info, reason)


def is_truncated(data: bytes | bytearray) -> bool:
    """``runtime.decode.jpeg_is_truncated`` (no EOI after the last SOS), in constant time for a
    complete file.

    That function searches backwards for the last SOS through the whole entropy-coded data
    (about 0.4 ms of held GIL for a 200 KB file); here the last EOI is found first (it is at
    the end of a complete file) and only the bytes after it are searched for an SOS. Same
    answer for every input; the broken files pay the full scan.
    """
    end = data.rfind(b"\xff\xd9")
    return data.find(b"\xff\xda", max(end, 0)) >= 0


def orient(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """Apply an EXIF orientation (1..8) to ``[C, H, W]`` pixels, any dtype and device.

    Returns a contiguous tensor shown upright, as ``PIL.ImageOps.exif_transpose`` would:
    2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse,
    8 rotate 90 counter-clockwise.
    """
    if orientation == 2:
        image = image.flip(-1)
    elif orientation == 3:
        image = image.flip(-2, -1)
    elif orientation == 4:
        image = image.flip(-2)
    elif orientation == 5:
        image = image.transpose(-2, -1)
    elif orientation == 6:
        image = torch.rot90(image, k=-1, dims=(-2, -1))
    elif orientation == 7:
        image = image.transpose(-2, -1).flip(-2, -1)
    elif orientation == 8:
        image = torch.rot90(image, k=1, dims=(-2, -1))
    return image.contiguous()


def _as_tensor(data: bytes | bytearray | memoryview) -> torch.Tensor:
    """Encoded bytes -> 1-D uint8 CPU tensor (shares a bytearray; copies read-only bytes)."""
    buffer = data if isinstance(data, bytearray) else bytearray(data)
    return torch.frombuffer(buffer, dtype=torch.uint8)


class NvjpegDecoder:
    """Batched nvJPEG decoding onto one CUDA device, on the decoder's own stream.

    Call ``decode`` and ``upload`` from one thread (the decode stage); hand the results to other
    streams after ``ready_event()``. With ``device="cpu"`` the same calls run torchvision's CPU
    (libjpeg) decoder and no stream: the tests drive the GPU pipeline's logic that way.
    """

    def __init__(self, device: str | torch.device = "cuda") -> None:
        self.device = torch_device(device)
        self.stream = new_stream(self.device)

    def decode(
        self, files: Sequence[bytes | bytearray | memoryview], infos: Sequence[JpegInfo]
    ) -> list[GpuImage | NvjpegError]:
        """Decode files that ``triage`` sent to the GPU; one result per file, in order.

        A result is a GpuImage (uint8 ``[1|3, H, W]`` on the device, upright) or the
        NvjpegError for a file nvJPEG could not decode alone (send it to the CPU decoder).
        """
        results: list[GpuImage | NvjpegError | None] = [None] * len(files)
        gray = [i for i, info in enumerate(infos) if info.is_gray]
        color = [i for i, info in enumerate(infos) if not info.is_gray]
        for indices, mode, kind in ((gray, ImageReadMode.GRAY, "gray"), (color, ImageReadMode.RGB, "colour")):
            if not indices:
                continue
            decoded = self._decode_batch([files[i] for i in indices], mode, kind)
            for index, image in zip(indices, decoded):
                if isinstance(image, NvjpegError):
                    results[index] = image
                else:
                    results[index] = GpuImage(self._orient(image, infos[index].orientation), bits=8)
        return results  # type: ignore[return-value]

    def _decode_batch(self, files, mode, kind: str) -> list[torch.Tensor | NvjpegError]:
        """nvJPEG on the whole list; on failure, on each file alone."""
        tensors = [_as_tensor(data) for data in files]
        with on_stream(self.stream):
            drain(self.stream)  # see the module docstring (pytorch/vision#9606)
            try:
                with cuda_errors(f"nvJPEG decode of {len(tensors)} {kind} JPEGs", NvjpegError):
                    return list(decode_jpeg(tensors, mode=mode, device=self.device))
            except NvjpegError as error:
                if len(tensors) == 1:
                    return [error]
            outputs: list[torch.Tensor | NvjpegError] = []
            for tensor in tensors:  # one bad file fails the whole batch: find it
                drain(self.stream)
                try:
                    with cuda_errors(f"nvJPEG decode of one {kind} JPEG", NvjpegError):
                        outputs.append(decode_jpeg([tensor], mode=mode, device=self.device)[0])
                except NvjpegError as error:
                    outputs.append(error)
            return outputs

    def _orient(self, image: torch.Tensor, orientation: int) -> torch.Tensor:
        if orientation == 1:
            return image
        with on_stream(self.stream):
            return orient(image, orientation)

    def upload(self, array: np.ndarray) -> GpuImage:
        """A CPU-decoded image (upright) -> GpuImage on the device, on the decoder's stream.

        ``array``: HxW, HxWx1, HxWx3 (RGB) or HxWx4 (alpha dropped), uint8 or uint16, host
        memory, any strides (``runtime.decode.Decoded.pixels``). 8-bit pixels upload as uint8,
        16-bit as int32 (see GpuImage).
        """
        array = np.asarray(array)
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
            raise ValueError(f"expected an HxW or HxWx{{1,3,4}} image, got shape {array.shape}")
        if array.shape[2] == 4:
            array = array[:, :, :3]
        if array.dtype == np.uint8:
            bits, host = 8, np.ascontiguousarray(array.transpose(2, 0, 1))
        elif array.dtype == np.uint16:
            bits, host = 16, np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.int32)
        else:
            raise ValueError(f"expected uint8 or uint16 pixels, got {array.dtype}")
        if self.device.type == "cpu":
            return GpuImage(torch.from_numpy(host), bits=bits)
        with on_stream(self.stream), cuda_errors(f"upload of a {array.shape} image"):
            pinned = torch.from_numpy(host).pin_memory()
            pixels = pinned.to(self.device, non_blocking=True)
        return GpuImage(pixels, bits=bits)

    def ready_event(self) -> torch.cuda.Event | None:
        """An event recorded on the decoder's stream after everything queued so far (None on
        the CPU)."""
        return mark(self.stream)

    def close(self) -> None:
        """Wait for queued work; the stream goes with the object (torch pools streams)."""
        drain(self.stream)

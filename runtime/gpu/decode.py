"""GPU decoding: nvJPEG in batches for the JPEGs it handles well, uploads for what the CPU decodes.

nvJPEG gets gray JPEGs as GRAY (their Y *is* the stored gray level g, whose L* the preprocess
reads from the exact table of sRGB (g, g, g)) and colour ones as RGB (L* comes from R, G, B,
never from nvJPEG's luma, which is not L*). It ignores the EXIF orientation, applied here.

Streams: nvJPEG's hardware engine may write its outputs before work already queued on the
current stream has run (pytorch/vision#9606: memory the caching allocator recycled can be
overwritten), so decoding runs on the decoder's own stream, drained before each nvJPEG call.
Consumers on other streams wait for ``ready_event()`` and record the tensors on their stream
(``cuda.hand_over``). The GPU path's torchvision codec calls all live here and in ``encode.py``
(torchvision 0.29 deprecates them in favour of TorchCodec: one place to change).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_jpeg

from facecolor.runtime.gpu.cuda import (
    NvjpegError, cuda_errors, drain, mark, new_stream, on_stream, torch_device,
)
from facecolor.runtime.gpu.jpeg import JpegHeaderError, JpegInfo, read_jpeg_info
from facecolor.runtime.gpu.preprocess import GpuImage


@dataclass(frozen=True)
class Triage:
    """Where a file goes: nvJPEG (``reason`` None) or the CPU decoder (``reason`` says why)."""

    data: bytes | bytearray
    info: JpegInfo | None
    reason: str | None

    @property
    def on_gpu(self) -> bool:
        return self.reason is None


def triage(data: bytes | bytearray | memoryview, max_pixels: int | None = None) -> Triage:
    """Decide from the header alone whether nvJPEG decodes ``data``.

    nvJPEG would decode progressive files, but on its slow one-at-a-time path, which also holds
    torchvision's global decoder lock: the CPU threads do them without stalling the GPU batches,
    as they do what nvJPEG cannot (lossless, arithmetic, 12-bit) and the colour-space corners
    libjpeg handles as the CPU path does (CMYK, YCCK, RGB-coded). Truncated files and files over
    ``max_pixels`` go to the CPU decoder too, so that they fail with its reason (nvJPEG would
    return gray rows for a truncated file).
    """
    if not isinstance(data, (bytes, bytearray)):
        data = bytes(data)
    try:
        info = read_jpeg_info(data)
    except JpegHeaderError as error:
        return Triage(data, None, f"not decodable by nvJPEG: {error}")
    if info.frame not in ("baseline", "extended"):
        reason = f"{info.frame} JPEG"
    elif info.precision != 8:
        reason = f"{info.precision}-bit JPEG"
    elif info.components not in (1, 3):
        reason = f"{info.components}-component JPEG (CMYK/YCCK)"
    elif info.components == 3 and info.adobe_transform == 0:
        reason = "RGB-coded JPEG (Adobe transform 0)"
    elif info.components == 3 and info.component_ids == (ord("R"), ord("G"), ord("B")):
        reason = "RGB-coded JPEG (component ids R, G, B)"
    elif info.height == 0 or info.width == 0:
        reason = "JPEG with its height in a DNL marker"
    elif max_pixels is not None and info.height * info.width > max_pixels:
        reason = f"{info.width}x{info.height} is over the pixel limit"
    elif is_truncated(data):
        reason = "truncated JPEG"
    else:
        reason = None
    return Triage(data, info, reason)


def is_truncated(data: bytes | bytearray) -> bool:
    """``runtime.decode.jpeg_is_truncated`` without its backward search through the whole scan
    (0.4 ms of held GIL for a 200 KB file): only the bytes after the last EOI, at the end of a
    complete file, are searched for an SOS. Same answer for every input."""
    end = data.rfind(b"\xff\xd9")
    return data.find(b"\xff\xda", max(end, 0)) >= 0


def orient(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """``[C, H, W]`` pixels (any dtype and device) shown upright for their EXIF orientation
    (1..8), contiguous: the transpose and flips of ``runtime.decode.apply_orientation``."""
    if orientation in (5, 6, 7, 8):
        image = image.transpose(-2, -1)
    flips = {2: (-1,), 3: (-2, -1), 4: (-2,), 6: (-1,), 7: (-2, -1), 8: (-2,)}.get(orientation)
    return (image.flip(flips) if flips else image).contiguous()


class NvjpegDecoder:
    """Batched nvJPEG decoding onto one CUDA device, on the decoder's own stream; call it from one
    thread. On ``device="cpu"`` the same calls run torchvision's CPU decoder (for tests)."""

    def __init__(self, device: str | torch.device = "cuda") -> None:
        self.device = torch_device(device)
        self.stream = new_stream(self.device)

    def decode(
        self, files: Sequence[bytes | bytearray | memoryview], infos: Sequence[JpegInfo]
    ) -> list[GpuImage | NvjpegError]:
        """One result per file that ``triage`` sent to the GPU, in order: a GpuImage (uint8
        ``[1|3, H, W]`` on the device, upright), or the NvjpegError of a file nvJPEG could not
        decode alone (for the CPU decoder)."""
        results: list[GpuImage | NvjpegError | None] = [None] * len(files)
        for gray, mode in ((True, ImageReadMode.GRAY), (False, ImageReadMode.RGB)):
            indices = [i for i, info in enumerate(infos) if info.is_gray == gray]
            if not indices:
                continue
            decoded = self._decode_batch([files[i] for i in indices], mode, "gray" if gray else "colour")
            with on_stream(self.stream):  # the orientation fixes queue behind the decodes
                for index, image in zip(indices, decoded):
                    if not isinstance(image, NvjpegError):
                        image = GpuImage(orient(image, infos[index].orientation), bits=8)
                    results[index] = image
        return results  # type: ignore[return-value]

    def _decode_batch(self, files, mode, kind: str) -> list[torch.Tensor | NvjpegError]:
        """nvJPEG on the whole list; on failure (one bad file fails the batch), on each file alone."""
        # torch.frombuffer shares a bytearray's memory; read-only bytes are copied into one.
        buffers = [data if isinstance(data, bytearray) else bytearray(data) for data in files]
        tensors = [torch.frombuffer(buffer, dtype=torch.uint8) for buffer in buffers]
        try:
            return self._nvjpeg(tensors, mode, f"{len(tensors)} {kind} JPEGs")
        except NvjpegError as error:
            if len(tensors) == 1:
                return [error]
        outputs: list[torch.Tensor | NvjpegError] = []
        for tensor in tensors:
            try:
                outputs += self._nvjpeg([tensor], mode, f"one {kind} JPEG")
            except NvjpegError as error:
                outputs.append(error)
        return outputs

    def _nvjpeg(self, tensors: list[torch.Tensor], mode, what: str) -> list[torch.Tensor]:
        with on_stream(self.stream):
            drain(self.stream)  # pytorch/vision#9606 (see the module docstring)
            with cuda_errors(f"nvJPEG decode of {what}", NvjpegError):
                return list(decode_jpeg(tensors, mode=mode, device=self.device))

    def upload(self, array: np.ndarray) -> GpuImage:
        """A CPU-decoded upright image (``runtime.decode.Decoded.pixels``: HxW, HxWx1, HxWx3 RGB or
        HxWx4, uint8 or uint16, host memory, any strides) -> GpuImage on the device, alpha dropped,
        queued on the decoder's stream."""
        array = np.asarray(array)
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
            raise ValueError(f"expected an HxW or HxWx{{1,3,4}} image, got shape {array.shape}")
        if array.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"expected uint8 or uint16 pixels, got {array.dtype}")
        array = array[:, :, :3]
        bits = 8 if array.dtype == np.uint8 else 16
        # 16-bit pixels travel as int32: torch's uint16 supports too few ops on CUDA.
        chw = np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.uint8 if bits == 8 else np.int32)
        host = torch.from_numpy(chw)
        if self.device.type == "cpu":
            return GpuImage(host, bits=bits)
        with on_stream(self.stream), cuda_errors(f"upload of a {array.shape} image"):
            return GpuImage(host.pin_memory().to(self.device, non_blocking=True), bits=bits)

    def ready_event(self) -> torch.cuda.Event | None:
        """An event on the decoder's stream after everything queued so far (None on the CPU)."""
        return mark(self.stream)

    def close(self) -> None:
        """Wait for queued work; the stream goes with the object (torch pools streams)."""
        drain(self.stream)

"""nvJPEG on the GPU path: batched decoding, uploads of what the CPU decoded, and encoding.

Gray JPEGs decode as GRAY (their Y *is* the stored gray level, whose L* the preprocess reads
from the exact table), colour ones as RGB (L* comes from R, G, B: nvJPEG's luma is not L*).
Encoded files get the facecolor note from the CPU writer's own ``jpeg_with_comment``, so both
paths write the same metadata. Every torchvision codec call of the GPU path is here
(torchvision 0.29 deprecates them in favour of TorchCodec: one place to change).

Streams and threads, from torchvision's source and issue tracker:

- nvJPEG's decoder may write its outputs before work already queued on the current stream has
  run (pytorch/vision#9606: recycled memory overwritten): decoding runs on the decoder's own
  stream, drained before each call; consumers wait for ``ready_event()`` and record the
  tensors on their stream (``cuda.hand_over``);
- the encoder reads its input on a private stream that does not wait for the one that made the
  pixels (pytorch/vision#8587, #9060: corrupted JPEGs): ``encode`` waits for ``ready`` first;
- it copies each bitstream with the legacy default stream, which torch's non-blocking streams
  do not wait for: ``encode`` synchronizes stream 0 before reading the bytes;
- its state is global and not thread-safe: call ``encode`` from one thread only.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

from facecolor.runtime.decode import UPRIGHT
from facecolor.runtime.gpu.cuda import NvjpegError, cuda_errors, host_wait, mark, new_stream, torch_device
from facecolor.runtime.gpu.jpeg import JpegInfo
from facecolor.runtime.gpu.render import GpuImage
from facecolor.runtime.write import jpeg_with_comment


def orient(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """``[C, H, W]`` pixels (any dtype and device) shown upright for their EXIF orientation
    (1..8), contiguous: ``runtime.decode.UPRIGHT``'s swap and flips on the last two axes."""
    swap, flips = UPRIGHT.get(orientation, (False, ()))
    if swap:
        image = image.transpose(-2, -1)
    return (image.flip([axis - 2 for axis in flips]) if flips else image).contiguous()


class NvjpegDecoder:
    """Batched nvJPEG decoding onto one CUDA device, on the decoder's own stream; call it from one
    thread. On ``device="cpu"`` the same calls run torchvision's CPU decoder (for tests)."""

    def __init__(self, device: str | torch.device = "cuda") -> None:
        self.device = torch_device(device)
        self.stream = new_stream(self.device)

    def decode(self, files: Sequence[bytes | bytearray], infos: Sequence[JpegInfo]) -> list[GpuImage | NvjpegError]:
        """Per file ``triage`` sent here, in order: a GpuImage (uint8 ``[1|3, H, W]`` on the
        device, upright), or the NvjpegError of a file nvJPEG could not decode alone."""
        results: list[GpuImage | NvjpegError | None] = [None] * len(files)
        for gray, mode in ((True, ImageReadMode.GRAY), (False, ImageReadMode.RGB)):
            indices = [i for i, info in enumerate(infos) if (info.components == 1) == gray]
            if not indices:
                continue
            # torch.frombuffer shares a bytearray's memory; read-only bytes are copied into one.
            buffers = [files[i] if isinstance(files[i], bytearray) else bytearray(files[i]) for i in indices]
            tensors = [torch.frombuffer(buffer, dtype=torch.uint8) for buffer in buffers]
            decoded = self._nvjpeg(tensors, mode, "gray" if gray else "colour")
            with torch.cuda.stream(self.stream):  # the orientation fixes queue behind the decodes
                for index, image in zip(indices, decoded):
                    if not isinstance(image, NvjpegError):
                        image = GpuImage(orient(image, infos[index].orientation), bits=8)
                    results[index] = image
        return results  # type: ignore[return-value]

    def _nvjpeg(self, tensors: list[torch.Tensor], mode, kind: str) -> list[torch.Tensor | NvjpegError]:
        """nvJPEG on the whole list, or on each file alone when one bad file failed the batch."""
        what = f"{len(tensors)} {kind} JPEGs" if len(tensors) > 1 else f"one {kind} JPEG"
        try:
            with torch.cuda.stream(self.stream):
                host_wait(self.stream)  # pytorch/vision#9606 (see the module docstring)
                with cuda_errors(f"nvJPEG decode of {what}", NvjpegError):
                    return list(decode_jpeg(tensors, mode=mode, device=self.device))
        except NvjpegError as error:
            if len(tensors) == 1:
                return [error]
        return [result for tensor in tensors for result in self._nvjpeg([tensor], mode, kind)]

    def upload(self, array: np.ndarray) -> GpuImage:
        """``Decoded.pixels`` (HxW or HxWx3, uint8 or uint16, host memory, any strides: what
        ``decode_image`` guarantees) -> GpuImage on the device, queued on the decoder's stream."""
        if array.ndim == 2:
            array = array[:, :, None]
        bits = 8 if array.dtype == np.uint8 else 16
        # 16-bit pixels travel as int32: torch's uint16 supports too few ops on CUDA.
        chw = np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.uint8 if bits == 8 else np.int32)
        host = torch.from_numpy(chw)
        if self.device.type == "cpu":
            return GpuImage(host, bits=bits)
        with torch.cuda.stream(self.stream), cuda_errors(f"upload of a {array.shape} image"):
            return GpuImage(host.pin_memory().to(self.device, non_blocking=True), bits=bits)

    def ready_event(self) -> torch.cuda.Event | None:
        return mark(self.stream)

    def close(self) -> None:
        host_wait(self.stream)  # the stream itself goes with the object (torch pools streams)


class NvjpegEncoder:
    """nvJPEG encoding on one CUDA device at one quality; on ``device="cpu"`` the same calls run
    torchvision's CPU encoder (for tests)."""

    def __init__(self, device: str | torch.device = "cuda", quality: int = 95, *, note: str | None = None) -> None:
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality must be within 1..100, not {quality}")
        self.device = torch_device(device)
        self.quality = int(quality)
        self.note = note
        self.stream = new_stream(self.device)

    def encode(self, images: Sequence[torch.Tensor], ready: Iterable[torch.cuda.Event] | None = None) -> list[bytes]:
        """JPEG files for ``images`` (uint8 ``[3, H, W]`` contiguous on the encoder's device), read
        once every event in ``ready`` has completed (None: the current stream's work so far).
        NvjpegError when nvJPEG rejects the batch (the CPU encoder may take it instead)."""
        if not images:
            return []
        for image in images:
            if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3 or image.device != self.device:
                raise ValueError(
                    f"nvJPEG encodes uint8 [3, H, W] tensors on {self.device}, got {image.dtype} "
                    f"{tuple(image.shape)} on {image.device}"
                )
        cuda = self.device.type == "cuda"
        if ready is None:
            ready = [mark(torch.cuda.current_stream(self.device))] if cuda else []
        with torch.cuda.stream(self.stream), cuda_errors(f"nvJPEG encode of {len(images)} images", NvjpegError):
            for event in ready:
                host_wait(event)
            encoded = encode_jpeg(list(images), quality=self.quality)
            if cuda:
                host_wait(torch.cuda.default_stream(self.device))  # the bitstream copies
            host_wait(self.stream)
            ends = list(itertools.accumulate(int(t.numel()) for t in encoded))
            blob = torch.cat(encoded).cpu().numpy().tobytes()  # one device-to-host copy
        files = [blob[start:end] for start, end in zip([0, *ends], ends)]
        return [jpeg_with_comment(jpeg, self.note) for jpeg in files] if self.note else files

    def close(self) -> None:
        host_wait(self.stream)

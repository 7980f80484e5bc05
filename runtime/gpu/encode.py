"""GPU JPEG encoding with nvJPEG, plus the metadata nvJPEG cannot write.

``NvjpegEncoder.encode`` takes a list of uint8 ``[3, H, W]`` CUDA images and returns one JPEG
file's bytes per image (4:4:4, the quality asked), with the facecolor note spliced in as a COM
segment (and an APP1 Exif block when the CPU writer adds one), so GPU- and CPU-written JPEGs
carry the same metadata. Other formats (PNG, TIFF, 16-bit, WebP, BMP) go through the CPU writer.

Streams and threads, from torchvision's source and issue tracker:

- the encoder reads its input on a private stream that does not wait for the stream that made
  the pixels (pytorch/vision#8587, #9060: corrupted JPEGs): ``encode`` therefore waits on the
  host for the caller's ``ready`` event before calling nvJPEG;
- it copies each finished bitstream with the legacy default stream (stream 0), which torch's
  non-blocking streams do not wait for: ``encode`` synchronizes stream 0 before reading the
  bytes;
- its state is global and not safe across threads: call ``encode`` from one thread only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from facecolor.runtime.gpu.cuda import NvjpegError, cuda_errors, require_cuda
from facecolor.runtime.gpu.jpeg import insert_metadata


class NvjpegEncoder:
    """nvJPEG encoding on one CUDA device at one quality; use from a single thread."""

    def __init__(
        self,
        device: str | torch.device = "cuda",
        quality: int = 95,
        *,
        comment: str | None = None,
        exif: bytes | None = None,
    ) -> None:
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality must be within 1..100, not {quality}")
        self.device = require_cuda(device)
        self.quality = int(quality)
        self.comment = comment
        self.exif = exif
        self.stream = torch.cuda.Stream(self.device)

    def encode(
        self, images: Sequence[torch.Tensor], ready: torch.cuda.Event | None = None
    ) -> list[bytes]:
        """JPEG files for ``images``, in order.

        ``images``: uint8 ``[3, H, W]`` contiguous CUDA tensors on the encoder's device, valid
        once ``ready`` has completed (None: once the current stream has). Raises NvjpegError
        when nvJPEG rejects one (the caller may encode that image on the CPU instead).
        """
        from torchvision.io import encode_jpeg

        if not images:
            return []
        for image in images:
            if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3 or not image.is_cuda:
                raise ValueError(
                    f"nvJPEG encodes uint8 [3, H, W] CUDA tensors, got {image.dtype} "
                    f"{tuple(image.shape)} on {image.device}"
                )
        if ready is None:
            ready = torch.cuda.Event()
            ready.record(torch.cuda.current_stream(self.device))
        what = f"nvJPEG encode of {len(images)} images"
        with torch.cuda.stream(self.stream), cuda_errors(what, NvjpegError):
            ready.synchronize()
            encoded = encode_jpeg(list(images), quality=self.quality)
            torch.cuda.default_stream(self.device).synchronize()  # the bitstream copies
            self.stream.synchronize()
            lengths = [int(t.numel()) for t in encoded]
            host = torch.cat(encoded).cpu() if len(encoded) > 1 else encoded[0].cpu()
        del encoded
        blob = host.numpy().tobytes()
        files, start = [], 0
        for length in lengths:
            files.append(self._with_metadata(blob[start:start + length]))
            start += length
        return files

    def _with_metadata(self, jpeg: bytes) -> bytes:
        if not self.comment and not self.exif:
            return jpeg
        return insert_metadata(jpeg, comment=self.comment, exif=self.exif)

    def close(self) -> None:
        """Wait for queued work; the stream goes with the object."""
        self.stream.synchronize()

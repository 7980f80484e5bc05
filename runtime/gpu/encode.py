"""GPU JPEG encoding with nvJPEG (4:4:4); other formats and 16-bit go through ``runtime.write``.

The facecolor note is spliced into nvJPEG's output by the CPU writer's own
``runtime.write.jpeg_with_comment``, so GPU- and CPU-written JPEGs carry the same metadata.
Streams and threads, from torchvision's source and issue tracker:

- the encoder reads its input on a private stream that does not wait for the stream that made
  the pixels (pytorch/vision#8587, #9060: corrupted JPEGs): ``encode`` therefore waits on the
  host for the caller's ``ready`` events before calling nvJPEG;
- it copies each finished bitstream with the legacy default stream (stream 0), which torch's
  non-blocking streams do not wait for: ``encode`` synchronizes stream 0 before reading the
  bytes;
- its state is global and not safe across threads: call ``encode`` from one thread only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torchvision.io import encode_jpeg

from facecolor.runtime.gpu.cuda import (
    NvjpegError, cuda_errors, drain, host_wait, mark, new_stream, on_stream, torch_device,
)
from facecolor.runtime.write import jpeg_with_comment


class NvjpegEncoder:
    """nvJPEG encoding on one CUDA device at one quality; on ``device="cpu"`` the same calls run
    torchvision's CPU encoder (for tests)."""

    def __init__(
        self, device: str | torch.device = "cuda", quality: int = 95, *, note: str | None = None
    ) -> None:
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality must be within 1..100, not {quality}")
        self.device = torch_device(device)
        self.quality = int(quality)
        self.note = note
        self.stream = new_stream(self.device)

    def encode(
        self, images: Sequence[torch.Tensor], ready: Iterable[torch.cuda.Event] | None = None
    ) -> list[bytes]:
        """JPEG files for ``images`` (uint8 ``[3, H, W]`` contiguous on the encoder's device), in
        order, once every event in ``ready`` has completed (None: once the current stream has got
        to here). NvjpegError when nvJPEG rejects the batch (the CPU encoder may take it instead).
        """
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
        with on_stream(self.stream), cuda_errors(f"nvJPEG encode of {len(images)} images", NvjpegError):
            for event in ready:
                host_wait(event)
            encoded = encode_jpeg(list(images), quality=self.quality)
            if cuda:
                drain(torch.cuda.default_stream(self.device))  # the bitstream copies
            drain(self.stream)
            lengths = [int(t.numel()) for t in encoded]
            blob = torch.cat(encoded).cpu().numpy().tobytes()  # one device-to-host copy
        files, start = [], 0
        for length in lengths:
            jpeg = blob[start:start + length]
            files.append(jpeg_with_comment(jpeg, self.note) if self.note else jpeg)
            start += length
        return files

    def close(self) -> None:
        """Wait for queued work; the stream goes with the object."""
        drain(self.stream)

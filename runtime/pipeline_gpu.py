"""The GPU pipeline: nvJPEG, fused LAB math and a CUDA backend, overlapped (DESIGN §7).

    read        (N threads)  the CPU pipeline's reader, then JPEG triage; what nvJPEG should not
                             get is decoded here by the CPU decoder (runtime.decode)
    decode-gpu  (1 thread)   nvJPEG batches, uploads of the rest; on the decoder's stream
    colorize    (1 thread)   preprocess -> backend -> postprocess on the compute stream; non-JPEG
                             outputs start their copy to pinned host memory here
    encode-gpu  (1 thread)   nvJPEG for the JPEG outputs; on the encoder's stream
    write       (N threads)  runtime.write's CPU encode of everything nvJPEG did not encode,
                             then the CPU pipeline's atomic write

Reading and triage share a stage because every stage hop costs held-GIL time per image, and at
a few thousand images per second the GIL is what all the stages' threads share. Work moves
between the three CUDA streams through events, and every tensor read on another stream than
the one that made it is recorded on the reader's (``gpu.cuda.hand_over``), so the caching
allocator never hands out memory a queued kernel still reads. The queues bound GPU memory to
about ``6 * batch_size`` images (decoded pixels, full-resolution L*, or colorized RGB).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch

from facecolor.runtime.decode import Decoded, decode_image
from facecolor.runtime.gpu.cuda import (
    GpuError, NvjpegError, cuda_errors, hand_over, host_wait, mark, new_stream, torch_device,
)
from facecolor.runtime.gpu.jpeg import Triage, triage
from facecolor.runtime.gpu.nvjpeg import NvjpegDecoder, NvjpegEncoder
from facecolor.runtime.gpu.render import GpuImage, postprocess, preprocess
from facecolor.runtime.pipeline import BatchStage, FatalError, Item, MapStage, Settings, failure_reason
from facecolor.runtime.pipeline_cpu import read_stage, save
from facecolor.runtime.render import gray_view
from facecolor.runtime.write import encode, metadata_note, output_dtype


@dataclass
class GpuWork:
    """One image between the GPU stages: ``image`` (decoded, on the device) until ``colorize``,
    then ``rgb`` (uint8 ``[3, H, W]`` on the device, for nvJPEG) or ``host`` (``[H, W, 3]`` uint8
    or int32 holding 16-bit values, pinned host memory, for the CPU encoder). Whichever it holds
    is valid once the ``ready`` event (of the stage that queued it) has completed."""

    image: GpuImage | None
    target_format: str
    out_bits: int
    ready: torch.cuda.Event | None = None
    rgb: torch.Tensor | None = None
    host: torch.Tensor | None = None
    data: bytes | None = None  # the encoded file


@contextmanager
def _gpu_errors_are_fatal() -> Iterator[None]:
    """GpuError (out of memory, CUDA faults: no single file explains them) stops the run. The
    stages catch an NvjpegError themselves and send its files to the CPU codecs."""
    try:
        yield
    except GpuError as error:
        raise FatalError(str(error)) from error


class GpuPipeline:
    """The GPU path's state: one device, three streams, the codecs and the LAB math; its methods
    are the stages. On ``device="cpu"`` (tests only) the same stages run with torchvision's CPU
    codecs, no streams, and a backend that takes CPU tensors."""

    def __init__(self, settings: Settings, backend, device: str | torch.device = "cuda") -> None:
        self.settings, self.backend = settings, backend
        self.device = torch_device(device)
        self.note = metadata_note(backend.model.label)
        self.decoder = NvjpegDecoder(self.device)
        self.encoder = NvjpegEncoder(self.device, settings.quality, note=self.note)
        self.compute = new_stream(self.device)
        self._read = read_stage(settings)

    def read(self, item: Item) -> Item:
        """Path -> bytes -> a Triage for nvJPEG, or the Decoded image of the CPU decoder."""
        verdict = triage(self._read(item).payload, self.settings.max_pixels)
        item.payload = verdict if verdict.on_gpu else self._decode_on_cpu(verdict.data)
        return item

    def _decode_on_cpu(self, data: bytes) -> Decoded:
        decoded = decode_image(data, max_pixels=self.settings.max_pixels)
        return replace(decoded, pixels=gray_view(decoded.pixels))

    @_gpu_errors_are_fatal()
    def decode(self, items: list[Item]) -> list[Item]:
        """nvJPEG for the Triage payloads, upload for the Decoded ones; then one event."""
        jpegs = [item for item in items if isinstance(item.payload, Triage)]
        results = self.decoder.decode([i.payload.data for i in jpegs], [i.payload.info for i in jpegs])
        for item, result in zip(jpegs, results):
            if isinstance(result, GpuImage):
                item.payload = self._work(item, result, "jpeg")
                continue
            try:  # nvJPEG refused it: the CPU decoder's reason is the one to report
                item.payload = self._decode_on_cpu(item.payload.data)
            except Exception as error:
                item.fail("decode", failure_reason(error))
        for item in items:
            if isinstance(item.payload, Decoded):
                item.payload = self._work(item, self.decoder.upload(item.payload.pixels), item.payload.format)
        event = self.decoder.ready_event()
        for item in items:
            if isinstance(item.payload, GpuWork):
                item.payload.ready = event
        return items

    @staticmethod
    def _work(item: Item, image: GpuImage, fmt: str) -> GpuWork:
        target = item.job.out_format or fmt
        return GpuWork(image, target, 16 if output_dtype(image.bits, target) == np.uint16 else 8)

    @_gpu_errors_are_fatal()
    def colorize_batch(self, items: list[Item]) -> list[Item]:
        """Preprocess, backend, postprocess for one batch, on the compute stream."""
        works: list[GpuWork] = [item.payload for item in items]
        stream = self.compute
        with torch.cuda.stream(stream), torch.inference_mode():
            with cuda_errors(f"colorizing a batch of {len(items)}"):
                for event in _unique(work.ready for work in works):
                    stream.wait_event(event)
                for work in works:
                    hand_over(work.image.pixels, stream)
                batch = preprocess([work.image for work in works], self.backend.render_size)
                for work in works:
                    work.image = None  # the pixels are no longer needed; L* is in the batch
            ab = self.backend.predict_ab(batch.l_norm)
            with cuda_errors(f"postprocessing a batch of {len(items)}"):
                outputs = postprocess(batch, ab, max_bits=max(work.out_bits for work in works))
                del batch, ab
                for work, rgb in zip(works, outputs):
                    self._place(work, rgb)
                done = mark(stream)
        for work in works:
            work.ready = done
        return items

    def _place(self, work: GpuWork, rgb: torch.Tensor) -> None:
        """Keep ``rgb`` ([3, H, W], uint8 or int32) on the device for nvJPEG, or start its copy
        to pinned host memory (HWC) for the CPU encoder."""
        if rgb.dtype != torch.uint8 and work.out_bits == 8:  # 16-bit input, 8-bit format
            rgb = torch.floor(rgb.float() * (255.0 / 65535.0) + 0.5).to(torch.uint8)
        if work.target_format == "jpeg":
            work.rgb = rgb
            return
        hwc = rgb.permute(1, 2, 0)
        if hwc.is_cuda:
            work.host = torch.empty(hwc.shape, dtype=hwc.dtype, pin_memory=True)
            work.host.copy_(hwc, non_blocking=True)
        else:
            work.host = hwc.contiguous()

    @_gpu_errors_are_fatal()
    def encode_jpegs(self, items: list[Item]) -> list[Item]:
        """nvJPEG for the JPEG outputs of ``items``; the others pass through."""
        works = [item.payload for item in items if item.payload.rgb is not None]
        for work in works:
            hand_over(work.rgb, self.encoder.stream)
        try:
            files = self.encoder.encode([work.rgb for work in works], ready=_unique(work.ready for work in works))
        except NvjpegError:  # nvJPEG refused the batch: the write stage encodes these on the CPU
            return items
        for work, data in zip(works, files):
            work.data, work.rgb = data, None
        return items

    def write(self, item: Item) -> Item:
        """CPU-encode what nvJPEG did not (``runtime.write``), then write it."""
        work: GpuWork = item.payload
        data = work.data
        if data is None:
            host_wait(work.ready)
            if work.host is None:  # a JPEG nvJPEG refused (rare): a synchronous copy
                with torch.cuda.stream(self.compute):
                    work.host = work.rgb.permute(1, 2, 0).cpu()
            pixels = work.host.numpy()
            if work.out_bits == 16:
                pixels = pixels.astype(np.uint16)
            data = encode(pixels, work.target_format, quality=self.settings.quality, note=self.note)
        return save(item, data)

    def stages(self) -> list[MapStage | BatchStage]:
        batch = max(1, self.settings.batch_size)
        workers = max(1, self.settings.workers)
        return [
            MapStage("read", self.read, workers=workers, queue_size=2 * workers),
            BatchStage("decode-gpu", self.decode, batch_size=batch, queue_size=2 * batch),
            BatchStage("colorize", self.colorize_batch, batch_size=batch, queue_size=2 * batch),
            BatchStage("encode-gpu", self.encode_jpegs, batch_size=batch, queue_size=2 * batch),
            MapStage("write", self.write, workers=workers, queue_size=2 * batch),
        ]


def build_stages(settings: Settings, backend) -> list[MapStage | BatchStage]:
    """The stages for a CUDA backend (torch CUDA tensors in and out)."""
    if backend.device != "cuda":
        raise ValueError(f"the GPU pipeline needs a CUDA backend, not {backend.name}")
    return GpuPipeline(settings, backend).stages()


def _unique(events: Iterable[torch.cuda.Event | None]) -> list[torch.cuda.Event]:
    """The distinct events of a batch (its images share their producer's), without the CPU's None."""
    return list(dict.fromkeys(event for event in events if event is not None))

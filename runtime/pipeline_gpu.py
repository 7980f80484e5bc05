"""The GPU pipeline: nvJPEG, fused LAB math and a CUDA backend, overlapped (DESIGN §7).

    read        (N threads)      file bytes and size guard (the CPU pipeline's own reader),
                                 JPEG header triage; whatever nvJPEG should not get is decoded
                                 here on the CPU (runtime.decode), as the CPU path does
    decode-gpu  (1 thread,       nvJPEG batches for the baseline JPEGs, uploads for the rest,
                 batches)        EXIF orientation; on the decoder's stream
    colorize    (1 thread,       preprocess (L*, resize, pad, L/50-1) -> backend -> postprocess
                 batches)        (ab upsample, join with the full-res L*, sRGB, 8/16 bit); on
                                 the compute stream; non-JPEG outputs start their copy to
                                 pinned host memory here
    encode-gpu  (1 thread,       nvJPEG encode of the JPEG outputs, the facecolor note spliced
                 batches)        in; on the encoder's stream
    write       (N threads)      CPU encode for PNG/TIFF/WebP/BMP and 16-bit (runtime.write),
                                 then the atomic write, for every output

The stages are the shared ``StageRunner``'s (``runtime.pipeline``): bounded queues between
them, one broken file fails only itself. Reading and triage share a stage because every
stage hop costs held-GIL time per image, and at a few thousand images per second the GIL is
what all the stages' threads share. Work moves between the three CUDA streams through events
(a stage waits on the producer's event, on the GPU where it can, on the host where the
library needs it) and every tensor read on another stream than the one that made it is
recorded on the reader's stream (``gpu.cuda.hand_over``), so the caching allocator never hands
out memory a queued kernel still reads. GPU memory is bounded by the queue sizes: at most
about ``6 * batch_size`` images are on the device at once (decoded pixels, full-resolution
L*, or colorized RGB), whatever the number of files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facecolor.files import write_atomically
from facecolor.runtime.decode import Decoded, decode_image
from facecolor.runtime.gpu.cuda import (
    GpuError,
    NvjpegError,
    cuda_errors,
    hand_over,
    host_wait,
    mark,
    new_stream,
    on_stream,
    drain,
    torch_device,
)
from facecolor.runtime.gpu.decode import NvjpegDecoder, triage
from facecolor.runtime.gpu.encode import NvjpegEncoder
from facecolor.runtime.gpu.jpeg import JpegInfo
from facecolor.runtime.gpu.postprocess import GpuPostprocessor
from facecolor.runtime.gpu.preprocess import GpuImage, GpuPreprocessor
from facecolor.runtime.pipeline import BatchStage, FatalError, Item, MapStage, Settings, failure_reason
from facecolor.runtime.pipeline_cpu import read_stage
from facecolor.runtime.write import encode, metadata_note, output_dtype


@dataclass
class Encoded:
    """A JPEG that nvJPEG will decode: its bytes and header facts (host memory)."""

    data: bytes
    info: JpegInfo


@dataclass
class GpuWork:
    """One image between the GPU stages.

    ``image``: decoded pixels on the device until ``colorize`` (see GpuImage), ready once
    ``decoded`` (an event on the decoder's stream) has completed. Then exactly one of:
    ``rgb``, uint8 ``[3, H, W]`` on the device for nvJPEG; or ``host``, ``[H, W, 3]`` uint8 or
    int32 (16-bit values) in pinned host memory for the CPU encoder; both valid once
    ``colorized`` (an event on the compute stream) has completed. ``data``: the encoded file.
    """

    format: str  # the decoded content's format ('jpeg', 'png', ...)
    bit_depth: int
    image: GpuImage | None
    decoded: torch.cuda.Event | None = None
    rgb: torch.Tensor | None = None
    host: torch.Tensor | None = None
    colorized: torch.cuda.Event | None = None
    data: bytes | None = None
    target_format: str = ""
    out_bits: int = 8


class GpuPipeline:
    """The GPU path's state: one device, three streams, the codecs and the LAB math.

    ``build_stages`` builds one on CUDA; the stage functions below are its methods. On
    ``device="cpu"`` (tests only) the same stages run with torchvision's CPU codecs, no streams,
    and a backend that takes CPU tensors.
    """

    def __init__(self, settings: Settings, backend, device: str | torch.device = "cuda") -> None:
        self.settings = settings
        self.backend = backend
        self.device = torch_device(device)
        self.note = metadata_note(backend.model.label)
        self.decoder = NvjpegDecoder(self.device)
        self.encoder = NvjpegEncoder(self.device, settings.quality, note=self.note)
        self.compute = new_stream(self.device)
        self.preprocess = GpuPreprocessor(backend.render_size, self.device)
        self.postprocess = GpuPostprocessor()
        self._read = read_stage(settings)

    # ------------------------------------------------------------------ read (CPU threads)

    def read(self, item: Item) -> Item:
        """Path -> bytes -> Encoded (for nvJPEG) or Decoded (decoded here on the CPU)."""
        data = self._read(item).payload
        verdict = triage(data, self.settings.max_pixels)
        if verdict.on_gpu:
            item.payload = Encoded(data, verdict.info)
        else:
            item.payload = _gray_if_equal(decode_image(data, max_pixels=self.settings.max_pixels))
        return item

    # ------------------------------------------------------------------ decode-gpu (one thread)

    def decode(self, items: list[Item]) -> list[Item]:
        """nvJPEG for the Encoded payloads, upload for the Decoded ones; then one event."""
        jpegs = [item for item in items if isinstance(item.payload, Encoded)]
        with _fatal_on_gpu_error():
            if jpegs:
                results = self.decoder.decode([i.payload.data for i in jpegs], [i.payload.info for i in jpegs])
                for item, result in zip(jpegs, results):
                    if isinstance(result, NvjpegError):  # nvJPEG refused it: the CPU decides
                        self._decode_on_cpu(item)
                    else:
                        item.payload = GpuWork("jpeg", 8, result)
            for item in items:
                if isinstance(item.payload, Decoded):
                    try:
                        self._upload(item)
                    except ValueError as error:  # pixels the GPU path has no layout for
                        item.fail("decode", str(error))
            event = self.decoder.ready_event()
        for item in items:
            if isinstance(item.payload, GpuWork):
                item.payload.decoded = event
        return items

    def _decode_on_cpu(self, item: Item) -> None:
        try:
            item.payload = _gray_if_equal(decode_image(item.payload.data, max_pixels=self.settings.max_pixels))
        except Exception as error:  # the CPU decoder's reason is the one to report
            item.fail("decode", failure_reason(error))

    def _upload(self, item: Item) -> None:
        decoded: Decoded = item.payload
        item.payload = GpuWork(decoded.format, decoded.bit_depth, self.decoder.upload(decoded.pixels))

    # ------------------------------------------------------------------ colorize (one thread)

    def colorize_batch(self, items: list[Item]) -> list[Item]:
        """Preprocess, backend, postprocess for one batch, on the compute stream."""
        works: list[GpuWork] = [item.payload for item in items]
        for item, work in zip(items, works):
            work.target_format = item.job.out_format or work.format
            work.out_bits = 16 if output_dtype(work.bit_depth, work.target_format) == np.uint16 else 8
        stream = self.compute
        with _fatal_on_gpu_error(), on_stream(stream), torch.inference_mode():
            with cuda_errors(f"colorizing a batch of {len(items)}"):
                if stream is not None:
                    for event in _unique(work.decoded for work in works):
                        stream.wait_event(event)
                images = [work.image for work in works]
                for image in images:
                    hand_over(image.pixels, stream)
                batch = self.preprocess(images)
                for work in works:
                    work.image = None  # the pixels are no longer needed; L* is in the batch
                del images
            ab = self.backend.predict_ab(batch.l_norm)
            with cuda_errors(f"postprocessing a batch of {len(items)}"):
                outputs = self.postprocess(batch, ab, max_bits=max(work.out_bits for work in works))
                del batch, ab
                for work, rgb in zip(works, outputs):
                    self._place(work, rgb)
                done = mark(stream)
        for work in works:
            work.colorized = done
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
            host = torch.empty(hwc.shape, dtype=hwc.dtype, pin_memory=True)
            host.copy_(hwc, non_blocking=True)
            work.host = host
        else:
            work.host = hwc.contiguous()

    # ------------------------------------------------------------------ encode-gpu (one thread)

    def encode_jpegs(self, items: list[Item]) -> list[Item]:
        """nvJPEG for the JPEG outputs of ``items``; the others pass through."""
        jpegs = [item for item in items if item.payload.rgb is not None]
        if not jpegs:
            return items
        works = [item.payload for item in jpegs]
        images = [work.rgb for work in works]
        for image in images:
            hand_over(image, self.encoder.stream)
        try:
            with _fatal_on_gpu_error():
                files = self.encoder.encode(images, ready=_unique(work.colorized for work in works))
        except NvjpegError:
            files = [None] * len(works)  # nvJPEG refused the batch: these go to the CPU encoder
        for work, data in zip(works, files):
            if data is None:
                host_wait(work.colorized)
                with on_stream(self.compute):  # rare path: a synchronous copy
                    work.host = work.rgb.permute(1, 2, 0).cpu()
            work.data, work.rgb = data, None
        return items

    # ------------------------------------------------------------------ write (CPU threads)

    def write(self, item: Item) -> Item:
        """CPU-encode what nvJPEG did not, then write atomically (``runtime.write``)."""
        work: GpuWork = item.payload
        data = work.data
        if data is None:
            host_wait(work.colorized)
            pixels = work.host.numpy()
            if work.out_bits == 16:
                pixels = pixels.astype(np.uint16)
            data = encode(pixels, work.target_format, quality=self.settings.quality, note=self.note)
        write_atomically(item.job.target, data, fixed_temp=True)
        item.payload, item.size = None, len(data)
        return item

    # ------------------------------------------------------------------ stages

    def stages(self) -> list[MapStage | BatchStage]:
        settings = self.settings
        batch = max(1, settings.batch_size)
        workers = max(1, settings.workers)
        return [
            MapStage("read", self.read, workers=workers, queue_size=2 * workers),
            BatchStage("decode-gpu", self.decode, batch_size=batch, queue_size=2 * batch),
            BatchStage("colorize", self.colorize_batch, batch_size=batch, queue_size=2 * batch),
            BatchStage("encode-gpu", self.encode_jpegs, batch_size=batch, queue_size=2 * batch),
            MapStage("write", self.write, workers=workers, queue_size=2 * batch),
        ]

    def close(self) -> None:
        """Wait for the three streams and drop the device tables."""
        for stream in (self.decoder.stream, self.compute, self.encoder.stream):
            drain(stream)
        self.preprocess.close()


def build_stages(settings: Settings, backend) -> list[MapStage | BatchStage]:
    """The GPU stages for ``backend`` (a CUDA backend: torch CUDA tensors in and out)."""
    if backend.device != "cuda":
        raise ValueError(f"the GPU pipeline needs a CUDA backend, not {backend.name}")
    try:
        return GpuPipeline(settings, backend).stages()
    except GpuError as error:
        raise FatalError(str(error)) from error


# --------------------------------------------------------------------------- helpers


def _gray_if_equal(decoded: Decoded) -> Decoded:
    """RGB pixels with R == G == B -> their one channel, as ``runtime.render.full_lightness``
    treats them (the exact gray table, and a third of the upload)."""
    pixels = decoded.pixels
    if pixels.ndim == 3 and np.array_equal(pixels[:, :, 0], pixels[:, :, 1]) and np.array_equal(
        pixels[:, :, 1], pixels[:, :, 2]
    ):
        return Decoded(pixels[:, :, 0], decoded.format, decoded.orientation)
    return decoded


def _unique(events) -> list[torch.cuda.Event]:
    seen, out = set(), []
    for event in events:
        if event is not None and id(event) not in seen:
            seen.add(id(event))
            out.append(event)
    return out


class _fatal_on_gpu_error:
    """Turn GpuError (out of memory, CUDA faults: no single file explains them) into a
    FatalError, which stops the run."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is not None and isinstance(error, GpuError) and not isinstance(error, NvjpegError):
            raise FatalError(str(error)) from error
        return False

"""The CPU pipeline: OpenCV/numpy stages in threads around a CPU backend (DESIGN §7).

    read (1 thread)            file bytes; size guard
    decode (N threads)         bytes -> upright pixels -> full-res L* -> render L/50-1 (SxS)
    infer (1 thread, batches)  backend.predict_ab on [B,1,S,S] -> [B,2,S,S]
    write (N threads)          colorize at full resolution, encode, stamp metadata, atomic write

OpenCV and numpy release the GIL, so N decode and write threads use N cores. The backend is
the bottleneck and shares those cores, so the other stages run at a lower priority (nice +10,
Linux) and take only the cycles it leaves idle (measured on 2 busy cores: 0.73 -> 0.91
images/s end to end, model alone about 1.1). The queues bound memory to about
``5 * batch_size + 2 * N`` decoded images (float32 L*), whatever the number of files.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from facecolor.runtime.decode import DecodeError, decode_image
from facecolor.runtime.geometry import Geometry, fit_geometry
from facecolor.runtime.pipeline import BatchStage, Item, MapStage, Settings
from facecolor.runtime.render import colorize_image, full_lightness, render_lightness
from facecolor.files import write_atomically
from facecolor.runtime.write import encode, metadata_note, output_dtype
from facecolor.scratch import Scratch

#: Bytes per pixel of the largest uncompressed input (16-bit RGBA) plus headroom, so a file
#: larger than this for the pixel limit cannot be an image we would decode.
MAX_BYTES_PER_PIXEL = 10
CODEC_NICE = 10


@dataclass
class CpuWork:
    """What travels between the CPU stages for one image (host memory throughout)."""

    format: str
    bit_depth: int
    geometry: Geometry
    lightness: np.ndarray  # float32 HxW L* in [0, 100]
    render: np.ndarray  # float32 SxS L/50-1 in [-1, 1]
    ab: np.ndarray | None = None  # float32 2xSxS ab/110 in [-1, 1], once inferred


def read_limit(settings: Settings) -> int:
    """Largest input in bytes worth reading for ``settings.max_pixels`` (any reader's guard)."""
    return max(64 << 20, settings.max_pixels * MAX_BYTES_PER_PIXEL)


def read_stage(settings: Settings):
    limit = read_limit(settings)

    def read(item: Item) -> Item:
        if item.payload is not None:  # fetched from a URL IN already (executor.storage_read_stage)
            return item
        size = os.stat(item.job.source).st_size
        if size > limit:
            raise DecodeError(f"file of {size / 1e6:.0f} MB is larger than the pixel limit allows (--max-pixels)")
        with open(item.job.source, "rb") as handle:
            item.payload = handle.read()
        return item

    return read


class CpuPipeline:
    """The CPU path's state; its methods are the stages (``read`` is ``read_stage``'s)."""

    def __init__(self, settings: Settings, backend) -> None:
        self.settings, self.backend = settings, backend
        self.read = read_stage(settings)
        self.note = metadata_note(backend.model.label)
        self._per_thread = threading.local()  # each writer thread reuses its full-size work arrays (<= 256 MB)

    def decode(self, item: Item) -> Item:
        decoded = decode_image(item.payload, max_pixels=self.settings.max_pixels)
        lightness = full_lightness(decoded.pixels)
        geometry = fit_geometry(*decoded.pixels.shape[:2], self.backend.render_size)
        render = render_lightness(lightness, geometry)
        item.payload = CpuWork(decoded.format, decoded.bit_depth, geometry, lightness, render)
        return item

    def infer(self, items: list[Item]) -> list[Item]:
        batch = np.stack([item.payload.render for item in items])[:, None]  # [B,1,S,S]
        for item, ab in zip(items, self.backend.predict_ab(batch)):  # [B,2,S,S]
            item.payload.ab = ab
        return items

    def write(self, item: Item) -> Item:
        work: CpuWork = item.payload
        fmt = item.job.out_format or work.format
        if not hasattr(self._per_thread, "scratch"):
            self._per_thread.scratch = Scratch()
        rgb = colorize_image(work.lightness, work.ab, work.geometry, output_dtype(work.bit_depth, fmt),
                             self._per_thread.scratch)
        return save(item, encode(rgb, fmt, quality=self.settings.quality, note=self.note))

    def stages(self) -> list[MapStage | BatchStage]:
        batch = min(self.settings.batch_size, self.backend.max_batch or self.settings.batch_size)
        workers = max(1, self.settings.workers)
        return [
            MapStage("read", self.read, workers=1, queue_size=2 * workers, nice=CODEC_NICE),
            MapStage("decode", self.decode, workers=workers, queue_size=2 * workers, nice=CODEC_NICE),
            BatchStage("infer", self.infer, batch_size=batch, queue_size=2 * batch),
            MapStage("write", self.write, workers=workers, queue_size=2 * batch, nice=CODEC_NICE),
        ]


def save(item: Item, data: bytes) -> Item:
    """The end of every pipeline's ``write``: the encoded file written atomically, its size kept.
    A target relative to a URL OUT (``walk.list_jobs``) keeps the bytes for the ``upload`` stage."""
    local = item.job.target.is_absolute()
    if local:
        write_atomically(item.job.target, data, fixed_temp=True)
    item.payload, item.size = None if local else data, len(data)
    return item


def build_stages(settings: Settings, backend) -> list[MapStage | BatchStage]:
    """The CPU stages for ``backend`` (a CPU backend: numpy in, numpy out)."""
    if backend.device != "cpu":
        raise ValueError(f"the CPU pipeline needs a CPU backend, not {backend.name}")
    return CpuPipeline(settings, backend).stages()

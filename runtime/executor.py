"""Run the runtime's stages in this process's threads, with IN and OUT as any storage.

The stages are the runtime's own (``stages_for``), changed at the edges only, so outputs are
byte-for-byte what a local run writes: a URL IN puts a ranged fsspec read (same size guard)
in front of ``read``; for a URL OUT, ``write`` (encode, note) hands the bytes on
(``pipeline_cpu.save``) to an added ``upload`` stage that sends each file whole (one PUT:
atomic on object stores), so nothing is staged on local disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any

from facecolor.runtime.decode import DecodeError
from facecolor.runtime.pipeline import BatchStage, Item, MapStage, Settings, StageRunner, StageStats
from facecolor.runtime.pipeline_cpu import read_limit
from facecolor.runtime.pipeline_cpu import build_stages as build_cpu_stages
from facecolor.runtime.pipeline_gpu import build_stages as build_gpu_stages
from facecolor.runtime.storage import Storage
from facecolor.runtime.walk import EXTENSION_FORMATS, NOT_AN_IMAGE, SKIPPED, sniff_format, unsupported_reason


def storage_read_stage(settings: Settings, in_store: Storage, then: Callable[[Item], Item]) -> Callable[[Item], Item]:
    """``read`` for a URL IN: the object's bytes, then the pipeline's own ``read`` (``then``,
    which takes them as read: the GPU path triages them there). An object without an image
    extension is read 16 bytes first and dropped when it is no image, as the local walk drops
    ``notes.txt``."""
    limit = read_limit(settings)

    def read(item: Item) -> Item:
        rel = PurePosixPath(item.job.relative)
        named_as_image = rel.suffix.lower() in EXTENSION_FORMATS  # else its content decides
        if not named_as_image and sniff_format(in_store.read_bytes(str(rel), max_bytes=15)) is None:
            item.status, item.stage, item.reason = SKIPPED, "read", unsupported_reason(rel) or NOT_AN_IMAGE
            return item
        data = in_store.read_bytes(str(rel), max_bytes=limit)
        if len(data) > limit:
            raise DecodeError(f"file of more than {limit / 1e6:.0f} MB is larger than the pixel limit allows "
                              "(--max-pixels)")
        item.payload = data
        return then(item)

    return read


def upload_stage(out_store: Storage) -> Callable[[Item], Item]:
    def upload(item: Item) -> Item:
        out_store.write_bytes(PurePosixPath(item.job.target).as_posix(), item.payload)
        item.payload = None
        return item

    return upload


DEFAULT_BATCH = {"cpu": 8, "cuda": 64}


def default_batch(device: str) -> int:
    return DEFAULT_BATCH.get(device, DEFAULT_BATCH["cpu"])


def stages_for(settings: Settings, backend) -> list[MapStage | BatchStage]:
    build_stages = build_gpu_stages if backend.device == "cuda" else build_cpu_stages
    return build_stages(settings, backend)


class ThreadExecutor:
    """One open backend, the stages in this process's threads: ``run_batch``'s executor here,
    and each Ray actor's for its blocks. ``stats`` holds the latest run's stage numbers.

    ``stages`` (a callable ``settings -> stages``) replaces ``stages_for`` (tests, benchmarks).
    """

    def __init__(self, backend, reason: str, stages: Callable[[Settings], list] | None = None) -> None:
        self.backend, self.reason = backend, reason
        self._make_stages = stages or (lambda settings: stages_for(settings, backend))
        self.stats: dict[str, StageStats] = {}

    def describe(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return backend_info(self.backend, self.reason), self.backend.model.as_dict()

    def run(self, settings: Settings, items: Iterable[Item], in_store: Storage, out_store: Storage,
            report=None) -> Iterator[Item]:
        runner = StageRunner(self._stages(settings, in_store, out_store))
        self.stats = runner.stats  # the runner's own numbers, filled in as its stages run
        yield from runner.run(items)

    def _stages(self, settings: Settings, in_store: Storage, out_store: Storage) -> list[MapStage | BatchStage]:
        stages = list(self._make_stages(settings))
        if not in_store.is_local:
            index = [stage.name for stage in stages].index("read")  # both pipelines start with it
            stages[index] = replace(stages[index], fn=storage_read_stage(settings, in_store, stages[index].fn))
        if not out_store.is_local:
            workers = max(2, settings.workers)
            stages.append(MapStage("upload", upload_stage(out_store), workers=workers, queue_size=2 * workers))
        return stages


def backend_info(backend, reason: str) -> dict[str, Any]:
    """The report's ``backend`` section."""
    return {"name": backend.name, "device": backend.device, "render_size": backend.render_size,
            "max_batch": backend.max_batch, "reason": reason}

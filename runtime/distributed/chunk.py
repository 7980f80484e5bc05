"""The runtime's own pipeline, run over a list of jobs whose IN and OUT may be object storage.

No second colorizer: the stages are the single-machine runtime's (``stages_for``: the CPU
pipeline for CPU backends, the GPU pipeline for CUDA ones) run by its ``StageRunner``, with two
changes at the edges only:

- a URL IN replaces the ``read`` stage by one that reads the object through fsspec (same size
  guard, same bytes handed to ``decode``); an object without an image extension is read
  16 bytes first, and dropped when it is no image, as the local walk drops ``notes.txt``;
- a URL OUT keeps the runtime's ``write`` stage (encode, metadata note, atomic write) writing
  into a private scratch folder, and adds an ``upload`` stage that sends each finished file
  whole to OUT (one PUT: atomic on object stores) and deletes the scratch copy.

So outputs are byte-for-byte what ``facecolor-batch`` writes for the same input and backend.
A :class:`ChunkRunner` serves both the single-machine URL path (one run over every job) and
each Ray actor (one run per block of jobs).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, fields, replace
from pathlib import Path, PurePosixPath

from facecolor.runtime.decode import DecodeError
from facecolor.runtime.distributed.jobs import NOT_AN_IMAGE, needs_sniffing
from facecolor.runtime.distributed.storage import Storage
from facecolor.runtime.pipeline import BatchStage, Item, MapStage, Settings, StageRunner, StageStats
from facecolor.runtime.walk import SKIPPED, Job, sniff_format, unsupported_reason

#: The CPU read stage's guard (``pipeline_cpu``): a file larger than this for the pixel limit
#: cannot be an image the decoder would accept, so it is refused before it is held in memory.
_MAX_BYTES_PER_PIXEL = 10
_SCRATCH_PREFIX = "facecolor-upload-"


class PipelineShapeError(RuntimeError):
    """The runtime's pipeline for this backend has no stage where object storage plugs in."""


def read_limit(settings: Settings) -> int:
    """Largest input in bytes worth reading for ``settings.max_pixels`` (as the CPU reader)."""
    return max(64 << 20, settings.max_pixels * _MAX_BYTES_PER_PIXEL)


def storage_read_stage(settings: Settings, in_store: Storage) -> Callable[[Item], Item]:
    """``read`` for a URL IN: ``item.payload`` = the object's bytes (what ``decode`` takes)."""
    limit = read_limit(settings)

    def read(item: Item) -> Item:
        rel = PurePosixPath(item.job.relative).as_posix()
        if needs_sniffing(item.job) and sniff_format(in_store.read_bytes(rel, max_bytes=15)) is None:
            item.status, item.stage = SKIPPED, "read"
            item.reason = unsupported_reason(PurePosixPath(rel)) or NOT_AN_IMAGE
            return item
        data = in_store.read_bytes(rel, max_bytes=limit)
        if len(data) > limit:
            raise DecodeError(f"file of more than {limit / 1e6:.0f} MB is larger than the pixel limit allows "
                              "(--max-pixels)")
        item.payload = data
        return item

    return read


def upload_stage(out_store: Storage, scratch: Path) -> Callable[[Item], Item]:
    """``upload`` for a URL OUT: the finished scratch file goes whole to OUT, then is deleted."""

    def upload(item: Item) -> Item:
        local = Path(item.job.target)
        rel = local.relative_to(scratch).as_posix()
        try:
            out_store.write_bytes(rel, local.read_bytes())
        finally:
            local.unlink(missing_ok=True)
        return item

    return upload


def _prune_stale_scratch(root: Path) -> None:
    """Remove scratch folders of processes that died (a killed Ray worker leaves its own)."""
    try:
        entries = list(root.iterdir())
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(_SCRATCH_PREFIX):
            continue
        try:
            pid = int(entry.name[len(_SCRATCH_PREFIX):].split("-", 1)[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except (ValueError, PermissionError, OSError):
            continue


class ChunkRunner:
    """Colorizes jobs with one open backend; ``run`` may be called many times (one per block).

    ``stats`` adds up each stage's busy time and item count over every run.
    ``after_item`` (optional) sees every finished item in the thread of the last stage; Ray
    actors use it for fault injection in tests.
    """

    def __init__(
        self,
        settings: Settings,
        backend,
        in_store: Storage,
        out_store: Storage,
        *,
        after_item: Callable[[Item], None] | None = None,
    ) -> None:
        self.settings, self.backend = settings, backend
        self.in_store, self.out_store = in_store, out_store
        self.after_item = after_item
        self.stats: dict[str, StageStats] = {}  # every run so far
        self.last_stats: dict[str, StageStats] = {}  # the latest run only
        self._scratch: Path | None = None
        if not out_store.is_local:
            root = Path(tempfile.gettempdir())
            _prune_stale_scratch(root)
            self._scratch = Path(tempfile.mkdtemp(prefix=f"{_SCRATCH_PREFIX}{os.getpid()}-", dir=root))

    def stages(self) -> list[MapStage | BatchStage]:
        from facecolor.runtime.cli import stages_for  # the CPU or GPU pipeline, as the CLI picks

        stages = list(stages_for(self.settings, self.backend))
        if not self.in_store.is_local:
            index = next((i for i, s in enumerate(stages) if s.name == "read" and isinstance(s, MapStage)), None)
            if index is None:
                raise PipelineShapeError(
                    f"the {self.backend.device} pipeline has no 'read' stage to read object storage from; "
                    "copy IN to a local folder or run on a CPU backend"
                )
            stages[index] = replace(stages[index], fn=storage_read_stage(self.settings, self.in_store))
        if self._scratch is not None:
            stages.append(MapStage("upload", upload_stage(self.out_store, self._scratch),
                                   workers=max(2, self.settings.workers), queue_size=2 * max(2, self.settings.workers)))
        if self.after_item is not None:
            last = stages[-1]
            stages[-1] = replace(last, fn=_observed(last.fn, self.after_item, batched=isinstance(last, BatchStage)))
        return stages

    def _local_job(self, job: Job) -> Job:
        """Point a URL OUT's target at its scratch copy (the write stage writes local files)."""
        if self._scratch is None or job.status is not None:
            return job
        target = self._scratch.joinpath(*PurePosixPath(job.target).parts)
        return Job(job.source, job.relative, target, job.out_format, job.status, job.reason)

    def run(self, jobs: Iterable[Job]) -> Iterator[Item]:
        """Yield every job's finished Item (done, skipped or failed), in no particular order.

        A fatal error (backend failure) propagates after every thread has stopped.
        """
        runner = StageRunner(self.stages())
        items = (Item(self._local_job(job), status=job.status, reason=job.reason,
                      stage="walk" if job.status else "") for job in jobs)
        try:
            yield from runner.run(items)
        finally:
            self.last_stats = runner.stats
            for name, stage in runner.stats.items():
                add_stats(self.stats.setdefault(name, StageStats()), asdict(stage))

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def add_stats(total: StageStats, numbers: dict) -> None:
    """Add one run's stage numbers (``asdict(StageStats)``, possibly from another process)."""
    for field in fields(StageStats):
        if field.name in numbers:
            setattr(total, field.name, getattr(total, field.name) + numbers[field.name])


def _observed(fn, after: Callable[[Item], None], *, batched: bool):
    """``fn`` (a map or batch stage function) that also shows each item to ``after``."""
    if batched:
        def batch_stage(items: list[Item]) -> list[Item]:
            items = fn(items)
            for item in items:
                after(item)
            return items

        return batch_stage

    def map_stage(item: Item) -> Item:
        item = fn(item)
        after(item)
        return item

    return map_stage

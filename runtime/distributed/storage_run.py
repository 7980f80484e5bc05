"""Single-machine runs whose IN or OUT is an object-storage URL (no Ray needed).

    from facecolor.runtime.distributed import colorize_storage
    report = colorize_storage("s3://archive/scans", "s3://archive/color", model="gpsagd.onnx")

The same job list, stages, report and exit codes as ``facecolor-batch`` with local folders;
``facecolor-report.json`` is written into OUT (an object on a URL OUT). Local-to-local runs
belong to the runtime's own ``run_pipeline``; this module serves every pair with a URL.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from facecolor.runtime.distributed.chunk import ChunkRunner
from facecolor.runtime.distributed.jobs import list_jobs
from facecolor.runtime.distributed.storage import Storage, StorageError, open_storage
from facecolor.runtime.pipeline import FatalError, Settings, check_directories, finishing
from facecolor.runtime.report import REPORT_NAME, Report
from facecolor.runtime.walk import FAILED, display


class LocationError(FatalError):
    """IN or OUT cannot be used (missing, unreadable, OUT containing IN); says why."""


def check_locations(in_store: Storage, out_store: Storage) -> None:
    """IN must be a readable folder or prefix; OUT must not be IN or contain it, and must be
    writable (its bucket exists; a local OUT is created)."""
    if in_store.is_local and out_store.is_local:
        check_directories(in_store.root_path, out_store.root_path)  # the runtime's own rules
        return
    if out_store.contains(in_store):
        raise LocationError(f"OUT {out_store.location} is IN or contains it: outputs could replace inputs; "
                            "choose a prefix outside IN (or one inside it)")
    try:
        in_store.check_readable_root()
        out_store.check_writable_root()
    except StorageError as error:
        raise LocationError(str(error)) from error


def output_lock(out_store: Storage):
    """The runtime's advisory lock on a local OUT; object stores have none (see docs/ray.md)."""
    if not out_store.is_local:
        return nullcontext()
    from facecolor.runtime.pipeline import _OutputLock  # one lock for every kind of run

    out_store.makedirs()
    return _OutputLock(out_store.root_path)


def write_report(report: Report, out_store: Storage) -> str:
    """Write ``facecolor-report.json`` into OUT atomically; return where it went."""
    if out_store.is_local:
        return str(report.write(out_store.root_path))
    text = json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n"
    return out_store.write_bytes(REPORT_NAME, text.encode("utf-8", "backslashreplace"))


def backend_info(backend, reason: str) -> dict[str, Any]:
    """The report's ``backend`` section, as ``run_pipeline`` writes it."""
    return {
        "name": backend.name,
        "device": backend.device,
        "render_size": backend.render_size,
        "max_batch": backend.max_batch,
        "reason": reason,
    }


def run_storage_pipeline(
    settings: Settings,
    backend,
    reason: str,
    in_store: Storage,
    out_store: Storage,
    *,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> Report:
    """``run_pipeline`` for any IN/OUT pair: every job through the runtime's stages, the report
    written into OUT at the end (also after a fatal error or an interrupt, which propagate)."""
    from tqdm import tqdm

    check_locations(in_store, out_store)
    echo = echo or (lambda line: print(line, file=sys.stderr))
    with output_lock(out_store):
        report = Report(settings=settings.as_dict(), backend=backend_info(backend, reason),
                        model=backend.model.as_dict())
        jobs = list_jobs(in_store, out_store, settings.out_format, overwrite=settings.overwrite)
        if not in_store.is_local:
            jobs = list(jobs)  # already one listing in memory: give the bar its total
        runner = ChunkRunner(settings, backend, in_store, out_store)
        bar = tqdm(total=len(jobs) if isinstance(jobs, list) else None, unit="img", file=sys.stderr,
                   disable=None if progress else True, dynamic_ncols=True)
        try:
            with finishing(report, lambda: runner.stats, lambda done: write_report(done, out_store)):
                try:
                    for item in runner.run(jobs):
                        report.add(item)
                        if item.status == FAILED:
                            bar.clear()
                            echo(f"failed: {display(item.job.relative)}: {item.reason}")
                        bar.update(1)
                finally:
                    runner.close()  # before the report, so its stage statistics are final
        finally:
            bar.close()
    return report


def colorize_storage(
    in_url: str | Path,
    out_url: str | Path,
    *,
    model: str | Path | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    render_size: int | None = None,
    out_format: str = "keep",
    quality: int = 95,
    overwrite: bool = False,
    workers: int | None = None,
    max_pixels: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    progress: bool = False,
    echo: Callable[[str], None] | None = None,
    announce: Callable[[str], None] | None = None,
) -> Report:
    """Colorize IN into OUT on this machine; either may be a local folder or a URL.

    ``storage_options`` go to fsspec for both (default: ``FACECOLOR_STORAGE_OPTIONS``).
    ``announce`` gets the backend line before the run starts; ``echo`` each failure. Raises
    ``ModelNotFound``/``BackendUnavailable`` (no model or backend), ``LocationError`` /
    ``DirectoryError`` (IN or OUT unusable) and ``BackendError`` (inference failed).
    """
    import os

    from facecolor.runtime.backends import open_backend
    from facecolor.runtime.cli import DEFAULT_BATCH
    from facecolor.runtime.decode import DEFAULT_MAX_PIXELS

    in_store, out_store = open_storage(in_url, storage_options), open_storage(out_url, storage_options)
    check_locations(in_store, out_store)
    backend, reason = open_backend(Path(model) if model else None, device,
                                   batch_size=batch_size or DEFAULT_BATCH["cuda"], render_size=render_size,
                                   notify=echo)
    if announce is not None:
        announce(reason)
    settings = Settings(
        in_dir=in_store.location,
        out_dir=out_store.location,
        out_format=out_format,
        quality=quality,
        overwrite=overwrite,
        batch_size=batch_size or DEFAULT_BATCH.get(backend.device, 8),
        workers=workers or max(1, os.cpu_count() or 1),
        max_pixels=max_pixels or DEFAULT_MAX_PIXELS,
    )
    with backend:
        return run_storage_pipeline(settings, backend, reason, in_store, out_store, progress=progress, echo=echo)

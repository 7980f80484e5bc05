"""``colorize_tree``: a whole batch run from plain options, as ``facecolor-batch`` makes it.

    report = colorize_tree("s3://archive/scans", "s3://archive/color", ray=RaySettings("auto"))

The library's policy lives here, not in the CLI: the default batch size per device, the
worker count, the pixel limit, which executor runs the batches.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from facecolor.runtime.backends import open_backend
from facecolor.runtime.decode import DEFAULT_MAX_PIXELS
from facecolor.runtime.distributed.ray_job import RayExecutor, RaySettings
from facecolor.runtime.executor import DEFAULT_BATCH, ThreadExecutor, default_batch
from facecolor.runtime.pipeline import Settings
from facecolor.runtime.report import Report
from facecolor.runtime.run import check_locations, run_batch
from facecolor.runtime.storage import open_storage


def colorize_tree(
    in_dir: str | Path,
    out_dir: str | Path,
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
    ray: RaySettings | None = None,
    progress: bool = False,
    echo: Callable[[str], None] | None = None,
    announce: Callable[[str], None] | None = None,
) -> Report:
    """Colorize IN into OUT; either may be a local folder or a URL. Return the Report.

    Without ``ray`` the batches run in this process (``workers`` decode and encode threads,
    default one per core); with it, in a pool of Ray actors (``workers`` is then each actor's
    CPUs, and ``device`` and ``render_size`` override ``ray``'s). ``storage_options`` go to
    fsspec (default: ``FACECOLOR_STORAGE_OPTIONS``). ``announce`` gets the backend line;
    ``echo`` each failure and first-use builds.

    Raises ``ModelNotFound``/``Unavailable`` (no model or backend), ``LocationError`` /
    ``DirectoryError`` (IN or OUT unusable), ``ClusterTooSmall`` and other ``FatalError``s.
    """
    in_store, out_store = open_storage(in_dir, storage_options), open_storage(out_dir, storage_options)
    check_locations(in_store, out_store)
    settings = Settings(in_dir=in_store.location, out_dir=out_store.location, out_format=out_format,
                        quality=quality, overwrite=overwrite, batch_size=batch_size or 0, workers=workers or 0,
                        max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
    common = dict(in_store=in_store, out_store=out_store, progress=progress, echo=echo)
    if ray is not None:  # batch size and workers follow the actor plan unless given
        ray = replace(ray, device=device, render_size=render_size, cpus_per_actor=workers or ray.cpus_per_actor)
        return run_batch(settings, RayExecutor(ray, model, announce), **common)
    backend, reason = open_backend(Path(model) if model else None, device,
                                   batch_size=batch_size or DEFAULT_BATCH["cuda"], render_size=render_size,
                                   notify=echo)
    if announce is not None:
        announce(reason)
    settings = replace(settings, batch_size=batch_size or default_batch(backend.device),
                       workers=workers or max(1, os.cpu_count() or 1))
    with backend:
        return run_batch(settings, ThreadExecutor(backend, reason), **common)

"""Scale-out for ``facecolor-batch``: object-storage IN/OUT and Ray clusters.

    from facecolor.runtime.distributed import colorize_storage, colorize_with_ray
    colorize_storage("s3://archive/scans", "s3://archive/color")             # this machine
    colorize_with_ray("s3://archive/scans", "s3://archive/color", address="auto")  # a cluster

- ``storage``: local folders and fsspec URLs behind one small interface, atomic writes;
- ``jobs``: the job list (the runtime's walk for local folders, one listing for URLs);
- ``chunk``: the runtime's own stages with object-storage reading and uploading at the edges;
- ``storage_run``: single-machine runs with URLs; ``ray_job``: the Ray Data job;
- ``cli``: what ``facecolor-batch`` calls for URLs and ``--ray``.

Ray and s3fs are optional (``pip install 'facecolor[ray]'``); nothing here imports them
until a run needs them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["colorize_storage", "colorize_with_ray", "open_storage", "run_cli"]


def __getattr__(name: str) -> Any:  # lazy: importing the package must not import Ray or torch
    if name == "colorize_storage":
        from facecolor.runtime.distributed.storage_run import colorize_storage

        return colorize_storage
    if name == "colorize_with_ray":
        from facecolor.runtime.distributed.ray_job import colorize_with_ray

        return colorize_with_ray
    if name == "open_storage":
        from facecolor.runtime.distributed.storage import open_storage

        return open_storage
    if name == "run_cli":
        from facecolor.runtime.distributed.cli import run_cli

        return run_cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

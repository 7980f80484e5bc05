"""What ``facecolor-batch`` needs for URLs and ``--ray``: argument types and one entry point.

The runtime's command keeps its options; it takes IN and OUT through ``IN_LOCATION`` and
``OUT_LOCATION`` (local folders are checked as before, URLs pass through) and hands any run
with a URL or ``--ray`` to :func:`run_cli`, which prints the same lines and returns the same
exit codes (0 all done or skipped, 3 some inputs failed; fatal errors raise
``click.ClickException``, exit 1).

``--ray`` takes an optional address: alone (``--ray`` as the last argument) it uses
``RAY_ADDRESS`` or starts a local Ray; ``--ray auto`` joins the cluster this machine belongs to;
``--ray ray://head:10001`` a remote one. Put it after IN and OUT (or write ``--ray=ADDRESS``),
since an option with an optional value would otherwise take IN as its address.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from facecolor.runtime.distributed.storage import StorageError, is_url

#: ``--ray`` given without an address.
RAY_LOCAL = "local"
EXIT_SOME_FAILED = 3


class Location(click.ParamType):
    """A local folder (checked like ``click.Path(file_okay=False)``) or a URL (``s3://...``)."""

    name = "location"

    def __init__(self, exists: bool) -> None:
        self._path = click.Path(exists=exists, file_okay=False, readable=False, path_type=Path)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and is_url(value):
            return value
        return self._path.convert(value, param, ctx)


IN_LOCATION = Location(exists=True)
OUT_LOCATION = Location(exists=False)


def wants_distributed(in_dir, out_dir, ray_address: str | None) -> bool:
    """True when the run belongs to :func:`run_cli` (a URL, or ``--ray``)."""
    return ray_address is not None or is_url(str(in_dir)) or is_url(str(out_dir))


def run_cli(
    in_dir: str | Path,
    out_dir: str | Path,
    *,
    ray_address: str | None,
    model: Path | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    render_size: int | None = None,
    overwrite: bool = False,
    out_format: str = "keep",
    quality: int = 95,
    workers: int | None = None,
    max_pixels: int | None = None,
    num_actors: int | None = None,
    files_per_task: int | None = None,
) -> int:
    """Run ``facecolor-batch`` with URLs and/or on Ray; return the exit code (0 or 3).

    ``ray_address`` None: on this machine; ``"local"``: Ray at ``RAY_ADDRESS`` or a new local
    instance; anything else: that cluster. With Ray, ``workers`` is each actor's CPUs (its
    decode and encode threads) and ``num_actors`` the pool size (default: one per GPU, else
    one per ``workers`` CPUs); ``files_per_task`` the files in each Ray task.
    """
    from facecolor.runtime.backends import BackendError, BackendUnavailable, ModelNotFound
    from facecolor.runtime.distributed.storage_run import colorize_storage
    from facecolor.runtime.pipeline import FatalError

    echo_err = lambda line: click.echo(line, err=True)  # noqa: E731
    common = dict(model=model, device=device, batch_size=batch_size, render_size=render_size,
                  out_format=out_format, quality=quality, overwrite=overwrite, max_pixels=max_pixels,
                  progress=True, echo=echo_err, announce=click.echo)
    report_at = _report_location(out_dir)
    try:
        if ray_address is None:
            report = colorize_storage(in_dir, out_dir, workers=workers, **common)
        else:
            from facecolor.runtime.distributed.ray_job import colorize_with_ray

            address = None if ray_address == RAY_LOCAL else ray_address
            report = colorize_with_ray(in_dir, out_dir, address=address, num_actors=num_actors,
                                       cpus_per_actor=workers, files_per_task=files_per_task, **common)
    except (ModelNotFound, BackendUnavailable, StorageError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    except (FatalError, BackendError) as error:
        raise click.ClickException(f"{error} (report: {report_at})") from error
    for line in report.summary_lines():
        click.echo(line)
    click.echo(f"wrote {report.done} images ({report.bytes_written / 1e6:.1f} MB) to {out_dir}; report: {report_at}")
    if report.failed:
        click.echo(f"{report.failed} inputs failed; the reasons are in the report and above", err=True)
        return EXIT_SOME_FAILED
    return 0


def _report_location(out_dir) -> str:
    from facecolor.runtime.report import REPORT_NAME

    text = str(out_dir)
    return f"{text.rstrip('/')}/{REPORT_NAME}" if is_url(text) else os.path.join(text, REPORT_NAME)

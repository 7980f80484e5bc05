"""``facecolor-batch IN_DIR OUT_DIR`` (also ``facecolor batch``, ``python -m facecolor.runtime``).

Only parsing and printing: the run is ``batch.colorize_tree``'s. Exit codes (DESIGN §5): 0 all
done or skipped; 1 fatal; 2 usage; 3 finished, but some inputs failed (named in
OUT_DIR/facecolor-report.json and on stderr).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from facecolor.errors import FacecolorError
from facecolor.runtime.backends import BackendError
from facecolor.runtime.batch import colorize_tree
from facecolor.runtime.decode import DEFAULT_MAX_PIXELS
from facecolor.runtime.distributed.ray_job import RaySettings
from facecolor.runtime.pipeline import FatalError
from facecolor.runtime.run import DirectoryError, report_location
from facecolor.runtime.storage import is_url

EXIT_SOME_FAILED = 3
#: ``--ray`` given without an address: ``RAY_ADDRESS`` or a new local Ray.
RAY_LOCAL = "local"


class Location(click.Path):
    """A local folder (checked as ``click.Path(file_okay=False)`` checks it) or a URL (``s3://...``)."""

    def __init__(self, exists: bool) -> None:
        super().__init__(exists=exists, file_okay=False, readable=False, path_type=Path)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and is_url(value):
            return value
        return super().convert(value, param, ctx)


@click.command(
    name="batch",
    epilog="Example: facecolor-batch ./yearbook-1931 ./yearbook-1931-color --format jpg",
)
@click.argument("in_dir", type=Location(exists=True))
@click.argument("out_dir", type=Location(exists=False))
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A .safetensors checkpoint, .onnx or TensorRT .plan (default: the shipped model).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto: TensorRT, else ONNX Runtime CUDA, else PyTorch CUDA, else ONNX Runtime CPU.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Images per inference batch (default: 64 on CUDA, 8 on CPU).")
@click.option("--render-size", type=click.IntRange(min=16), default=None,
              help="Square size the network sees (default: the model's own; another size needs PyTorch).")
@click.option("--overwrite", is_flag=True, help="Redo outputs that already exist (default: skip them).")
@click.option("--format", "out_format", type=click.Choice(["keep", "jpg", "png"]), default="keep", show_default=True,
              help="Output format: keep each input's format, or convert all to JPEG or PNG.")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="JPEG and WebP quality.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Decode and encode threads each (default: the number of CPU cores).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Refuse images larger than this (decompression bombs).")
@click.option("--ray", "ray_address", is_flag=False, flag_value=RAY_LOCAL, default=None, metavar="[ADDRESS]",
              help="Run on Ray: last and alone for RAY_ADDRESS or a local Ray, 'auto' for this machine's "
                   "cluster, or an address (see docs/ray.md). IN and OUT may also be s3:// URLs, with or "
                   "without it.")
@click.option("--num-actors", type=click.IntRange(min=1), default=None,
              help="With --ray: actors in the pool (default: one per GPU, else one per --workers CPUs).")
def main(in_dir, out_dir, ray_address, num_actors, **options):
    """Colorize every black-and-white image under IN_DIR into OUT_DIR.

    OUT_DIR mirrors IN_DIR's folders and names, at full resolution, keeping each file's format
    and 16-bit depth where the format allows. Existing outputs are skipped, so an interrupted
    run can simply be started again. Every failure is listed in OUT_DIR/facecolor-report.json.
    """
    if num_actors is not None and ray_address is None and not (is_url(str(in_dir)) or is_url(str(out_dir))):
        raise click.UsageError("--num-actors needs --ray")
    raise click.exceptions.Exit(run_cli(in_dir, out_dir, ray_address=ray_address, num_actors=num_actors, **options))


def run_cli(in_dir: str | Path, out_dir: str | Path, *, ray_address: str | None = None,
            num_actors: int | None = None, files_per_task: int | None = None, **options) -> int:
    """Run ``facecolor-batch`` and print its lines; return the exit code (0, or 3 when some
    inputs failed). Library errors become ``click.ClickException`` (exit 1), an unusable
    OUT_DIR next to a good IN_DIR ``click.BadParameter`` (exit 2). ``ray_address`` is
    ``--ray``'s value; ``options`` are ``colorize_tree``'s.
    """
    ray = None
    if ray_address is not None:
        ray = RaySettings(address=None if ray_address == RAY_LOCAL else ray_address, num_actors=num_actors,
                          files_per_task=files_per_task)
    try:
        report = colorize_tree(in_dir, out_dir, ray=ray, progress=True, echo=lambda line: click.echo(line, err=True),
                               announce=click.echo, **options)
    except DirectoryError as error:
        if Path(in_dir).resolve().is_dir() and os.access(in_dir, os.R_OK | os.X_OK):
            raise click.BadParameter(str(error), param_hint="OUT_DIR") from error
        raise click.ClickException(str(error)) from error
    except (FatalError, BackendError) as error:
        raise click.ClickException(f"{error} (report: {report_location(out_dir)})") from error
    except (FacecolorError, ValueError) as error:  # StorageError, Unavailable, ModelNotFound, ...
        raise click.ClickException(str(error)) from error
    for line in report.summary_lines():
        click.echo(line)
    click.echo(f"wrote {report.done} images ({report.bytes_written / 1e6:.1f} MB) to {out_dir}; "
               f"report: {report_location(out_dir)}")
    if report.failed:
        click.echo(f"{report.failed} inputs failed; the reasons are in the report and above", err=True)
        return EXIT_SOME_FAILED
    return 0

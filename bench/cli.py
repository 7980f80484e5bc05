"""``bench`` / ``facecolor-bench`` / ``facecolor bench``: latency and parity of an engine."""

from __future__ import annotations

from pathlib import Path

import click

from facecolor.bench.gates import DEFAULT_MAX_DAB, GateSettings
from facecolor.bench.latency import DEFAULT_BATCH_SIZES, LatencySettings
from facecolor.bench.report import format_report
from facecolor.bench.run import BenchSettings, run_bench
from facecolor.bench.targets import TARGETS
from facecolor.errors import FacecolorError
from facecolor.files import write_json

EPILOG = """\b
Examples:
  bench --engine models/gpsagd.onnx --data ../shared/data/faces/ffhq_dev --limit 64
  bench --engine models/gpsagd.plan --json out/bench.json
  bench --engine models/gpsagd.safetensors --compare torch-fp32,torch-fp16,ort-cuda,trt

\b
Exit codes: 0 every gate holds; 1 a gate failed, a backend errored, nothing could run,
or the engine/reference/data cannot be used; 2 bad flags.
"""


def _batch_sizes(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(part) for part in value.split(",") if part.strip()}))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers, e.g. 1,16,64,256")
    if not sizes or sizes[0] < 1:
        raise click.BadParameter(f"batch sizes must be positive integers, got {value!r}")
    return sizes


def _compare(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    chosen = tuple(dict.fromkeys(name for name in (part.strip() for part in value.split(",")) if name))
    for name in chosen:
        if name not in TARGETS:
            raise click.BadParameter(f"unknown backend {name!r}; choose from {', '.join(TARGETS)}")
    if not chosen:
        raise click.BadParameter(f"--compare names no backend; choose from {', '.join(TARGETS)}")
    return chosen


@click.command(name="bench", epilog=EPILOG)
@click.option("--engine", "engine", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The model to benchmark: a TensorRT .plan, an .onnx, or a .safetensors checkpoint "
                   "(then PyTorch fp32 and, on CUDA, fp16).")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PyTorch checkpoint to compare with (default: the one the engine's sidecar names, "
                   "the engine itself for a checkpoint, else the shipped model).")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of color photos: reduced to gray, colorized by both, scored against the "
                   "originals. Without it: agreement on the examples/ photos only.")
@click.option("--batch-sizes", default=",".join(map(str, DEFAULT_BATCH_SIZES)), show_default=True,
              callback=_batch_sizes, help="Batch sizes to time the engine at.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the full report as JSON here.")
@click.option("--compare", callback=_compare, metavar="NAMES",
              help=f"Comma-separated backends to run side by side: {', '.join(TARGETS)}. "
                   "One that cannot run here gets an 'unavailable' row.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where to run; auto = CUDA when torch sees a GPU.")
@click.option("--max-delta-psnr", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="Gate: largest |PSNR(engine) - PSNR(reference)| in dB.")
@click.option("--max-delta-hist", type=click.FloatRange(min=0), default=0.005, show_default=True,
              help="Gate: largest |Hist(engine) - Hist(reference)|.")
@click.option("--max-dab", type=click.FloatRange(min=0), default=None,
              help="Gate: largest |Δab| between engine and reference on any pixel, CIELAB units "
                   f"(default by precision: fp32 {DEFAULT_MAX_DAB['fp32']}, fp16 {DEFAULT_MAX_DAB['fp16']}).")
@click.option("--fid-weights", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="clean-fid's inception-2015-12-05.pt, for FID (default: where clean-fid looks, /tmp).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Use at most N images for parity and the pipeline rate.")
@click.option("--min-time", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Seconds of timed runs per batch size (the run count follows from it).")
@click.option("--min-runs", type=click.IntRange(min=1), default=5, show_default=True,
              help="Fewest timed runs per batch size, however slow.")
@click.option("--pipeline/--no-pipeline", default=True, show_default=True,
              help="Also measure the end-to-end folder rate beside the codec-only rate.")
@click.option("--pipeline-images", type=click.IntRange(min=1), default=None, metavar="N",
              help="Time the pipeline and the codecs on N synthetic 1024x1280 gray JPEG portraits (a "
                   "typical scan) instead of the parity images; make gpu-check uses 1000.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")
def main(engine: Path, reference: Path | None, data: Path | None, batch_sizes: tuple[int, ...],
         json_out: Path | None, compare: tuple[str, ...] | None, device: str, max_delta_psnr: float,
         max_delta_hist: float, max_dab: float | None, fid_weights: Path | None, limit: int | None,
         min_time: float, min_runs: int, pipeline: bool, pipeline_images: int | None, quiet: bool) -> None:
    """Benchmark an engine here and check it gives the colors of its PyTorch model.

    Times the engine alone per batch size (p50/p90/p99, images/s), the whole folder
    pipeline beside the codec alone, and compares its colors with the PyTorch fp32
    reference (PSNR, Hist, CIEDE2000, FID, |Δab|) under pass/fail gates. On CUDA, also
    nvJPEG alone on the same JPEGs in memory, and pipeline / GPU codec against its 0.80 target.
    """
    if pipeline_images and not pipeline:
        raise click.UsageError("--pipeline-images times the pipeline: drop --no-pipeline")
    settings = BenchSettings(
        engine=engine, reference=reference, data=data, compare=compare, device=device, limit=limit,
        fid_weights=fid_weights, pipeline=pipeline, pipeline_images=pipeline_images,
        latency=LatencySettings(batch_sizes=batch_sizes, min_time=min_time, min_runs=min(min_runs, 1000)),
        gates=GateSettings(max_delta_psnr=max_delta_psnr, max_delta_hist=max_delta_hist, max_dab=max_dab),
    )
    progress = None if quiet else (lambda message: click.echo(f"bench: {message}", err=True))
    try:
        report = run_bench(settings, progress)
    except FacecolorError as error:
        raise click.ClickException(str(error)) from error
    click.echo(format_report(report))
    if json_out is not None:
        write_json(json_out, report.to_dict())
        click.echo(f"saved as {json_out} ({json_out.stat().st_size / 1000:.1f} kB)")
    if report.rows and all(row.status.startswith("unavailable") for row in report.rows.values()):
        raise click.ClickException(
            "no backend could run here: " + "; ".join(f"{n}: {r.status}" for n, r in report.rows.items())
        )
    if report.failures:
        gates_failed = any(row.failed_gates() for row in report.rows.values())
        label = "gate failed" if gates_failed else "backend failed"
        raise click.ClickException(f"{label}: " + " | ".join(report.failures))

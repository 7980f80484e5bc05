"""Throughput: images per second of whole runs, beside what bounds them. The one harness.

    python -m facecolor.bench.throughput rounds --images 1000 --json out/rt-bench.json
    python -m facecolor.bench.throughput ray --config 1x1 --config 2x1 --json out/ray-bench.json

``cpu_bound_ratio`` (model-alone CPU per image / pipeline CPU per image) is the ratio the
pipeline reaches with the cores to itself. Every figure is measured in ``bench.measure``, on
synthetic portraits, with a random-init ``gpsagd`` when no model is given: its speed is that
of a trained one.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path

import click

from facecolor.bench.latency import LatencySettings, measure_batch
from facecolor.bench.measure import (
    make_dataset,
    random_checkpoint,
    ray_figures,
    single_process_figures,
    split_into_parts,
    timed_run,
)
from facecolor.export.cache import cached_onnx
from facecolor.files import write_json
from facecolor.runtime.backends import open_backend
from facecolor.runtime.executor import DEFAULT_BATCH, ThreadExecutor, default_batch
from facecolor.runtime.pipeline import Settings

CPU_TARGET = 0.85


def model_alone(backend, batch_size: int, min_seconds: float) -> tuple[float, float]:
    """(images/s, process CPU seconds per image), timed for ``min_seconds`` however fast."""
    settings = LatencySettings(batch_sizes=(batch_size,), min_time=min_seconds, max_runs=10**6)
    result = measure_batch(backend, batch_size, settings)
    if not result.ok:
        raise click.ClickException(f"the model alone at batch {batch_size}: {result.status}")
    return result.images_per_s, result.cpu_s_per_image


@click.group()
def main() -> None:
    """Throughput of facecolor-batch: end to end beside the model alone, and Ray pools."""


@main.command(epilog="Example: python -m facecolor.bench.throughput rounds --images 1000 --json out/runtime-bench.json")
@click.option("--images", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--size", default="1024x1280", show_default=True, help="WIDTHxHEIGHT of the synthetic portraits.")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the synthetic JPEGs, made once and reused; it should hold nothing else "
                   "(default: one per count and size under the temp dir).")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Model to run (default: a random-init gpsagd, width 1.0).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--workers", type=click.IntRange(min=1), default=None)
@click.option("--rounds", type=click.IntRange(min=1), default=5, show_default=True,
              help="Slices of the folder, each run between two model-alone measurements.")
@click.option("--model-seconds", type=float, default=10.0, show_default=True,
              help="Minimum time of each model-alone measurement.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
def rounds(images, size, data, model, device, batch_size, workers, rounds, model_seconds, json_path):
    """Measure facecolor-batch end to end and the model alone, in one run.

    A shared machine's speed drifts (measured here: the same model 5.3 then 8.3 images/s a few
    minutes apart), so the folder is cut into ROUNDS slices and the model alone is measured
    before and after each: every slice's ratio compares numbers taken minutes, not a quarter of
    an hour, apart, and the median ratio is the result.
    """
    width, height = (int(v) for v in size.lower().split("x"))
    work = Path(tempfile.gettempdir()) / "facecolor-runtime-bench"
    data = data or work / f"portraits-{images}-{width}x{height}"
    rounds = min(rounds, images)
    click.echo(f"dataset: {images} synthetic {width}x{height} JPEGs in {data}, {rounds} rounds")
    make_dataset(data, images, height, width)
    model = model or random_checkpoint(work)
    backend, reason = open_backend(model, device, batch_size=batch_size or DEFAULT_BATCH["cuda"], notify=click.echo)
    click.echo(reason)
    batch = batch_size or default_batch(backend.device)
    runs, alone, ratios = [], [], []  # alone: the model alone (images/s, CPU s per image) before, then after each
    with backend, tempfile.TemporaryDirectory(prefix="facecolor-bench-parts-") as scratch:
        parts = split_into_parts(data, rounds, Path(scratch))
        alone.append(model_alone(backend, batch, model_seconds))
        for number, part in enumerate(parts, 1):
            with tempfile.TemporaryDirectory(prefix="facecolor-bench-out-") as out:
                settings = Settings(in_dir=part, out_dir=Path(out), batch_size=batch, overwrite=True,
                                    workers=workers or max(1, os.cpu_count() or 1))
                runs.append(timed_run(settings, ThreadExecutor(backend, reason)))
            alone.append(model_alone(backend, batch, model_seconds))
            report, seconds, _ = runs[-1]
            before, after = alone[-2][0], alone[-1][0]
            ratios.append(report.done / seconds / statistics.mean([before, after]))
            click.echo(f"round {number}/{len(parts)}: end to end {report.done / seconds:.2f} images/s, "
                       f"model alone {before:.2f} -> {after:.2f} images/s, ratio {ratios[-1]:.0%}")
    done = sum(report.done for report, _, _ in runs)
    end_to_end = done / sum(seconds for _, seconds, _ in runs)
    alone_mean = statistics.mean(rate for rate, _ in alone)
    ratio = statistics.median(ratios)
    cpu_pipeline = sum(cpu for _, _, cpu in runs) / max(1, done)
    cpu_alone = statistics.mean(cpu for _, cpu in alone)
    result = {
        "device": backend.device,
        "backend": backend.name,
        "reason": reason,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "images": images,
        "size": [width, height],
        "batch_size": batch,
        "failed": sum(report.failed for report, _, _ in runs),
        "end_to_end_images_per_s": round(end_to_end, 3),
        "model_alone_images_per_s": round(alone_mean, 3),
        "ratio": round(ratio, 3),
        "ratio_of_means": round(end_to_end / alone_mean, 3),
        "rounds": [{"images": report.done, "end_to_end_images_per_s": round(report.done / seconds, 3),
                    "model_alone_before_after": [round(alone[k][0], 3), round(alone[k + 1][0], 3)],
                    "ratio": round(ratios[k], 3), "stages_busy_s": report.stages}
                   for k, (report, seconds, _) in enumerate(runs)],
        "cpu_s_per_image": {"model_alone": round(cpu_alone, 4), "end_to_end": round(cpu_pipeline, 4)},
        "cpu_bound_ratio": round(cpu_alone / cpu_pipeline, 3),
    }
    target = f" (CPU target {CPU_TARGET:.0%})" if backend.device == "cpu" else ""
    click.echo(f"end to end: {end_to_end:.2f} images/s; model alone: {alone_mean:.2f} images/s; "
               f"median ratio of {len(runs)} rounds {ratio:.0%}{target}")
    click.echo(f"CPU per image: model alone {cpu_alone:.3f} s, end to end {cpu_pipeline:.3f} s; "
               f"ratio with the cores to itself {cpu_alone / cpu_pipeline:.0%}{target}")
    if json_path:
        click.echo(f"wrote {write_json(json_path, result)}")


@main.command(epilog="Example: python -m facecolor.bench.throughput ray --images 200 --json out/ray-bench.json")
@click.option("--images", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--size", default="512x640", show_default=True, help="WIDTHxHEIGHT of the synthetic JPEGs.")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the synthetic JPEGs (kept; default: a temporary folder).")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Checkpoint or ONNX (default: a random-init gpsagd, width 1.0).")
@click.option("--config", "configs", multiple=True, default=("1x1", "2x1", "1x2"), show_default=True,
              help="ACTORSxCPUS per actor; repeat for several runs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--files-per-task", type=click.IntRange(min=1), default=25, show_default=True)
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Rounds over all configurations; the summary gives each one's median.")
@click.option("--num-cpus", type=click.IntRange(min=1), default=None, help="CPUs of the local Ray (default: all).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
def ray(images, size, data, model, configs, batch_size, files_per_task, repeat, num_cpus, json_path):
    """Images/s of facecolor-batch --ray for several actor pools on this machine."""
    import ray as ray_module

    width, height = (int(v) for v in size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="facecolor-ray-bench-", ignore_cleanup_errors=True) as name:
        scratch = Path(name)
        folder = make_dataset(data or scratch / "in", images, height, width)
        model = model or random_checkpoint(scratch)
        onnx = model if model.suffix == ".onnx" else cached_onnx(model)  # exported once, outside the timings
        rows = []
        ray_module.init(num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
        try:
            for round_ in range(repeat):  # round robin: a shared machine's load drifts
                rows.append({**single_process_figures(folder, scratch / f"out-single-{round_}", onnx, batch_size),
                             "round": round_})
                click.echo(json.dumps(rows[-1]))
                for config in configs:
                    actors, cpus = (int(v) for v in config.lower().split("x"))
                    rows.append({**ray_figures(folder, scratch / f"out-{config}-{round_}", onnx, actors, cpus,
                                            batch_size, files_per_task), "round": round_})
                    click.echo(json.dumps(rows[-1]))
        finally:
            ray_module.shutdown()
    summary = {}
    for name in dict.fromkeys(row["config"] for row in rows):
        runs = [row for row in rows if row["config"] == name]
        summary[name] = {key: statistics.median(row[key] for row in runs)
                         for key in ("end_to_end_images_per_s", "steady_images_per_s", "cpu_ms_per_image")}
        click.echo(f"{name}: " + ", ".join(f"{key} {value:.2f}" for key, value in summary[name].items()))
    result = {"summary": summary, "images": images, "size": size, "model": str(model), "batch_size": batch_size,
              "files_per_task": files_per_task, "cpus": num_cpus or os.cpu_count(), "load_avg": os.getloadavg(),
              "runs": rows}
    if json_path:
        click.echo(f"wrote {write_json(json_path, result)}")


if __name__ == "__main__":
    main()

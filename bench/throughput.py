"""Throughput: images per second of whole runs, beside what bounds them. The one harness.

    python -m facecolor.bench.throughput rounds --images 1000 --json out/rt-bench.json
    python -m facecolor.bench.throughput ray --config 1x1 --config 2x1 --json out/ray-bench.json
    python -m facecolor.bench.throughput gpu --json out/gpu_bench.json      # scripts/gpu_bench.py

``cpu_bound_ratio`` (model-alone CPU per image / pipeline CPU per image) is the ratio the
pipeline reaches with the cores to itself. Every figure is measured in ``bench.measure``, on
synthetic portraits, with a random-init ``gpsagd`` when no model is given: its speed is that
of a trained one.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import click
import torch

from facecolor.bench.latency import LatencySettings, measure_batch
from facecolor.bench.measure import (
    PipelineFolder,
    gpu_codec_rate,
    make_dataset,
    nvjpeg_alone,
    pipeline_rate,
    random_checkpoint,
    ray_figures,
    single_process_figures,
    split_into_parts,
    timed_run,
)
from facecolor.bench.targets import open_target
from facecolor.export.cache import cached_onnx
from facecolor.files import write_json
from facecolor.machine import system_info
from facecolor.runtime.backends import ModelNotFound, open_backend, shipped_model
from facecolor.runtime.executor import DEFAULT_BATCH, ThreadExecutor, default_batch
from facecolor.runtime.pipeline import Settings
from facecolor.table import format_table

CPU_TARGET = 0.85
GPU_TARGET = 0.80


def model_alone(backend, batch_size: int, min_seconds: float) -> tuple[float, float]:
    """(images/s, process CPU seconds per image), timed for ``min_seconds`` however fast."""
    settings = LatencySettings(batch_sizes=(batch_size,), min_time=min_seconds, max_runs=10**6)
    result = measure_batch(backend, batch_size, settings)
    if not result.ok:
        raise click.ClickException(f"the model alone at batch {batch_size}: {result.status}")
    return result.images_per_s, result.cpu_s_per_image


@dataclass
class Round:
    images: int
    seconds: float
    cpu_s: float
    alone_before: float
    alone_after: float
    stages: dict

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds

    @property
    def ratio(self) -> float:
        return self.images_per_s / statistics.mean([self.alone_before, self.alone_after])


@click.group()
def main() -> None:
    """Throughput of facecolor-batch: end to end beside the model alone, Ray pools, the GPU."""


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
    parts = split_into_parts(data, rounds)
    model = model or random_checkpoint(work)
    backend, reason = open_backend(model, device, batch_size=batch_size or DEFAULT_BATCH["cuda"], notify=click.echo)
    click.echo(reason)
    batch = batch_size or default_batch(backend.device)
    results: list[Round] = []
    failed = 0
    with backend:
        alone, alone_cpu = model_alone(backend, batch, model_seconds)
        alone_cpus = [alone_cpu]
        for number, part in enumerate(parts, 1):
            with tempfile.TemporaryDirectory(prefix="facecolor-bench-out-") as out:
                settings = Settings(in_dir=part, out_dir=Path(out), batch_size=batch, overwrite=True,
                                    workers=workers or max(1, os.cpu_count() or 1))
                report, seconds, cpu = timed_run(settings, ThreadExecutor(backend, reason))
            after, after_cpu = model_alone(backend, batch, model_seconds)
            alone_cpus.append(after_cpu)
            results.append(Round(report.done, seconds, cpu, alone, after, report.stages))
            failed += report.failed
            click.echo(f"round {number}/{len(parts)}: end to end {results[-1].images_per_s:.2f} images/s, "
                       f"model alone {alone:.2f} -> {after:.2f} images/s, ratio {results[-1].ratio:.0%}")
            alone = after
    done = sum(r.images for r in results)
    end_to_end = done / sum(r.seconds for r in results)
    alone_mean = statistics.mean([results[0].alone_before] + [r.alone_after for r in results])
    ratio = statistics.median(r.ratio for r in results)
    cpu_pipeline = sum(r.cpu_s for r in results) / max(1, done)
    cpu_alone = statistics.mean(alone_cpus)
    result = {
        "device": backend.device,
        "backend": backend.name,
        "reason": reason,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "images": images,
        "size": [width, height],
        "batch_size": batch,
        "failed": failed,
        "end_to_end_images_per_s": round(end_to_end, 3),
        "model_alone_images_per_s": round(alone_mean, 3),
        "ratio": round(ratio, 3),
        "ratio_of_means": round(end_to_end / alone_mean, 3),
        "rounds": [{"images": r.images, "end_to_end_images_per_s": round(r.images_per_s, 3),
                    "model_alone_before_after": [round(r.alone_before, 3), round(r.alone_after, 3)],
                    "ratio": round(r.ratio, 3), "stages_busy_s": r.stages} for r in results],
        "cpu_s_per_image": {"model_alone": round(cpu_alone, 4), "end_to_end": round(cpu_pipeline, 4)},
        "cpu_bound_ratio": round(cpu_alone / cpu_pipeline, 3),
    }
    target = f" (CPU target {CPU_TARGET:.0%})" if backend.device == "cpu" else ""
    click.echo(f"end to end: {end_to_end:.2f} images/s; model alone: {alone_mean:.2f} images/s; "
               f"median ratio of {len(results)} rounds {ratio:.0%}{target}")
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
    scratch = Path(tempfile.mkdtemp(prefix="facecolor-ray-bench-"))
    try:
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
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
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


def _measure(rows: dict, name: str, function, *args, **kwargs) -> None:
    """A failure is recorded (and printed), so one broken measurement does not hide the others."""
    try:
        rows[name] = function(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - reported in the row and on stderr
        traceback.print_exc()
        rows[name] = {"status": f"error: {type(error).__name__}: {error}"}


@main.command(epilog="Example: python scripts/gpu_bench.py --json out/gpu_bench.json")
@click.option("--count", type=click.IntRange(min=1), default=1000, show_default=True, help="Synthetic JPEGs.")
@click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Codec and pipeline batch.")
@click.option("--quality", type=click.IntRange(1, 100), default=90, show_default=True,
              help="JPEG quality in and out.")
@click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 4, show_default=True,
              help="Pipeline CPU threads.")
@click.option("--repeats", type=click.IntRange(min=1), default=2, show_default=True,
              help="Timed end-to-end runs (the best counts).")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help=".safetensors (default: the shipped model, else a random-init gpsagd).")
@click.option("--onnx", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Also measure ONNX Runtime CUDA on this file.")
@click.option("--plan", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Also measure TensorRT on this plan.")
@click.option("--pipeline-backend", default="best", show_default=True,
              help="best (tensorrt > onnxruntime-cuda > torch-cuda) or a backend's name.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the results here.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Scratch folder (default: a temp folder).")
def gpu(count, batch, quality, workers, repeats, model, onnx, plan, pipeline_backend, json_path, workdir) -> None:
    """nvJPEG alone, the model alone per CUDA backend, the GPU pipeline end to end.

    On COUNT synthetic 1024x1280 gray baseline JPEGs (< 90 s): nvJPEG decode and encode alone
    on bytes in memory, the runtime's GPU codec alone (reads and writes included), the model
    alone at batch 64 and 256 on each CUDA backend (PyTorch; ONNX Runtime with --onnx; TensorRT
    with --plan), and the GPU pipeline end to end. Figure of merit: end to end / codec alone,
    target 0.80 (issue 4).
    """
    if not torch.cuda.is_available():
        raise click.ClickException("torch sees no CUDA device; nothing to measure")
    began = time.perf_counter()
    results: dict = {"system": system_info(), "rows": {}, "notes": []}
    rows, notes = results["rows"], results["notes"]
    workdir = Path(tempfile.mkdtemp(prefix="facecolor-gpu-bench-", dir=workdir))
    try:
        started = time.perf_counter()
        folder = make_dataset(workdir / "in", count, 1280, 1024, quality)
        paths = tuple(sorted(folder.iterdir()))
        files = [path.read_bytes() for path in paths]
        results["inputs"] = {"count": count, "width": 1024, "height": 1280, "quality": quality,
                             "kind": "gray baseline JPEG", "mean_kb": round(sum(map(len, files)) / count / 1024, 1),
                             "made_in_s": round(time.perf_counter() - started, 2)}
        system = results["system"]
        click.echo(f"device: {system['gpu']['name']}; torch {system['versions']['torch']} (CUDA "
                   f"{system['gpu']['cuda']}); inputs: {results['inputs']}")
        for step in ("decode", "encode"):
            _measure(rows, f"nvjpeg_{step}", nvjpeg_alone, files, batch, quality, step)
        _measure(rows, "nvjpeg_decode_encode", gpu_codec_rate, PipelineFolder(folder, paths), workdir, batch,
                 quality)
        try:
            checkpoint = model or shipped_model()
        except ModelNotFound:
            checkpoint = random_checkpoint(workdir)
        results["model"] = str(checkpoint)
        backends = {}
        for name, path, flag in (("torch-fp16", checkpoint, ""), ("ort-cuda", onnx, "--onnx MODEL.onnx"),
                                 ("trt", plan, "--plan MODEL.plan")):
            if path is None:
                notes.append(f"{name}: not measured (pass {flag})")
                continue
            try:
                backend = open_target(name, path, checkpoint, "cuda", 256).backend
            except Exception as error:  # noqa: BLE001 - a note says why; the bench goes on
                notes.append(f"{name}: {error}")
                continue
            backends[backend.name] = backend
        for name, backend in backends.items():
            for size in (64, 256):
                settings = LatencySettings(batch_sizes=(size,), min_time=0.5)
                rows[f"model_{name}_b{size}"] = measure_batch(backend, size, settings).to_dict()
        order = ["tensorrt", "onnxruntime-cuda", "torch-cuda"]
        chosen = pipeline_backend if pipeline_backend != "best" else next((n for n in order if n in backends), None)
        if chosen in backends:
            _measure(rows, "end_to_end", pipeline_rate, backends[chosen], PipelineFolder(folder, paths), workdir,
                     rows["nvjpeg_decode_encode"], repeats, batch_size=batch, quality=quality, workers=workers)
        else:
            rows["end_to_end"] = {"status": f"error: backend {chosen!r} is not open (open: {sorted(backends)})"}
        for backend in backends.values():
            backend.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ratio = rows["end_to_end"].get("ratio") or 0.0
    results.update(ratio_end_to_end_over_codec=round(ratio, 3), target_ratio=GPU_TARGET,
                   meets_target=ratio >= GPU_TARGET, total_s=round(time.perf_counter() - began, 1))
    table = [[name, f"{row.get('images_per_s') or 0:.0f}", row["status"]] for name, row in rows.items()]
    table.append(["end-to-end / codec alone", f"{ratio:.2f}",
                  f"target >= {GPU_TARGET:.2f}: {'met' if ratio >= GPU_TARGET else 'NOT met'}"])
    click.echo(format_table(["measurement", "images/s", "status"], table))
    for note in notes:
        click.echo(f"note: {note}")
    click.echo(f"total {results['total_s']} s")
    if json_path:
        click.echo(f"wrote {write_json(json_path, results)}")
    failed = [name for name, row in rows.items() if row["status"] != "ok"]
    if failed:
        raise click.ClickException(f"{', '.join(failed)} failed (see the tracebacks above)")


if __name__ == "__main__":
    main()

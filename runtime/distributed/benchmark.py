"""Throughput of ``--ray`` with 1 and 2 actors (and the single-process runtime), same files.

    python -m facecolor.runtime.distributed.benchmark                      # 200 x 512x640 JPEGs, CPU
    python -m facecolor.runtime.distributed.benchmark --model models/gpsagd.safetensors --json out/ray-bench.json

One process starts one local Ray instance and runs, over the same folder and with the same
ONNX model: the single-process runtime (``run_batch``, all cores), then ``colorize_tree(ray=...)``
once per actor configuration (``--config ACTORSxCPUS``, default ``1x1 2x1 1x2``), each into a
fresh OUT. Two rates per run:

- end to end: images / wall time of the whole call, actor start-up included;
- steady: images / time from the moment the last actor was ready (its backend open) to the
  end, which is what a long run on a cluster approaches (actor start-up is paid once per run);
- CPU per image: CPU seconds (all threads) of the process, or of the actors' blocks, per
  image; on a shared machine this is what stays comparable, and ``cores / CPU per image`` is
  the rate the same configuration reaches with that many idle cores.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import click

from facecolor.files import write_json


def _single_process(folder: Path, out: Path, onnx: Path, batch_size: int) -> dict:
    from facecolor.runtime.backends import open_backend
    from facecolor.runtime.executor import ThreadExecutor
    from facecolor.runtime.pipeline import Settings
    from facecolor.runtime.run import run_batch

    backend, reason = open_backend(onnx, "cpu", batch_size=batch_size)
    settings = Settings(in_dir=folder, out_dir=out, batch_size=batch_size, workers=os.cpu_count() or 1)
    start, cpu_start = time.perf_counter(), time.process_time()
    with backend:
        report = run_batch(settings, ThreadExecutor(backend, reason), progress=False, echo=lambda line: None)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    rate = round(report.done / wall, 3)  # no start-up to leave out: end to end is steady
    return {"config": "single process", "done": report.done, "wall_s": round(wall, 2),
            "end_to_end_images_per_s": rate, "steady_images_per_s": rate,
            "cpu_ms_per_image": round(1000 * cpu / max(1, report.done), 1)}


def _ray_run(folder: Path, out: Path, onnx: Path, actors: int, cpus: int, batch_size: int, files_per_task: int) -> dict:
    from facecolor.runtime.batch import colorize_tree
    from facecolor.runtime.distributed.ray_job import RaySettings

    start, start_epoch = time.perf_counter(), time.time()
    report = colorize_tree(folder, out, model=onnx, device="cpu", workers=cpus, batch_size=batch_size,
                           ray=RaySettings(num_actors=actors, files_per_task=files_per_task))
    wall, end_epoch = time.perf_counter() - start, time.time()
    actors_seen = report.backend.get("actors", {}).values()
    ready = [a["ready_at"] for a in actors_seen]
    cpu = sum(a.get("cpu_s", 0.0) for a in actors_seen)
    # Once the last actor is ready the pool runs at full strength; the images the others did
    # meanwhile make this a slight overestimate (under one block per actor).
    steady = report.done / (end_epoch - max(ready)) if ready and end_epoch > max(ready) else 0.0
    return {"config": f"ray {actors} actor{'s' if actors > 1 else ''} x {cpus} CPU", "done": report.done,
            "failed": report.failed, "wall_s": round(wall, 2),
            "end_to_end_images_per_s": round(report.done / wall, 3),
            "actors_ready_after_s": round(max(ready) - start_epoch, 2) if ready else None,
            "steady_images_per_s": round(steady, 3),
            "cpu_ms_per_image": round(1000 * cpu / max(1, report.done), 1)}


@click.command(epilog="Example: python -m facecolor.runtime.distributed.benchmark --images 200 "
                      "--json out/ray-bench.json")
@click.option("--images", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--size", default="512x640", show_default=True, help="WIDTHxHEIGHT of the synthetic JPEGs.")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the synthetic JPEGs (kept; default: a temporary folder).")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Checkpoint or ONNX (default: a random-init gpsagd, width 1.0: the shipped architecture).")
@click.option("--config", "configs", multiple=True, default=("1x1", "2x1", "1x2"), show_default=True,
              help="ACTORSxCPUS per actor; repeat for several runs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--files-per-task", type=click.IntRange(min=1), default=25, show_default=True)
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Rounds over all configurations; the summary gives each one's median.")
@click.option("--num-cpus", type=click.IntRange(min=1), default=None, help="CPUs of the local Ray (default: all).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(images, size, data, model, configs, batch_size, files_per_task, repeat, num_cpus, json_path):
    """Images/s of facecolor-batch --ray for several actor pools on this machine."""
    import ray

    from facecolor.export.cache import cached_onnx
    from facecolor.runtime.benchmark import make_dataset, random_checkpoint

    width, height = (int(v) for v in size.lower().split("x"))
    scratch = Path(tempfile.mkdtemp(prefix="facecolor-ray-bench-"))
    try:
        folder = make_dataset(data or scratch / "in", images, height, width)
        model = model or random_checkpoint(scratch)
        onnx = model if model.suffix == ".onnx" else cached_onnx(model)  # exported once, outside the timings
        rows = []
        ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
        try:
            for round_ in range(repeat):  # round robin: a shared machine's load drifts
                rows.append({**_single_process(folder, scratch / f"out-single-{round_}", onnx, batch_size),
                             "round": round_})
                click.echo(json.dumps(rows[-1]))
                for config in configs:
                    actors, cpus = (int(v) for v in config.lower().split("x"))
                    rows.append({**_ray_run(folder, scratch / f"out-{config}-{round_}", onnx, actors, cpus,
                                            batch_size, files_per_task), "round": round_})
                    click.echo(json.dumps(rows[-1]))
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = {}
    for name in dict.fromkeys(row["config"] for row in rows):
        runs = [row for row in rows if row["config"] == name]
        summary[name] = {key: statistics.median(row[key] for row in runs)
                         for key in ("end_to_end_images_per_s", "steady_images_per_s", "cpu_ms_per_image")
                         if key in runs[0]}
        click.echo(f"{name}: " + ", ".join(f"{key} {value:.2f}" for key, value in summary[name].items()))
    result = {"summary": summary, "images": images, "size": size, "model": str(model), "batch_size": batch_size,
              "files_per_task": files_per_task, "cpus": num_cpus or os.cpu_count(), "load_avg": os.getloadavg(),
              "runs": rows}
    if json_path:
        click.echo(f"wrote {write_json(json_path, result)}")


if __name__ == "__main__":
    main()

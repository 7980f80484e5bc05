"""End-to-end throughput of facecolor-batch against the model alone, on the same machine.

    python -m facecolor.runtime.benchmark                 # 1,000 synthetic 1024x1280 JPEGs, CPU
    python -m facecolor.runtime.benchmark --images 200 --model models/gpsagd.safetensors --json out/rt-bench.json

Both numbers come from one process with one backend: the model alone (``backend.infer`` on
ready batches) and the whole pipeline (walk, read, decode, L*, render, inference,
full-resolution color, encode, atomic write) over the folder, in rounds: the model alone is
timed before and after each slice of the folder, since a shared machine's speed drifts. The
target (issue 4) is end to end >= 85% of the model alone on the CPU.

On a machine shared with other work, wall-clock rates swing with the load, so the process's
CPU seconds per image are reported too: ``cpu_bound_ratio`` = model-alone CPU per image /
pipeline CPU per image is the ratio the pipeline reaches when it has the cores to itself and
its stages overlap (which the stage busy times show). Without ``--model`` a random-init
``gpsagd`` (width 1.0, render 128) is used: its speed is that of the trained one.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click
import cv2
import numpy as np

from facecolor.files import write_json

CPU_TARGET = 0.85


def synthetic_portrait(height: int, width: int, seed: int) -> np.ndarray:
    """uint8 HxW: a lit 'face' ellipse, 'hair', a gradient background and film grain."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = height * rng.uniform(0.4, 0.5), width * rng.uniform(0.45, 0.55)
    ry, rx = height * 0.22, width * 0.2
    r = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    image = 0.3 + 0.4 * yy / height  # background gradient
    image = np.where(r < 1.0, 0.7 - 0.15 * r + 0.1 * (xx - cx) / rx, image)  # shaded face
    image = np.where((r >= 1.0) & (r < 1.6) & (yy < cy), 0.15, image)  # hair
    image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 3)
    image += rng.normal(0, 0.03, image.shape).astype(np.float32)  # grain
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


def make_dataset(folder: Path, count: int, height: int, width: int, quality: int = 90) -> Path:
    """``count`` gray JPEG portraits in ``folder`` (kept and reused between runs, wherever
    ``split_into_parts`` has moved them)."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = {path.name for path in folder.rglob("portrait_*.jpg")}
    for i in range(count):
        name = f"portrait_{i:05d}.jpg"
        if name not in existing:
            cv2.imwrite(str(folder / name), synthetic_portrait(height, width, i), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return folder


def random_checkpoint(folder: Path) -> Path:
    """A random-init gpsagd at width 1.0 (the shipped architecture) saved as a checkpoint."""
    import torch

    from facecolor.checkpoint import save_checkpoint
    from facecolor.models import build_generator

    path = folder / "gpsagd-random.safetensors"
    if not path.exists():
        torch.manual_seed(0)
        generator = build_generator("gpsagd", width=1.0, render_size=128).eval()
        save_checkpoint(path, generator, generator.config)
    return path


def model_alone(backend, batch_size: int, min_seconds: float) -> tuple[float, float]:
    """(images/s, process CPU seconds per image) of ``backend.infer`` alone on ready batches,
    after one warm-up batch."""
    shape = (batch_size, 1, backend.render_size, backend.render_size)
    batch = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    sync = lambda: None  # noqa: E731
    if backend.device == "cuda":
        import torch

        batch = torch.from_numpy(batch).cuda()
        sync = torch.cuda.synchronize
    backend.infer(batch)
    sync()
    images, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < min_seconds or images < 2 * batch_size:
        backend.infer(batch)
        images += batch_size
    sync()
    return images / (time.perf_counter() - start), (time.process_time() - cpu) / images


@dataclass
class Round:
    """One slice of the folder through the pipeline, between two model-alone measurements."""

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


def split_into_parts(folder: Path, parts: int) -> list[Path]:
    """The dataset's files moved into ``part-K`` subfolders (one per round), kept between runs."""
    targets = [folder / f"part-{k}" for k in range(parts)]
    existing = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("part-"))
    if existing == targets and not any(folder.glob("portrait_*.jpg")):
        return targets
    files = sorted(folder.rglob("portrait_*.jpg"), key=lambda path: path.name)
    for target in targets:
        target.mkdir(exist_ok=True)
    for index, path in enumerate(files):
        destination = targets[index * parts // len(files)] / path.name
        if path != destination:
            path.replace(destination)
    for stale in existing:
        if stale not in targets:
            stale.rmdir()
    return targets


@click.command(epilog="Example: python -m facecolor.runtime.benchmark --images 1000 --json out/runtime-bench.json")
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
def main(images, size, data, model, device, batch_size, workers, rounds, model_seconds, json_path):
    """Measure facecolor-batch end to end and the model alone, in one run.

    A shared machine's speed drifts (measured here: the same model 5.3 then 8.3 images/s a few
    minutes apart), so the folder is cut into ROUNDS slices and the model alone is measured
    before and after each: every slice's ratio compares numbers taken minutes, not a quarter of
    an hour, apart, and the median ratio is the result.
    """
    from facecolor.runtime.backends import open_backend
    from facecolor.runtime.executor import DEFAULT_BATCH, ThreadExecutor, default_batch
    from facecolor.runtime.pipeline import Settings
    from facecolor.runtime.run import run_batch

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
                cpu, start = time.process_time(), time.perf_counter()
                report = run_batch(settings, ThreadExecutor(backend, reason))
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
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


if __name__ == "__main__":
    main()

"""The throughput harness's shared workload: synthetic portraits, a stand-in model, timing.

``throughput`` (rounds, Ray) and ``throughput_gpu`` (nvJPEG, CUDA backends) measure the same
inputs with the same clocks through these, so their figures compare.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch

from facecolor.checkpoint import save_checkpoint
from facecolor.models import build_generator
from facecolor.runtime.backends import ModelNotFound, shipped_model
from facecolor.runtime.pipeline import Settings
from facecolor.runtime.run import run_batch

#: Distinct portraits drawn; the rest of a dataset are shifted, brightened copies (fast to make).
_BASES = 16


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
    """``count`` gray JPEG portraits ``portrait_NNNNN.jpg`` in ``folder``, kept and reused
    between runs wherever ``split_into_parts`` has moved them. ``_BASES`` are drawn; the others
    are shifted and brightened copies, so a thousand 1.3 MP files take seconds, not minutes."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = {path.name for path in folder.rglob("portrait_*.jpg")}
    missing = [i for i in range(count) if f"portrait_{i:05d}.jpg" not in existing]
    bases = [synthetic_portrait(height, width, seed) for seed in range(min(_BASES, count))] if missing else []

    def one(index: int) -> None:
        image = np.roll(bases[index % len(bases)], shift=(index * 7) % 97 - 48, axis=1)
        image = cv2.add(image, int(index // len(bases)) % 21 - 10)
        cv2.imwrite(str(folder / f"portrait_{index:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, quality])

    with ThreadPoolExecutor(min(16, os.cpu_count() or 1)) as pool:
        list(pool.map(one, missing))
    return folder


def random_checkpoint(folder: Path) -> Path:
    """A random-init gpsagd at width 1.0 (the shipped architecture) saved as a checkpoint."""
    path = folder / "gpsagd-random.safetensors"
    if not path.exists():
        torch.manual_seed(0)
        generator = build_generator("gpsagd", width=1.0, render_size=128).eval()
        save_checkpoint(path, generator, generator.config)
    return path


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


def model_alone(backend, batch_size: int, min_seconds: float) -> tuple[float, float]:
    """(images/s, process CPU seconds per image) of ``backend.predict_ab`` alone on ready batches,
    after one warm-up batch: wall clock over the whole loop, as the end-to-end rate is."""
    shape = (batch_size, 1, backend.render_size, backend.render_size)
    batch = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    sync = lambda: None  # noqa: E731
    if backend.device == "cuda":
        batch = torch.from_numpy(batch).cuda()
        sync = torch.cuda.synchronize
    backend.predict_ab(batch)
    sync()
    images, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < min_seconds or images < 2 * batch_size:
        backend.predict_ab(batch)
        images += batch_size
    sync()
    return images / (time.perf_counter() - start), (time.process_time() - cpu) / images


def timed_run(settings: Settings, executor) -> tuple[object, float, float]:
    """``run_batch`` over ``settings``: (report, wall seconds, process CPU seconds)."""
    cpu, start = time.process_time(), time.perf_counter()
    report = run_batch(settings, executor, progress=False, echo=lambda line: print(line, file=sys.stderr))
    return report, time.perf_counter() - start, time.process_time() - cpu


def stand_in_checkpoint(workdir: Path) -> Path:
    """The shipped model if installed, else ``random_checkpoint`` (same architecture)."""
    try:
        return shipped_model()
    except ModelNotFound:
        return random_checkpoint(workdir)

"""Every throughput figure of the bench, measured one way (``facecolor-bench``'s pipeline, codec
and nvJPEG rates, ``python -m facecolor.bench.throughput``'s rounds and Ray figures).

The engine alone is rarely the bottleneck of a colorizing run: decoding and encoding
full-resolution photos are (notes/tensorrt-onnx.md measured nvJPEG at 2.5x the fused model's
pipeline rate). So the same files go through ``runtime.run.run_batch``, the code users run,
and through the runtime's own codec alone: ``pipeline / codec`` near 1 means the model and
color math are hidden behind the codec. Folder runs are timed after a warm-up pass over the
first batch of files, so one-time costs (CUDA context, nvJPEG handles, Triton compilation,
thread pools) stay out of the rate; a handful of files under-states both rates alike.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_jpeg

from facecolor.bench.parity import ParityImages, synthetic_portraits
from facecolor.checkpoint import save_checkpoint
from facecolor.files import write_atomically
from facecolor.models import build_generator
from facecolor.runtime.backends import open_backend
from facecolor.runtime.backends.base import Backend
from facecolor.runtime.batch import colorize_tree
from facecolor.runtime.decode import decode_image
from facecolor.runtime.distributed.ray_job import RaySettings
from facecolor.runtime.executor import ThreadExecutor, default_batch
from facecolor.runtime.gpu.cuda import NvjpegError
from facecolor.runtime.gpu.jpeg import triage
from facecolor.runtime.gpu.nvjpeg import NvjpegDecoder, NvjpegEncoder
from facecolor.runtime.pipeline import Settings
from facecolor.runtime.run import run_batch
from facecolor.runtime.write import encode, output_dtype

GPU_TARGET = 0.80  # pipeline / codec on CUDA (issue 4): the model and color math hidden behind nvJPEG


def _copies(files: Sequence[Path], root: Path, folder: Path) -> tuple[Path, ...]:
    """Copies of ``files`` at their paths relative to ``root`` under ``folder``: copies, not
    links, since the runtime's walk does not follow links out of IN_DIR."""
    targets = tuple(folder / Path(file).relative_to(root) for file in files)
    for source, target in zip(files, targets):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return targets


@dataclass(frozen=True)
class PipelineFolder:
    path: Path
    files: tuple[Path, ...]

    def head(self, count: int) -> PipelineFolder:
        """The warm-up set: a folder beside this one with its first ``count`` files (copied once,
        whichever backend warms up on it next)."""
        count = max(1, min(count, len(self.files)))
        path = self.path.with_name(f"{self.path.name}-head{count}")
        files = self.files[:count]
        if path.is_dir():
            return PipelineFolder(path, tuple(path / file.relative_to(self.path) for file in files))
        return PipelineFolder(path, _copies(files, self.path, path))


def prepare_folder(images: ParityImages, workdir: Path, synthetic: int | None = None) -> PipelineFolder:
    """The parity's source files in ``workdir``; else ``synthetic`` gray 1024x1280 JPEG portraits
    (a typical scan), or as many as the parity's synthetic portraits, at their size."""
    folder = Path(workdir) / "pipeline-in"
    source = Path(images.source)
    if source.is_dir() and not synthetic:
        return PipelineFolder(folder, _copies([source / name for name in images.names], source, folder))
    height, width = (1280, 1024) if synthetic else (160, 128)
    make_dataset(folder, synthetic or len(images), height, width)
    return PipelineFolder(folder, tuple(sorted(folder.iterdir())))


def _timed(run: Callable[[PipelineFolder, Path], Any], folder: PipelineFolder, workdir: Path, warmup: int,
           name: str) -> tuple[Any, float]:
    """(result, wall seconds) of a timed run, after an untimed warm-up on the first ``warmup`` files."""
    out_dir = Path(workdir) / name
    timed = []
    for subset in (folder.head(warmup), folder):
        shutil.rmtree(out_dir, ignore_errors=True)
        started = time.perf_counter()
        result = run(subset, out_dir)
        timed.append((result, time.perf_counter() - started))
    shutil.rmtree(out_dir, ignore_errors=True)
    return timed[1]


def _rate(images: int, seconds: float, **details: Any) -> dict[str, Any]:
    return {"status": "ok", "images": images, "seconds": seconds,
            "images_per_s": images / seconds if seconds > 0 else None, **details}


# --------------------------------------------------------------------------- codec alone


def _codec_one(path: Path, out_dir: Path, root: Path, data: bytes | None = None) -> None:
    """One file as the runtime would, minus the model: 3-channel, as the pipeline writes color.
    ``data``: its bytes when already read (the GPU codec's triage), so no file is read twice."""
    decoded = decode_image(path.read_bytes() if data is None else data)
    pixels = decoded.pixels
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    if output_dtype(decoded.bit_depth, decoded.format) is np.uint8 and pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    write_atomically(out_dir / path.relative_to(root), encode(np.ascontiguousarray(pixels), decoded.format),
                     fixed_temp=True)


def codec_rate(folder: PipelineFolder, workdir: Path) -> dict[str, Any]:
    threads = Settings(in_dir=folder.path, out_dir=Path(workdir)).workers

    def run(subset: PipelineFolder, out_dir: Path) -> None:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda p: _codec_one(p, out_dir, subset.path), subset.files))

    _, seconds = _timed(run, folder, workdir, threads, "codec-out")
    return _rate(len(folder.files), seconds, codec="cpu (OpenCV/Pillow, the runtime's decode and write)",
                 threads=threads)


def gpu_codec_rate(folder: PipelineFolder, workdir: Path, batch_size: int = 64, quality: int = 95,
                   device: str = "cuda") -> dict[str, Any]:
    """The GPU pipeline's codec alone: what nvJPEG takes (the runtime's ``triage``) on nvJPEG,
    every other file on the CPU codec, as in the GPU pipeline; then nvJPEG's ceiling on those
    files' bytes in memory (``nvjpeg_alone``). ``device="cpu"``: the same code on torchvision's
    CPU codec, for tests."""
    decoder, encoder = NvjpegDecoder(device), NvjpegEncoder(device, quality)

    def run(subset: PipelineFolder, out_dir: Path) -> tuple[int, int, list[bytes]]:
        on_gpu, on_cpu, jpegs = 0, 0, []  # jpegs: what nvJPEG takes, kept for its ceiling below
        for start in range(0, len(subset.files), batch_size):
            paths = subset.files[start : start + batch_size]
            verdicts = [triage(path.read_bytes()) for path in paths]
            gpu = [i for i, verdict in enumerate(verdicts) if verdict.on_gpu]
            cpu = [i for i, verdict in enumerate(verdicts) if not verdict.on_gpu]
            jpegs += [verdicts[i].data for i in gpu]
            decoded = decoder.decode([verdicts[i].data for i in gpu], [verdicts[i].info for i in gpu]) if gpu else []
            images, targets = [], []
            with torch.cuda.stream(decoder.stream):  # the gray -> RGB copies follow the decodes
                for index, image in zip(gpu, decoded):
                    if isinstance(image, NvjpegError):
                        cpu.append(index)
                        continue
                    pixels = image.pixels
                    images.append(pixels.expand(3, -1, -1).contiguous() if pixels.shape[0] == 1 else pixels)
                    targets.append(out_dir / paths[index].relative_to(subset.path))
            if images:
                for data, target in zip(encoder.encode(images, ready=[decoder.ready_event()]), targets):
                    write_atomically(target, data, fixed_temp=True)
            for index in cpu:
                _codec_one(paths[index], out_dir, subset.path, verdicts[index].data)
            on_gpu, on_cpu = on_gpu + len(images), on_cpu + len(cpu)
        _synchronize(device)
        return on_gpu, on_cpu, jpegs

    try:
        (on_gpu, on_cpu, jpegs), seconds = _timed(run, folder, workdir, batch_size, "gpu-codec-out")
    finally:
        decoder.close()
        encoder.close()
    steps = ("decode", "encode") if jpegs else ()
    alone = {step: nvjpeg_alone(jpegs, batch_size, quality, step, device) for step in steps}
    return _rate(len(folder.files), seconds, codec="cuda (nvJPEG decode + encode, the runtime's GPU codec; other "
                 "files on the CPU)", batch_size=batch_size, nvjpeg_files=on_gpu, cpu_files=on_cpu,
                 nvjpeg_alone=alone)


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def nvjpeg_alone(files: list[bytes], batch_size: int, quality: int, step: str, device: str = "cuda") -> dict[str, Any]:
    """nvJPEG's ceiling here on bytes in memory: 'decode' (gray), or 'encode' (the portraits
    tinted, so that their chroma costs what a colorized output's does)."""
    tensors = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in files]
    run = lambda chunk: decode_jpeg(chunk, mode=ImageReadMode.GRAY, device=device)  # noqa: E731
    if step == "encode":
        encoder = NvjpegEncoder(device, quality)
        tint = torch.tensor([1.05, 0.95, 0.8], device=device).view(3, 1, 1)
        gray = run(tensors[:batch_size])
        colored = [(g.float() * tint).clamp_(0, 255).to(torch.uint8).contiguous() for g in gray]
        run = lambda chunk: encoder.encode(colored[: len(chunk)])  # noqa: E731
    run(tensors[:batch_size])  # warm-up: nvJPEG handles, encoder state
    _synchronize(device)
    started = time.perf_counter()
    for start in range(0, len(tensors), batch_size):
        run(tensors[start : start + batch_size])
    _synchronize(device)
    return _rate(len(files), time.perf_counter() - started, batch_size=batch_size)


# --------------------------------------------------------------------------- the pipeline


def _status(report: Any, count: int) -> str:
    if report.failed:
        first = report.failures[0]
        return f"error: {report.failed} of {count} files failed ({first['path']}: {first['reason']})"
    if report.done != count:
        why = "; ".join(f"{s['path']}: {s['reason']}" for s in report.skips[:3]) or "no reason given"
        return f"error: the pipeline did {report.done} of {count} files ({why})"
    return "ok"


def pipeline_rate(backend: Backend, folder: PipelineFolder, workdir: Path, codec: dict[str, Any]) -> dict[str, Any]:
    """facecolor-batch's run with ``backend`` and its settings for the device: images/s, each
    stage's busy seconds (which one limits the rate), and the ratio to ``codec``'s images/s."""
    batch_size = default_batch(backend.device)

    def run(subset: PipelineFolder, out_dir: Path) -> Any:  # with the stages stages_for picks
        settings = Settings(in_dir=subset.path, out_dir=out_dir, overwrite=True, batch_size=batch_size)
        return run_batch(settings, ThreadExecutor(backend, "facecolor-bench"), progress=False, echo=lambda line: None)

    cuda = backend.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    report, seconds = _timed(run, folder, workdir, batch_size, f"pipeline-out-{backend.name}")
    rate = report.done / seconds if seconds > 0 else None
    return {
        "status": _status(report, len(folder.files)),
        "backend": backend.name,
        "images": report.done,
        "seconds": seconds,
        "images_per_s": rate,
        "runs_images_per_s": [rate],
        "codec": codec.get("codec"),
        "codec_images_per_s": codec["images_per_s"],
        "ratio": rate / codec["images_per_s"] if rate and codec["images_per_s"] else None,
        "batch_size": batch_size,
        "workers": report.settings.get("workers"),
        "stages": report.stages,
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "target_ratio": GPU_TARGET if cuda else None,
    }


def timed_run(settings: Settings, executor) -> tuple[object, float, float]:
    """(report, wall seconds, process CPU seconds)."""
    cpu, start = time.process_time(), time.perf_counter()
    report = run_batch(settings, executor, progress=False, echo=lambda line: print(line, file=sys.stderr))
    return report, time.perf_counter() - start, time.process_time() - cpu


# --------------------------------------------------------------------------- synthetic inputs, stand-in model


_BASES = 16


def make_dataset(folder: Path, count: int, height: int, width: int, quality: int = 90) -> Path:
    """Gray JPEG portraits, reused between runs; most are shifted, brightened copies of
    ``_BASES``, so a thousand 1.3 MP files take seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(count) if not (folder / f"portrait_{i:05d}.jpg").exists()]
    portraits = synthetic_portraits(min(_BASES, count), size=(height, width)) if missing else []
    bases = [cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) for rgb in portraits]

    def one(index: int) -> None:
        image = np.roll(bases[index % len(bases)], shift=(index * 7) % 97 - 48, axis=1)
        image = cv2.add(image, int(index // len(bases)) % 21 - 10)
        cv2.imwrite(str(folder / f"portrait_{index:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, quality])

    with ThreadPoolExecutor(min(16, os.cpu_count() or 1)) as pool:
        list(pool.map(one, missing))
    return folder


def random_checkpoint(folder: Path) -> Path:
    """A random-init gpsagd at width 1.0 and 128 px (the study's size, which costs more per
    image than the shipped 64 px psag: say which one ran when comparing figures)."""
    path = folder / "gpsagd-random.safetensors"
    if not path.exists():
        torch.manual_seed(0)
        generator = build_generator("gpsagd", width=1.0, render_size=128).eval()
        save_checkpoint(path, generator, generator.config)
    return path


def split_into_parts(folder: Path, parts: int, scratch: Path) -> list[Path]:
    """Copies of the folder's portraits in ``parts`` subfolders of ``scratch``, one per round."""
    files = sorted(folder.glob("portrait_*.jpg"))
    targets = [scratch / f"part-{k}" for k in range(parts)]
    for k, target in enumerate(targets):
        _copies(files[k * len(files) // parts : (k + 1) * len(files) // parts], folder, target)
    return targets


# --------------------------------------------------------------------------- ray scaling


def single_process_figures(folder: Path, out: Path, onnx: Path, batch_size: int) -> dict:
    backend, reason = open_backend(onnx, "cpu", batch_size=batch_size)
    settings = Settings(in_dir=folder, out_dir=out, batch_size=batch_size)
    with backend:
        report, wall, cpu = timed_run(settings, ThreadExecutor(backend, reason))
    rate = round(report.done / wall, 3)  # no start-up to leave out: end to end is steady
    return {"config": "single process", "done": report.done, "wall_s": round(wall, 2),
            "end_to_end_images_per_s": rate, "steady_images_per_s": rate,
            "cpu_ms_per_image": round(1000 * cpu / max(1, report.done), 1)}


def ray_figures(folder: Path, out: Path, onnx: Path, actors: int, cpus: int, batch_size: int,
                files_per_task: int) -> dict:
    """One actor pool's row: end to end, steady (from the last actor's start) and CPU per image."""
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

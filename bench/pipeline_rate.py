"""End-to-end rate on a folder, beside the rate of the codec alone on the same files.

The engine alone is rarely the bottleneck of a colorizing run: decoding and encoding
full-resolution photos are (notes/tensorrt-onnx.md measured nvJPEG at 2.5x the fused model's
pipeline rate). So the bench measures, in the same run and on the same files:

- **pipeline**: the runtime's own folder pipeline (``facecolor.runtime``: read, decode,
  preprocess, the backend, postprocess, encode, atomic write) from a folder of the parity
  files into a scratch folder, with the backend under test;
- **codec**: the same files read, decoded and encoded back to their format and written, by the
  runtime's own decode and encode functions, with as many threads as the CPU pipeline uses,
  and nothing else.

Each is timed after a warm-up pass over the first batch of files, so one-time costs (CUDA
context, nvJPEG handles, Triton compilation, thread pools) stay out of the rate.
``pipeline / codec`` near 1 means the model and color math are hidden behind the codec; far
below 1 means they are the bottleneck. Times are wall clock around the whole folder,
including thread start-up, so a handful of files under-states both rates alike.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import torch

from facecolor.bench.parity import ParityImages, synthetic_portraits
from facecolor.files import write_atomically
from facecolor.runtime.backends.base import Backend
from facecolor.runtime.decode import decode_image
from facecolor.runtime.executor import ThreadExecutor, default_batch
from facecolor.runtime.gpu.cuda import NvjpegError
from facecolor.runtime.gpu.decode import NvjpegDecoder, triage
from facecolor.runtime.gpu.encode import NvjpegEncoder
from facecolor.runtime.pipeline import Settings
from facecolor.runtime.run import run_batch
from facecolor.runtime.write import encode, output_dtype


@dataclass(frozen=True)
class PipelineFolder:
    """A scratch folder holding copies of exactly the files the parity used."""

    path: Path
    files: tuple[Path, ...]

    @property
    def count(self) -> int:
        return len(self.files)

    def head(self, count: int) -> PipelineFolder:
        """A folder beside this one with copies of its first ``count`` files (made once): the
        warm-up set, so one-time costs (CUDA context, nvJPEG handles, Triton compilation,
        ONNX Runtime arenas, thread pools) are paid before the timed pass."""
        count = max(1, min(count, self.count))
        path = self.path.with_name(f"{self.path.name}-head{count}")
        files = tuple(path / f.relative_to(self.path) for f in self.files[:count])
        if not path.is_dir():
            for source, target in zip(self.files, files):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
        return PipelineFolder(path, files)


def prepare_folder(images: ParityImages, data: Path | None, workdir: Path) -> PipelineFolder:
    """Copy the parity's source files into ``workdir/pipeline-in`` (same relative paths), or
    write the synthetic portraits there as JPEGs when there are no files."""
    folder = Path(workdir) / "pipeline-in"
    folder.mkdir(parents=True, exist_ok=True)
    source = Path(images.source)
    files = []
    if source.is_dir():
        for name in images.names:
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            # Copies, not links: the runtime's walk does not follow links out of IN_DIR.
            shutil.copyfile(source / name, target)
            files.append(target)
    else:
        for name, rgb in zip(images.names, synthetic_portraits(len(images))):
            target = folder / f"{name}.jpg"
            cv2.imwrite(str(target), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            files.append(target)
    return PipelineFolder(folder, tuple(files))


def runtime_settings(folder: PipelineFolder, out_dir: Path, device: str) -> Any:
    """The settings ``facecolor-batch`` would use on ``device`` (its default batch size and
    workers) for a run over ``folder`` into ``out_dir``."""
    return Settings(in_dir=folder.path, out_dir=out_dir, overwrite=True, batch_size=default_batch(device))


def _timed(run: Callable[[PipelineFolder, Path], Any], folder: PipelineFolder, workdir: Path,
           warmup: int, name: str) -> tuple[Any, float]:
    """``run(folder.head(warmup), out)`` untimed, then ``run(folder, out)`` timed (wall clock);
    the scratch outputs are removed."""
    out_dir = Path(workdir) / name
    for subset in (folder.head(warmup), folder):
        shutil.rmtree(out_dir, ignore_errors=True)
        started = time.perf_counter()
        result = run(subset, out_dir)
        seconds = time.perf_counter() - started
    shutil.rmtree(out_dir, ignore_errors=True)
    return result, seconds


# --------------------------------------------------------------------------- codec alone


def _codec_one(path: Path, out_dir: Path, root: Path) -> None:
    """Read, decode, encode and atomically write one file as the runtime would, minus the model:
    the output is 3-channel (the pipeline writes color) in the input's format and bit depth."""
    decoded = decode_image(path.read_bytes())
    pixels = decoded.pixels
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    if output_dtype(decoded.bit_depth, decoded.format) is np.uint8 and pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    write_atomically(out_dir / path.relative_to(root), encode(np.ascontiguousarray(pixels), decoded.format),
                     fixed_temp=True)


def codec_rate(folder: PipelineFolder, workdir: Path) -> dict[str, Any]:
    """Read, decode, encode and write every file of ``folder`` with the runtime's CPU codec in
    as many threads as its CPU pipeline uses (after a warm-up pass on a few files); images/s
    over the wall time."""
    threads = runtime_settings(folder, Path(workdir), "cpu").workers

    def run(subset: PipelineFolder, out_dir: Path) -> None:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda p: _codec_one(p, out_dir, subset.path), subset.files))

    _, seconds = _timed(run, folder, workdir, threads, "codec-out")
    return {
        "codec": "cpu (OpenCV/Pillow, the runtime's decode and write)",
        "images": folder.count,
        "seconds": seconds,
        "images_per_s": folder.count / seconds if seconds > 0 else None,
        "threads": threads,
    }


def gpu_codec_rate(folder: PipelineFolder, workdir: Path, batch_size: int = 64) -> dict[str, Any]:
    """The GPU pipeline's codec alone: JPEGs that nvJPEG takes (the runtime's ``triage``) are
    decoded and encoded by the runtime's nvJPEG decoder and encoder in batches of
    ``batch_size``, serially, gray expanded to 3 channels (the pipeline writes color); every
    other file goes through the CPU codec, as in the GPU pipeline. Reads and atomic writes
    included; a warm-up batch first; images/s over the wall time."""
    decoder, encoder = NvjpegDecoder("cuda"), NvjpegEncoder("cuda")

    def run(subset: PipelineFolder, out_dir: Path) -> tuple[int, int]:
        on_gpu = on_cpu = 0
        for start in range(0, subset.count, batch_size):
            paths = subset.files[start : start + batch_size]
            files = [path.read_bytes() for path in paths]
            verdicts = [triage(data) for data in files]
            gpu = [i for i, verdict in enumerate(verdicts) if verdict.on_gpu]
            cpu = [i for i, verdict in enumerate(verdicts) if not verdict.on_gpu]
            decoded = decoder.decode([files[i] for i in gpu], [verdicts[i].info for i in gpu]) if gpu else []
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
                _codec_one(paths[index], out_dir, subset.path)
            on_gpu, on_cpu = on_gpu + len(images), on_cpu + len(cpu)
        torch.cuda.synchronize()
        return on_gpu, on_cpu

    try:
        (on_gpu, on_cpu), seconds = _timed(run, folder, workdir, batch_size, "gpu-codec-out")
    finally:
        decoder.close()
        encoder.close()
    return {
        "codec": "cuda (nvJPEG decode + encode, the runtime's GPU codec; other files on the CPU)",
        "images": folder.count,
        "seconds": seconds,
        "images_per_s": folder.count / seconds if seconds > 0 else None,
        "batch_size": batch_size,
        "nvjpeg_files": on_gpu,
        "cpu_files": on_cpu,
    }


# --------------------------------------------------------------------------- the pipeline


def pipeline_rate(backend: Backend, folder: PipelineFolder, workdir: Path,
                  codec: dict[str, Any] | None = None) -> dict[str, Any]:
    """The runtime's folder pipeline with ``backend`` over ``folder`` (after a warm-up run on
    one batch of its files): images/s over the wall time of ``run_batch``, the busy seconds
    of each stage (which one limits the rate), and the ratio to ``codec``'s images/s."""
    batch_size = runtime_settings(folder, Path(workdir), backend.device).batch_size

    def run(subset: PipelineFolder, out_dir: Path) -> Any:
        settings = runtime_settings(subset, out_dir, backend.device)  # the stages stages_for picks
        return run_batch(settings, ThreadExecutor(backend, "facecolor-bench"), progress=False, echo=lambda line: None)

    report, seconds = _timed(run, folder, workdir, batch_size, f"pipeline-out-{backend.name}")
    rate = report.done / seconds if seconds > 0 else None
    codec_rate_ = (codec or {}).get("images_per_s")
    status = "ok"
    if report.failed:
        first = report.failures[0]
        status = f"error: {report.failed} of {folder.count} files failed ({first['path']}: {first['reason']})"
    elif report.done != folder.count:
        why = "; ".join(f"{s['path']}: {s['reason']}" for s in report.skips[:3]) or "no reason given"
        status = f"error: the pipeline did {report.done} of {folder.count} files ({why})"
    return {
        "status": status,
        "images": report.done,
        "seconds": seconds,
        "images_per_s": rate,
        "codec": (codec or {}).get("codec"),
        "codec_images_per_s": codec_rate_,
        "ratio": rate / codec_rate_ if rate and codec_rate_ else None,
        "batch_size": batch_size,
        "workers": report.settings.get("workers"),
        "stages": report.stages,
    }

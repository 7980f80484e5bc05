"""GPU throughput of facecolor-batch against what nvJPEG alone allows, in one run (< 90 s).

On a CUDA machine (``make gpu-check`` runs it), on N synthetic 1024x1280 (W x H) gray baseline
JPEG portraits made here in a temporary folder, this measures, in the same process:

1. nvJPEG decode alone (batches of --batch, gray mode, bytes already in memory);
2. nvJPEG encode alone (RGB 4:4:4 at --quality, bitstreams copied back to the host);
3. decode + encode alone, serial, batch --batch: the codec's ceiling for this pipeline;
4. the model alone at batch 64 and 256 on each CUDA backend that can be opened quickly here
   (PyTorch fp16 autocast always; ONNX Runtime CUDA with --onnx; TensorRT with --plan);
5. facecolor-batch's own GPU pipeline end to end (read, decode, colorize, encode, atomic
   write), after a warm-up run, twice; the better run counts.

It prints a table and writes JSON (``--json``). The figure of merit is end-to-end /
(decode + encode alone), the target 0.80 (issue 4). Model-alone times use CUDA events, warm
up, and take the median over at least 0.5 s; codec and end-to-end rates are wall clock.

    python scripts/gpu_bench.py --json out/gpu_bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch

TARGET_RATIO = 0.80
WIDTH, HEIGHT = 1024, 1280


# --------------------------------------------------------------------------- inputs


def portrait_bases(count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` gray 1280x1024 'portraits': a lit oval face, hair, shoulders, a gradient,
    film grain; smooth like a scan, so the JPEGs have realistic sizes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    bases = []
    for _ in range(count):
        cy, cx = HEIGHT * rng.uniform(0.38, 0.46), WIDTH * rng.uniform(0.44, 0.56)
        ry, rx = HEIGHT * rng.uniform(0.2, 0.25), WIDTH * rng.uniform(0.2, 0.26)
        image = rng.uniform(60, 200) + rng.uniform(-60, 60) * yy / HEIGHT
        face = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        image = np.where(face <= 1, 190 - 40 * face + 20 * (xx - cx) / rx, image)
        hair = ((yy - cy + 0.45 * ry) / (0.75 * ry)) ** 2 + ((xx - cx) / (1.1 * rx)) ** 2 <= 1
        image = np.where(hair & (face > 1), rng.uniform(20, 70), image)
        image = np.where(yy > cy + 1.5 * ry, rng.uniform(30, 120) + 10 * np.sin(xx / 9), image)
        image = image + rng.normal(0, 7, image.shape)
        bases.append(cv2.GaussianBlur(np.clip(image, 0, 255).astype(np.uint8), (0, 0), 0.7))
    return bases


def make_jpegs(folder: Path, count: int, quality: int, threads: int) -> list[bytes]:
    """Write ``count`` gray baseline JPEGs into ``folder``; return their bytes too."""
    bases = portrait_bases(16)
    folder.mkdir(parents=True, exist_ok=True)

    def one(index: int) -> bytes:
        base = bases[index % len(bases)]
        shifted = np.roll(base, shift=(index * 7) % 97 - 48, axis=1)
        image = cv2.add(shifted, int(index % 21) - 10)
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        data = buffer.tobytes()
        (folder / f"portrait-{index:05d}.jpg").write_bytes(data)
        return data

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


# --------------------------------------------------------------------------- codec alone


def _batches(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def bench_decode(files: list[bytes], batch: int) -> dict:
    from torchvision.io import ImageReadMode, decode_jpeg

    tensors = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in files]
    decode_jpeg(tensors[:batch], mode=ImageReadMode.GRAY, device="cuda")  # warm-up (nvJPEG init)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for chunk in _batches(tensors, batch):
        decode_jpeg(chunk, mode=ImageReadMode.GRAY, device="cuda")
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"images": len(files), "seconds": round(seconds, 4), "images_per_s": round(len(files) / seconds, 1)}


def _color_images(files: list[bytes], batch: int) -> list[torch.Tensor]:
    """``batch`` distinct uint8 [3, H, W] CUDA images (decoded portraits, tinted)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    tensors = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in files[:batch]]
    tint = torch.tensor([1.05, 0.95, 0.8], device="cuda").view(3, 1, 1)
    gray = decode_jpeg(tensors, mode=ImageReadMode.GRAY, device="cuda")
    return [(g.float() * tint).clamp_(0, 255).to(torch.uint8).contiguous() for g in gray]


def bench_encode(files: list[bytes], batch: int, quality: int) -> dict:
    from facecolor.runtime.gpu.encode import NvjpegEncoder

    encoder = NvjpegEncoder("cuda", quality)
    images = _color_images(files, batch)
    torch.cuda.synchronize()
    encoder.encode(images[: min(8, batch)])  # warm-up (encoder state)
    start = time.perf_counter()
    done, sizes = 0, []
    while done < len(files):
        count = min(batch, len(files) - done)
        sizes += [len(b) for b in encoder.encode(images[:count])]
        done += count
    seconds = time.perf_counter() - start
    return {
        "images": done,
        "seconds": round(seconds, 4),
        "images_per_s": round(done / seconds, 1),
        "mean_kb": round(sum(sizes) / len(sizes) / 1024, 1),
    }


def bench_decode_encode(files: list[bytes], batch: int, quality: int) -> dict:
    """Serial: decode a batch, make it 3-channel, encode it, bytes to the host; repeat."""
    from torchvision.io import ImageReadMode, decode_jpeg

    from facecolor.runtime.gpu.encode import NvjpegEncoder

    encoder = NvjpegEncoder("cuda", quality)
    tensors = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in files]
    encoder.encode([g.expand(3, -1, -1).contiguous() for g in decode_jpeg(tensors[:4], mode=ImageReadMode.GRAY, device="cuda")])
    torch.cuda.synchronize()
    start = time.perf_counter()
    for chunk in _batches(tensors, batch):
        gray = decode_jpeg(chunk, mode=ImageReadMode.GRAY, device="cuda")
        encoder.encode([g.expand(3, -1, -1).contiguous() for g in gray])
    seconds = time.perf_counter() - start
    return {"images": len(files), "seconds": round(seconds, 4), "images_per_s": round(len(files) / seconds, 1)}


# --------------------------------------------------------------------------- the model alone


def bench_model(backend, batch: int, min_seconds: float = 0.5) -> dict:
    """Median time of ``backend.infer`` on a [batch, 1, S, S] CUDA tensor, by CUDA events."""
    size = backend.render_size
    l_norm = torch.rand(batch, 1, size, size, device="cuda") * 2 - 1
    for _ in range(3):
        backend.infer(l_norm)
    torch.cuda.synchronize()
    times, spent = [], 0.0
    while spent < min_seconds or len(times) < 5:
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        backend.infer(l_norm)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1000.0)
        spent += times[-1]
    median = statistics.median(times)
    p90 = sorted(times)[int(0.9 * (len(times) - 1))]
    return {"batch": batch, "runs": len(times), "median_ms": round(median * 1000, 3),
            "p90_ms": round(p90 * 1000, 3), "images_per_s": round(batch / median, 1)}


def stand_in_checkpoint(workdir: Path) -> Path:
    """The shipped model if installed, else a random-init gpsagd (same architecture and size)."""
    shipped = Path(__file__).resolve().parents[1] / "models" / "gpsagd.safetensors"
    if shipped.is_file():
        return shipped
    from facecolor.checkpoint import save_checkpoint
    from facecolor.models import build_generator

    torch.manual_seed(0)
    generator = build_generator("gpsagd", render_size=128).eval()
    return save_checkpoint(workdir / "gpsagd-stand-in.safetensors", generator, generator.config)


def open_backends(args, checkpoint: Path, notes: list[str]) -> dict:
    """name -> backend, for every CUDA backend that opens quickly here."""
    from facecolor.runtime.backends.torch_backend import TorchBackend

    backends = {"torch-cuda": TorchBackend(checkpoint, device="cuda")}
    if args.onnx:
        try:
            from facecolor.runtime.backends.onnxruntime import OnnxRuntimeBackend

            backends["onnxruntime-cuda"] = OnnxRuntimeBackend(args.onnx, device="cuda")
        except Exception as error:  # a note says why; the bench goes on
            notes.append(f"onnxruntime-cuda: {error}")
    else:
        notes.append("onnxruntime-cuda: not measured (pass --onnx MODEL.onnx)")
    if args.plan:
        try:
            from facecolor.runtime.backends.tensorrt import TensorRTBackend

            backends["tensorrt"] = TensorRTBackend(args.plan, max_batch=256)
        except Exception as error:
            notes.append(f"tensorrt: {error}")
    else:
        notes.append("tensorrt: not measured (pass --plan MODEL.plan)")
    return backends


# --------------------------------------------------------------------------- end to end


def bench_pipeline(backend, folder: Path, out_root: Path, count: int, args, warmup: Path) -> dict:
    from facecolor.runtime.executor import ThreadExecutor
    from facecolor.runtime.pipeline import Settings
    from facecolor.runtime.run import run_batch
    from facecolor.runtime.pipeline_gpu import build_stages

    def run(in_dir: Path, out_dir: Path):
        settings = Settings(in_dir=in_dir, out_dir=out_dir, out_format="keep", quality=args.quality,
                            overwrite=True, batch_size=args.batch, workers=args.workers)
        started = time.perf_counter()
        report = run_batch(settings, ThreadExecutor(backend, "gpu_bench", lambda s: build_stages(s, backend)),
                           progress=False, echo=lambda line: print(line, file=sys.stderr))
        seconds = time.perf_counter() - started
        shutil.rmtree(out_dir, ignore_errors=True)
        return report, seconds

    run(warmup, out_root / "warmup")  # Triton compile, cuDNN autotune, nvJPEG state, threads
    torch.cuda.reset_peak_memory_stats()
    runs = []
    for attempt in range(args.repeats):
        report, seconds = run(folder, out_root / f"run{attempt}")
        if report.done != count or report.failed:
            raise RuntimeError(f"end-to-end run {attempt}: done {report.done}, failed {report.failed}: {report.failures[:3]}")
        runs.append({"seconds": round(seconds, 3), "images_per_s": round(count / seconds, 1),
                     "stages_busy_s": {k: v["busy_s"] for k, v in report.stages.items()}})
    best = max(runs, key=lambda r: r["images_per_s"])
    return {"images": count, "backend": backend.name, "runs": runs, "images_per_s": best["images_per_s"],
            "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "batch": args.batch, "workers": args.workers}


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="synthetic JPEGs (default 1000)")
    parser.add_argument("--batch", type=int, default=64, help="codec and pipeline batch (default 64)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality in and out (default 90)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 4, help="pipeline CPU threads")
    parser.add_argument("--repeats", type=int, default=2, help="timed end-to-end runs (best counts)")
    parser.add_argument("--model", type=Path, default=None, help=".safetensors (default: shipped or stand-in)")
    parser.add_argument("--onnx", type=Path, default=None, help="also measure ONNX Runtime CUDA on this file")
    parser.add_argument("--plan", type=Path, default=None, help="also measure TensorRT on this plan")
    parser.add_argument("--pipeline-backend", default="best", help="best (tensorrt > onnxruntime-cuda > torch-cuda) or a name")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp folder)")
    args = parser.parse_args(argv)

    if not torch.cuda.is_available():
        print("gpu_bench: torch sees no CUDA device; nothing to measure", file=sys.stderr)
        return 1
    import torchvision

    began = time.perf_counter()
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    device = torch.cuda.get_device_name()
    print(f"device: {device}; torch {torch.__version__} (CUDA {torch.version.cuda}); "
          f"torchvision {torchvision.__version__}; triton {triton_version}")
    workdir = Path(tempfile.mkdtemp(prefix="facecolor-gpu-bench-", dir=args.workdir))
    results: dict = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
                     "torchvision": torchvision.__version__, "triton": triton_version,
                     "cpu_count": os.cpu_count(), "rows": {}, "notes": []}
    rows, notes = results["rows"], results["notes"]
    try:
        folder = workdir / "in"
        started = time.perf_counter()
        files = make_jpegs(folder, args.count, args.quality, threads=min(16, os.cpu_count() or 4))
        warmup = workdir / "warmup-in"
        warmup.mkdir()
        for path in sorted(folder.iterdir())[: 2 * args.batch]:
            shutil.copyfile(path, warmup / path.name)
        results["inputs"] = {"count": args.count, "width": WIDTH, "height": HEIGHT, "quality": args.quality,
                             "kind": "gray baseline JPEG", "mean_kb": round(sum(map(len, files)) / len(files) / 1024, 1),
                             "made_in_s": round(time.perf_counter() - started, 2)}
        print(f"inputs: {args.count} gray baseline JPEGs {WIDTH}x{HEIGHT} q{args.quality}, "
              f"mean {results['inputs']['mean_kb']} KB, made in {results['inputs']['made_in_s']} s")

        measure(rows, "nvjpeg_decode", bench_decode, files, args.batch)
        measure(rows, "nvjpeg_encode", bench_encode, files, args.batch, args.quality)
        measure(rows, "nvjpeg_decode_encode", bench_decode_encode, files, args.batch, args.quality)

        checkpoint = args.model or stand_in_checkpoint(workdir)
        results["model"] = str(checkpoint)
        try:
            backends = open_backends(args, checkpoint, notes)
        except Exception as error:  # noqa: BLE001 - no model row can run; the codec rows stand
            rows["end_to_end"] = {"error": f"no CUDA backend opened: {type(error).__name__}: {error}"}
            backends = {}
        for name, backend in backends.items():
            for batch in (64, 256):
                measure(rows, f"model_{name}_b{batch}", bench_model, backend, batch)
        order = ["tensorrt", "onnxruntime-cuda", "torch-cuda"]
        chosen = next((n for n in order if n in backends), None) if args.pipeline_backend == "best" else args.pipeline_backend
        if chosen in backends:
            measure(rows, "end_to_end", bench_pipeline, backends[chosen], folder, workdir / "out", args.count, args, warmup)
        elif backends:
            rows["end_to_end"] = {"error": f"backend {chosen!r} is not open (open: {sorted(backends)})"}
        for backend in backends.values():
            backend.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    codec = rows.get("nvjpeg_decode_encode", {}).get("images_per_s", 0.0)
    ratio = rows.get("end_to_end", {}).get("images_per_s", 0.0) / codec if codec else 0.0
    results["ratio_end_to_end_over_codec"] = round(ratio, 3)
    results["target_ratio"] = TARGET_RATIO
    results["meets_target"] = ratio >= TARGET_RATIO
    results["total_s"] = round(time.perf_counter() - began, 1)
    print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    failed = [name for name, row in rows.items() if "error" in row]
    if failed:
        print(f"gpu_bench: {', '.join(failed)} failed (see the tracebacks above)", file=sys.stderr)
    return 1 if failed else 0


def measure(rows: dict, name: str, function, *args) -> None:
    """``rows[name] = function(*args)``; a failure is recorded (and printed) and the bench goes on,
    so one broken measurement does not hide the others."""
    try:
        rows[name] = function(*args)
    except Exception as error:  # noqa: BLE001 - reported in the row and on stderr
        import traceback

        traceback.print_exc()
        rows[name] = {"error": f"{type(error).__name__}: {error}"}


def print_table(results: dict) -> None:
    rows = results["rows"]
    print(f"\n| measurement ({results['device']}) | images/s | detail |")
    print("| --- | ---: | --- |")
    for name, row in rows.items():
        if "error" in row:
            print(f"| {name} | - | FAILED: {row['error'][:200]} |")
            continue
        if name == "end_to_end":
            detail = (f"{row['backend']}, batch {row['batch']}, runs {[r['images_per_s'] for r in row['runs']]}, "
                      f"peak GPU memory {row['peak_gpu_memory_gib']} GiB; busy s per stage "
                      f"{row['runs'][-1]['stages_busy_s']}")
        elif name.startswith("model_"):
            detail = f"median {row['median_ms']} ms, p90 {row['p90_ms']} ms over {row['runs']} runs"
        else:
            detail = f"{row['images']} images in {row['seconds']} s" + (f", {row['mean_kb']} KB each" if "mean_kb" in row else "")
        print(f"| {name} | {row['images_per_s']:.0f} | {detail} |")
    print(f"| end-to-end / (decode + encode alone) | {results['ratio_end_to_end_over_codec']:.2f} | "
          f"target >= {results['target_ratio']:.2f}: {'met' if results['meets_target'] else 'NOT met'} |")
    for note in results["notes"]:
        print(f"note: {note}")
    print(f"total {results['total_s']} s")


if __name__ == "__main__":
    sys.exit(main())

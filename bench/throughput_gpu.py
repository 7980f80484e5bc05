"""``throughput gpu``: GPU throughput of facecolor-batch against nvJPEG alone (< 90 s).

On a CUDA machine (``make gpu-check`` runs it through ``scripts/gpu_bench.py``), on N
synthetic 1024x1280 (W x H) gray baseline JPEG portraits (``throughput.make_dataset``) made in
a temporary folder, this measures, in the same process:

1. nvJPEG decode alone (batches of --batch, gray mode, bytes already in memory);
2. nvJPEG encode alone (RGB 4:4:4 at --quality, bitstreams copied back to the host);
3. decode + encode alone, serial, batch --batch: the codec's ceiling for this pipeline;
4. the model alone at batch 64 and 256 on each CUDA backend that can be opened quickly here
   (PyTorch always; ONNX Runtime CUDA with --onnx; TensorRT with --plan), timed by
   ``bench.latency`` (CUDA events, warm-up, median over at least 0.5 s);
5. facecolor-batch's own GPU pipeline end to end (``run_batch``), after a warm-up run, twice;
   the better run counts.

It prints a table and writes JSON (``--json``). The figure of merit is end-to-end /
(decode + encode alone), the target 0.80 (issue 4); codec and end-to-end rates are wall clock.

    python scripts/gpu_bench.py --json out/gpu_bench.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torchvision
from torchvision.io import ImageReadMode, decode_jpeg

from facecolor.bench.latency import LatencySettings, measure_batch
from facecolor.bench.measure import make_dataset, stand_in_checkpoint, timed_run
from facecolor.files import write_json
from facecolor.runtime.backends.onnxruntime import OnnxRuntimeBackend
from facecolor.runtime.backends.tensorrt import TensorRTBackend
from facecolor.runtime.backends.torch_backend import TorchBackend
from facecolor.runtime.executor import ThreadExecutor
from facecolor.runtime.gpu.nvjpeg import NvjpegEncoder
from facecolor.runtime.pipeline import Settings

WIDTH, HEIGHT = 1024, 1280
GPU_TARGET = 0.80


# --------------------------------------------------------------------------- codec alone


def _batches(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def bench_decode(files: list[bytes], batch: int) -> dict:
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
    tensors = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in files[:batch]]
    tint = torch.tensor([1.05, 0.95, 0.8], device="cuda").view(3, 1, 1)
    gray = decode_jpeg(tensors, mode=ImageReadMode.GRAY, device="cuda")
    return [(g.float() * tint).clamp_(0, 255).to(torch.uint8).contiguous() for g in gray]


def bench_encode(files: list[bytes], batch: int, quality: int) -> dict:
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
    """``backend.predict_ab`` on a [batch, 1, S, S] CUDA batch, timed by ``bench.latency``."""
    result = measure_batch(backend, batch, LatencySettings(batch_sizes=(batch,), min_time=min_seconds))
    if not result.ok:
        raise RuntimeError(result.status)
    return {"batch": batch, "runs": result.runs, "median_ms": round(result.p50_ms, 3),
            "p90_ms": round(result.p90_ms, 3), "images_per_s": round(result.images_per_s, 1)}


def open_backends(args, checkpoint: Path, notes: list[str]) -> dict:
    """name -> backend, for every CUDA backend that opens quickly here."""
    backends = {"torch-cuda": TorchBackend(checkpoint, device="cuda")}
    if args.onnx:
        try:
            backends["onnxruntime-cuda"] = OnnxRuntimeBackend(args.onnx, device="cuda")
        except Exception as error:  # a note says why; the bench goes on
            notes.append(f"onnxruntime-cuda: {error}")
    else:
        notes.append("onnxruntime-cuda: not measured (pass --onnx MODEL.onnx)")
    if args.plan:
        try:
            backends["tensorrt"] = TensorRTBackend(args.plan, max_batch=256)
        except Exception as error:
            notes.append(f"tensorrt: {error}")
    else:
        notes.append("tensorrt: not measured (pass --plan MODEL.plan)")
    return backends


# --------------------------------------------------------------------------- end to end


def bench_pipeline(backend, folder: Path, out_root: Path, count: int, args, warmup: Path) -> dict:
    def run(in_dir: Path, out_dir: Path):
        settings = Settings(in_dir=in_dir, out_dir=out_dir, out_format="keep", quality=args.quality,
                            overwrite=True, batch_size=args.batch, workers=args.workers)
        report, seconds, _ = timed_run(settings, ThreadExecutor(backend, "gpu_bench"))
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


def gpu_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_bench", description=__doc__.split("\n\n")[0])
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
        make_dataset(folder, args.count, HEIGHT, WIDTH, args.quality)
        files = [path.read_bytes() for path in sorted(folder.iterdir())]
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
    results["target_ratio"] = GPU_TARGET
    results["meets_target"] = ratio >= GPU_TARGET
    results["total_s"] = round(time.perf_counter() - began, 1)
    print_table(results)
    if args.json:
        print(f"wrote {write_json(args.json, results)}")
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
    sys.exit(gpu_main())

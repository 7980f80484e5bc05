"""The GPU path on a real CUDA device: nvJPEG, the streams, the Triton kernel, the pipeline.

Run with ``pytest -m gpu`` on a CUDA machine (skipped without one). Every comparison is with
the CPU path on the same inputs, and prints its shapes and differences, so a failure in the
one GPU run says what went wrong. The CPU-runnable half of these checks is in
``test_gpu_path.py`` and ``test_gpu_pipeline.py``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from runtime_helpers import FakeBackend, encode_cv2, exif_jpeg, portrait, read_comments

from facecolor.runtime.decode import decode_image
from facecolor.runtime.geometry import fit_geometry
from facecolor.runtime.gpu.cuda import mark
from facecolor.runtime.gpu.jpeg import triage
from facecolor.runtime.gpu.nvjpeg import NvjpegDecoder, NvjpegEncoder
from facecolor.runtime.gpu import render as gpu_render
from facecolor.runtime.gpu.render import GpuImage, postprocess, preprocess
from facecolor.runtime.executor import ThreadExecutor
from facecolor.runtime.pipeline import Settings
from facecolor.runtime.run import run_batch
from facecolor.runtime.pipeline_cpu import build_stages as cpu_stages
from facecolor.runtime.pipeline_gpu import build_stages as gpu_stages
from facecolor.runtime.render import colorize_image, full_lightness, render_lightness
from facecolor.runtime.report import REPORT_NAME

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def stats(name: str, ours: np.ndarray, theirs: np.ndarray) -> tuple[int, float]:
    """Print and return (max, mean) |ours - theirs| after checking the shapes agree."""
    assert ours.shape == theirs.shape, f"{name}: shape {ours.shape} != {theirs.shape}"
    diff = np.abs(ours.astype(np.int64) - theirs.astype(np.int64))
    print(f"{name}: shape {ours.shape} max |diff| {diff.max()} mean {diff.mean():.4f}")
    return int(diff.max()), float(diff.mean())


def tinted(height: int, width: int, seed: int = 0) -> np.ndarray:
    gray = portrait(height, width, seed=seed).astype(np.float32)
    return np.clip(np.dstack([gray * 1.05, gray * 0.95, gray * 0.8]), 0, 255).astype(np.uint8)


class CudaFake(FakeBackend):
    """FakeBackend with the CUDA contract: torch CUDA tensors in and out."""

    def __init__(self) -> None:
        super().__init__()
        self.device, self.name = "cuda", "fake-cuda"

    def predict_ab(self, l_norm: torch.Tensor) -> torch.Tensor:
        assert l_norm.is_cuda and l_norm.dtype == torch.float32, (l_norm.device, l_norm.dtype)
        return torch.from_numpy(super().predict_ab(l_norm.cpu().numpy())).to(l_norm.device)


# --------------------------------------------------------------------------- nvJPEG decode


def test_nvjpeg_gray_decode_is_the_cpu_decode():
    sizes = [(1280, 1024), (1024, 1280), (333, 250), (64, 48), (1280, 1024), (17, 900)]
    files = [encode_cv2(portrait(h, w, seed=i), ".jpg") for i, (h, w) in enumerate(sizes)]
    verdicts = [triage(f) for f in files]
    assert all(v.on_gpu for v in verdicts), [v.reason for v in verdicts]
    images = NvjpegDecoder("cuda").decode(files, [v.info for v in verdicts])
    torch.cuda.synchronize()
    for index, (data, image) in enumerate(zip(files, images)):
        assert isinstance(image, GpuImage), image
        assert image.pixels.shape[0] == 1 and image.pixels.dtype == torch.uint8 and image.pixels.is_cuda
        most, mean = stats(f"gray {sizes[index]}", image.pixels[0].cpu().numpy(), decode_image(data).pixels)
        assert most <= 3 and mean < 0.2  # nvJPEG's IDCT against libjpeg-turbo's


def test_nvjpeg_color_decode_is_close_to_the_cpu_decode():
    files = [encode_cv2(tinted(h, w, seed=i)[:, :, ::-1], ".jpg") for i, (h, w) in enumerate([(480, 360), (200, 300)])]
    verdicts = [triage(f) for f in files]
    images = NvjpegDecoder("cuda").decode(files, [v.info for v in verdicts])
    for data, image in zip(files, images):
        assert image.pixels.shape[0] == 3
        ours = image.pixels.permute(1, 2, 0).cpu().numpy()
        most, mean = stats("colour", ours, np.ascontiguousarray(decode_image(data).pixels))
        assert mean < 1.0 and most <= 16  # chroma upsampling differs at edges


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_on_the_gpu(orientation):
    data = exif_jpeg(portrait(60, 90), orientation)
    verdict = triage(data)
    assert verdict.on_gpu and verdict.info.orientation == orientation
    (image,) = NvjpegDecoder("cuda").decode([data], [verdict.info])
    stats(f"orientation {orientation}", image.pixels[0].cpu().numpy(), decode_image(data).pixels)


def test_a_broken_jpeg_fails_alone_and_its_batch_still_decodes():
    good = [encode_cv2(portrait(120, 90, seed=i), ".jpg") for i in range(3)]
    broken = bytearray(good[1])
    dht = broken.index(b"\xff\xc4")
    broken[dht + 5:dht + 21] = b"\xff" * 16  # Huffman code counts that sum past 256
    files = [good[0], bytes(broken), good[2]]
    verdicts = [triage(f) for f in files]
    assert all(v.on_gpu for v in verdicts), [v.reason for v in verdicts]
    results = NvjpegDecoder("cuda").decode(files, [v.info for v in verdicts])
    print("results:", [type(r).__name__ for r in results], results[1])
    for index in (0, 2):
        assert isinstance(results[index], GpuImage)
        most, _ = stats(f"good {index}", results[index].pixels[0].cpu().numpy(), decode_image(files[index]).pixels)
        assert most <= 3


# --------------------------------------------------------------------------- math on CUDA


@pytest.mark.parametrize("bits", [8, 16])
def test_cuda_pre_and_postprocess_are_the_cpu_math(bits):
    dtype = np.uint8 if bits == 8 else np.uint16
    shapes = [(1280, 1024), (1024, 1280), (1280, 1024), (300, 200), (50, 70)]
    grays = [portrait(h, w, dtype, seed=i) for i, (h, w) in enumerate(shapes)]
    device = torch.device("cuda")
    images = [GpuImage(torch.from_numpy(g.astype(np.int32) if bits == 16 else g)[None].to(device), bits) for g in grays]
    batch = preprocess(images, 128)
    rng = np.random.default_rng(1)
    ab = np.tanh(rng.normal(size=(len(shapes), 2, 128, 128)).astype(np.float32) * 2)
    for index, gray in enumerate(grays):
        reference = render_lightness(full_lightness(gray), fit_geometry(*gray.shape, 128))
        diff = np.abs(batch.l_norm[index, 0].cpu().numpy() - reference).max()
        print(f"render {gray.shape}: max |diff| {diff:.2e}")
        assert diff < 1e-4
    print("triton available:", gpu_render.triton is not None)
    for use_triton in (None, False):
        outputs = postprocess(batch, torch.from_numpy(ab).to(device), use_triton=use_triton)
        torch.cuda.synchronize()
        for index, gray in enumerate(grays):
            geometry = fit_geometry(*gray.shape, 128)
            reference = colorize_image(full_lightness(gray), ab[index], geometry, dtype)
            ours = outputs[index].permute(1, 2, 0).cpu().numpy()
            most, mean = stats(f"colorize triton={use_triton} {bits}-bit {gray.shape}", ours, reference)
            assert most <= (1 if bits == 8 else 40) and mean < (0.01 if bits == 8 else 2.0)


# --------------------------------------------------------------------------- nvJPEG encode


def test_nvjpeg_encode_waits_for_the_pixels_and_carries_the_note():
    """Images finished on a busy stream, encoded from another: no corrupt or stale JPEG."""
    device = torch.device("cuda")
    encoder = NvjpegEncoder(device, 95, note="colorized by facecolor test")
    producer = torch.cuda.Stream(device)
    sources = [tinted(512, 384, seed=i) for i in range(24)]
    for _ in range(3):
        with torch.cuda.stream(producer):
            busy = torch.randn(4096, 4096, device=device)
            for _ in range(20):  # queue ~100 ms of work ahead of the pixels
                busy = busy @ busy / 64
            images = [torch.from_numpy(s).to(device, non_blocking=True).permute(2, 0, 1).contiguous() for s in sources]
            ready = mark(producer)
        files = encoder.encode(images, ready=[ready])
        for index, (data, source) in enumerate(zip(files, sources)):
            assert read_comments(data) == [b"colorized by facecolor test"]
            decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            assert decoded is not None, f"image {index}: nvJPEG produced an undecodable file"
            mse = np.mean((decoded[:, :, ::-1].astype(np.float64) - source) ** 2)
            psnr = 10 * np.log10(255**2 / max(mse, 1e-9))
            assert psnr > 38, f"image {index}: PSNR {psnr:.1f} dB against its source"


# --------------------------------------------------------------------------- the pipeline


def _run(root, out, backend, stages, **settings):
    settings = Settings(in_dir=root, out_dir=out, batch_size=4, workers=4, **settings)
    return run_batch(settings, ThreadExecutor(backend, "test", stages), progress=False, echo=print)


def _read(path) -> np.ndarray:
    pixels = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)
    assert pixels is not None, path
    return pixels


def test_odd_files_on_cuda_match_the_cpu_pipeline(odd_tree, tmp_path):
    """Progressive, CMYK, PNG, 16-bit, truncated, not-an-image, EXIF-rotated, in one run."""
    root, expect = odd_tree
    for out_format in ("png", "keep"):
        gpu_out, cpu_out = tmp_path / f"gpu-{out_format}", tmp_path / f"cpu-{out_format}"
        _run(root, gpu_out, CudaFake(), lambda s: gpu_stages(s, CudaFake()), out_format=out_format)
        _run(root, cpu_out, FakeBackend(), lambda s: cpu_stages(s, FakeBackend()), out_format=out_format)
        gpu = json.loads((gpu_out / REPORT_NAME).read_text())
        cpu = json.loads((cpu_out / REPORT_NAME).read_text())
        print("gpu stages:", gpu["timings"]["stages"])
        assert gpu["counts"] == cpu["counts"], (gpu["failed"], cpu["failed"])
        assert {f["path"]: f["reason"] for f in gpu["failed"]} == {f["path"]: f["reason"] for f in cpu["failed"]}
        for name in sorted(n for n, outcome in expect.items() if outcome == "done"):
            relative = Path(name).with_suffix(".png") if out_format == "png" else Path(name)
            ours_path, theirs_path = gpu_out / relative, cpu_out / relative
            ours, theirs = _read(ours_path), _read(theirs_path)
            scale = 257 if ours.dtype == np.uint16 else 1  # tolerances in 8-bit levels
            most, mean = stats(f"{out_format} {name}", ours, theirs)
            if out_format == "png" or not name.endswith(".jpg"):
                assert mean < 1.5 * scale and most < 8 * scale
            else:  # nvJPEG 4:4:4 against OpenCV 4:2:0 on top of the decode differences
                assert mean < 2.5


def test_a_real_model_on_cuda_matches_the_cpu_pipeline(tiny_checkpoint, tmp_path):
    from facecolor.runtime.backends.torch_backend import TorchBackend

    root = tmp_path / "in"
    root.mkdir()
    sizes = [(1280, 1024), (1024, 1280), (640, 480), (128, 100), (90, 60)]
    for index in range(20):
        h, w = sizes[index % len(sizes)]
        (root / f"p{index:02d}.jpg").write_bytes(encode_cv2(portrait(h, w, seed=index), ".jpg"))
    (root / "deep.png").write_bytes(encode_cv2(portrait(300, 240, np.uint16), ".png"))
    with TorchBackend(tiny_checkpoint, device="cuda") as gpu_backend:
        report = _run(root, tmp_path / "gpu", gpu_backend, lambda s: gpu_stages(s, gpu_backend), out_format="png")
    with TorchBackend(tiny_checkpoint, device="cpu") as cpu_backend:
        _run(root, tmp_path / "cpu", cpu_backend, lambda s: cpu_stages(s, cpu_backend), out_format="png")
    assert report.done == 21 and report.failed == 0
    means = []
    for path in sorted((tmp_path / "gpu").glob("*.png")):
        most, mean = stats(path.name, _read(path), _read(tmp_path / "cpu" / path.name))
        means.append(mean)
        scale = 257 if path.name == "deep.png" else 1
        assert most < 8 * scale and mean < 1.5 * scale
    output = Image.open(tmp_path / "gpu" / "p00.png")
    assert output.size == (1024, 1280) and output.info["Comment"].startswith("colorized by facecolor")


def test_jpeg_outputs_round_trip_through_nvjpeg(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    for index in range(10):
        (root / f"p{index}.jpg").write_bytes(encode_cv2(portrait(400, 300, seed=index), ".jpg"))
    report = _run(root, tmp_path / "out", CudaFake(), lambda s: gpu_stages(s, CudaFake()))
    assert report.done == 10
    for path in sorted((tmp_path / "out").glob("*.jpg")):
        data = path.read_bytes()
        assert read_comments(data) and read_comments(data)[0].startswith(b"colorized by facecolor")
        image = np.asarray(Image.open(io.BytesIO(data)))
        assert image.shape == (400, 300, 3)

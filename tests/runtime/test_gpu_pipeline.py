"""The GPU pipeline's stage logic, run on the CPU against the CPU pipeline.

``GpuPipeline(..., device="cpu")`` runs exactly the stages ``facecolor-batch`` runs on CUDA,
with torchvision's CPU codecs standing in for nvJPEG and no streams: every routing decision
(nvJPEG or CPU decoder, GPU JPEG or CPU encoder, 8 or 16 bit, failures per file) and all the
GPU math run here, on the odd-files tree of the CPU pipeline's own tests, and the outputs are
compared with the CPU pipeline's. The CUDA run of the same stages is in ``test_gpu_cuda.py``.
"""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from runtime_helpers import FakeBackend, encode_cv2, portrait

from facecolor.runtime.executor import ThreadExecutor
from facecolor.runtime.pipeline import Settings
from facecolor.runtime.pipeline_cpu import build_stages as cpu_stages
from facecolor.runtime.pipeline_gpu import GpuPipeline, build_stages
from facecolor.runtime.report import REPORT_NAME
from facecolor.runtime.run import run_batch


class TensorFake(FakeBackend):
    """FakeBackend with the CUDA backends' contract (torch tensors in and out), on the CPU."""

    def predict_ab(self, l_norm: torch.Tensor) -> torch.Tensor:
        assert isinstance(l_norm, torch.Tensor) and l_norm.dtype == torch.float32
        return torch.from_numpy(super().predict_ab(l_norm.numpy()))


def run(root, out, backend, stages, **settings):
    settings = Settings(in_dir=root, out_dir=out, batch_size=3, workers=2, **settings)
    return run_batch(settings, ThreadExecutor(backend, "test", stages), progress=False, echo=lambda line: None)


def gpu_stages_on_cpu(backend):
    return lambda settings: GpuPipeline(settings, backend, device="cpu").stages()


def read(path) -> np.ndarray:
    pixels = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)
    assert pixels is not None, path
    return pixels.astype(np.int64)


def test_odd_files_take_the_same_way_as_on_the_cpu(odd_tree, tmp_path):
    root, expect = odd_tree
    gpu_report = run(root, tmp_path / "gpu", TensorFake(), gpu_stages_on_cpu(TensorFake()))
    cpu_report = run(root, tmp_path / "cpu", FakeBackend(), lambda s: cpu_stages(s, FakeBackend()))
    gpu = json.loads((tmp_path / "gpu" / REPORT_NAME).read_text())
    cpu = json.loads((tmp_path / "cpu" / REPORT_NAME).read_text())
    assert gpu["counts"] == cpu["counts"], (gpu["failed"], cpu["failed"])
    assert {f["path"]: f["reason"] for f in gpu["failed"]} == {f["path"]: f["reason"] for f in cpu["failed"]}
    assert set(gpu["timings"]["stages"]) == {"read", "decode-gpu", "colorize", "encode-gpu", "write"}
    assert gpu_report.done == cpu_report.done
    worst = {}
    for name, outcome in expect.items():
        if outcome != "done":
            continue
        ours, theirs = read(tmp_path / "gpu" / name), read(tmp_path / "cpu" / name)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, name
        diff = np.abs(ours - theirs)
        worst[name] = (diff.max(), diff.mean())
    lossless = {n: w for n, w in worst.items() if not n.endswith((".jpg", ".webp")) and n != "no-extension"}
    assert all(mx <= 1 for mx, _ in lossless.values()), lossless  # PNG, TIFF, BMP: the math alone
    assert all(mean < 0.5 and mx <= 4 for mx, mean in worst.values()), worst  # JPEG: libjpeg both ways


def test_sixteen_bit_png_stays_sixteen_bit(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    (root / "deep.png").write_bytes(encode_cv2(portrait(90, 70, np.uint16), ".png"))
    (root / "wide.tif").write_bytes(encode_cv2(portrait(40, 130, np.uint16), ".tif"))
    run(root, tmp_path / "gpu", TensorFake(), gpu_stages_on_cpu(TensorFake()))
    run(root, tmp_path / "cpu", FakeBackend(), lambda s: cpu_stages(s, FakeBackend()))
    for name in ("deep.png", "wide.tif"):
        ours, theirs = read(tmp_path / "gpu" / name), read(tmp_path / "cpu" / name)
        assert cv2.imread(str(tmp_path / "gpu" / name), cv2.IMREAD_UNCHANGED).dtype == np.uint16
        assert np.abs(ours - theirs).max() <= 40, name  # 16-bit levels: < 0.07 % of full scale


def test_sixteen_bit_inputs_to_jpeg_are_quantised_once(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    (root / "deep.png").write_bytes(encode_cv2(portrait(90, 70, np.uint16), ".png"))
    (root / "flat.png").write_bytes(encode_cv2(portrait(90, 70), ".png"))
    run(root, tmp_path / "gpu", TensorFake(), gpu_stages_on_cpu(TensorFake()), out_format="jpg")
    run(root, tmp_path / "cpu", FakeBackend(), lambda s: cpu_stages(s, FakeBackend()), out_format="jpg")
    for name in ("deep.jpg", "flat.jpg"):
        ours, theirs = read(tmp_path / "gpu" / name), read(tmp_path / "cpu" / name)
        assert ours.shape == theirs.shape and np.abs(ours - theirs).max() <= 2, name


def test_jpeg_outputs_carry_the_note_and_are_upright(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    buffer = io.BytesIO()
    Image.fromarray(portrait(60, 90)).save(buffer, format="JPEG", exif=exif, quality=95)
    (root / "rotated.jpg").write_bytes(buffer.getvalue())
    (root / "progressive.jpg").write_bytes(_pil_jpeg(portrait(50, 40), progressive=True))
    report = run(root, tmp_path / "out", TensorFake(), gpu_stages_on_cpu(TensorFake()))
    assert report.done == 2 and report.failed == 0
    rotated = Image.open(tmp_path / "out" / "rotated.jpg")
    assert rotated.size == (60, 90)  # width, height after the EXIF rotation
    assert rotated.info["comment"].startswith(b"colorized by facecolor")
    assert Image.open(tmp_path / "out" / "progressive.jpg").size == (40, 50)


def _pil_jpeg(pixels, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", **save)
    return buffer.getvalue()


def test_build_stages_wants_a_cuda_backend():
    settings = Settings(in_dir=".", out_dir="out")
    with pytest.raises(ValueError, match="CUDA backend"):
        build_stages(settings, FakeBackend())

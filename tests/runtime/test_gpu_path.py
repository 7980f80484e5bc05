"""The GPU path's math and byte handling, run on the CPU against the CPU path.

Everything the GPU path computes is written as torch functions of a device (or as pure bytes),
so these tests run it on CPU tensors and compare with what the CPU path computes with OpenCV and
numpy: a math bug shows here, before any GPU run. The Triton kernel runs under Triton's CPU
interpreter in a subprocess. What needs CUDA itself (nvJPEG, streams, TensorRT) is in
``test_gpu_cuda.py`` and ``test_gpu_tensorrt.py`` (marked ``gpu`` / ``tensorrt``).
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from runtime_helpers import read_comments

from facecolor.color import lightness
from facecolor.runtime.decode import apply_orientation
from facecolor.runtime.geometry import fit_geometry
from facecolor.runtime.render import colorize_image, full_lightness, render_lightness
from facecolor.runtime.gpu.cuda import GpuError, GpuOutOfMemory, NvjpegError, cuda_errors
from facecolor.runtime.decode import jpeg_is_truncated
from facecolor.runtime.gpu.jpeg import JpegHeaderError, exif_orientation, read_jpeg_info, triage
from facecolor.runtime.gpu.nvjpeg import orient
from facecolor.runtime.write import jpeg_with_comment
from facecolor.runtime.gpu.render import GpuImage, lightness_from_pixels, postprocess, preprocess, render, resize_matrix

RNG = np.random.default_rng(7)


def smooth_gray(height: int, width: int, dtype=np.uint8) -> np.ndarray:
    """A portrait-like smooth gray image (noise blurred), full dynamic range of ``dtype``."""
    noise = RNG.random((height, width)).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), max(1.0, min(height, width) / 12))
    blurred = (blurred - blurred.min()) / max(float(np.ptp(blurred)), 1e-6)
    peak = 65535 if dtype == np.uint16 else 255
    return np.rint(blurred * peak).astype(dtype)


def jpeg_bytes(pixels: np.ndarray, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", **save)
    return buffer.getvalue()


def exif_with_orientation(value: int, big_endian: bool = False) -> bytes:
    """A minimal TIFF block with IFD0 holding only the Orientation tag."""
    endian = ">" if big_endian else "<"
    head = (b"MM" if big_endian else b"II") + struct.pack(endian + "HI", 42, 8)
    ifd = struct.pack(endian + "H", 1) + struct.pack(endian + "HHIHH", 0x0112, 3, 1, value, 0)
    return head + ifd + struct.pack(endian + "I", 0)


def cpu_render(gray: np.ndarray, size: int) -> np.ndarray:
    """The CPU path's render (``runtime.render``)."""
    return render_lightness(full_lightness(gray), fit_geometry(*gray.shape[:2], size))


# --------------------------------------------------------------------------- JPEG headers


def test_header_of_baseline_gray_and_color():
    gray = smooth_gray(48, 40)
    data = jpeg_bytes(gray, quality=90)
    info = read_jpeg_info(data)
    assert (info.frame, info.precision, info.height, info.width, info.components) == ("baseline", 8, 48, 40, 1)
    assert triage(data).on_gpu and info.orientation == 1
    color_data = jpeg_bytes(np.dstack([gray, gray[::-1], gray[:, ::-1]]))
    color = read_jpeg_info(color_data)
    assert color.components == 3 and triage(color_data).on_gpu


def test_header_rejects_what_nvjpeg_should_not_get():
    gray = smooth_gray(32, 32)
    data = jpeg_bytes(gray, progressive=True)
    assert read_jpeg_info(data).frame == "progressive" and "progressive" in triage(data).reason
    cmyk = Image.fromarray(np.dstack([gray] * 4), mode="CMYK")
    buffer = io.BytesIO()
    cmyk.save(buffer, format="JPEG")
    info = read_jpeg_info(buffer.getvalue())
    assert info.components == 4 and "CMYK" in triage(buffer.getvalue()).reason


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 32, b"\xff\xd8\xff\xe0\x00", b"\xff\xd8\xff\xd9"])
def test_header_errors_are_named(data):
    with pytest.raises(JpegHeaderError):
        read_jpeg_info(data)


def test_triage_sends_the_rest_to_the_cpu():
    gray = RNG.integers(0, 256, (120, 90), dtype=np.uint8)  # noise: most bytes are scan data
    good = jpeg_bytes(gray)
    assert triage(good).on_gpu
    cut = good[: len(good) * 3 // 4]
    assert not triage(cut).on_gpu and "truncated" in triage(cut).reason
    assert "not decodable" in triage(good[:100]).reason  # cut inside the header
    assert not triage(jpeg_bytes(gray, progressive=True)).on_gpu
    png = io.BytesIO()
    Image.fromarray(gray).save(png, format="PNG")
    assert not triage(png.getvalue()).on_gpu
    assert not triage(b"").on_gpu
    assert "pixel limit" in triage(good, max_pixels=100).reason


def test_truncation_check_shared_by_both_decoders():
    good = jpeg_bytes(RNG.integers(0, 256, (64, 48), dtype=np.uint8))
    thumb = jpeg_bytes(smooth_gray(8, 8))  # an EOI before the main scan, as in EXIF thumbnails
    cases = [good, good[:-2], good[: len(good) // 2], good + b"\0" * 10, good + good,
             (good + good)[:-30], good[:2] + thumb[2:] + good[2:], b"", b"\xff\xd9", b"\xff\xda"]
    # One function serves the CPU decoder and the GPU triage: the answers it must give.
    assert [jpeg_is_truncated(c) for c in cases] == [False, True, True, False, False, True, False, False, False, True]


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("big_endian", [False, True])
def test_exif_orientation_is_read(orientation, big_endian):
    tiff = exif_with_orientation(orientation, big_endian)
    assert exif_orientation(tiff) == orientation
    data = jpeg_bytes(smooth_gray(16, 24), exif=b"Exif\x00\x00" + tiff)
    assert read_jpeg_info(data).orientation == orientation
    assert Image.open(io.BytesIO(data)).getexif().get(0x0112) == orientation


def test_exif_orientation_from_pillow_and_broken_blocks():
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010E] = "a description before the orientation"
    data = jpeg_bytes(smooth_gray(16, 24), exif=exif.tobytes())
    info = read_jpeg_info(data)
    assert info.orientation == 6 and (info.height, info.width) == (16, 24)  # as stored; upright: test_gpu_pipeline
    for broken in (b"", b"II*\x00", b"XX*\x00\x08\x00\x00\x00", exif_with_orientation(9), b"II*\x00\xff\x00\x00\x00"):
        assert exif_orientation(broken) == 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_pillow_and_the_cpu_decoder(orientation):
    pixels = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    image = Image.fromarray(pixels)
    image.info["exif"] = exif.tobytes()
    image.getexif()[0x0112] = orientation
    upright = np.asarray(ImageOps.exif_transpose(image))
    ours = orient(torch.from_numpy(pixels).permute(2, 0, 1), orientation).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(ours, upright)
    np.testing.assert_array_equal(ours, apply_orientation(pixels, orientation))


# --------------------------------------------------------------------------- metadata


def test_comments_are_read_back():
    """The GPU path stamps nvJPEG output with the CPU writer's own jpeg_with_comment."""
    note = "colorized by facecolor 0.1.0, model gpsagd (sha256:0123456789ab)"
    marked = jpeg_with_comment(jpeg_bytes(smooth_gray(40, 32)), note)
    assert read_comments(marked) == [note.encode()]
    assert read_jpeg_info(marked).frame == "baseline"


# --------------------------------------------------------------------------- preprocess


@pytest.mark.parametrize("bits", [8, 16])
def test_gray_lightness_is_the_cpu_table(bits):
    dtype = np.uint8 if bits == 8 else np.uint16
    gray = smooth_gray(33, 21, dtype)
    ours = lightness_from_pixels(torch.from_numpy(gray.astype(np.int32 if bits == 16 else np.uint8))[None, None], bits)
    np.testing.assert_array_equal(ours[0].numpy(), lightness(gray))


@pytest.mark.parametrize("bits", [8, 16])
def test_color_lightness_agrees_with_opencv(bits):
    dtype = np.uint8 if bits == 8 else np.uint16
    rgb = RNG.integers(0, 256 if bits == 8 else 65536, (17, 19, 3)).astype(dtype)
    rgb[0, :3] = [[0, 0, 0], [1, 1, 1], [np.iinfo(dtype).max] * 3]  # dark linear branch, white
    pixels = torch.from_numpy(rgb.astype(np.int32) if bits == 16 else rgb).permute(2, 0, 1)[None]
    ours = lightness_from_pixels(pixels, bits)[0].numpy()
    assert np.abs(ours - lightness(rgb)).max() < 2e-3


@pytest.mark.parametrize(
    "shape", [(1280, 1024), (1024, 1280), (333, 250), (100, 60), (37, 129), (128, 128), (3, 400), (400, 1)]
)
def test_render_is_the_cpu_render(shape):
    gray = smooth_gray(*shape)
    ours = render(lightness_from_pixels(torch.from_numpy(gray)[None, None], 8), fit_geometry(*shape, 128))
    assert ours.shape == (1, 1, 128, 128) and ours.dtype == torch.float32
    diff = np.abs(ours[0, 0].numpy() - cpu_render(gray, 128))
    assert diff.max() < 1e-5, f"{shape}: max |diff| {diff.max():.2e}"


def test_resize_matrix_rows_are_averages():
    for n_in, n_out in ((1280, 128), (1024, 102), (7, 3), (5, 9), (4, 4)):
        matrix = torch.from_numpy(resize_matrix(n_in, n_out)).double()
        assert matrix.shape == (n_out, n_in)
        torch.testing.assert_close(matrix.sum(1), torch.ones(n_out, dtype=torch.float64))
        assert (matrix >= 0).all()


def test_preprocessor_groups_mixed_batches():
    images = [smooth_gray(60, 40), smooth_gray(50, 50), smooth_gray(60, 40), smooth_gray(40, 60, np.uint16)]
    gpu = [GpuImage(torch.from_numpy(images[0])[None]), GpuImage(torch.from_numpy(images[1])[None]),
           GpuImage(torch.from_numpy(np.dstack([images[2]] * 3)).permute(2, 0, 1).contiguous()),
           GpuImage(torch.from_numpy(images[3].astype(np.int32))[None], bits=16)]
    batch = preprocess(gpu, 32)
    assert batch.l_norm.shape == (4, 1, 32, 32) and len(batch.groups) == 4
    assert sorted(i for g in batch.groups for i in g.indices) == [0, 1, 2, 3]
    for index, gray in enumerate(images):
        diff = np.abs(batch.l_norm[index, 0].numpy() - cpu_render(gray, 32)).max()
        assert diff < 2e-3 * (1 if index != 2 else 1), f"image {index}: {diff}"
    same = preprocess([gpu[0], gpu[1], gpu[0]], 32)
    assert [g.indices for g in same.groups] == [[0, 2], [1]]
    torch.testing.assert_close(same.l_norm[2], same.l_norm[0])


# --------------------------------------------------------------------------- postprocess


def _ab(count: int, size: int) -> np.ndarray:
    """Network-like ab/110: smooth, within tanh's range, saturating in places."""
    noise = RNG.normal(size=(count, 2, size, size)).astype(np.float32)
    return np.tanh(np.stack([[cv2.GaussianBlur(c, (0, 0), 2) * 4 for c in n] for n in noise]))


def test_postprocessor_returns_images_in_batch_order():
    """Without the kernel (here: the CPU), each group is the CPU path's ``colorize_image``."""
    grays = [smooth_gray(60, 40), smooth_gray(50, 50), smooth_gray(60, 40), smooth_gray(20, 30, np.uint16)]
    pixels = [torch.from_numpy(g.astype(np.int32) if g.dtype == np.uint16 else g)[None] for g in grays]
    batch = preprocess([GpuImage(p, bits=16 if p.dtype == torch.int32 else 8) for p in pixels], 32)
    ab = torch.from_numpy(_ab(4, 32))
    outputs = postprocess(batch, ab, use_triton=False)
    assert [tuple(o.shape) for o in outputs] == [(3, 60, 40), (3, 50, 50), (3, 60, 40), (3, 20, 30)]
    assert [o.dtype for o in outputs] == [torch.uint8] * 3 + [torch.int32] and all(o.is_contiguous() for o in outputs)
    for i, gray in enumerate(grays):
        reference = colorize_image(lightness(gray), ab[i].numpy(), fit_geometry(*gray.shape, 32), gray.dtype)
        np.testing.assert_array_equal(outputs[i].permute(1, 2, 0).numpy(), reference)
    with pytest.raises(ValueError):
        postprocess(batch, ab[:2], use_triton=False)


def test_triton_kernel_under_the_interpreter():
    """The CUDA kernel's code, run by Triton's CPU interpreter against the CPU path's colorize:
    ``kernel_interpreted.py`` in a subprocess, since TRITON_INTERPRET must be set before import."""
    pytest.importorskip("triton")
    here = Path(__file__).resolve()
    script = str(here.with_name("kernel_interpreted.py"))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", script]
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run(command, env=env, cwd=here.parents[2], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and " passed" in done.stdout and "skipped" not in done.stdout, done.stdout + done.stderr


@pytest.mark.slow
def test_triton_kernel_compiles_for_hopper_without_a_gpu():
    """Triton's real code generator (not the interpreter) on the kernel, down to sm_90 code:
    name resolution, types and constexpr branches fail here rather than on the GPU machine."""
    triton = pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from facecolor.runtime.gpu.render import _colorize_kernel

    signature = {name: "i32" for name in ("height", "width", "size", "top", "left", "inner_h", "inner_w")}
    signature.update({"light_ptr": "*fp32", "ab_ptr": "*fp32", "out_ptr": "*u8",
                      "scale_y": "fp32", "scale_x": "fp32", "peak": "fp32", "BLOCK": "constexpr"})
    # The color constants arrive from facecolor.color as arguments, never written in the kernel.
    signature.update({name: "fp32" for name in ("ab_scale", "white_x", "white_z", "kappa", "slope", "l_break")})
    signature.update({f"m{row}{col}": "fp32" for row in range(3) for col in range(3)})
    source = ASTSource(fn=_colorize_kernel, signature=signature, constexprs={"BLOCK": 1024})
    try:
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32))
    except (FileNotFoundError, RuntimeError) as error:
        if "ptxas" in str(error):
            pytest.skip(f"no ptxas here: {error}")
        raise
    assert "ld.global" in compiled.asm["ptx"]


# --------------------------------------------------------------------------- errors and backends


def test_cuda_errors_are_named():
    with pytest.raises(GpuOutOfMemory, match="batch-size"):
        with cuda_errors("preprocess of 64 images"):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nlong trace")
    with pytest.raises(NvjpegError, match="^nvJPEG decode of 3 gray JPEGs: Error while decoding"):
        with cuda_errors("nvJPEG decode of 3 gray JPEGs", NvjpegError):
            raise RuntimeError("Error while decoding JPEG images: Failed to decode batch: 6\nmore")
    with pytest.raises(GpuError):
        with cuda_errors("x"):
            raise torch.AcceleratorError("CUDA error: an illegal memory access was encountered")
    with pytest.raises(TypeError):  # programming errors stay what they are
        with cuda_errors("x"):
            raise TypeError("bad argument")


def test_tensorrt_missing_names_the_install_command(monkeypatch, tmp_path):
    from facecolor.errors import Unavailable
    from facecolor.runtime.backends.tensorrt import TensorRTBackend

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"not an engine")
    with pytest.raises(Unavailable, match=r"pip install facecolor\[tensorrt\]"):
        TensorRTBackend(plan, max_batch=8)

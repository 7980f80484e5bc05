"""Image makers and fake backends shared by the runtime tests (imported by name: the test
folders are not packages)."""

from __future__ import annotations

import contextlib
import io
import struct
import zlib
from collections.abc import Iterator

import cv2
import numpy as np
from PIL import Image

from facecolor.runtime.backends import open_backend
from facecolor.runtime.backends.base import Backend, ModelInfo
from facecolor.runtime.executor import ThreadExecutor
from facecolor.runtime.pipeline import Settings
from facecolor.runtime.run import run_batch

TINY_RENDER = 64


# --------------------------------------------------------------------------- images


def run_single_process(in_dir, out_dir, onnx, *, batch_size: int = 4, workers: int = 2):
    """The plain local runtime over ``in_dir`` (CPU, ONNX Runtime): the reference that other
    ways of running it (Ray, object storage) must reproduce byte for byte. Returns its report."""
    backend, reason = open_backend(onnx, "cpu", batch_size=batch_size)
    settings = Settings(in_dir=in_dir, out_dir=out_dir, batch_size=batch_size, workers=workers)
    with backend:
        return run_batch(settings, ThreadExecutor(backend, reason), progress=False, echo=lambda line: None)


def portrait(height: int, width: int, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    """A smooth gray 'portrait': an ellipse 'face' on a gradient, plus a little texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = height * 0.45, width / 2
    face = ((yy - cy) / (0.3 * height)) ** 2 + ((xx - cx) / (0.25 * width)) ** 2 < 1
    base = 0.25 + 0.5 * yy / max(height - 1, 1)
    image = np.where(face, 0.75, base) + rng.normal(0, 0.02, (height, width))
    image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 1.0)
    peak = 65535 if dtype == np.uint16 else 255
    return np.clip(np.rint(image * peak), 0, peak).astype(dtype)


def encode_pil(pixels_or_image, fmt: str, **save) -> bytes:
    image = pixels_or_image if isinstance(pixels_or_image, Image.Image) else Image.fromarray(pixels_or_image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def encode_frames(pixels: np.ndarray, fmt: str) -> bytes:
    """A two-frame file (animation or two pages): the image, then its negative."""
    first = Image.fromarray(pixels)
    return encode_pil(first, fmt, save_all=True, append_images=[Image.fromarray(255 - pixels)])


def encode_cv2(pixels: np.ndarray, extension: str) -> bytes:
    ok, buffer = cv2.imencode(extension, pixels)
    assert ok
    return buffer.tobytes()


def exif_jpeg(pixels: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode_pil(pixels, "JPEG", exif=exif, quality=95)


def read_comments(jpeg: bytes) -> list[bytes]:
    """Every COM payload in front of a JPEG's first scan, in order (Pillow's marker list)."""
    return [payload for marker, payload in Image.open(io.BytesIO(jpeg)).applist if marker == "COM"]


def bomb_png(width: int = 60_000, height: int = 60_000) -> bytes:
    """A PNG whose header claims a huge size (3.6 GP) and whose data is tiny."""
    small = encode_cv2(np.zeros((8, 8), np.uint8), ".png")
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    return small[:8] + chunk + small[8 + 25:]


# --------------------------------------------------------------------------- fakes


class FakeBackend(Backend):
    """A CPU backend whose output is a known function of its input, for geometry tests.

    ``ab(l_norm)``: a* = ``a_gain`` * l_norm + ``a_offset``, b* = ``b_offset`` (all in ab/110
    units), so a mistake in placing the render shows up as a* that no longer follows L*.
    """

    def __init__(self, render_size: int = TINY_RENDER, a_gain: float = 0.3, a_offset: float = 0.1,
                 b_offset: float = 0.15) -> None:
        self.name, self.device, self.render_size, self.max_batch = "fake-cpu", "cpu", render_size, None
        self.model = ModelInfo("fake", "0" * 64)
        self.a_gain, self.a_offset, self.b_offset = a_gain, a_offset, b_offset
        self.batches: list[int] = []

    def predict_ab(self, l_norm: np.ndarray) -> np.ndarray:
        assert l_norm.dtype == np.float32 and l_norm.ndim == 4 and l_norm.shape[1] == 1
        self.batches.append(len(l_norm))
        a = self.a_gain * l_norm + self.a_offset
        b = np.full_like(l_norm, self.b_offset)
        return np.concatenate([a, b], axis=1).astype(np.float32)

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- object storage


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with the AWS variables pointing at it; yields its URL.

    Skips the calling test when s3fs or moto is missing (the [ray] extra). The variables are
    set before any Ray start, since Ray's workers inherit the environment of ray.init.
    """
    import pytest

    from facecolor.runtime.storage import STORAGE_OPTIONS_ENV

    pytest.importorskip("s3fs")
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AWS_ENDPOINT_URL", endpoint)
            patch.setenv("AWS_ACCESS_KEY_ID", "testing")
            patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
            patch.delenv(STORAGE_OPTIONS_ENV, raising=False)
            yield endpoint
    finally:
        server.stop()


def s3_with_tree(bucket: str, tree) -> "object":
    """An s3fs filesystem with ``tree`` uploaded under s3://BUCKET/in/ (inside ``moto_s3``)."""
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir(bucket)
    fs.put(str(tree) + "/", f"{bucket}/in/", recursive=True)
    return fs

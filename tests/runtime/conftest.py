"""Fixtures for the runtime tests: a tiny model in every file type, image makers, fakes.

The tiny model is ``pug`` at width 0.125 and render size 64 (random init): it runs a batch in
milliseconds on the CPU. Its ONNX comes from the export cache (``facecolor.export.cache``), in
a cache folder private to the test session, exactly as ``facecolor-batch --model X.safetensors``
gets it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from runtime_helpers import TINY_RENDER, FakeBackend, bomb_png, encode_cv2, encode_frames, encode_pil, exif_jpeg, portrait


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("facecolor-cache")
    previous = os.environ.get("FACECOLOR_CACHE")
    os.environ["FACECOLOR_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("FACECOLOR_CACHE", None)
    else:
        os.environ["FACECOLOR_CACHE"] = previous


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, model_cache) -> Path:
    import torch

    from facecolor.checkpoint import save_checkpoint
    from facecolor.models import build_generator

    torch.manual_seed(0)
    generator = build_generator("pug", width=0.125, render_size=TINY_RENDER).eval()
    path = tmp_path_factory.mktemp("model") / "tiny-pug.safetensors"
    return save_checkpoint(path, generator, generator.config)


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, model_cache) -> Path:
    from facecolor.export.cache import cached_onnx

    return cached_onnx(tiny_checkpoint, fp16=False)


@pytest.fixture
def odd_tree(tmp_path) -> tuple[Path, dict[str, str]]:
    """IN_DIR full of deliberately bad and odd files; returns (IN_DIR, {relative path: expect}).

    ``expect`` is 'done', 'failed', 'skipped' or 'ignored'.
    """
    root = tmp_path / "in"
    (root / "sub dir" / "deeper").mkdir(parents=True)
    gray = portrait(96, 72)
    files: dict[str, tuple[bytes, str]] = {
        "plain.jpg": (encode_cv2(gray, ".jpg"), "done"),
        "zero.jpg": (b"", "failed"),
        "truncated.jpg": (encode_cv2(portrait(200, 150), ".jpg")[:1500], "failed"),
        "text.jpg": (b"this is not an image\n" * 10, "failed"),
        "png-named.jpg": (encode_cv2(gray, ".png"), "done"),
        "sixteen.png": (encode_cv2(portrait(80, 60, np.uint16), ".png"), "done"),
        "palette.png": (encode_pil(Image.fromarray(gray).convert("P"), "PNG"), "done"),
        "rgba.png": (encode_cv2(np.dstack([gray] * 3 + [np.full_like(gray, 128)]), ".png"), "done"),
        "cmyk.jpg": (encode_pil(Image.fromarray(gray).convert("CMYK"), "JPEG"), "done"),
        "rotated.jpg": (exif_jpeg(portrait(60, 90), 6), "done"),
        "bomb.png": (bomb_png(), "failed"),
        "scan.tif": (encode_cv2(gray, ".tif"), "done"),
        "scan.bmp": (encode_cv2(gray, ".bmp"), "done"),
        "scan.webp": (encode_cv2(np.dstack([gray] * 3), ".webp"), "done"),
        "no-extension": (encode_cv2(gray, ".jpg"), "done"),
        "notes.txt": (b"not an image, ignored\n", "ignored"),
        "animated.gif": (encode_frames(gray, "GIF"), "skipped"),  # a format not read: said so
        "pages.tif": (encode_frames(gray, "TIFF"), "failed"),  # page 2 would be lost
        "animated.webp": (encode_frames(gray, "WEBP"), "failed"),
        "sub dir/Großmutter 1931 – café.jpg": (encode_cv2(gray, ".jpg"), "done"),
        "sub dir/deeper/日本 写真.png": (encode_cv2(gray, ".png"), "done"),
    }
    expect = {}
    for name, (data, outcome) in files.items():
        (root / name).write_bytes(data)
        expect[name] = outcome
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(encode_cv2(gray, ".jpg"))
    os.symlink(outside, root / "link-outside.jpg")
    expect["link-outside.jpg"] = "skipped"
    os.symlink(root / "plain.jpg", root / "sub dir" / "link-inside.jpg")
    expect["sub dir/link-inside.jpg"] = "done"
    return root, expect


@pytest.fixture
def fake_backend() -> FakeBackend:
    return FakeBackend()

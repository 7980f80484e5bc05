"""The full-resolution result (DESIGN §2): the output keeps the input's L*, the padding never
colors the image, and tall and wide pictures are not distorted. Run through the real CPU
pipeline with fake backends whose colors are known functions of what they see."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from runtime_helpers import TINY_RENDER, FakeBackend, encode_cv2

from facecolor import color
from facecolor.runtime.decode import decode_image
from facecolor.runtime.geometry import fit_geometry
from facecolor.runtime.executor import ThreadExecutor
from facecolor.runtime.pipeline import Settings
from facecolor.runtime.run import run_batch
from facecolor.runtime.pipeline_cpu import build_stages
from facecolor.runtime.render import full_lightness

BW_REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "bw_real"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}


def colorize_tree(in_dir: Path, out_dir: Path, backend) -> None:
    settings = Settings(in_dir=in_dir, out_dir=out_dir, batch_size=4, workers=2)
    report = run_batch(settings, ThreadExecutor(backend, "backend: fake", lambda s: build_stages(s, backend)),
                       progress=False)
    assert report.failed == 0, report.failures


def output_lab(path: Path) -> np.ndarray:
    return color.rgb_to_lab(color.to_unit_rgb(decode_image(path.read_bytes()).pixels))


def real_photos(limit_pixels: int = 1_500_000, count: int = 10) -> list[Path]:
    if not BW_REAL.is_dir():
        pytest.skip(f"no real photos at {BW_REAL}")
    photos = []
    for path in sorted(BW_REAL.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            with Image.open(path) as header:  # the size only, no decoding
                if header.width * header.height <= limit_pixels:
                    photos.append(path)
    return photos[:: max(1, len(photos) // count)][:count]


class SkinTone(FakeBackend):
    """Colors like a photograph's: a warm tone of chroma up to 25 in the midtones, fading to
    neutral in deep shadows and highlights (where no sRGB color has much chroma anyway)."""

    def predict_ab(self, l_norm):
        lightness = color.denormalize_l(l_norm)
        weight = np.sin(np.pi * np.clip(lightness, 0, 100) / 100)
        ab = np.concatenate([0.12 * weight, 0.2 * weight], axis=1)  # a* 13, b* 22 at L* 50
        return ab.astype(np.float32)


def test_lightness_is_preserved_on_real_photos(tmp_path):
    """Mean |ΔL*| < 0.5 between input and output (8-bit rounding and gamut clipping only)."""
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    photos = real_photos()
    for photo in photos:
        (in_dir / photo.name).write_bytes(photo.read_bytes())
    colorize_tree(in_dir, tmp_path / "out", SkinTone())
    deltas = []
    for photo in photos:
        source = full_lightness(decode_image(photo.read_bytes()).pixels)
        result = full_lightness(decode_image((tmp_path / "out" / photo.name).read_bytes()).pixels)
        assert result.shape == source.shape
        deltas.append(float(np.abs(result - source).mean()))
    assert len(deltas) >= 5
    print('mean |dL*| per photo:', dict(zip([p.name for p in photos], deltas)))
    assert np.mean(deltas) < 0.5 and max(deltas) < 1.0, dict(zip([p.name for p in photos], deltas))


class PaddingPainter(FakeBackend):
    """Paints its renders' padding strongly red and the valid box a mild tone."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        self.crop = fit_geometry(height, width, TINY_RENDER).crop

    def predict_ab(self, l_norm):
        ab = np.empty((len(l_norm), 2, TINY_RENDER, TINY_RENDER), np.float32)
        ab[:, 0], ab[:, 1] = 0.9, -0.6
        y0, y1, x0, x1 = self.crop
        ab[:, 0, y0:y1, x0:x1], ab[:, 1, y0:y1, x0:x1] = 0.1, 0.15
        return ab


@pytest.mark.parametrize("height, width", [(500, 130), (130, 500), (37, 29)], ids=["tall", "wide", "small"])
def test_no_color_from_the_padding_reaches_the_borders(tmp_path, height, width):
    (tmp_path / "in").mkdir()
    gray = np.full((height, width), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "in" / "x.png"), gray)
    colorize_tree(tmp_path / "in", tmp_path / "out", PaddingPainter(height, width))
    lab = output_lab(tmp_path / "out" / "x.png")
    for edge in (lab[0], lab[-1], lab[:, 0], lab[:, -1]):  # the rows and columns next to the padding
        np.testing.assert_allclose(edge[:, 1], 11.0, atol=1.0)
        np.testing.assert_allclose(edge[:, 2], 16.5, atol=1.0)


def disk_image(height: int, width: int, cy: float, cx: float, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.full((height, width), 40, np.uint8)
    image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 220
    return image


@pytest.mark.parametrize(
    "height, width, cy, cx",
    [(1200, 300, 300, 150), (300, 1200, 150, 900)],
    ids=["tall", "wide"],
)
def test_tall_and_wide_pictures_are_not_distorted(tmp_path, height, width, cy, cx):
    """A bright disk: where the fake model puts color must be the same disk, not an ellipse
    and not shifted, and the output has the input's size."""
    radius = 100
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "disk.png").write_bytes(encode_cv2(disk_image(height, width, cy, cx, radius), ".png"))
    colorize_tree(tmp_path / "in", tmp_path / "out", FakeBackend(a_gain=0.5, a_offset=0.3, b_offset=0.0))
    lab = output_lab(tmp_path / "out" / "disk.png")
    assert lab.shape[:2] == (height, width)
    a = lab[..., 1]
    colored = a > (a.max() + a.min()) / 2  # the disk's color, seen only through the render
    ys, xs = np.nonzero(colored)
    assert abs(ys.mean() - cy) < 3 and abs(xs.mean() - cx) < 3  # not shifted
    extent_y, extent_x = ys.max() - ys.min(), xs.max() - xs.min()
    assert abs(extent_y - extent_x) <= 0.05 * 2 * radius  # round, not squashed
    assert abs(extent_y - 2 * radius) <= 0.1 * 2 * radius

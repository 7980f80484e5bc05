"""Helpers for the training tests (a uniquely named module, imported by the tests and conftest)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from facecolor.train.cli import main

#: Flags that make any preset train in seconds on the tiny set.
TINY = [
    "--width", "0.125", "--render-size", "32", "--batch-size", "4", "--epochs", "1",
    "--d-epochs", "1", "--workers", "2", "--no-progress", "--contact-images", "3",
]


def synthetic_faces(folder: Path, count: int, seed: int, size: tuple[int, int] = (40, 48)) -> list[Path]:
    """``count`` colorful, non-square images (PNG, JPEG, BMP), half of them in a subfolder."""
    rng = np.random.default_rng(seed)
    height, width = size
    paths = []
    for index in range(count):
        yy, xx = np.mgrid[0:height, 0:width]
        image = np.empty((height, width, 3), np.uint8)
        base = rng.integers(30, 225, 3)
        for channel in range(3):
            image[:, :, channel] = np.clip(base[channel] + (xx - yy) * (channel - 1), 0, 255)
        image[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = rng.integers(0, 255, 3)
        suffix = (".png", ".jpg", ".bmp")[index % 3]
        target = folder / ("nested" if index % 2 else ".") / f"face{index:02d}{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), image)
        paths.append(target.resolve())
    return paths


def invoke(args: list[str]):
    """Run ``facecolor-train`` in-process; returns click's Result."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def train_args(preset: str, data: dict[str, Path], out: Path, *extra) -> list[str]:
    return [preset, "--data", data["train"], "--val", data["val"], "--out", out, *TINY, *extra]

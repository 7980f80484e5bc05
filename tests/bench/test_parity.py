"""Parity inputs and agreement, without a model: rendering, folders, and the |Δab| arithmetic."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facecolor.bench import BenchError, parity
from facecolor.color import AB_SCALE


def test_render_keeps_aspect_and_pads_to_the_square():
    rgb = np.full((100, 50, 3), 128, np.uint8)
    l_norm, small, (y0, y1, x0, x1) = parity.render(rgb, 64)
    assert l_norm.shape == (64, 64) and l_norm.dtype == np.float32
    assert small.shape == (64, 32, 3) and (y1 - y0, x1 - x0) == (64, 32)
    assert -1.0 <= l_norm.min() <= l_norm.max() <= 1.0


def test_folder_skips_unreadable_files_and_respects_limit(tmp_path):
    for index, rgb in enumerate(parity.synthetic_portraits(3, size=(40, 30))):
        cv2.imwrite(str(tmp_path / f"{index}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    images = parity.load_folder(tmp_path, 32, limit=2, truth=True)
    assert len(images) == 2 and images.has_truth and images.l_norm.shape == (2, 1, 32, 32)
    images = parity.load_folder(tmp_path, 32, limit=None, truth=True)
    assert len(images) == 3 and "broken.jpg" in images.skipped[0]
    assert images.truth[0].shape[:2] == images.lightness[0].shape


def test_empty_folder_is_a_data_error(tmp_path):
    with pytest.raises(BenchError, match="no image files"):
        parity.load_folder(tmp_path, 32, limit=None, truth=True)


def test_without_data_examples_or_synthetic_portraits(tmp_path, monkeypatch):
    images = parity.load_parity_images(None, 32, limit=2)
    assert not images.has_truth and len(images) == 2
    monkeypatch.setattr(parity, "EXAMPLES_DIR", tmp_path)
    images = parity.load_parity_images(None, 32, limit=3)
    assert images.source.startswith("synthetic") and len(images) == 3


def _outputs(images, ab):
    rgb = [np.zeros((y1 - y0, x1 - x0, 3), np.uint8) for y0, y1, x0, x1 in images.crops]
    return parity.Colorized(ab=ab, rgb=rgb)


def test_agreement_measures_ab_distance_in_cielab_units_on_valid_pixels():
    images = parity.load_parity_images(None, 32, limit=2)
    ab = np.zeros((2, 2, 32, 32), np.float32)
    shifted = ab.copy()
    shifted[:, 0] += 3.0 / AB_SCALE  # a* + 3
    shifted[:, 1] += 4.0 / AB_SCALE  # b* + 4: |Δab| = 5 everywhere
    result = parity.agreement(_outputs(images, shifted), _outputs(images, ab), images)
    assert result["max_dab"] == pytest.approx(5.0, abs=1e-4)
    assert result["mean_dab"] == pytest.approx(5.0, abs=1e-4)
    assert result["psnr"] == 100.0 and result["nonfinite"] == 0
    shifted[0, 0, 10, 10] = np.nan
    result = parity.agreement(_outputs(images, shifted), _outputs(images, ab), images)
    y0, y1, x0, x1 = images.crops[0]
    assert result["nonfinite"] == int(y0 <= 10 < y1 and x0 <= 10 < x1)

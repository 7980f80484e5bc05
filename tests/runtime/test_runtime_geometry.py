"""fit_geometry: the long side fills the render, the aspect ratio is kept, the padding is even."""

from __future__ import annotations

import pytest

from facecolor.runtime.geometry import GeometryError, fit_geometry


@pytest.mark.parametrize(
    "height, width, size, inner, padding",
    [
        (1280, 1024, 128, (128, 102), (0, 0, 13, 13)),  # portrait
        (1024, 1280, 128, (102, 128), (13, 13, 0, 0)),  # landscape
        (500, 500, 128, (128, 128), (0, 0, 0, 0)),  # square
        (4000, 100, 128, (128, 3), (0, 0, 62, 63)),  # a strip: odd pixel to the right
        (1, 1000, 64, (1, 64), (31, 32, 0, 0)),  # one row still keeps one row
        (40, 30, 128, (128, 96), (0, 0, 16, 16)),  # smaller than the render: enlarged
    ],
)
def test_fit(height, width, size, inner, padding):
    g = fit_geometry(height, width, size)
    assert (g.inner_height, g.inner_width) == inner
    assert g.padding == padding
    top, bottom, left, right = g.padding
    assert top + g.inner_height + bottom == size
    assert left + g.inner_width + right == size
    y0, y1, x0, x1 = g.crop
    assert (y1 - y0, x1 - x0) == inner
    scale = size / max(height, width)  # one scale for both sides: the aspect ratio is kept
    assert abs(g.inner_height - height * scale) <= 0.5 or g.inner_height == 1
    assert abs(g.inner_width - width * scale) <= 0.5 or g.inner_width == 1


def test_shrinks_only_when_larger_than_render():
    assert fit_geometry(200, 100, 128).shrinks
    assert not fit_geometry(128, 100, 128).shrinks


@pytest.mark.parametrize("height, width, size", [(0, 10, 64), (10, 0, 64), (10, 10, 0)])
def test_rejects_empty(height, width, size):
    with pytest.raises(GeometryError):
        fit_geometry(height, width, size)

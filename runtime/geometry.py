"""Where a full-resolution image sits inside the network's square render (DESIGN §2).

The long side is resized to ``render_size`` (aspect ratio kept, so faces are never squashed)
and the short side padded, centred, to a square; the predicted ab is cropped back to the valid
box and upsampled. The CPU and GPU paths share this one computation, so both see the same
render.

Padding replicates the edge rather than reflecting: it works for any aspect ratio (reflection
needs a pad smaller than the image, which a 1x1000 strip breaks) and continues the border's
tone instead of mirroring a face into the margin, where the colors predicted near the edge
would borrow from it. Shrinking averages areas (anti-aliased); enlarging is bilinear.
"""

from __future__ import annotations

from dataclasses import dataclass

from facecolor.errors import FacecolorError


class GeometryError(FacecolorError, ValueError):
    """An image or render size that cannot be placed in a render."""


@dataclass(frozen=True)
class Geometry:
    """One image's placement in pixels: the full ``height`` x ``width`` image resized to
    ``inner_height`` x ``inner_width`` at ``top``, ``left`` inside the ``render_size`` square,
    with edge padding around it."""

    height: int
    width: int
    render_size: int
    inner_height: int
    inner_width: int
    top: int
    left: int

    @property
    def crop(self) -> tuple[int, int, int, int]:
        """The valid (unpadded) box in render space as ``(y0, y1, x0, x1)``, end-exclusive."""
        return self.top, self.top + self.inner_height, self.left, self.left + self.inner_width

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)``: the order of ``cv2.copyMakeBorder``."""
        size = self.render_size
        return self.top, size - self.inner_height - self.top, self.left, size - self.inner_width - self.left

    @property
    def shrinks(self) -> bool:
        """True when the render is smaller than the image (use area averaging to resize)."""
        return max(self.height, self.width) > self.render_size


def fit_geometry(height: int, width: int, render_size: int) -> Geometry:
    """The short side rounds to at least 1 px; the odd pixel of padding goes to the bottom or right."""
    if height < 1 or width < 1:
        raise GeometryError(f"image size {height}x{width} is empty")
    if render_size < 1:
        raise GeometryError(f"render size {render_size} must be positive")
    scale = render_size / max(height, width)
    inner_h = min(render_size, max(1, round(height * scale)))
    inner_w = min(render_size, max(1, round(width * scale)))
    return Geometry(height, width, render_size, inner_h, inner_w,
                    top=(render_size - inner_h) // 2, left=(render_size - inner_w) // 2)

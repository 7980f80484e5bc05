"""Where a full-resolution image sits inside the network's square render (DESIGN §2).

The network sees a square ``render_size`` x ``render_size`` view of the image's L*: the long
side is resized to ``render_size`` (aspect ratio kept, so faces are never squashed) and the
short side is padded, centred, to a square. The predicted ab is then cropped back to the
valid box and upsampled to the full size. The CPU path (``runtime/preprocess.py``) and the
GPU path use this one computation, so both see exactly the same render.

Padding is **edge replication** (OpenCV ``BORDER_REPLICATE``, torch ``mode="replicate"``),
not reflection: it works for any aspect ratio (reflection needs the pad to be smaller than
the image, which a 1x1000 strip breaks), and it continues the border's tone instead of
mirroring a face into the margin, so the colors predicted near the edge of the valid area
do not borrow from a mirrored copy of the subject.

Resizing the long side uses area averaging when shrinking (anti-aliased; OpenCV
``INTER_AREA``, torch ``interpolate(..., mode="bilinear", antialias=True)``) and bilinear when
enlarging images smaller than the render.
"""

from __future__ import annotations

from dataclasses import dataclass

from facecolor.errors import FacecolorError


class GeometryError(FacecolorError, ValueError):
    """An image or render size that cannot be placed in a render."""


@dataclass(frozen=True)
class Geometry:
    """One image's placement in the render; all sizes in pixels.

    ``height`` x ``width`` is the full-resolution image; ``inner_height`` x ``inner_width`` its
    resized copy inside the ``render_size`` square, which has ``top``/``bottom``/``left``/
    ``right`` pixels of edge padding around it.
    """

    height: int
    width: int
    render_size: int
    inner_height: int
    inner_width: int
    top: int
    bottom: int
    left: int
    right: int

    @property
    def crop(self) -> tuple[int, int, int, int]:
        """The valid (unpadded) box in render space as ``(y0, y1, x0, x1)``, end-exclusive."""
        return self.top, self.top + self.inner_height, self.left, self.left + self.inner_width

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)``: the order of ``cv2.copyMakeBorder``."""
        return self.top, self.bottom, self.left, self.right

    @property
    def shrinks(self) -> bool:
        """True when the render is smaller than the image (use area averaging to resize)."""
        return max(self.height, self.width) > self.render_size


def fit_geometry(height: int, width: int, render_size: int) -> Geometry:
    """Place a ``height`` x ``width`` image in a ``render_size`` square: scale the long side to
    ``render_size``, keep the aspect ratio (the short side rounds to at least 1 px) and split
    the padding evenly, the odd pixel going to the bottom or right.
    """
    if height < 1 or width < 1:
        raise GeometryError(f"image size {height}x{width} is empty")
    if render_size < 1:
        raise GeometryError(f"render size {render_size} must be positive")
    scale = render_size / max(height, width)
    inner_h = min(render_size, max(1, round(height * scale)))
    inner_w = min(render_size, max(1, round(width * scale)))
    top = (render_size - inner_h) // 2
    left = (render_size - inner_w) // 2
    return Geometry(
        height=height,
        width=width,
        render_size=render_size,
        inner_height=inner_h,
        inner_width=inner_w,
        top=top,
        bottom=render_size - inner_h - top,
        left=left,
        right=render_size - inner_w - left,
    )

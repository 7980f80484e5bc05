"""Decode one image file's bytes on the CPU into upright 8- or 16-bit pixels.

- **Pillow parses every header first** (no pixels yet): the true size for the pixel limit,
  the mode and the EXIF orientation, uniformly for every format.
- **OpenCV decodes the pixels** of gray, RGB and RGBA images, 8 or 16 bit: it is faster,
  releases the GIL (so decode threads run in parallel) and keeps 16-bit RGB, which Pillow
  truncates to 8 bit. ``IMREAD_UNCHANGED`` keeps it from rotating; the orientation is applied
  here, once, as a numpy view.
- **Pillow decodes palette, CMYK (Adobe's inverted CMYK JPEGs too), 1-bit, LA and other modes.**

Content decides the format (magic bytes), never the extension.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from facecolor.errors import FacecolorError
from facecolor.runtime.walk import sniff_format

DEFAULT_MAX_PIXELS = 100_000_000

# The pixel limit is ours (--max-pixels, checked before any pixel is decoded); Pillow's own
# bomb check would otherwise refuse images between its limit and ours.
Image.MAX_IMAGE_PIXELS = None
# Pillow warns about what it skips yet decodes (a corrupt EXIF tag, palette transparency): one filter on
# its modules, as ``catch_warnings`` around each call would swap the process-wide filters under the decode threads.
warnings.filterwarnings("ignore", module=r"PIL\.")

#: Pillow modes decoded by Pillow, and what they become.
_PIL_CONVERSIONS = {
    "P": "RGB", "PA": "RGB", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB",
    "RGBX": "RGB", "RGBa": "RGB", "1": "L", "LA": "L", "La": "L",
}
_EXIF_ORIENTATION = 0x0112


class DecodeError(FacecolorError, ValueError):
    """This file cannot be decoded; the message is the reason shown in the report."""


class TooManyPixels(DecodeError):
    """The image is larger than the pixel limit (a likely decompression bomb)."""


@dataclass(frozen=True)
class Decoded:
    """An upright image. ``pixels``: uint8 or uint16 HxW (gray) or HxWx3 **RGB**, host memory,
    alpha dropped; possibly a non-contiguous view (make it contiguous before torch takes it)."""

    pixels: np.ndarray
    format: str  # 'jpeg', 'png', 'tiff', 'bmp', 'webp': what the content is
    orientation: int  # EXIF orientation that was applied (1 = none)

    @property
    def bit_depth(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8


#: EXIF orientation -> (swap rows and columns first?, then flip these axes: 0 rows, 1 columns);
#: the GPU path's ``gpu.nvjpeg.orient`` reads it too.
UPRIGHT = {2: (False, (1,)), 3: (False, (0, 1)), 4: (False, (0,)), 5: (True, ()), 6: (True, (1,)), 7: (True, (0, 1)),
           8: (True, (0,))}


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip HxW[xC] pixels so that EXIF ``orientation`` (1-8) becomes 1; views only."""
    swap, flips = UPRIGHT.get(orientation, (False, ()))
    return np.flip(pixels.swapaxes(0, 1) if swap else pixels, flips)


def jpeg_is_truncated(data: bytes | bytearray) -> bool:
    """True when no end-of-image marker follows the last start-of-scan.

    libjpeg (inside OpenCV) fills a truncated JPEG with gray and only warns, and nvJPEG returns
    gray rows: this catches it for both paths. Entropy-coded data cannot contain 0xFFD9, and an
    EXIF thumbnail's markers come before the main image's scans, so this holds for baseline and
    progressive files alike. Only trailing bytes after the end marker that happen to contain
    0xFFDA would be misread as truncation. Only the bytes after the last EOI are searched for an
    SOS, not the whole scan backwards (0.4 ms of held GIL for a 200 KB file).
    """
    end = data.rfind(b"\xff\xd9")
    return data.find(b"\xff\xda", max(end, 0)) >= 0


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Decoded:
    if not data:
        raise DecodeError("empty file (0 bytes)")
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise DecodeError("not an image: the content is not JPEG, PNG, TIFF, BMP or WebP")
    try:
        header = Image.open(io.BytesIO(data))
        width, height = header.size
        frames = _frame_count(header, fmt)
    except Exception as error:  # Pillow raises many types for broken headers
        raise DecodeError(f"unreadable {fmt.upper()} header: {error}") from error
    if frames > 1:
        # Writing back only the first frame would silently drop the rest from the output tree.
        raise DecodeError(
            f"{frames} frames (animated or multi-page {fmt.upper()}); facecolor colorizes single "
            f"images: split it into one file per frame or page first"
        )
    if width * height > max_pixels:
        raise TooManyPixels(
            f"{width}x{height} = {width * height / 1e6:.1f} MP exceeds the limit of "
            f"{max_pixels / 1e6:g} MP (raise it with --max-pixels if the file is trusted)"
        )
    orientation = _exif_orientation(header)
    if fmt == "jpeg" and jpeg_is_truncated(data):
        raise DecodeError("truncated JPEG (no end-of-image marker after the last scan)")
    pixels = _decode_pixels(header, data, fmt)
    if pixels.shape[:2] != (height, width):
        raise DecodeError(f"decoded size {pixels.shape[1]}x{pixels.shape[0]} differs from the header's {width}x{height}")
    return Decoded(apply_orientation(pixels, orientation), fmt, orientation)


#: TIFF NewSubfileType and its "reduced-resolution version of another image" bit.
_NEW_SUBFILE_TYPE, _REDUCED_RESOLUTION = 254, 0x1


def _frame_count(header: Image.Image, fmt: str) -> int:
    """Pages or animation frames that would be lost by colorizing the first one alone.

    Not counted: JPEG's extra images (MPO, from many cameras: a preview or a stereo pair's
    second view; the primary image is the photograph) and TIFF pages flagged as reduced-
    resolution copies (the thumbnails some scanners write after the scan). Headers only.
    """
    if fmt == "jpeg":
        return 1
    frames = getattr(header, "n_frames", 1)
    if fmt != "tiff" or frames <= 1:
        return frames
    pages = 0
    for index in range(frames):
        header.seek(index)
        pages += not header.tag_v2.get(_NEW_SUBFILE_TYPE, 0) & _REDUCED_RESOLUTION
    header.seek(0)
    return pages


def _exif_orientation(header: Image.Image) -> int:
    """EXIF orientation 1-8 from the header alone (1 when absent or invalid).

    For PNG only an ``eXIf`` chunk before the pixels counts: Pillow's ``getexif`` would decode
    the whole image to look for one after them.
    """
    try:
        if header.format == "PNG":
            exif = Image.Exif()
            exif.load(header.info.get("exif") or b"")
        else:
            exif = header.getexif()
        value = int(exif.get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # a broken EXIF block does not make the picture unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _decode_pixels(header: Image.Image, data: bytes, fmt: str) -> np.ndarray:
    """Pillow for the modes it converts (``_PIL_CONVERSIONS``), OpenCV for the others."""
    if header.mode in _PIL_CONVERSIONS:
        try:
            return np.asarray(header.convert(_PIL_CONVERSIONS[header.mode]))
        except Exception as error:
            raise DecodeError(f"broken {fmt.upper()} data: {error}") from error
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as error:
        raise DecodeError(f"broken {fmt.upper()} data: {error.msg.strip() if hasattr(error, 'msg') else error}") from error
    if pixels is None:
        raise DecodeError(f"broken or truncated {fmt.upper()} data (OpenCV could not decode it)")
    if pixels.dtype not in (np.uint8, np.uint16):
        raise DecodeError(f"unsupported pixel type {pixels.dtype} (Pillow mode {header.mode}); use 8 or 16 bit")
    if pixels.ndim == 3:
        channels = pixels.shape[2]
        if channels == 1:
            return pixels[:, :, 0]
        if channels not in (3, 4):
            raise DecodeError(f"unsupported channel count {channels}")
        return pixels[:, :, 2::-1]  # BGR(A) -> RGB, alpha dropped: a view
    return pixels

"""Encode colorized pixels and stamp a note in their metadata.

OpenCV encodes (fast, releases the GIL, writes 16-bit PNG and TIFF); the note ``colorized by
facecolor VERSION, model PRESET (sha256:...)`` is then spliced into the bytes: a PNG ``tEXt``
chunk, a JPEG ``COM`` segment, a TIFF ``ImageDescription`` tag. WebP is encoded by Pillow,
which writes the note as the EXIF ImageDescription (OpenCV writes no WebP metadata). BMP has
no metadata block, so BMP outputs carry no note. The pipelines write the bytes with
``facecolor.files.write_atomically`` under a fixed temporary name per target, so a restarted
run reuses and removes what a killed one left.
"""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
from PIL import Image

import facecolor
from facecolor.errors import FacecolorError

SIXTEEN_BIT_FORMATS = ("png", "tiff")
_IMAGE_DESCRIPTION = 270  # the EXIF/TIFF tag that holds the note in TIFF and WebP outputs


class EncodeError(FacecolorError, ValueError):
    """The pixels cannot be written in the requested format."""


def metadata_note(model_label: str) -> str:
    """The text every output carries, e.g. ``colorized by facecolor 0.1.0, model gpsagd (sha256:...)``."""
    return f"colorized by facecolor {facecolor.__version__}, model {model_label}"


def output_dtype(bit_depth: int, fmt: str) -> type:
    """16-bit inputs stay 16-bit where the output format can hold it (PNG, TIFF)."""
    return np.uint16 if bit_depth == 16 and fmt in SIXTEEN_BIT_FORMATS else np.uint8


def encode(rgb: np.ndarray, fmt: str, *, quality: int = 95, note: str | None = None) -> bytes:
    """uint8/uint16 HxWx3 RGB (host memory) -> the bytes of a ``fmt`` file carrying ``note``."""
    if fmt not in _ENCODERS:
        raise EncodeError(f"cannot write format {fmt!r}; use one of {sorted(_ENCODERS)}")
    if rgb.dtype == np.uint16 and fmt not in SIXTEEN_BIT_FORMATS:
        raise EncodeError(f"{fmt} holds 8 bits per channel, not 16")
    if fmt == "webp":
        buffer, exif = io.BytesIO(), Image.Exif()
        if note:
            exif[_IMAGE_DESCRIPTION] = note
        Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="WEBP", quality=int(quality), exif=exif.tobytes())
        return buffer.getvalue()
    extension, quality_flag, stamp = _ENCODERS[fmt]
    params = [quality_flag, int(quality)] if quality_flag is not None else []
    ok, buffer = cv2.imencode(extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise EncodeError(f"OpenCV could not encode a {rgb.shape[1]}x{rgb.shape[0]} {fmt}")
    return stamp(buffer.tobytes(), note) if note and stamp else buffer.tobytes()


def _latin1(text: str) -> bytes:
    return text.encode("latin-1", "replace")


def png_with_text(data: bytes, text: str, keyword: str = "Comment") -> bytes:
    """A PNG with a ``tEXt`` chunk inserted right after its IHDR chunk."""
    ihdr_end = 8 + 8 + struct.unpack(">I", data[8:12])[0] + 4
    body = b"tEXt" + _latin1(keyword) + b"\x00" + _latin1(text)
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return data[:ihdr_end] + chunk + data[ihdr_end:]


def jpeg_with_comment(data: bytes, text: str) -> bytes:
    """A JPEG with a ``COM`` segment after SOI and the JFIF ``APP0`` segment (which must lead)."""
    position = 2
    if data[2:4] == b"\xff\xe0":
        position = 4 + struct.unpack(">H", data[4:6])[0]
    payload = _latin1(text)[:65533]
    return data[:position] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + data[position:]


def tiff_with_description(data: bytes, text: str) -> bytes:
    """A classic TIFF whose first IFD gains (or replaces) ImageDescription (tag 270).

    The IFD is rewritten at the end of the file with the new entry in tag order and the
    header pointed at it; every other offset stays valid because no byte before moves.
    """
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or struct.unpack(order + "H", data[2:4])[0] != 42:
        raise EncodeError("not a classic TIFF: cannot add its description")
    ifd = struct.unpack(order + "I", data[4:8])[0]
    (count,) = struct.unpack(order + "H", data[ifd:ifd + 2])
    entries = [data[ifd + 2 + 12 * i: ifd + 14 + 12 * i] for i in range(count)]
    next_ifd = data[ifd + 2 + 12 * count: ifd + 6 + 12 * count]
    text_bytes = _latin1(text) + b"\x00"
    out = bytearray(data) + b"\x00" * (len(data) % 2)  # TIFF values start on a word boundary
    text_offset = len(out)
    out += text_bytes + b"\x00" * (len(text_bytes) % 2)
    entry = struct.pack(order + "HHII", 270, 2, len(text_bytes), text_offset)
    entries = [e for e in entries if struct.unpack(order + "H", e[:2])[0] != 270] + [entry]
    entries.sort(key=lambda e: struct.unpack(order + "H", e[:2])[0])
    new_ifd = len(out)
    out += struct.pack(order + "H", len(entries)) + b"".join(entries) + next_ifd
    out[4:8] = struct.pack(order + "I", new_ifd)
    return bytes(out)


#: format -> (OpenCV extension, quality flag or None, what stamps the note into the bytes or None)
_ENCODERS = {
    "jpeg": (".jpg", cv2.IMWRITE_JPEG_QUALITY, jpeg_with_comment),
    "png": (".png", None, png_with_text),
    "tiff": (".tif", None, tiff_with_description),
    "bmp": (".bmp", None, None),
    "webp": None,  # Pillow's, in encode: OpenCV writes no WebP metadata
}

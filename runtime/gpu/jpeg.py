"""JPEG bytes, no pixel decoded: whether nvJPEG gets a file (``triage``), its EXIF orientation
(which nvJPEG ignores) and its size (for the pixel limit), all from the markers in front of the
entropy-coded data. Pure Python, tested on the CPU.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from facecolor.errors import FacecolorError
from facecolor.runtime.decode import jpeg_is_truncated

#: Markers that stand alone (no length field): TEM, RST0-7, SOI, EOI.
_STANDALONE = {0x01, *range(0xD0, 0xD8), 0xD8, 0xD9}
_SOS = 0xDA
_APP1, _APP14 = 0xE1, 0xEE
_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112


class JpegHeaderError(FacecolorError, ValueError):
    """Bytes that are not a JPEG, or whose header is cut short or inconsistent."""


@dataclass(frozen=True)
class JpegInfo:
    """What the markers in front of the first scan say about a JPEG file."""

    frame: str  # 'baseline', 'progressive', ... (see _frame_kind)
    precision: int  # bits per sample: 8 for nearly every file, 12 or 16 for medical/lossless
    height: int  # as stored, before EXIF orientation; 0 means "given later by a DNL marker"
    width: int
    components: int  # 1 gray, 3 YCbCr/RGB, 4 CMYK/YCCK
    component_ids: tuple[int, ...]
    orientation: int  # EXIF orientation 1..8; 1 when absent or unreadable
    adobe_transform: int | None  # APP14 "Adobe": 0 RGB/CMYK as stored, 1 YCbCr, 2 YCCK; None: no segment


def _frame_kind(marker: int) -> str | None:
    """What a start-of-frame marker says of the scan's coding (ITU-T T.81 table B.1: SOF markers
    are C0-CF but for DHT C4, JPG C8 and DAC CC; bit 3 is arithmetic coding, bit 2 differential,
    bits 0-1 the process), or None for other markers."""
    if not 0xC0 <= marker <= 0xCF or marker in (0xC4, 0xC8, 0xCC):
        return None
    process = ("baseline", "sequential" if marker & 4 else "extended", "progressive", "lossless")[marker & 3]
    return ("arithmetic-" if marker & 8 else "") + ("differential-" if marker & 4 else "") + process


def _segments(data: bytes):
    """``(marker, payload_start, payload_end)`` of each segment up to and including SOS."""
    if not data.startswith(b"\xff\xd8"):
        raise JpegHeaderError("not a JPEG: the file does not start with the SOI marker FFD8")
    pos, size = 2, len(data)
    while True:
        if pos >= size:
            raise JpegHeaderError("the JPEG header ends before the first scan")
        if data[pos] != 0xFF:
            raise JpegHeaderError(f"expected a marker at byte {pos}, found 0x{data[pos]:02X}")
        while pos < size and data[pos] == 0xFF:  # fill bytes may precede any marker
            pos += 1
        if pos >= size:
            raise JpegHeaderError("the JPEG header ends in fill bytes")
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            if marker == 0xD9:
                raise JpegHeaderError("the JPEG ends (EOI) before any scan")
            continue
        if pos + 2 > size:
            raise JpegHeaderError(f"segment 0x{marker:02X} has no length field")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > size:
            raise JpegHeaderError(f"segment 0x{marker:02X} of length {length} runs past the file end")
        yield marker, pos + 2, pos + length
        if marker == _SOS:
            return
        pos += length


def exif_orientation(tiff: bytes) -> int:
    """The Orientation tag (1..8) of IFD0 in a TIFF-structured EXIF block, 1 when absent.

    ``tiff`` starts at the TIFF header (``II*\\0`` or ``MM\\0*``), i.e. after ``Exif\\0\\0``.
    Any inconsistency (bad byte order, offsets outside the block, a value out of 1..8) reads as
    1, "as stored": a broken EXIF block must never fail a file that decodes fine.
    """
    endian = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if len(tiff) < 8 or endian is None or struct.unpack_from(endian + "H", tiff, 2)[0] != 42:
        return 1
    (ifd,) = struct.unpack_from(endian + "I", tiff, 4)
    if ifd + 2 > len(tiff):
        return 1
    (count,) = struct.unpack_from(endian + "H", tiff, ifd)
    for index in range(count):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(tiff):
            return 1
        tag, kind, n = struct.unpack_from(endian + "HHI", tiff, entry)
        if tag != _ORIENTATION_TAG:
            continue
        if kind not in (3, 4) or n < 1:
            return 1
        # SHORT, stored left-justified in the value field, or LONG (seen in a few broken writers)
        (value,) = struct.unpack_from(endian + ("H" if kind == 3 else "I"), tiff, entry + 8)
        return int(value) if 1 <= value <= 8 else 1
    return 1


def read_jpeg_info(data: bytes) -> JpegInfo:
    """The markers of ``data`` up to the first scan; JpegHeaderError when they do not hold a frame."""
    frame = None
    orientation = 1
    adobe = None
    for marker, start, end in _segments(data):
        if frame is None and (kind := _frame_kind(marker)):
            if end - start < 6:
                raise JpegHeaderError("the frame header (SOF) is too short")
            precision, height, width, ncomp = struct.unpack_from(">BHHB", data, start)
            if ncomp < 1 or end - start < 6 + 3 * ncomp:
                raise JpegHeaderError(f"the frame header lists {ncomp} components it does not hold")
            ids = tuple(data[start + 6 + 3 * i] for i in range(ncomp))
            frame = (kind, precision, height, width, ncomp, ids)
        elif marker == _APP1 and orientation == 1 and data[start:start + 6] == _EXIF_HEADER:
            orientation = exif_orientation(data[start + 6:end])
        elif marker == _APP14 and data[start:start + 5] == b"Adobe" and end - start >= 12:
            adobe = data[start + 11]
    if frame is None:
        raise JpegHeaderError("the JPEG has no frame header (SOF) before its first scan")
    return JpegInfo(*frame, orientation, adobe)


@dataclass(frozen=True)
class Triage:
    """Where a file goes: nvJPEG (``reason`` None) or the CPU decoder (``reason`` says why)."""

    data: bytes | bytearray
    info: JpegInfo | None
    reason: str | None

    @property
    def on_gpu(self) -> bool:
        return self.reason is None


def triage(data: bytes | bytearray, max_pixels: int | None = None) -> Triage:
    """Whether nvJPEG decodes ``data``, from its header alone.

    Progressive files would take nvJPEG's slow one-at-a-time path, which holds torchvision's
    global decoder lock: CPU threads decode them without stalling the GPU batches, as they do
    what nvJPEG cannot (lossless, arithmetic, 12-bit) and the colour spaces libjpeg handles as
    the CPU path does (CMYK, YCCK, RGB-coded). Truncated files (nvJPEG returns gray rows) and
    files over ``max_pixels`` go there too, to fail with the CPU decoder's reason.
    """
    try:
        info = read_jpeg_info(data)
    except JpegHeaderError as error:
        return Triage(data, None, f"not decodable by nvJPEG: {error}")
    if info.frame not in ("baseline", "extended"):
        reason = f"{info.frame} JPEG"
    elif info.precision != 8:
        reason = f"{info.precision}-bit JPEG"
    elif info.components not in (1, 3):
        reason = f"{info.components}-component JPEG (CMYK/YCCK)"
    elif info.components == 3 and info.adobe_transform == 0:
        reason = "RGB-coded JPEG (Adobe transform 0)"
    elif info.components == 3 and info.component_ids == (ord("R"), ord("G"), ord("B")):
        reason = "RGB-coded JPEG (component ids R, G, B)"
    elif info.height == 0 or info.width == 0:
        reason = "JPEG with its height in a DNL marker"
    elif max_pixels is not None and info.height * info.width > max_pixels:
        reason = f"{info.width}x{info.height} is over the pixel limit"
    elif jpeg_is_truncated(data):
        reason = "truncated JPEG"
    else:
        reason = None
    return Triage(data, info, reason)


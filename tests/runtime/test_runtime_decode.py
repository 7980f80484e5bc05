"""decode_image: formats by content, every pixel mode, EXIF orientation, and every way a file
can be broken, each with a clear reason."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps
from runtime_helpers import bomb_png, encode_cv2, encode_frames, encode_pil, exif_jpeg, portrait

from facecolor.runtime.decode import DecodeError, TooManyPixels, apply_orientation, decode_image

GRAY = portrait(48, 36)


@pytest.mark.parametrize("extension, fmt", [(".png", "png"), (".tif", "tiff"), (".bmp", "bmp"), (".webp", "webp")])
def test_lossless_formats_round_trip(extension, fmt):
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if fmt == "webp" else []
    ok, data = cv2.imencode(extension, GRAY, params)
    decoded = decode_image(data.tobytes())
    assert decoded.format == fmt
    pixels = decoded.pixels if decoded.pixels.ndim == 2 else decoded.pixels[:, :, 0]
    np.testing.assert_array_equal(pixels, GRAY)


def test_jpeg_gray_stays_one_channel():
    decoded = decode_image(encode_cv2(GRAY, ".jpg"))
    assert (decoded.format, decoded.pixels.shape, decoded.bit_depth) == ("jpeg", GRAY.shape, 8)


def test_color_is_rgb_order():
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200  # red
    decoded = decode_image(encode_pil(rgb, "PNG"))
    np.testing.assert_array_equal(decoded.pixels, rgb)


@pytest.mark.parametrize("extension", [".png", ".tif"])
def test_sixteen_bit_is_kept(extension):
    gray16 = portrait(40, 30, np.uint16)
    rgb16 = np.dstack([gray16, gray16 // 2, gray16 // 3])
    decoded = decode_image(encode_cv2(gray16, extension))
    assert decoded.bit_depth == 16
    np.testing.assert_array_equal(decoded.pixels, gray16)
    decoded = decode_image(encode_cv2(rgb16[:, :, ::-1], extension))  # cv2 writes BGR
    assert decoded.bit_depth == 16
    np.testing.assert_array_equal(decoded.pixels, rgb16)


def test_rgba_drops_alpha():
    bgra = np.dstack([GRAY, GRAY, GRAY, np.zeros_like(GRAY)])
    decoded = decode_image(encode_cv2(bgra, ".png"))
    assert decoded.pixels.shape == GRAY.shape + (3,)
    np.testing.assert_array_equal(decoded.pixels[:, :, 1], GRAY)


@pytest.mark.parametrize("mode", ["P", "1", "LA", "CMYK"])
def test_pillow_modes(mode):
    image = Image.fromarray(GRAY).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    decoded = decode_image(encode_pil(image, fmt))
    expected = np.asarray(Image.open(io.BytesIO(encode_pil(image, fmt))).convert("RGB" if mode in ("P", "CMYK") else "L"))
    np.testing.assert_array_equal(decoded.pixels, expected)
    if mode == "CMYK":  # a gray picture stays gray through CMYK (within JPEG error)
        assert np.abs(decoded.pixels[..., 0].astype(int) - GRAY).mean() < 3


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(orientation):
    pixels = portrait(30, 50, seed=orientation)
    data = exif_jpeg(pixels, orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    decoded = decode_image(data)
    assert decoded.orientation == orientation
    np.testing.assert_array_equal(decoded.pixels, expected)


def test_apply_orientation_is_a_view():
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for orientation in range(1, 9):
        assert np.shares_memory(apply_orientation(pixels, orientation), pixels)


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty file"),
        (b"hello, I am text" * 4, "not an image"),
        (encode_cv2(portrait(200, 150), ".jpg")[:1500], "truncated"),
        (encode_cv2(portrait(200, 150), ".png")[:600], "broken"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, "header"),
        (b"GIF89a" + b"\x00" * 30, "not an image"),
    ],
    ids=["zero", "text", "truncated-jpeg", "truncated-png", "bad-png-header", "gif"],
)
def test_broken_files_raise_with_reason(data, words):
    with pytest.raises(DecodeError, match=words):
        decode_image(data)


def test_pixel_limit_refuses_bombs_before_decoding():
    with pytest.raises(TooManyPixels, match=r"60000x60000 = 3600.0 MP exceeds the limit of 100 MP.*--max-pixels"):
        decode_image(bomb_png())
    data = encode_cv2(portrait(100, 100), ".png")
    with pytest.raises(TooManyPixels):
        decode_image(data, max_pixels=9_999)
    assert decode_image(data, max_pixels=10_000).pixels.shape == (100, 100)


def test_jpeg_with_exif_thumbnail_is_not_truncated():
    # the thumbnail's own end marker comes first; the main image's must still be found
    image = Image.fromarray(portrait(200, 150))
    exif = Image.Exif()
    exif[0x0112] = 1
    data = encode_pil(image, "JPEG", exif=exif)
    assert decode_image(data).pixels.shape == (200, 150)
    assert decode_image(data + b"trailing bytes after EOI").pixels.shape == (200, 150)


@pytest.mark.parametrize("fmt", ["TIFF", "WEBP", "PNG"])
def test_multi_frame_files_are_refused_not_cut_to_their_first_frame(fmt):
    """Writing back frame 1 alone would drop pages from the output tree without a word."""
    with pytest.raises(DecodeError, match=f"2 frames \\(animated or multi-page {fmt}\\)"):
        decode_image(encode_frames(portrait(40, 30), fmt))
    single = decode_image(encode_pil(Image.fromarray(portrait(40, 30)), fmt))
    assert single.pixels.shape[:2] == (40, 30)  # WebP stores gray as RGB


def test_a_camera_jpeg_with_a_preview_frame_is_its_primary_image():
    """MPO: a JPEG with an appended preview (Pillow counts 2 frames); the photo is frame 1."""
    primary = np.dstack([portrait(40, 30)] * 3)
    data = encode_pil(Image.fromarray(primary), "MPO", save_all=True,
                      append_images=[Image.fromarray(255 - primary)])
    assert Image.open(io.BytesIO(data)).n_frames == 2
    decoded = decode_image(data)
    assert decoded.format == "jpeg" and decoded.pixels.shape[:2] == (40, 30)
    assert np.abs(decoded.pixels.astype(int) - primary).mean() < 3  # the primary, not the negative


def test_a_scan_with_a_thumbnail_page_is_one_image():
    """Scanner TIFFs often add a reduced-resolution thumbnail as page 2 (NewSubfileType bit 0)."""
    scan = portrait(64, 48)
    thumbnail = Image.fromarray(scan).resize((12, 16))
    data = encode_pil(Image.fromarray(scan), "TIFF", save_all=True, append_images=[thumbnail],
                      tiffinfo={254: 0})
    # Pillow writes the same tags for every page, so flag page 2 in the file itself.
    image = Image.open(io.BytesIO(data))
    assert image.n_frames == 2
    flagged = _flag_second_page_reduced(data)
    decoded = decode_image(flagged)
    assert decoded.pixels.shape == (64, 48) and np.array_equal(decoded.pixels, scan)


def _flag_second_page_reduced(data: bytes) -> bytes:
    """Set NewSubfileType = 1 on the second IFD of a little-endian TIFF (tag already present)."""
    import struct

    buffer = bytearray(data)
    first = struct.unpack_from("<I", buffer, 4)[0]
    count = struct.unpack_from("<H", buffer, first)[0]
    second = struct.unpack_from("<I", buffer, first + 2 + 12 * count)[0]
    entries = struct.unpack_from("<H", buffer, second)[0]
    for i in range(entries):
        entry = second + 2 + 12 * i
        tag, kind = struct.unpack_from("<HH", buffer, entry)
        if tag == 254:
            struct.pack_into("<I" if kind == 4 else "<H", buffer, entry + 8, 1)
            return bytes(buffer)
    raise AssertionError("the second page has no NewSubfileType tag")


def test_pillow_warnings_stay_off_stderr(tmp_path):
    """Pillow warns about a palette's byte transparency and a corrupt EXIF tag, then decodes;
    decode.py's import-time filter keeps that off stderr. Checked in a fresh process: pytest
    resets the warning filters around collection and each test."""
    palette = encode_pil(Image.fromarray(GRAY).convert("P"), "PNG", transparency=bytes(range(256)))
    exif = Image.Exif()
    exif[0x010E] = "x" * 40  # ImageDescription, then its length (41) claimed as 4095
    jpeg = encode_pil(Image.fromarray(GRAY), "JPEG", exif=exif)
    corrupt = jpeg.replace(b"\x01\x0e\x00\x02\x00\x00\x00\x29", b"\x01\x0e\x00\x02\x00\x00\x0f\xff")
    assert corrupt != jpeg
    paths = []
    for name, data in [("palette.png", palette), ("corrupt.jpg", corrupt)]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            decode_image(data)
        assert caught, name  # Pillow does warn about it
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    script = ("import sys, pathlib; from facecolor.runtime.decode import decode_image\n"
              "for path in sys.argv[1:]: decode_image(pathlib.Path(path).read_bytes())")
    result = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True, text=True, check=True)
    assert result.stderr == ""

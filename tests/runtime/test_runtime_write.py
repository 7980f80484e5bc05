"""Encoding with the metadata note, 16-bit outputs, and writes that are never half-done."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image
from runtime_helpers import portrait

from facecolor.files import temp_path, write_atomically
from facecolor.runtime.decode import decode_image
from facecolor.runtime.write import (
    EncodeError,
    encode,
    metadata_note,
    output_dtype,
)

NOTE = metadata_note("gpsagd (sha256:0123456789ab)")
RGB8 = np.dstack([portrait(40, 30), portrait(40, 30, seed=1), portrait(40, 30, seed=2)])
RGB16 = RGB8.astype(np.uint16) * 257


def test_note_names_version_and_model():
    import facecolor

    assert NOTE == f"colorized by facecolor {facecolor.__version__}, model gpsagd (sha256:0123456789ab)"


def test_png_text_chunk():
    image = Image.open(io.BytesIO(encode(RGB8, "png", note=NOTE)))
    assert image.text["Comment"] == NOTE
    np.testing.assert_array_equal(np.asarray(image), RGB8)


def test_jpeg_comment():
    data = encode(RGB8, "jpeg", quality=90, note=NOTE)
    image = Image.open(io.BytesIO(data))
    assert image.info["comment"] == NOTE.encode()
    assert image.info.get("jfif") is not None  # the JFIF segment still leads
    assert np.abs(np.asarray(image).astype(int) - RGB8).mean() < 4


@pytest.mark.parametrize("pixels", [RGB8, RGB16], ids=["8bit", "16bit"])
def test_tiff_description(pixels):
    data = encode(pixels, "tiff", note=NOTE)
    assert Image.open(io.BytesIO(data)).tag_v2[270] == NOTE
    np.testing.assert_array_equal(decode_image(data).pixels, pixels)  # the rewritten IFD still reads


def test_sixteen_bit_png_round_trip():
    data = encode(RGB16, "png", note=NOTE)
    decoded = decode_image(data)
    assert decoded.bit_depth == 16
    np.testing.assert_array_equal(decoded.pixels, RGB16)


def test_webp_carries_the_note_in_exif():
    data = encode(RGB8, "webp", quality=90, note=NOTE)
    assert Image.open(io.BytesIO(data)).getexif()[270] == NOTE
    decoded = decode_image(data)
    assert decoded.format == "webp" and decoded.pixels.shape == RGB8.shape
    assert np.abs(decoded.pixels.astype(int) - RGB8).mean() < 8  # lossy, but the same picture


def test_bmp_has_no_place_for_the_note():
    decoded = decode_image(encode(RGB8, "bmp", note=NOTE))
    assert decoded.format == "bmp" and decoded.pixels.shape == RGB8.shape


def test_output_dtype():
    assert output_dtype(16, "png") is np.uint16 and output_dtype(16, "tiff") is np.uint16
    assert output_dtype(16, "jpeg") is np.uint8 and output_dtype(8, "png") is np.uint8
    with pytest.raises(EncodeError):
        encode(RGB16, "jpeg")
    with pytest.raises(EncodeError):
        encode(RGB8, "gif")


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "deep" / "dir" / "out.jpg"
    write_atomically(target, b"first", fixed_temp=True)
    write_atomically(target, b"second", fixed_temp=True)
    assert target.read_bytes() == b"second"
    assert sorted(os.listdir(target.parent)) == ["out.jpg"]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "out.jpg"

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_atomically(target, b"data", fixed_temp=True)
    assert os.listdir(tmp_path) == []


def test_leftover_temp_from_a_killed_run_is_reused(tmp_path):
    target = tmp_path / "out.jpg"
    temp_path(target).write_bytes(b"half of a fi")  # what a SIGKILL leaves behind
    write_atomically(target, b"whole file", fixed_temp=True)
    assert os.listdir(tmp_path) == ["out.jpg"]


def test_long_names_get_a_short_temp(tmp_path):
    target = tmp_path / ("x" * 250 + ".jpg")
    assert len(temp_path(target).name) < 100
    write_atomically(target, b"ok", fixed_temp=True)
    assert target.read_bytes() == b"ok"

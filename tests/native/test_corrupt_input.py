"""Garbage, unsupported formats, truncated and damaged files, invalid options.

Contract: every damaged input raises a TranscodeError subclass in-process (a crash would
take pytest down with it); a truncated JPEG raises CorruptImageError, never a picture
with a grey bottom; an invalid option raises ValueError.
"""

from __future__ import annotations

import random
import struct
import zlib

import containers as C
import images as I
import pytest

import appliance
from appliance.errors import (
    CorruptImageError,
    ImageTooLargeError,
    TranscodeError,
    UnsupportedImageError,
)


def assert_error_shape(err: TranscodeError, status: int) -> None:
    assert err.status == status
    assert isinstance(err.public_message, str) and err.public_message
    assert "\n" not in err.public_message


def test_error_kinds_are_transcode_errors_with_http_status():
    for kind, status in (
        (UnsupportedImageError, 415),
        (CorruptImageError, 422),
        (ImageTooLargeError, 413),
    ):
        assert issubclass(kind, TranscodeError)
        assert kind.status == status


def test_random_garbage_is_unsupported():
    rng = random.Random(7)
    data = b"\x00" + bytes(rng.getrandbits(8) for _ in range(4095))
    with pytest.raises(UnsupportedImageError) as e:
        appliance.transcode(data)
    assert_error_shape(e.value, 415)


@pytest.mark.parametrize(
    "data",
    [b"hello, world", b"\x00", b"<svg xmlns='http://www.w3.org/2000/svg'/>"],
    ids=["text", "one-byte", "svg"],
)
def test_non_image_bytes_are_unsupported(data):
    with pytest.raises(UnsupportedImageError):
        appliance.transcode(data)


def test_empty_buffer_raises_a_transcode_error():
    """Not specified beyond "raises": 415 (no known signature) or 422 (nothing to read)."""
    with pytest.raises(TranscodeError) as e:
        appliance.transcode(b"")
    assert e.value.status in (415, 422)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "PPM", "ICO", "AVIF"])
def test_formats_we_do_not_decode_are_unsupported(fmt, base_photo):
    data = I.encode(base_photo.resize((64, 40)), fmt)
    with pytest.raises(UnsupportedImageError) as e:
        appliance.transcode(data)
    assert_error_shape(e.value, 415)


TRUNCATION_SOURCES = {
    "corpus-baseline-422": lambda fx: fx["corpus"]("o_cups_4mp.jpg"),
    "corpus-progressive-420": lambda fx: fx["corpus"]("o_picos.jpg"),
    "420-baseline": lambda fx: fx["layouts"]["420", "baseline"],
    "420-progressive": lambda fx: fx["layouts"]["420", "progressive"],
    "422-restart": lambda fx: fx["layouts"]["422", "restart"],
    "gray-baseline": lambda fx: fx["layouts"]["gray", "baseline"],
    "444-progressive": lambda fx: fx["layouts"]["444", "progressive"],
}


@pytest.fixture(scope="module")
def sources(corpus_bytes, layout_jpegs):
    return {"corpus": corpus_bytes, "layouts": layout_jpegs}


@pytest.mark.parametrize("fraction", [0.10, 0.50, 0.99], ids=["cut10%", "cut50%", "cut99%"])
@pytest.mark.parametrize("source", list(TRUNCATION_SOURCES))
def test_truncated_jpeg_raises_corrupt_image_error(source, fraction, sources):
    data = TRUNCATION_SOURCES[source](sources)
    cut = data[: int(len(data) * fraction)]
    for width in (None, 160):  # full decode and a DCT-scaled one
        with pytest.raises(CorruptImageError) as e:
            appliance.transcode(cut, width=width, format="png")
        assert_error_shape(e.value, 422)


@pytest.mark.parametrize(
    "cut", [2, 20, 100], ids=["soi-only", "inside-first-segment", "inside-tables"]
)
def test_jpeg_cut_inside_its_header_raises_corrupt_image_error(cut, layout_jpegs):
    with pytest.raises(CorruptImageError):
        appliance.transcode(layout_jpegs["420", "baseline"][:cut])


@pytest.fixture(scope="module")
def other_sources(base_photo, small_photo_png):
    return {
        "png": small_photo_png,
        "webp-lossy": I.encode(base_photo, "WEBP", quality=80),
        "webp-lossless": I.encode(base_photo, "WEBP", lossless=True),
        # one frame: a decoder that reads only the first frame need not see a cut in the second
        "gif": I.encode(base_photo.convert("P", palette=1), "GIF"),
    }


@pytest.mark.parametrize("fraction", [0.10, 0.50, 0.90], ids=["cut10%", "cut50%", "cut90%"])
@pytest.mark.parametrize("kind", ["png", "webp-lossy", "webp-lossless", "gif"])
def test_truncated_png_webp_gif_raise_corrupt_image_error(kind, fraction, other_sources):
    data = other_sources[kind]
    with pytest.raises(CorruptImageError):
        appliance.transcode(data[: int(len(data) * fraction)], format="png")


def _png_with_bad_zlib(png: bytes) -> bytes:
    """Flip bytes in the middle of IDAT and fix the chunk CRC, so only the zlib stream is bad."""
    i = png.index(b"IDAT") - 4
    n = struct.unpack(">I", png[i : i + 4])[0]
    payload = bytearray(png[i + 8 : i + 8 + n])
    for k in range(len(payload) // 2, len(payload) // 2 + 32):
        payload[k] ^= 0x5A
    crc = struct.pack(">I", zlib.crc32(b"IDAT" + bytes(payload)) & 0xFFFFFFFF)
    return png[: i + 8] + bytes(payload) + crc + png[i + 12 + n :]


def _jpeg_with_bogus_huffman_table(jpeg: bytes) -> bytes:
    """Code counts that add up to more than 256 codes: libjpeg's "Bogus Huffman table"."""
    for m, off, _n in C.jpeg_segments(jpeg):
        if m == 0xC4:
            b = bytearray(jpeg)
            b[off + 5 : off + 21] = b"\xff" * 16
            return bytes(b)
    raise AssertionError


def _jpeg_with_zero_width(jpeg: bytes) -> bytes:
    return C.patch_jpeg_size(jpeg, 0, 401)


def _png_with_bad_ihdr_crc(png: bytes) -> bytes:
    return png[:29] + bytes(b ^ 0xFF for b in png[29:33]) + png[33:]


def _jpeg_with_bad_component_count(jpeg: bytes) -> bytes:
    for m, off, _n in C.jpeg_segments(jpeg):
        if m in C.SOF_MARKERS:
            b = bytearray(jpeg)
            b[off + 9] = 7  # seven components, but the segment only describes three
            return bytes(b)
    raise AssertionError


DAMAGED = {
    "jpeg-bogus-huffman-table": lambda j, p: _jpeg_with_bogus_huffman_table(j),
    "jpeg-zero-width": lambda j, p: _jpeg_with_zero_width(j),
    "jpeg-bad-component-count": lambda j, p: _jpeg_with_bad_component_count(j),
    "png-bad-zlib": lambda j, p: _png_with_bad_zlib(p),
    "png-bad-ihdr-crc": lambda j, p: _png_with_bad_ihdr_crc(p),
    "png-zero-size": lambda j, p: C.patch_png_size(p, 0, 0),
}


@pytest.mark.parametrize("kind", list(DAMAGED))
def test_damaged_structure_raises_corrupt_image_error(kind, layout_jpegs, small_photo_png):
    data = DAMAGED[kind](layout_jpegs["420", "baseline"], small_photo_png)
    with pytest.raises(CorruptImageError):
        appliance.transcode(data, format="png")


def test_process_keeps_working_after_errors(small_photo_jpeg, layout_jpegs):
    before = appliance.transcode(small_photo_jpeg, width=100)
    for data in (b"", b"junk", layout_jpegs["420", "progressive"][:3000], small_photo_jpeg[:5000]):
        with pytest.raises(TranscodeError):
            appliance.transcode(data, width=100)
    assert appliance.transcode(small_photo_jpeg, width=100) == before


INVALID_OPTIONS = [
    dict(fit="bogus"),
    dict(fit=None),
    dict(gravity="middle"),
    dict(format="gif"),
    dict(format="bmp"),
    dict(quality=0),
    dict(quality=101),
    dict(quality=-5),
    dict(quality=50.5),
    dict(width=0),
    dict(width=-1),
    dict(width=16385),
    dict(height=0),
    dict(height=-10),
    dict(height=16385),
    dict(width=1.5),
    dict(effort=-1),
    dict(effort=10),
    dict(chroma="422"),
    dict(chroma="411"),
    dict(icc="bogus"),
    dict(rect=(0, 0, 0, 10)),
    dict(rect=(-1, 0, 10, 10)),
    dict(rect=(0, 0, 10)),
    dict(background=(256, 0, 0)),
    dict(background=(1, 2)),
    dict(background=(-1, 0, 0)),
    dict(max_source_pixels=0),
    dict(max_output_pixels=0),
]


@pytest.mark.parametrize(
    "options",
    INVALID_OPTIONS,
    ids=[",".join(f"{k}={v!r}" for k, v in o.items()) for o in INVALID_OPTIONS],
)
def test_invalid_option_raises_value_error(options, small_photo_jpeg):
    with pytest.raises(ValueError):
        appliance.transcode(small_photo_jpeg, **options)


def test_rect_outside_the_image_raises_value_error(small_photo_jpeg):
    """A crop that misses the (637x401) picture entirely is an invalid option value."""
    with pytest.raises(ValueError):
        appliance.transcode(small_photo_jpeg, rect=(1000, 1000, 10, 10))


def test_options_are_keyword_only(small_photo_jpeg):
    with pytest.raises(TypeError):
        appliance.transcode_image(small_photo_jpeg, 100)  # type: ignore[misc]
    with pytest.raises(TypeError):
        appliance.transcode(small_photo_jpeg, 100)  # type: ignore[call-arg]


def test_unknown_option_raises_type_error(small_photo_jpeg):
    with pytest.raises(TypeError):
        appliance.transcode(small_photo_jpeg, widht=100)


def test_max_source_pixels_is_checked(small_photo_jpeg):
    with pytest.raises(ImageTooLargeError) as e:
        appliance.transcode(small_photo_jpeg, max_source_pixels=637 * 401 - 1)
    assert_error_shape(e.value, 413)
    appliance.transcode(small_photo_jpeg, max_source_pixels=637 * 401)


def test_max_output_pixels_is_checked(small_photo_jpeg):
    with pytest.raises(ImageTooLargeError):
        appliance.transcode(small_photo_jpeg, width=5000, height=5000, fit="stretch", upscale=True)
    with pytest.raises(ImageTooLargeError):
        appliance.transcode(small_photo_jpeg, width=300, max_output_pixels=300 * 189 - 1)
    appliance.transcode(small_photo_jpeg, width=300, max_output_pixels=300 * 189)

"""`appliance.probe` reads headers right; `appliance.native.decode_floor` picks DCT scales."""

from __future__ import annotations

import io
import math
import time

import containers as C
import images as I
import numpy as np
import oracle as O
import pytest
from images import BASE_SIZE, ORIENT_SIZE
from PIL import Image

import appliance
from appliance.errors import (
    CorruptImageError,
    ImageTooLargeError,
    TranscodeError,
    UnsupportedImageError,
)
from appliance.native import decode_floor


@pytest.mark.parametrize("coding", list(I.CODINGS))
@pytest.mark.parametrize("layout", list(I.LAYOUTS))
def test_probe_reports_jpeg_layout_and_coding(layout, coding, layout_jpegs):
    info = appliance.probe(layout_jpegs[layout, coding])
    assert info.format == "jpeg"
    assert (info.width, info.height) == BASE_SIZE
    assert info.subsampling == layout
    assert info.progressive is (coding == "progressive")
    assert info.orientation == 1
    assert info.has_alpha is False and info.has_icc is False


@pytest.mark.parametrize("orientation", range(1, 9), ids=[f"o{n}" for n in range(1, 9)])
def test_probe_reports_orientation_and_the_stored_size(orientation, oriented_jpegs):
    """Size as stored, before EXIF orientation (appliance.native.ImageInfo documents it so)."""
    info = appliance.probe(oriented_jpegs["420", orientation])
    assert info.orientation == orientation
    assert (info.width, info.height) == ORIENT_SIZE


@pytest.mark.parametrize("kind", ["cmyk", "ycck"])
def test_probe_reports_cmyk(kind, base_photo):
    data = I.cmyk_jpeg(base_photo) if kind == "cmyk" else I.ycck_jpeg(base_photo)
    info = appliance.probe(data)
    assert info.format == "jpeg" and info.subsampling == "cmyk"
    assert (info.width, info.height) == BASE_SIZE


def test_probe_reports_icc(base_photo):
    icc = C.matrix_trc_profile("Adobe RGB test")
    assert appliance.probe(I.pillow_jpeg(base_photo, icc_profile=icc)).has_icc is True
    assert appliance.probe(C.png_bytes(np.asarray(base_photo), 2, icc=icc)).has_icc is True
    assert appliance.probe(I.encode(base_photo, "WEBP", icc_profile=icc)).has_icc is True


def _rgba(alpha: int) -> Image.Image:
    im = I.detail_image(40, 30).convert("RGBA")
    im.putalpha(alpha)
    return im


OTHER = {
    "png-rgb": (lambda: I.encode(I.detail_image(40, 30), "PNG"), "png", False),
    "png-rgba": (lambda: I.encode(_rgba(100), "PNG"), "png", True),
    "png-grey": (lambda: I.encode(I.detail_image(40, 30).convert("L"), "PNG"), "png", False),
    "png-grey-alpha": (lambda: I.encode(_rgba(100).convert("LA"), "PNG"), "png", True),
    "png-palette": (
        lambda: C.png_bytes(np.zeros((30, 40), np.uint8), 3, palette=[(1, 2, 3)]),
        "png",
        False,
    ),
    "png-palette-trns": (
        lambda: C.png_bytes(np.zeros((30, 40), np.uint8), 3, palette=[(1, 2, 3)], trns=b"\0"),
        "png",
        True,
    ),
    "png-rgb16": (lambda: C.png_bytes(np.zeros((30, 40, 3), np.uint16), 2, 16), "png", False),
    "webp-lossy": (lambda: I.encode(I.detail_image(40, 30), "WEBP"), "webp", False),
    "webp-lossless": (
        lambda: I.encode(I.detail_image(40, 30), "WEBP", lossless=True),
        "webp",
        False,
    ),
    "webp-alpha": (lambda: I.encode(_rgba(100), "WEBP"), "webp", True),
    "webp-lossless-alpha": (lambda: I.encode(_rgba(100), "WEBP", lossless=True), "webp", True),
    "gif": (
        lambda: I.encode(I.detail_image(40, 30).convert("P", palette=1), "GIF", interlace=False),
        "gif",
        False,
    ),
    "gif-transparent": (
        lambda: I.encode(Image.new("P", (40, 30), 0), "GIF", transparency=0, interlace=False),
        "gif",
        True,
    ),
}


@pytest.mark.parametrize("kind", list(OTHER))
def test_probe_reports_other_formats(kind):
    make, fmt, alpha = OTHER[kind]
    info = appliance.probe(make())
    assert info.format == fmt
    assert (info.width, info.height) == (40, 30)
    assert info.has_alpha is alpha
    # docs/api.md: lossy WebP is always 4:2:0; "" for the other non-JPEG formats
    assert info.subsampling == ("420" if kind == "webp-lossy" else "")
    assert info.orientation == 1
    assert info.progressive is False  # none of these is interlaced


def test_probe_reports_every_corpus_jpeg_like_pillow(corpus_jpeg):
    data = corpus_jpeg.read_bytes()
    im = Image.open(io.BytesIO(data))
    info = appliance.probe(data)
    assert info.format == "jpeg"
    assert (info.width, info.height) == im.size
    assert info.orientation == (im.getexif().get(0x0112) or 1)
    assert info.progressive is bool(im.info.get("progressive"))
    assert info.has_icc is bool(im.info.get("icc_profile"))
    h, v = im.layer[0][1:3]
    want = (
        {(2, 2): "420", (2, 1): "422", (1, 2): "440", (1, 1): "444", (4, 1): "411"}[h, v]
        if im.mode != "L"
        else "gray"
    )
    assert info.subsampling == want


def test_probe_reads_only_the_header(corpus_bytes):
    """A 20 MP JPEG probes in well under a decode's time (best of 5 < 20 ms)."""
    data = corpus_bytes("o_kleiber.jpg")
    best = min(_timed(lambda: appliance.probe(data)) for _ in range(5))
    assert best < 0.02, f"probe took {best * 1000:.1f} ms"


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def test_probe_of_garbage_is_unsupported():
    with pytest.raises(UnsupportedImageError):
        appliance.probe(b"definitely not an image" * 10)


def test_probe_of_a_bomb_header_is_quick_and_does_not_decode():
    """Not specified whether probe reports or refuses a 60000x60000 header: either, fast."""
    data = C.patch_jpeg_size(I.pillow_jpeg(I.smooth_image(32, 24)), 60000, 60000)
    t0 = time.perf_counter()
    try:
        info = appliance.probe(data)
    except ImageTooLargeError:
        pass
    else:
        assert (info.width, info.height) == (60000, 60000)
    assert time.perf_counter() - t0 < 0.1


# ---------------------------------------------------------------------------- decode_floor


def test_decode_floor_uses_the_dct_scale_for_the_box(corpus_bytes):
    data = corpus_bytes("c_dragonfly_q90_420.jpg")  # 4224x3168
    assert decode_floor(data, width=200, height=200) == (528, 396)


def test_decode_floor_without_a_box_is_full_size(corpus_bytes):
    assert decode_floor(corpus_bytes("c_dragonfly_q90_420.jpg")) == (4224, 3168)


@pytest.mark.parametrize(
    "box",
    [(800, None), (None, 1000), (100, 100), (3000, None), (2112, None), (None, 1)],
    ids=lambda b: f"{b[0]}x{b[1]}",
)
def test_decode_floor_is_a_dct_scale_no_smaller_than_the_output(box, corpus_bytes):
    """libjpeg scales by M/8: the decoded size is ceil(size * M / 8) for one M in 1..8,
    and never smaller than what fit="inside" will output (else it would upscale)."""
    data = corpus_bytes("c_dragonfly_q90_420.jpg")
    sw, sh = 4224, 3168
    w, h = decode_floor(data, width=box[0], height=box[1])
    scales = [m for m in range(1, 9) if (w, h) == (math.ceil(sw * m / 8), math.ceil(sh * m / 8))]
    assert scales, f"{(w, h)} is not an M/8 scale of {(sw, sh)}"
    res = appliance.transcode_image(data, width=box[0], height=box[1], format="jpeg", quality=50)
    assert w >= res.width and h >= res.height


@pytest.mark.parametrize("layout", list(I.LAYOUTS))
def test_decode_floor_handles_every_layout(layout, layout_jpegs):
    w, h = decode_floor(layout_jpegs[layout, "baseline"], width=100)
    assert w >= 100 and h >= round(401 * 100 / 637)
    assert w <= 637 and h <= 401


def test_decode_floor_of_a_truncated_jpeg_raises(corpus_bytes):
    data = corpus_bytes("o_cups_4mp.jpg")
    with pytest.raises(CorruptImageError):
        decode_floor(data[: len(data) // 2], width=200)


def test_decode_floor_of_garbage_raises_a_transcode_error():
    with pytest.raises(TranscodeError):
        decode_floor(b"not a jpeg at all", width=10)


def test_transcode_output_matches_pillow_after_the_floor_scale(corpus_bytes):
    """The DCT-scaled decode is only a start: 200x150 from 528x396 is still right."""
    data = corpus_bytes("c_dragonfly_q90_420.jpg")
    res = appliance.transcode_image(data, width=200, height=200, format="png")
    assert (res.width, res.height) == (200, 150)
    O.compare(
        res.data,
        O.reference(data, (200, 150)),
        min_psnr=36.0,
        min_ssim=0.98,
        group="corpus jpeg w200 (dct 1/8)",
        label="dragonfly",
    )

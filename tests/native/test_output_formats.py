"""Output formats: JPEG quality/progressive/chroma/optimize, WebP, AVIF, PNG, Result fields."""

from __future__ import annotations

import struct

import containers as C
import images as I
import numpy as np
import oracle as O
import pytest
from images import BASE_SIZE

import appliance

MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "avif": "image/avif"}
MAGIC = {
    "jpeg": lambda d: d[:3] == b"\xff\xd8\xff",
    "png": lambda d: d[:8] == b"\x89PNG\r\n\x1a\n",
    "webp": lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP",
    "avif": lambda d: d[4:8] == b"ftyp" and b"avif" in d[8:32],
}
# lossy outputs at their default quality against Pillow's reference, full size
DEFAULT_TOLERANCE = {
    "jpeg": (33.0, 0.95),
    "png": (36.0, 0.985),
    "webp": (30.0, 0.93),
    "avif": (30.0, 0.93),
}


def need_avif_decoder() -> None:
    if not O.avif_decodes():
        pytest.skip("this Pillow has no AVIF decoder: only the ftyp brand and size were checked")


def luma_sampling(data: bytes) -> tuple[int, int]:
    comp = O.open_image(data).layer[0]
    return comp[1], comp[2]


@pytest.mark.parametrize("fmt", list(MIME))
def test_every_output_format_decodes_and_matches_pillow(fmt, small_photo_jpeg):
    res = appliance.transcode_image(small_photo_jpeg, format=fmt)
    assert res.format == fmt and res.mime_type == MIME[fmt]
    assert MAGIC[fmt](res.data), f"{fmt} output does not start with the {fmt} signature"
    assert (res.width, res.height) == BASE_SIZE
    assert set(res.timings) >= {"decode", "resize", "encode"}
    assert all(isinstance(v, float) and v >= 0 for v in res.timings.values())
    if fmt == "avif":
        need_avif_decoder()
    p, s = DEFAULT_TOLERANCE[fmt]
    O.compare(
        res.data,
        O.reference(small_photo_jpeg, BASE_SIZE),
        min_psnr=p,
        min_ssim=s,
        group="format default quality",
        label=fmt,
    )


def test_transcode_returns_the_same_bytes_as_transcode_image(small_photo_jpeg):
    assert (
        appliance.transcode(small_photo_jpeg, width=200)
        == appliance.transcode_image(small_photo_jpeg, width=200).data
    )


@pytest.mark.parametrize("quality", [None, 20, 50, 82, 95], ids=lambda q: f"q{q}")
def test_jpeg_quality_selects_the_standard_tables(quality, base_photo, small_photo_jpeg):
    """Quantisation tables equal libjpeg's Annex K tables scaled for that quality (what
    Pillow writes at the same quality); None means 82."""
    out = appliance.transcode(small_photo_jpeg, format="jpeg", quality=quality)
    want = O.open_image(I.pillow_jpeg(base_photo, quality=quality or 82)).quantization
    got = O.open_image(out).quantization
    assert got[0] == want[0], "luma table differs"
    assert got[1] == want[1], "chroma table differs"


def test_higher_jpeg_quality_is_bigger_and_closer(small_photo_jpeg):
    ref = O.reference(small_photo_jpeg, BASE_SIZE)
    lo = appliance.transcode(small_photo_jpeg, format="jpeg", quality=30)
    hi = appliance.transcode(small_photo_jpeg, format="jpeg", quality=95)
    assert len(hi) > len(lo)
    assert O.measure(hi, ref).psnr > O.measure(lo, ref).psnr + 3


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_progressive_flag(progressive, small_photo_jpeg):
    out = appliance.transcode(small_photo_jpeg, format="jpeg", progressive=progressive)
    assert bool(O.open_image(out).info.get("progressive")) is progressive
    sof = [m for m in C.jpeg_markers(out) if m in C.SOF_MARKERS]
    assert sof == [0xC2 if progressive else 0xC0] or (not progressive and sof == [0xC1])


@pytest.mark.parametrize(
    "quality,chroma,sampling",
    [
        (None, None, (2, 2)),
        (89, None, (2, 2)),
        (90, None, (1, 1)),
        (100, None, (1, 1)),
        (95, "420", (2, 2)),
        (50, "444", (1, 1)),
    ],
    ids=["default-420", "q89-420", "q90-444", "q100-444", "q95-forced-420", "q50-forced-444"],
)
def test_jpeg_chroma_subsampling(quality, chroma, sampling, small_photo_jpeg):
    out = appliance.transcode(small_photo_jpeg, format="jpeg", quality=quality, chroma=chroma)
    im = O.open_image(out)
    assert luma_sampling(out) == sampling
    assert all(c[1:3] == (1, 1) for c in im.layer[1:]), im.layer


def test_jpeg_from_grey_source_is_grey(layout_jpegs):
    out = appliance.transcode(layout_jpegs["gray", "baseline"], format="jpeg")
    im = O.open_image(out)
    a = O.array(im)
    assert im.mode == "L" or (np.abs(a[..., 0] - a[..., 1]).max() <= 2), "grey became colour"


def test_jpeg_optimize_makes_smaller_files(small_photo_jpeg):
    optimized = appliance.transcode(small_photo_jpeg, format="jpeg", optimize=True)
    plain = appliance.transcode(small_photo_jpeg, format="jpeg", optimize=False)
    assert len(optimized) < len(plain)
    # same quantisation, so the same pixels
    assert np.array_equal(O.array(optimized), O.array(plain))


def test_output_carries_no_source_metadata(small_photo_jpeg, base_photo):
    """EXIF (with camera tags), XMP and a COM marker in the source: none reach the output."""
    src = I.pillow_jpeg(
        base_photo, quality=90, exif=C.exif_bytes(1, {0x010F: "TestCam", 0x0110: "X1"})
    )
    src = C.insert_jpeg_segment(src, 0xE1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>")
    src = C.insert_jpeg_segment(src, 0xFE, b"a comment")
    out = appliance.transcode(src, format="jpeg")
    markers = C.jpeg_markers(out)
    assert 0xE1 not in markers and 0xFE not in markers, [hex(m) for m in markers]
    assert set(markers) <= {0xE0, 0xE2, 0xEE, 0xDB, 0xC4, 0xDD, *C.SOF_MARKERS, 0xDA}
    png = appliance.transcode(src, format="png")
    assert not any(t in png for t in (b"eXIf", b"tEXt", b"iTXt", b"zTXt"))
    webp = appliance.transcode(src, format="webp")
    assert {t for t, _, _ in C.riff_chunks(webp)}.isdisjoint({b"EXIF", b"XMP "})


@pytest.mark.parametrize("fmt", ["webp", "avif"])
def test_lower_quality_gives_smaller_files(fmt, small_photo_jpeg):
    lo = appliance.transcode(small_photo_jpeg, format=fmt, quality=20)
    hi = appliance.transcode(small_photo_jpeg, format=fmt, quality=90)
    assert len(lo) < len(hi)


@pytest.mark.parametrize("fmt", ["webp", "avif"])
def test_lossless_output_is_exact(fmt, small_photo_png, base_photo):
    res = appliance.transcode_image(small_photo_png, format=fmt, lossless=True)
    if fmt == "avif":
        need_avif_decoder()
    got = O.array(res.data)
    assert got.shape[:2] == (BASE_SIZE[1], BASE_SIZE[0])
    assert np.array_equal(got, O.array(base_photo)), f"lossless {fmt}: {O.measure(got, base_photo)}"


def test_png_output_of_png_input_without_resize_is_exact(small_photo_png, base_photo):
    out = appliance.transcode(small_photo_png)
    assert MAGIC["png"](out)
    assert np.array_equal(O.array(out), O.array(base_photo))


@pytest.mark.parametrize("effort", [0, 4, 9])
@pytest.mark.parametrize("fmt", ["webp", "avif"])
def test_every_effort_gives_a_valid_image(fmt, effort, small_photo_jpeg):
    res = appliance.transcode_image(small_photo_jpeg, format=fmt, effort=effort, width=160)
    assert MAGIC[fmt](res.data)
    if fmt == "avif":
        need_avif_decoder()
    O.compare(
        res.data,
        O.reference(small_photo_jpeg, (res.width, res.height)),
        min_psnr=26.0,
        min_ssim=0.85,
        group=f"{fmt} by effort",
        label=f"e{effort}",
    )


def _av1c_subsampling(data: bytes) -> tuple[int, int]:
    i = data.find(b"av1C")
    assert i > 0, "no av1C box"
    b2 = data[i + 6]
    return (b2 >> 3) & 1, (b2 >> 2) & 1


@pytest.mark.parametrize("chroma,expected", [("420", (1, 1)), ("444", (0, 0))])
def test_avif_chroma_option(chroma, expected, small_photo_jpeg):
    out = appliance.transcode(small_photo_jpeg, format="avif", chroma=chroma, width=160)
    assert _av1c_subsampling(out) == expected


def test_avif_ftyp_and_size_without_a_decoder(small_photo_jpeg):
    """Always-on structural check, for machines whose Pillow cannot decode AVIF."""
    out = appliance.transcode(small_photo_jpeg, format="avif", width=200)
    assert MAGIC["avif"](out)
    ftyp_len = struct.unpack(">I", out[:4])[0]
    assert b"avif" in out[8:ftyp_len]
    i = out.find(b"ispe")
    assert i > 0, "no ispe box"
    w, h = struct.unpack(">II", out[i + 8 : i + 16])
    assert (w, h) == (200, round(401 * 200 / 637))


@pytest.mark.parametrize(
    "src_fixture,expected",
    [
        ("small_photo_jpeg", "jpeg"),
        ("small_photo_png", "png"),
        ("webp_lossy", "webp"),
        ("gif_still", "png"),
    ],
)
def test_format_none_keeps_the_source_family(src_fixture, expected, request):
    data = request.getfixturevalue(src_fixture)
    res = appliance.transcode_image(data, width=100)
    assert res.format == expected and res.mime_type == MIME[expected]
    assert MAGIC[expected](res.data)


@pytest.fixture(scope="session")
def webp_lossy(base_photo, save) -> bytes:
    return save("photo_lossy.webp", I.encode(base_photo, "WEBP", quality=85))


@pytest.fixture(scope="session")
def gif_still(base_photo, save) -> bytes:
    return save("photo.gif", I.encode(base_photo.convert("P", palette=1), "GIF"))

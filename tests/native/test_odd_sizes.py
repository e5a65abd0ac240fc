"""Tiny and extreme-aspect JPEGs of every layout, to every format, and resizing to 1x1."""

from __future__ import annotations

import images as I
import numpy as np
import oracle as O
import pytest
from PIL import Image

import appliance

SIZES = [(1, 1), (1, 2), (2, 1), (3, 5), (4097, 3), (3, 4097)]
LAYOUTS = list(I.LAYOUTS)
FORMATS = ["jpeg", "png", "webp", "avif"]


@pytest.fixture(scope="module")
def odd_jpegs(cjpeg_available, save) -> dict[tuple[str, tuple[int, int]], bytes]:
    """Slow chroma under a luma checkerboard (see images.gentle_image)."""
    return {
        (lay, size): save(f"odd_{lay}_{size[0]}x{size[1]}.jpg", I.cjpeg(I.gentle_image(*size), lay))
        for lay in LAYOUTS
        for size in SIZES
    }


@pytest.fixture(scope="module")
def steep_jpegs(cjpeg_available, save) -> dict[tuple[str, tuple[int, int]], bytes]:
    """A full-range gradient across even 3 pixels: a 1x1 of it must be its mean colour."""
    return {
        (lay, size): save(
            f"steep_{lay}_{size[0]}x{size[1]}.jpg", I.cjpeg(I.smooth_image(*size), lay)
        )
        for lay in LAYOUTS
        for size in SIZES
    }


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_odd_size_jpeg_transcodes_to_every_format(layout, size, fmt, odd_jpegs):
    data = odd_jpegs[layout, size]
    res = appliance.transcode_image(data, format=fmt)
    assert (res.width, res.height) == size
    if fmt == "avif" and not O.avif_decodes():
        pytest.skip("this Pillow cannot decode AVIF: size checked from the Result only")
    im = O.open_image(res.data)
    assert im.size == size
    got, ref = O.array(im), O.array(O.pillow_decode(data))
    err = np.abs(got - ref)
    if fmt == "png":  # lossless: only chroma upsampling and rounding differ
        assert err.mean() <= 3.0 and err.max() <= 24.0, (
            f"{layout} {size} -> png: mean error {err.mean():.1f}, max {err.max():.0f}"
        )
    else:  # a lossy re-encode of a few pixels (4:2:0 by default): the colour must hold
        drift = np.abs(got.reshape(-1, 3).mean(0) - ref.reshape(-1, 3).mean(0)).max()
        assert drift <= 8.0 and err.mean() <= 20.0, (
            f"{layout} {size} -> {fmt}: mean colour drift {drift:.1f}, mean error {err.mean():.1f}"
        )


@pytest.mark.parametrize("size", [(4097, 3), (3, 4097), (3, 5)], ids=["4097x3", "3x4097", "3x5"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_odd_size_jpeg_resizes_to_1x1_of_its_mean_colour(layout, size, steep_jpegs):
    """Any symmetric filter maps a linear gradient to its mean. (A DCT-domain 1/8 decode of
    a partial block averages the edge-padded 8x8 block, i.e. leans to the last row/column.)"""
    res = appliance.transcode_image(
        steep_jpegs[layout, size], width=1, height=1, fit="stretch", format="png"
    )
    assert (res.width, res.height) == (1, 1)
    got = O.array(res.data)[0, 0]
    want = O.array(O.pillow_decode(steep_jpegs[layout, size])).reshape(-1, 3).mean(0)
    assert np.abs(got - want).max() <= 20, f"1x1 colour {got} far from the mean {want.round()}"


@pytest.mark.parametrize("fit", ["inside", "cover", "pad", "stretch"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_resizes_to_1x1(layout, fit, layout_jpegs):
    for fmt in FORMATS:
        res = appliance.transcode_image(
            layout_jpegs[layout, "baseline"], width=1, height=1, fit=fit, format=fmt
        )
        assert (res.width, res.height) == (1, 1)
        if fmt != "avif" or O.avif_decodes():
            assert O.open_image(res.data).size == (1, 1)


@pytest.mark.parametrize("size", [(4097, 3), (3, 4097)], ids=["4097x3", "3x4097"])
def test_extreme_aspect_keeps_at_least_one_pixel(size, odd_jpegs):
    res = appliance.transcode_image(
        odd_jpegs["420", size],
        width=100 if size[0] > size[1] else None,
        height=None if size[0] > size[1] else 100,
        format="png",
    )
    assert (res.width, res.height) == ((100, 1) if size[0] > size[1] else (1, 100))


EDGE_SIZES = [(5, 5), (17, 9), (3, 1), (1, 3), (1, 2), (2, 1), (33, 17)]


def edge_image(w: int, h: int) -> Image.Image:
    """Grey, with a red last row and a blue last column: odd sizes put them alone in the
    last chroma sample of a 4:2:0 encode."""
    a = np.full((h, w, 3), 128, np.uint8)
    a[-1, :] = (220, 30, 30)
    a[:, -1] = (30, 30, 220)
    return Image.fromarray(a, "RGB")


@pytest.mark.parametrize("size", EDGE_SIZES, ids=[f"{w}x{h}" for w, h in EDGE_SIZES])
def test_420_jpeg_output_keeps_the_colour_of_the_last_row_and_column(size):
    """Against Pillow's own 4:2:0 encode of the same pixels (libjpeg replicates the edge
    before averaging 2x2, so a lone last row keeps its own chroma)."""
    im = edge_image(*size)
    ours = O.array(
        appliance.transcode(I.encode(im, "PNG"), format="jpeg", quality=100, chroma="420")
    )
    ref = O.array(I.pillow_jpeg(im, quality=100, subsampling=2))
    err = np.abs(ours - ref)
    assert err.max() <= 12, (
        f"{size}: worst pixel off by {err.max():.0f} "
        f"(last row ours {ours[-1, 0]}, Pillow {ref[-1, 0]}; "
        f"last column ours {ours[0, -1]}, Pillow {ref[0, -1]})"
    )


@pytest.mark.parametrize("size", EDGE_SIZES, ids=[f"{w}x{h}" for w, h in EDGE_SIZES])
def test_webp_output_keeps_the_colour_of_the_last_row_and_column(size):
    """Against Pillow's WebP encode (libwebp's own RGB -> 4:2:0) of the same pixels."""
    im = edge_image(*size)
    ours = O.array(appliance.transcode(I.encode(im, "PNG"), format="webp", quality=100))
    ref = O.array(I.encode(im, "WEBP", quality=100))
    err = np.abs(ours - ref)
    assert err.max() <= 16, (
        f"{size}: worst pixel off by {err.max():.0f} "
        f"(last row ours {ours[-1, 0]}, Pillow {ref[-1, 0]}; "
        f"last column ours {ours[0, -1]}, Pillow {ref[0, -1]})"
    )

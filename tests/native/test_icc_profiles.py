"""ICC profiles: kept byte for byte by default, stripped on request, converted to sRGB.

The non-sRGB profile is an Adobe RGB (1998) matrix/TRC profile built by hand
(`images.matrix_trc_profile`), checked loadable by lcms2 through Pillow's ImageCms. The
conversion oracle is ImageCms.profileToProfile (lcms2, relative colorimetric, which for
matrix/TRC profiles is what perceptual falls back to).
"""

from __future__ import annotations

import io

import containers as C
import images as I
import numpy as np
import oracle as O
import pytest
from PIL import Image, ImageCms

import appliance

ADOBE = C.matrix_trc_profile("Adobe RGB (1998) test profile")
BIG = C.matrix_trc_profile("Adobe RGB, 100 KB padded", padding=100_000)  # needs two APP2 segments


def saturated_image(w: int = 160, h: int = 120) -> Image.Image:
    """Mid-saturated colours: Adobe RGB -> sRGB moves them clearly, without clipping much."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 60 + 150 * (x / w)
    g = 200 - 120 * (y / h)
    b = 90 + 80 * np.sin(x / 17.0) * np.cos(y / 13.0)
    return Image.fromarray(np.dstack([r, g, b]).round().clip(0, 255).astype(np.uint8), "RGB")


def icc_of(data: bytes) -> bytes | None:
    return O.open_image(data).info.get("icc_profile") or None


@pytest.fixture(scope="session")
def adobe_jpeg(save) -> bytes:
    return save(
        "adobe_rgb.jpg",
        I.pillow_jpeg(saturated_image(), quality=95, subsampling=0, icc_profile=ADOBE),
    )


def test_hand_built_profiles_load_in_lcms():
    for p in (ADOBE, BIG):
        prof = ImageCms.ImageCmsProfile(io.BytesIO(p))
        assert "Adobe RGB" in ImageCms.getProfileDescription(prof)
    assert len(BIG) > 65519  # more than one JPEG APP2 segment can hold


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif"])
def test_icc_profile_is_kept_byte_for_byte_by_default(fmt, adobe_jpeg):
    out = appliance.transcode(adobe_jpeg, format=fmt, width=80)
    if fmt == "avif" and not O.avif_decodes():
        pytest.skip("this Pillow cannot decode AVIF, so cannot read its colr box")
    assert icc_of(out) == ADOBE


def test_kept_icc_profile_keeps_the_pixels_unconverted(adobe_jpeg):
    out = appliance.transcode(adobe_jpeg, format="png")
    O.compare(
        out,
        O.reference(adobe_jpeg, (160, 120)),
        min_psnr=38.0,
        min_ssim=0.98,
        group="icc keep vs source pixels",
        label="adobe",
    )


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_large_icc_profile_split_over_app2_segments_is_kept(fmt, save):
    src = save("big_icc.jpg", I.pillow_jpeg(saturated_image(), quality=90, icc_profile=BIG))
    assert len(C.jpeg_app_payloads(src, 0xE2)) >= 2
    out = appliance.transcode(src, format=fmt)
    assert icc_of(out) == BIG


def test_icc_profile_of_a_png_source_is_kept(save):
    src = save("adobe.png", C.png_bytes(np.asarray(saturated_image()), 2, icc=ADOBE))
    assert icc_of(src) == ADOBE
    assert icc_of(appliance.transcode(src)) == ADOBE
    assert icc_of(appliance.transcode(src, format="jpeg")) == ADOBE


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif"])
def test_icc_strip_removes_the_profile(fmt, adobe_jpeg):
    out = appliance.transcode(adobe_jpeg, format=fmt, icc="strip")
    if fmt == "jpeg":
        assert not C.jpeg_app_payloads(out, 0xE2)
    elif fmt == "png":
        assert b"iCCP" not in out
    elif fmt == "webp":
        assert all(t != b"ICCP" for t, _, _ in C.riff_chunks(out))
    else:
        assert b"colrprof" not in out  # an ICC colr box; nclx is fine
    if fmt != "avif" or O.avif_decodes():
        assert icc_of(out) is None


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_icc_srgb_converts_adobe_rgb_pixels_to_srgb(fmt, adobe_jpeg):
    """Covers: Adobe RGB -> sRGB with lcms2. Ours must match ImageCms' conversion of
    Pillow's decode, must differ clearly from the unconverted pixels, and must not keep
    the Adobe profile (no profile, or an sRGB one)."""
    out = appliance.transcode(adobe_jpeg, format=fmt, icc="srgb", quality=95, chroma="444")
    src = O.pillow_decode(adobe_jpeg)
    converted = ImageCms.profileToProfile(
        src,
        ImageCms.ImageCmsProfile(io.BytesIO(ADOBE)),
        ImageCms.createProfile("sRGB"),
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        outputMode="RGB",
    )
    m = O.compare(
        out,
        converted,
        min_psnr=36.0 if fmt == "png" else 33.0,
        min_ssim=0.97,
        group="icc srgb conversion",
        label=fmt,
    )
    unconverted = O.measure(out, src)
    assert unconverted.psnr < m.psnr - 6, f"pixels barely changed: {unconverted} vs converted {m}"
    kept = icc_of(out)
    if kept is not None:
        assert kept != ADOBE
        assert "sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(kept)))


def test_icc_srgb_leaves_srgb_tagged_pixels_alone(save):
    """Covers: an sRGB-tagged source through icc="srgb" keeps its pixels (within rounding)."""
    im = saturated_image()
    src = save("srgb_tagged.png", C.png_bytes(np.asarray(im), 2, icc=C.srgb_profile()))
    out = appliance.transcode(src, icc="srgb")
    O.compare(out, im, min_psnr=45.0, min_ssim=0.995, group="icc srgb on srgb", label="png")


def test_icc_srgb_leaves_untagged_pixels_alone(small_photo_png, base_photo):
    out = appliance.transcode(small_photo_png, icc="srgb")
    assert np.array_equal(O.array(out), O.array(base_photo))
    assert icc_of(out) is None or "sRGB" in ImageCms.getProfileDescription(
        ImageCms.ImageCmsProfile(io.BytesIO(icc_of(out)))
    )

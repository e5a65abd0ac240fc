"""All 8 EXIF orientations in every layout; the tag never reaches the output."""

from __future__ import annotations

import containers as C
import images as I
import oracle as O
import pytest
from images import ORIENT_SIZE

import appliance

LAYOUTS = list(I.LAYOUTS)
ORIENTATIONS = list(range(1, 9))
FORMATS = ["jpeg", "png", "webp", "avif"]


def displayed_size(n: int) -> tuple[int, int]:
    w, h = ORIENT_SIZE
    return (h, w) if n >= 5 else (w, h)


@pytest.mark.parametrize("orientation", ORIENTATIONS, ids=[f"o{n}" for n in ORIENTATIONS])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_applies_every_orientation_in_every_layout(layout, orientation, oriented_jpegs):
    data = oriented_jpegs[layout, orientation]
    res = appliance.transcode_image(data, format="png")
    assert (res.width, res.height) == displayed_size(orientation)
    # 4:1:1 chroma across the sharp quadrant edges: libjpeg (the oracle) replicates it,
    # a smoother upsampler differs by a few dB there; a wrong orientation scores ~10 dB
    min_psnr = 31.0 if layout == "411" else 34.0
    O.compare(
        res.data,
        O.reference(data, displayed_size(orientation)),
        min_psnr=min_psnr,
        min_ssim=0.97,
        group="orientation full size",
        label=f"{layout}/o{orientation}",
    )


@pytest.mark.parametrize("orientation", ORIENTATIONS, ids=[f"o{n}" for n in ORIENTATIONS])
@pytest.mark.parametrize("layout", ["420", "444", "gray"])
def test_width_applies_to_the_displayed_image(layout, orientation, oriented_jpegs):
    data = oriented_jpegs[layout, orientation]
    dw, dh = displayed_size(orientation)
    res = appliance.transcode_image(data, width=60, format="png")
    expected = (60, round(dh * 60 / dw))
    assert (res.width, res.height) == expected
    O.compare(
        res.data,
        O.reference(data, expected),
        min_psnr=32.0,
        min_ssim=0.97,
        group="orientation downscale w60",
        label=f"{layout}/o{orientation}",
    )


@pytest.mark.parametrize("orientation", ORIENTATIONS, ids=[f"o{n}" for n in ORIENTATIONS])
def test_autorotate_false_keeps_the_stored_orientation(orientation, oriented_jpegs):
    data = oriented_jpegs["420", orientation]
    res = appliance.transcode_image(data, format="png", autorotate=False)
    assert (res.width, res.height) == ORIENT_SIZE
    O.compare(
        res.data,
        O.reference(data, ORIENT_SIZE, autorotate=False),
        min_psnr=34.0,
        min_ssim=0.97,
        group="orientation full size",
        label=f"420/o{orientation}/no-autorotate",
    )
    assert O.open_image(res.data).getexif().get(0x0112) is None


def _has_exif_container(fmt: str, data: bytes) -> bool:
    if fmt == "jpeg":
        return any(p.startswith(b"Exif\0") for p in C.jpeg_app_payloads(data, 0xE1))
    if fmt == "png":
        return b"eXIf" in data
    if fmt == "webp":
        return any(tag == b"EXIF" for tag, _, _ in C.riff_chunks(data))
    return False  # AVIF: checked through Pillow only


@pytest.mark.parametrize("autorotate", [True, False], ids=["autorotate", "no-autorotate"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_orientation_tag_is_never_written(fmt, autorotate, oriented_jpegs):
    data = oriented_jpegs["420", 6]
    out = appliance.transcode(data, format=fmt, autorotate=autorotate, width=80)
    if fmt == "avif" and not O.avif_decodes():
        pytest.skip("this Pillow cannot decode AVIF: only the EXIF container check ran")
    im = O.open_image(out)
    assert im.getexif().get(0x0112) is None
    assert not _has_exif_container(fmt, out), "EXIF metadata was copied into the output"


def test_corpus_exif6_photo_matches_its_upright_twin(corpus_bytes):
    """c_dragonfly_q90_420_exif6 is c_dragonfly_q90_420 rotated losslessly and tagged 6."""
    upright = appliance.transcode_image(
        corpus_bytes("c_dragonfly_q90_420.jpg"), width=800, format="png"
    )
    tagged = appliance.transcode_image(
        corpus_bytes("c_dragonfly_q90_420_exif6.jpg"), width=800, format="png"
    )
    assert (tagged.width, tagged.height) == (upright.width, upright.height) == (800, 600)
    O.compare(
        tagged.data,
        upright.data,
        min_psnr=38.0,
        min_ssim=0.98,
        group="corpus exif6 vs upright",
        label="dragonfly",
    )


@pytest.mark.parametrize("orientation", ORIENTATIONS, ids=[f"o{n}" for n in ORIENTATIONS])
@pytest.mark.parametrize("quadrant", ["tl", "tr", "bl", "br"])
def test_rect_is_in_displayed_coordinates(quadrant, orientation, save):
    """A displayed 160x120 picture of four flat quadrants, stored under each orientation:
    `rect` on one displayed quadrant gives that quadrant's colour."""
    displayed = I.quadrants(160, 120)
    stored = I.stored_for_display(displayed, orientation)
    data = C.with_exif_orientation(I.pillow_jpeg(stored, quality=95, subsampling=0), orientation)
    x = 0 if quadrant[1] == "l" else 80
    y = 0 if quadrant[0] == "t" else 60
    res = appliance.transcode_image(data, rect=(x, y, 80, 60), format="png")
    assert (res.width, res.height) == (80, 60)
    got = O.mean_colour(O.open_image(res.data))
    want = I.QUADRANT_COLOURS[quadrant]
    assert abs(got - want).max() <= 6, (
        f"rect {quadrant} under o{orientation}: mean {got.round()}, want {want}"
    )

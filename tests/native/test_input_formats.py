"""PNG (every colour type and depth), WebP and GIF inputs; alpha to each output format."""

from __future__ import annotations

import functools

import containers as C
import images as I
import numpy as np
import oracle as O
import pytest
from PIL import Image

import appliance

W, H = 97, 61  # odd, tiny: exact comparisons are cheap


def _rgb() -> np.ndarray:
    return np.asarray(I.detail_image(W, H, seed=3)).astype(np.uint16)


def _alpha() -> np.ndarray:
    """Opaque left third, a horizontal ramp in the middle, fully transparent right third."""
    a = np.zeros((H, W), np.uint16)
    a[:, : W // 3] = 255
    mid = np.arange(W // 3, 2 * W // 3)
    a[:, W // 3 : 2 * W // 3] = np.linspace(250, 5, len(mid)).round().astype(np.uint16)
    return a


PALETTE = [(i * 16 % 256, 255 - i * 12, (i * 53) % 256) for i in range(16)]


@functools.cache
def png_variant(name: str) -> tuple[bytes, np.ndarray]:
    """(PNG bytes, expected 8-bit RGBA truth) for each colour type/depth we accept."""
    rgb8 = _rgb()
    grey8 = (rgb8 @ np.array([299, 587, 114]) // 1000).astype(np.uint16)
    alpha8 = _alpha()
    idx = ((np.arange(W)[None, :] // 7 + np.arange(H)[:, None] // 5) % 16).astype(np.uint16)
    pal = np.array(PALETTE, np.uint16)
    opaque = np.full((H, W), 255, np.uint16)
    # low bytes set, so a plain x257 / >>8 round trip is not the whole story
    rgb16 = np.minimum(rgb8.astype(np.int64) * 257 + (np.arange(W)[None, :, None] % 200), 65535)
    grey16 = np.minimum(grey8.astype(np.int64) * 257 + 100, 65535)

    def rgba(rgb, a):
        return np.dstack([rgb, a]) if rgb.ndim == 3 else np.dstack([rgb, rgb, rgb, a])

    def from16(v):
        return np.round(v / 257.0)

    variants = {
        "rgb8": (C.png_bytes(rgb8, 2), rgba(rgb8, opaque)),
        "rgba8": (C.png_bytes(np.dstack([rgb8, alpha8]), 6), rgba(rgb8, alpha8)),
        "grey8": (C.png_bytes(grey8, 0), rgba(grey8, opaque)),
        "grey-alpha8": (C.png_bytes(np.dstack([grey8, alpha8]), 4), rgba(grey8, alpha8)),
        "grey1": (C.png_bytes(idx % 2, 0, 1), rgba((idx % 2) * 255, opaque)),
        "palette8": (C.png_bytes(idx, 3, palette=PALETTE), rgba(pal[idx], opaque)),
        "palette8-trns": (
            C.png_bytes(idx, 3, palette=PALETTE, trns=bytes([0, 128] + [255] * 14)),
            rgba(pal[idx], np.where(idx == 0, 0, np.where(idx == 1, 128, 255))),
        ),
        "palette2-trns": (
            C.png_bytes(idx % 4, 3, 2, palette=PALETTE[:4], trns=b"\x00"),
            rgba(pal[idx % 4], np.where(idx % 4 == 0, 0, 255)),
        ),
        "grey8-key-trns": (
            C.png_bytes(grey8, 0, trns=int(grey8[0, 0]).to_bytes(2, "big")),
            rgba(grey8, np.where(grey8 == grey8[0, 0], 0, 255)),
        ),
        "rgb16": (C.png_bytes(rgb16, 2, 16), rgba(from16(rgb16), opaque)),
        "grey16": (C.png_bytes(grey16, 0, 16), rgba(from16(grey16), opaque)),
        "rgba16": (
            C.png_bytes(np.dstack([rgb16, alpha8 * 257]), 6, 16),
            rgba(from16(rgb16), alpha8),
        ),
        "rgb8-interlaced": (C.png_bytes(rgb8, 2, interlace=True), rgba(rgb8, opaque)),
        "rgba16-interlaced": (
            C.png_bytes(np.dstack([rgb16, alpha8 * 257]), 6, 16, interlace=True),
            rgba(from16(rgb16), alpha8),
        ),
    }
    data, truth = variants[name]
    return data, truth.astype(np.float64)


PNG_VARIANTS = [
    "rgb8",
    "rgba8",
    "grey8",
    "grey-alpha8",
    "grey1",
    "palette8",
    "palette8-trns",
    "palette2-trns",
    "grey8-key-trns",
    "rgb16",
    "grey16",
    "rgba16",
    "rgb8-interlaced",
    "rgba16-interlaced",
]


def rgba_array(data: bytes) -> np.ndarray:
    im = O.open_image(data)
    if im.mode == "I;16":
        im = Image.fromarray((np.asarray(im) / 257.0).round().astype(np.uint8), "L")
    return np.asarray(im.convert("RGBA")).astype(np.float64)


def assert_rgba_close(got: np.ndarray, truth: np.ndarray, tol: float, what: str) -> None:
    """Compare premultiplied colour (the RGB of a transparent pixel is meaningless) and alpha."""
    assert got.shape == truth.shape, f"{what}: shape {got.shape} vs {truth.shape}"
    a_err = np.abs(got[..., 3] - truth[..., 3]).max()
    pm_err = np.abs(got[..., :3] * got[..., 3:] / 255 - truth[..., :3] * truth[..., 3:] / 255).max()
    assert a_err <= min(tol, 1.0) and pm_err <= tol + 0.5, (
        f"{what}: alpha error {a_err}, colour error {pm_err:.2f}"
    )


@pytest.mark.parametrize("variant", PNG_VARIANTS)
def test_png_input_of_every_colour_type_survives_png_output(variant):
    data, truth = png_variant(variant)
    res = appliance.transcode_image(data, format="png")
    assert (res.width, res.height) == (W, H)
    # 16 bits: rounding or truncating to 8 (1), then premultiplied rounding (1)
    tol = 2.0 if "16" in variant else 0.5
    assert_rgba_close(rgba_array(res.data), truth, tol, variant)


@pytest.mark.parametrize("variant", PNG_VARIANTS)
def test_png_input_of_every_colour_type_survives_lossless_webp(variant):
    data, truth = png_variant(variant)
    out = appliance.transcode(data, format="webp", lossless=True)
    tol = 2.0 if "16" in variant else 0.5
    assert_rgba_close(rgba_array(out), truth, tol, variant)


@pytest.mark.parametrize("variant", PNG_VARIANTS)
def test_png_input_flattens_onto_background_for_jpeg(variant):
    data, truth = png_variant(variant)
    bg = np.array([0.0, 0.0, 255.0])
    out = appliance.transcode(data, format="jpeg", quality=95, chroma="444", background=(0, 0, 255))
    a = truth[..., 3:] / 255
    want = truth[..., :3] * a + bg * (1 - a)
    O.compare(
        out,
        want,
        min_psnr=30.0,
        min_ssim=0.9,
        group="png variants -> jpeg flattened",
        label=variant,
    )


@pytest.fixture(scope="session")
def alpha_photo() -> Image.Image:
    im = I.detail_image(240, 160, seed=5).convert("RGBA")
    a = np.asarray(im).copy()
    a[:, 120:, :3] = (255, 0, 255)  # hidden colour under alpha 0
    a[:, 120:, 3] = 0
    a[:, 100:120, 3] = np.linspace(255, 0, 20).round().astype(np.uint8)
    return Image.fromarray(a, "RGBA")


WEBP_INPUTS = {
    "lossy": lambda p, a: I.encode(p, "WEBP", quality=90),
    "lossless": lambda p, a: I.encode(p, "WEBP", lossless=True),
    "lossy-alpha": lambda p, a: I.encode(a, "WEBP", quality=90),
    "lossless-alpha": lambda p, a: I.encode(a, "WEBP", lossless=True),
}


@pytest.mark.parametrize("kind", list(WEBP_INPUTS))
def test_webp_input_decodes_like_pillow(kind, base_photo, alpha_photo, save):
    data = save(f"in_{kind}.webp", WEBP_INPUTS[kind](base_photo, alpha_photo))
    assert (O.open_image(data).mode == "RGBA") is ("alpha" in kind)
    res = appliance.transcode_image(data, format="png")
    assert res.format == "png"
    got, ref = (
        rgba_array(res.data),
        np.asarray(O.open_image(data).convert("RGBA")).astype(np.float64),
    )
    if kind.startswith("lossless"):
        assert_rgba_close(got, ref, 0.5, kind)
    else:
        assert np.abs(got[..., 3] - ref[..., 3]).max() <= 1, "alpha changed"
        O.compare(
            got[..., :3] * got[..., 3:] / 255,
            ref[..., :3] * ref[..., 3:] / 255,
            min_psnr=36.0,
            min_ssim=0.98,
            group="webp input full size",
            label=kind,
        )


def test_animated_gif_gives_its_first_frame(save):
    frames = [Image.new("RGB", (64, 48), c) for c in [(200, 30, 30), (30, 200, 30), (30, 30, 200)]]
    data = save(
        "anim.gif",
        I.encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0),
    )
    res = appliance.transcode_image(data)
    assert res.format == "png" and (res.width, res.height) == (64, 48)
    got = O.mean_colour(O.open_image(res.data).convert("RGB"))
    assert np.abs(got - (200, 30, 30)).max() <= 3, f"mean colour {got.round()}: not the first frame"


@pytest.mark.parametrize("interlace", [True, False], ids=["interlaced", "not-interlaced"])
def test_gif_transparency_becomes_alpha(interlace, save):
    a = np.zeros((48, 64), np.uint8)
    a[:, 32:] = 1
    a[10:20, 5:15] = 2
    im = Image.fromarray(a, "P")
    im.putpalette([0, 0, 0, 250, 250, 0, 0, 120, 255] + [0] * 759)
    data = save(f"trns_{interlace}.gif", I.encode(im, "GIF", transparency=0, interlace=interlace))
    out = appliance.transcode(data, format="png")
    got = rgba_array(out)
    assert (got[:, :32][a[:, :32] == 0][:, 3] == 0).all(), "transparent index is not transparent"
    assert (got[:, 32:, 3] == 255).all()
    assert np.abs(got[:, 40, :3] - (250, 250, 0)).max() <= 1
    assert np.abs(got[15, 10] - (0, 120, 255, 255)).max() <= 1


@pytest.mark.parametrize("fmt", ["png", "webp", "avif"])
def test_alpha_survives_to_formats_that_have_it(fmt, alpha_photo):
    """PNG keeps alpha exactly, WebP (lossless alpha plane by default) within 2, AVIF (a lossy
    alpha plane) with PSNR >= 30 on the alpha plane."""
    src = I.encode(alpha_photo, "PNG")
    out = appliance.transcode(src, format=fmt)
    if fmt == "avif" and not O.avif_decodes():
        pytest.skip("this Pillow cannot decode AVIF")
    im = O.open_image(out)
    assert im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info, (
        f"{fmt} lost alpha ({im.mode})"
    )
    got = rgba_array(out)
    want = np.asarray(alpha_photo).astype(np.float64)
    err = np.abs(got[..., 3] - want[..., 3])
    if fmt == "avif":
        assert O.psnr(got[..., 3], want[..., 3]) >= 30.0, f"alpha mean error {err.mean():.2f}"
    else:
        assert err.max() <= (0 if fmt == "png" else 2), f"alpha changed by up to {err.max()}"


@pytest.mark.parametrize("width", [None, 120], ids=["full", "w120"])
def test_alpha_flattens_onto_background_for_jpeg(width, alpha_photo):
    """Fully transparent pixels become `background` (not their hidden magenta)."""
    src = I.encode(alpha_photo, "PNG")
    res = appliance.transcode_image(
        src, format="jpeg", quality=95, background=(0, 0, 255), width=width
    )
    a = O.array(res.data)
    w = res.width
    right = a[:, int(w * 0.55) :][4:-4, 4:-4]
    assert np.abs(right.reshape(-1, 3).mean(0) - (0, 0, 255)).max() <= 3
    assert np.abs(right - (0, 0, 255)).max() <= 16, "transparent area is not the background colour"
    left = a[:, : int(w * 0.38)]
    ref = O.reference(src, (res.width, res.height)).crop((0, 0, int(w * 0.38), res.height))
    O.compare(
        left,
        ref,
        min_psnr=30.0,
        min_ssim=0.93,
        group="alpha flatten opaque part",
        label=f"w{width}" if width else "full",
    )


def test_half_transparent_pixels_blend_with_background():
    src = I.encode(Image.new("RGBA", (64, 64), (200, 0, 0, 128)), "PNG")
    out = appliance.transcode(src, format="jpeg", quality=95, chroma="444", background=(0, 0, 255))
    got = O.mean_colour(O.open_image(out))
    want = np.array([200 * 128 / 255, 0, 255 * 127 / 255])
    assert np.abs(got - want).max() <= 3, f"{got.round()} vs {want.round()}"


def test_resizing_alpha_does_not_bleed_the_hidden_colour():
    """White opaque next to transparent black: a resampler that ignores alpha darkens the
    edge. Premultiplied resizing keeps every visible pixel white."""
    a = np.zeros((90, 90, 4), np.uint8)
    a[:, :45] = (255, 255, 255, 255)
    src = I.encode(Image.fromarray(a, "RGBA"), "PNG")
    out = appliance.transcode(src, format="png", width=30)
    got = rgba_array(out)
    visible = got[..., 3] >= 16
    assert visible.any()
    assert got[visible][:, :3].min() >= 235, "dark fringe: RGB was resized without its alpha"


@pytest.mark.parametrize(
    "wrap", [bytes, bytearray, memoryview], ids=["bytes", "bytearray", "memoryview"]
)
def test_accepts_any_bytes_like(wrap, small_photo_jpeg):
    assert appliance.transcode(wrap(small_photo_jpeg), width=64) == appliance.transcode(
        small_photo_jpeg, width=64
    )


def test_accepts_a_memoryview_slice_at_an_offset(small_photo_jpeg):
    buf = b"garbage-prefix" + small_photo_jpeg + b"suffix"
    view = memoryview(buf)[14 : 14 + len(small_photo_jpeg)]
    assert appliance.transcode(view, width=64) == appliance.transcode(small_photo_jpeg, width=64)

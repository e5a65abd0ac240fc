"""Generators for the native test suite: every picture and file the tests need, made at
test time (with Pillow, numpy and `cjpeg` from libjpeg-turbo-progs); byte-level surgery
lives in containers.py. Nothing here touches `appliance`.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from containers import patch_adobe_transform
from PIL import Image

BASE_SIZE = (637, 401)  # the base photo: odd, not a multiple of any MCU size
ORIENT_SIZE = (203, 131)  # stored size of the orientation fixtures

# --------------------------------------------------------------------------------------
# JPEG layouts

# layout name -> cjpeg arguments; the names match `probe().subsampling`.
LAYOUTS: dict[str, list[str]] = {
    "420": ["-sample", "2x2"],
    "422": ["-sample", "2x1"],
    "440": ["-sample", "1x2"],
    "444": ["-sample", "1x1"],
    "411": ["-sample", "4x1"],
    "gray": ["-grayscale"],
}

# luma sampling factors (h, v) that each layout writes into SOF
LUMA_SAMPLING: dict[str, tuple[int, int]] = {
    "420": (2, 2),
    "422": (2, 1),
    "440": (1, 2),
    "444": (1, 1),
    "411": (4, 1),
}

CODINGS: dict[str, list[str]] = {
    "baseline": [],
    "progressive": ["-progressive"],
    "restart": ["-restart", "1"],
}


def have_cjpeg() -> bool:
    return shutil.which("cjpeg") is not None


def cjpeg(
    im: Image.Image,
    layout: str,
    coding: str = "baseline",
    quality: int = 95,
    extra: list[str] | None = None,
) -> bytes:
    """Encode `im` with libjpeg-turbo's cjpeg in the given chroma layout and coding."""
    if not have_cjpeg():
        raise RuntimeError("cjpeg not found: apt-get install libjpeg-turbo-progs")
    src = im.convert("L" if layout == "gray" else "RGB")
    with tempfile.TemporaryDirectory() as tmp:
        ppm = Path(tmp) / ("in.pgm" if layout == "gray" else "in.ppm")
        out = Path(tmp) / "out.jpg"
        src.save(ppm)
        args = [
            "cjpeg",
            "-quality",
            str(quality),
            *LAYOUTS[layout],
            *CODINGS[coding],
            *(extra or []),
            "-outfile",
            str(out),
            str(ppm),
        ]
        subprocess.run(args, check=True, capture_output=True)
        return out.read_bytes()


def pillow_jpeg(im: Image.Image, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def encode(im: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def cmyk_from_rgb(im: Image.Image) -> Image.Image:
    """A CMYK image with real black generation (K = 255 - max(R, G, B)), not Pillow's K=0."""
    a = np.asarray(im.convert("RGB")).astype(np.float64)
    k = 255.0 - a.max(axis=2)
    denom = np.where(k < 255.0, 255.0 - k, 1.0)
    cmy = (255.0 - a - k[..., None]) / denom[..., None] * 255.0
    cmyk = np.dstack([cmy, k]).round().clip(0, 255).astype(np.uint8)
    return Image.fromarray(cmyk, "CMYK")


def cmyk_jpeg(im: Image.Image, quality: int = 95) -> bytes:
    """Adobe CMYK JPEG as Pillow writes it (APP14 transform 0, inverted values)."""
    return pillow_jpeg(cmyk_from_rgb(im), quality=quality)


def ycck_jpeg(im: Image.Image, quality: int = 95) -> bytes:
    """Adobe YCCK JPEG (APP14 transform 2), which neither cjpeg nor Pillow writes.

    libjpeg decodes YCCK as: (R, G, B) = YCC->RGB(Y, Cb, Cr); stored-inverted CMYK =
    (255-R, 255-G, 255-B, K). Pillow's CMYK ink is 255 - stored, so a pixel with ink
    (c, m, y, k) needs YCC = RGB->YCC(c, m, y) and stored K = 255 - k. Pillow writes CMYK
    components inverted, so we hand it (255-Y, 255-Cb, 255-Cr, k) and then flip the
    Adobe transform flag from 0 to 2. Pillow (libjpeg) decodes the result back to ~ink.
    """
    cmyk = np.asarray(cmyk_from_rgb(im)).astype(np.float64)
    c, m, y, k = (cmyk[..., i] for i in range(4))
    yy = 0.299 * c + 0.587 * m + 0.114 * y
    cb = -0.168735892 * c - 0.331264108 * m + 0.5 * y + 128
    cr = 0.5 * c - 0.418687589 * m - 0.081312411 * y + 128
    planes = np.dstack([255 - yy, 255 - cb, 255 - cr, k]).round().clip(0, 255).astype(np.uint8)
    data = pillow_jpeg(Image.fromarray(planes, "CMYK"), quality=quality)
    return patch_adobe_transform(data, 2)


# --------------------------------------------------------------------------------------
# Synthetic pictures


def detail_image(width: int, height: int, seed: int = 1) -> Image.Image:
    """Smooth colour gradients with shapes and mild texture: has detail, resizes sanely."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    fx = x / max(width - 1, 1)
    fy = y / max(height - 1, 1)
    r = 40 + 180 * fx + 20 * np.sin(fy * 9.0)
    g = 30 + 150 * fy + 30 * np.cos(fx * 7.0 + fy * 3.0)
    b = 200 - 120 * fx * fy + 25 * np.sin((fx + fy) * 13.0)
    img = np.dstack([r, g, b])
    # a few discs and bars with sharp edges
    for _ in range(6):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rad = rng.uniform(0.05, 0.2) * max(width, height)
        col = rng.uniform(0, 255, 3)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < rad**2
        img[mask] = col
    img += rng.normal(0, 4, img.shape)
    return Image.fromarray(img.round().clip(0, 255).astype(np.uint8), "RGB")


def smooth_image(width: int, height: int) -> Image.Image:
    """A plain gradient: tiny images of it survive any chroma layout and codec."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    fx = x / max(width - 1, 1)
    fy = y / max(height - 1, 1)
    img = np.dstack([60 + 140 * fx, 80 + 100 * fy, 180 - 80 * fx])
    return Image.fromarray(img.round().astype(np.uint8), "RGB")


def gentle_image(width: int, height: int) -> Image.Image:
    """Chroma that changes slowly (over ~40 px) under a one-pixel grey checkerboard in luma.

    Tiny images of it have no chroma detail for the layouts to disagree about (so any
    decoder's chroma upsampling gives the same answer), while the luma checkerboard still
    shows every pixel's position.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    ripple = 20.0 * (((x + y) % 2) * 2 - 1)
    img = np.dstack(
        [
            120 + 50 * np.sin(x / 40.0) + ripple,
            110 + 40 * np.cos(y / 40.0) + ripple,
            140 + 40 * np.sin((x + y) / 60.0) + ripple,
        ]
    )
    return Image.fromarray(img.round().clip(0, 255).astype(np.uint8), "RGB")


QUADRANT_COLOURS = {
    "tl": (220, 30, 30),  # red
    "tr": (30, 200, 40),  # green
    "bl": (30, 60, 220),  # blue
    "br": (240, 220, 40),  # yellow
}


def quadrants(width: int, height: int) -> Image.Image:
    """Four flat coloured quadrants; split at width//2 and height//2."""
    a = np.zeros((height, width, 3), np.uint8)
    hx, hy = width // 2, height // 2
    a[:hy, :hx] = QUADRANT_COLOURS["tl"]
    a[:hy, hx:] = QUADRANT_COLOURS["tr"]
    a[hy:, :hx] = QUADRANT_COLOURS["bl"]
    a[hy:, hx:] = QUADRANT_COLOURS["br"]
    return Image.fromarray(a, "RGB")


def asymmetric_image(width: int, height: int) -> Image.Image:
    """Quadrants plus a gradient and an off-centre marker: every flip/rotation differs."""
    q = np.asarray(quadrants(width, height)).astype(np.float64)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    q += (x / width * 30.0)[..., None] - (y / height * 20.0)[..., None]
    # white block near the top-left corner, black bar along the right of the top half
    q[height // 10 : height // 4, width // 10 : width // 3] = 255
    q[: height // 2, width - max(width // 12, 2) :] = 0
    return Image.fromarray(q.round().clip(0, 255).astype(np.uint8), "RGB")


def bands(width: int, height: int, colours: list[tuple[int, int, int]], axis: str) -> Image.Image:
    """Equal flat bands: axis "horizontal" stacks them top to bottom, "vertical" left to right."""
    a = np.zeros((height, width, 3), np.uint8)
    n = len(colours)
    for i, c in enumerate(colours):
        if axis == "horizontal":
            a[i * height // n : (i + 1) * height // n, :] = c
        else:
            a[:, i * width // n : (i + 1) * width // n] = c
    return Image.fromarray(a, "RGB")


# Pillow's exif_transpose applies these to the stored image to get the displayed one.
ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
INVERSE_TRANSPOSE = {
    **ORIENTATION_TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


def stored_for_display(displayed: Image.Image, orientation: int) -> Image.Image:
    """The stored pixels that show as `displayed` under EXIF `orientation`."""
    if orientation == 1:
        return displayed.copy()
    stored = displayed.transpose(INVERSE_TRANSPOSE[orientation])
    check = stored.transpose(ORIENTATION_TRANSPOSE[orientation])
    assert check.tobytes() == displayed.tobytes()
    return stored


# --------------------------------------------------------------------------------------
# The shared corpus (read only, never copied into the repo)

REPO_ROOT = Path(__file__).resolve().parents[2]


def corpus_dir() -> Path | None:
    """`$APPLIANCE_CORPUS`, else ../shared/corpus beside the repo root; None if absent."""
    env = os.environ.get("APPLIANCE_CORPUS")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "corpus"
    return path if path.is_dir() else None


def corpus_files(suffixes: tuple[str, ...] = (".jpg", ".jpeg", ".png")) -> list[Path]:
    d = corpus_dir()
    if d is None:
        return []
    return sorted(p for p in d.iterdir() if p.suffix.lower() in suffixes)

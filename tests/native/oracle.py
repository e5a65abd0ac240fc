"""Pillow as the independent oracle: decode, reference resizes, PSNR and SSIM.

Every comparison goes through `compare`, which records its numbers so the session can
print them (`APPLIANCE_METRICS=1` or `-v`), and which fails with the numbers in the message.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps
from scipy.ndimage import gaussian_filter

Image.MAX_IMAGE_PIXELS = None  # the corpus has 20 MP photos; bombs are only fed to appliance

# (group, label, psnr, ssim): printed at the end of the session
RECORDED: list[tuple[str, str, float, float]] = []


def open_image(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def pillow_decode(data: bytes, autorotate: bool = True) -> Image.Image:
    """Pillow's full-size decode, oriented as displayed (or as stored)."""
    im = open_image(data)
    if autorotate:
        im = ImageOps.exif_transpose(im)
    return im


def as_rgb(im: Image.Image, background: tuple[int, int, int] | None = None) -> Image.Image:
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        if background is not None:
            base = Image.new("RGBA", im.size, (*background, 255))
            return Image.alpha_composite(base, im).convert("RGB")
    if im.mode == "I;16":
        a = np.asarray(im).astype(np.float64) / 257.0
        return Image.fromarray(a.round().astype(np.uint8), "L").convert("RGB")
    return im.convert("RGB")


def reference(data: bytes, size: tuple[int, int], autorotate: bool = True) -> Image.Image:
    """Pillow decode (+ EXIF orientation) resized with Lanczos to `size`."""
    im = as_rgb(pillow_decode(data, autorotate))
    if im.size != size:
        im = im.resize(size, Image.Resampling.LANCZOS)
    return im


def float_lanczos(im: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Per-channel Lanczos in float (Pillow mode "F"): no 8-bit rounding between passes."""
    chans = [
        np.asarray(c.convert("F").resize(size, Image.Resampling.LANCZOS))
        for c in as_rgb(im).split()
    ]
    return np.dstack(chans).clip(0, 255)


def array(im: Image.Image | np.ndarray | bytes) -> np.ndarray:
    if isinstance(im, (bytes, bytearray)):
        im = open_image(bytes(im))
    if isinstance(im, Image.Image):
        im = np.asarray(as_rgb(im))
    return np.asarray(im, dtype=np.float64)


def luma(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        return a
    return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004, Gaussian window sigma 1.5) of two 2-D arrays in 0..255."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    if min(a.shape) < 7:  # too small for the window: fall back to a global SSIM
        mu_a, mu_b = a.mean(), b.mean()
        va, vb = a.var(), b.var()
        cov = ((a - mu_a) * (b - mu_b)).mean()
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        return float(
            ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
        )
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    f = lambda x: gaussian_filter(x, 1.5, truncate=3.5)  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    saa = f(a * a) - mu_a**2
    sbb = f(b * b) - mu_b**2
    sab = f(a * b) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return float(m.mean())


@dataclass(frozen=True)
class Metrics:
    psnr: float
    ssim: float

    def __str__(self) -> str:
        return f"PSNR {self.psnr:.2f} dB, SSIM(luma) {self.ssim:.4f}"


def measure(
    ours: Image.Image | np.ndarray | bytes, ref: Image.Image | np.ndarray | bytes
) -> Metrics:
    a, b = array(ours), array(ref)
    if a.shape != b.shape:
        raise AssertionError(f"size differs: ours {a.shape[1::-1]}, reference {b.shape[1::-1]}")
    return Metrics(psnr(a, b), ssim(luma(a), luma(b)))


def compare(
    ours: Image.Image | np.ndarray | bytes,
    ref: Image.Image | np.ndarray | bytes,
    *,
    min_psnr: float,
    min_ssim: float,
    group: str,
    label: str = "",
) -> Metrics:
    """Assert ours is within tolerance of the reference; record the numbers."""
    m = measure(ours, ref)
    RECORDED.append((group, label, m.psnr, m.ssim))
    assert m.psnr >= min_psnr and m.ssim >= min_ssim, (
        f"{group} {label}: {m} below the tolerance (PSNR >= {min_psnr}, SSIM >= {min_ssim})"
    )
    return m


def mean_colour(
    im: Image.Image | np.ndarray, box: tuple[float, float, float, float] = (0.2, 0.2, 0.8, 0.8)
) -> np.ndarray:
    """Mean RGB of the central part of an image; box in fractions (x0, y0, x1, y1)."""
    a = array(im) if isinstance(im, Image.Image) else np.asarray(im, np.float64)
    h, w = a.shape[:2]
    x0, y0 = int(w * box[0]), int(h * box[1])
    x1, y1 = max(int(w * box[2]), x0 + 1), max(int(h * box[3]), y0 + 1)
    return a[y0:y1, x0:x1].reshape(-1, a.shape[2] if a.ndim == 3 else 1).mean(axis=0)


def summary() -> list[str]:
    """One line per group: count and the worst PSNR/SSIM seen."""
    groups: dict[str, list[tuple[str, float, float]]] = {}
    for g, label, p, s in RECORDED:
        groups.setdefault(g, []).append((label, p, s))
    lines = []
    for g, rows in sorted(groups.items()):
        worst_p = min(rows, key=lambda r: r[1])
        worst_s = min(rows, key=lambda r: r[2])
        med_p = float(np.median([r[1] for r in rows if np.isfinite(r[1])] or [float("inf")]))
        lines.append(
            f"{g:<34} n={len(rows):<4} PSNR min {worst_p[1]:6.2f} ({worst_p[0]})"
            f" median {med_p:6.2f} | SSIM min {worst_s[2]:.4f} ({worst_s[0]})"
        )
    return lines


def avif_decodes() -> bool:
    """Whether this Pillow can decode AVIF (Pillow >= 11.2 built with libavif)."""
    from PIL import features

    return bool(features.check("avif"))

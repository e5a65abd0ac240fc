"""SSIM on luma against a float Lanczos reference.

Reference: the source decoded at full size by Pillow (EXIF orientation applied, as every peer
does), each RGB channel resized in float32 (mode "F", Lanczos) to exactly the peer's output
size, clamped to 0..255, then BT.601 luma. SSIM after Wang et al. 2004: Gaussian window
sigma 1.5 (11x11), K1 0.01, K2 0.03, L 255, mean over the map without its 5-pixel border.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps
from scipy.ndimage import gaussian_filter

Plane = npt.NDArray[np.float64]

_SIGMA = 1.5
_TRUNCATE = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5: the 11x11 window
_BORDER = 5
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
_BT601 = (0.299, 0.587, 0.114)


class Reference:
    """A source decoded once at full size, resized on demand (cached per output size)."""

    def __init__(self, path: Path) -> None:
        with Image.open(path) as im:
            rgb = ImageOps.exif_transpose(im).convert("RGB")
        self._channels = [c.convert("F") for c in rgb.split()]
        self._luma: dict[tuple[int, int], Plane] = {}

    def luma(self, size: tuple[int, int]) -> Plane:
        if size not in self._luma:
            planes = [
                np.clip(np.asarray(c.resize(size, Image.Resampling.LANCZOS), np.float64), 0, 255)
                for c in self._channels
            ]
            r, g, b = planes
            self._luma[size] = _BT601[0] * r + _BT601[1] * g + _BT601[2] * b
        return self._luma[size]


def decode_luma(data: bytes) -> Plane:
    """A peer's output decoded by Pillow, as BT.601 luma (grayscale output is its own luma)."""
    with Image.open(io.BytesIO(data)) as im:
        rgb = np.asarray(im.convert("RGB"), np.float64)
    luma: Plane = rgb @ np.asarray(_BT601)
    return luma


def ssim(a: Plane, b: Plane) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")

    def blur(x: Plane) -> Plane:
        blurred: Plane = gaussian_filter(x, _SIGMA, truncate=_TRUNCATE)
        return blurred

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + _C1) * (2 * cov + _C2)
    den = (mu_a * mu_a + mu_b * mu_b + _C1) * (var_a + var_b + _C2)
    smap = num / den
    if min(smap.shape) > 2 * _BORDER:
        smap = smap[_BORDER:-_BORDER, _BORDER:-_BORDER]
    return float(smap.mean())

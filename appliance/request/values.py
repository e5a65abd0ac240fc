"""Readers for single parameter values: numbers, sizes, booleans, colours, rectangles.

Each takes the parameter's name as the client wrote it (for the message) and the decoded text,
and returns a normalised value or raises :class:`BadParameter`. Numbers are read as exact
decimals (``Fraction``), so ``400``, ``400.0`` and ``0400`` are the same value and no float
rounding can make two spellings of one URL differ.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from appliance.request.errors import BadParameter, show

Rgba = tuple[int, int, int, int]

# Plain decimals only: no sign, exponent, "nan", "inf", underscores or spaces (which float()
# would accept), and short enough that no value can overflow a C++ int.
_DECIMAL = re.compile(r"\d{1,9}(?:\.\d{1,9})?|\.\d{1,9}")
_HEX = re.compile(r"[0-9a-f]+")
_CACHE_BUSTER = re.compile(r"[A-Za-z0-9._~-]{1,64}")
_HALF = Fraction(1, 2)
MIN_DPR = Fraction(1, 2)

_TRUE = frozenset({"1", "true"})
_FALSE = frozenset({"0", "false"})

# CSS level 2's sixteen basic colours, plus the few names people actually type.
CSS_COLOURS: dict[str, Rgba] = {
    "black": (0, 0, 0, 255),
    "silver": (192, 192, 192, 255),
    "gray": (128, 128, 128, 255),
    "grey": (128, 128, 128, 255),
    "white": (255, 255, 255, 255),
    "maroon": (128, 0, 0, 255),
    "red": (255, 0, 0, 255),
    "purple": (128, 0, 128, 255),
    "fuchsia": (255, 0, 255, 255),
    "magenta": (255, 0, 255, 255),
    "green": (0, 128, 0, 255),
    "lime": (0, 255, 0, 255),
    "olive": (128, 128, 0, 255),
    "yellow": (255, 255, 0, 255),
    "navy": (0, 0, 128, 255),
    "blue": (0, 0, 255, 255),
    "teal": (0, 128, 128, 255),
    "aqua": (0, 255, 255, 255),
    "cyan": (0, 255, 255, 255),
    "orange": (255, 165, 0, 255),
    "transparent": (0, 0, 0, 0),
}


def decimal(text: str) -> Fraction | None:
    """The exact value of a plain decimal (``400``, ``0.5``, ``.5``), or None."""
    if _DECIMAL.fullmatch(text) is None:
        return None
    return Fraction(text)


def round_half_up(value: Fraction) -> int:
    """Round to the nearest integer, halves away from zero (for the non-negative values here)."""
    return math.floor(value + _HALF)


def _is_source_fraction(text: str, value: Fraction) -> bool:
    """``0<v<=1`` written with a decimal point means a fraction of the source (url-api.md);
    a plain ``1`` is one pixel."""
    return "." in text and 0 < value <= 1


def size(name: str, text: str, max_dimension: int) -> Fraction:
    """A width or height in CSS pixels, before dpr: 1 to ``max_dimension``, decimals allowed."""
    value = decimal(text)
    if value is not None and _is_source_fraction(text, value):
        raise BadParameter(
            f"{name} as a fraction of the source (0<{name}<=1) is not supported yet, "
            f"got {show(text)}"
        )
    if value is None or not 1 <= value <= max_dimension:
        raise BadParameter(f"{name} must be a number of pixels 1-{max_dimension}, got {show(text)}")
    return value


def dpr(name: str, text: str, max_dpr: float) -> Fraction:
    """A device pixel ratio 0.5 to ``max_dpr``, rounded to the nearest 0.05."""
    value = decimal(text)
    if value is None or not MIN_DPR <= value <= Fraction(str(max_dpr)):
        raise BadParameter(f"{name} must be a number 0.5-{max_dpr:g}, got {show(text)}")
    return Fraction(round_half_up(value * 20), 20)


def integer(name: str, text: str, low: int, high: int) -> int:
    """A whole number in ``[low, high]``; ``80``, ``080`` and ``80.0`` are all 80."""
    value = decimal(text)
    if value is None or value.denominator != 1 or not low <= value <= high:
        raise BadParameter(f"{name} must be an integer {low}-{high}, got {show(text)}")
    return int(value)


def boolean(name: str, text: str) -> bool:
    """``1``/``true`` or ``0``/``false``, any case."""
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise BadParameter(f"{name} must be 0 or 1 (or true/false), got {show(text)}")


def colour(name: str, text: str) -> Rgba:
    """``rgb``, ``argb``, ``rrggbb``, ``aarrggbb`` hex (an optional leading ``#``; alpha first,
    as imgix writes it), or a CSS colour name. Returns (r, g, b, a)."""
    lowered = text.lower()
    if lowered in CSS_COLOURS:
        return CSS_COLOURS[lowered]
    digits = lowered.removeprefix("#")
    if _HEX.fullmatch(digits) is not None:
        if len(digits) in (3, 4):
            digits = "".join(c + c for c in digits)
        if len(digits) == 6:
            digits = "ff" + digits
        if len(digits) == 8:
            a, r, g, b = (int(digits[i : i + 2], 16) for i in range(0, 8, 2))
            return (r, g, b, a)
    raise BadParameter(
        f"{name} must be a hex colour (rgb, argb, rrggbb, aarrggbb) or a CSS colour name, "
        f"got {show(text)}"
    )


def is_coordinates(text: str) -> bool:
    """True when a comma list looks like numbers (``crop=x,y,w,h``) rather than words."""
    return any(decimal(item.strip()) is not None for item in text.split(","))


def rect(name: str, text: str) -> tuple[int, int, int, int]:
    """``x,y,w,h`` in source pixels: x, y >= 0 and w, h >= 1. Decimals above 1 are rounded;
    fractions of the source (``0.5``) are not supported yet."""
    items = [item.strip() for item in text.split(",")]
    values = [decimal(item) for item in items]
    if len(values) == 4 and all(v is not None for v in values):
        exact = [v for v in values if v is not None]
        if any(_is_source_fraction(t, v) for t, v in zip(items, exact, strict=True)):
            raise BadParameter(
                f"{name} as fractions of the source (0-1) is not supported yet, got {show(text)}"
            )
        x, y, w, h = (round_half_up(v) for v in exact)
        if w >= 1 and h >= 1:
            return (x, y, w, h)
    raise BadParameter(f"{name} must be x,y,w,h in pixels (x,y >= 0, w,h >= 1), got {show(text)}")


def cache_buster(name: str, text: str) -> str | None:
    """1-64 URL-safe characters (A-Z a-z 0-9 . _ ~ -), or None for an empty value. The charset
    keeps ``&`` and ``=`` out of ``Transform.canonical()``, so no value can forge another key."""
    if text == "":
        return None
    if _CACHE_BUSTER.fullmatch(text) is None:
        raise BadParameter(
            f"{name} must be 1-64 characters from A-Z a-z 0-9 . _ ~ -, got {show(text)}"
        )
    return text

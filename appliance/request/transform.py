"""The canonical description of one output image: what a URL asks for, after aliases, defaults
and normalisation. Two URLs that mean the same image have equal Transforms and the same
``canonical()`` string, which (with the source's identity and the output format) is the cache key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Fit = Literal["inside", "cover", "pad", "stretch"]
Gravity = Literal["center", "top", "bottom", "left", "right"]
OutputFormat = Literal["jpeg", "png", "webp", "avif"]
RequestedFormat = Literal["jpeg", "png", "webp", "avif", "auto", "original"]


@dataclass(frozen=True, slots=True)
class Transform:
    """Everything that changes the output bytes. Defaults mean "not asked for"."""

    width: int | None = None  # output pixels, dpr already applied
    height: int | None = None
    fit: Fit = "inside"
    gravity: Gravity = "center"
    rect: tuple[int, int, int, int] | None = None  # source crop in displayed pixels
    upscale: bool = False
    format: RequestedFormat | None = None  # None: the source's format family
    quality: int | None = None  # None: the per-format default from the config
    progressive: bool = False
    chroma: Literal["420", "444"] | None = None
    lossless: bool = False
    background: tuple[int, int, int, int] = (255, 255, 255, 255)
    autorotate: bool = True
    icc: Literal["keep", "srgb", "strip"] = "keep"
    cache_buster: str | None = None  # v= / cb=: part of the key, no effect on pixels

    @property
    def is_identity(self) -> bool:
        """True when the URL asked for nothing: the original may be passed through."""
        return self == Transform(cache_buster=self.cache_buster)

    def canonical(self) -> str:
        """A stable, sorted ``name=value&...`` string of the non-default fields."""
        default = Transform()
        parts: list[str] = []
        for name in sorted(self.__dataclass_fields__):
            value = getattr(self, name)
            if value == getattr(default, name):
                continue
            if isinstance(value, bool):
                text = "1" if value else "0"
            elif isinstance(value, tuple):
                text = ",".join(str(v) for v in value)
            else:
                text = str(value)
            parts.append(f"{name}={text}")
        return "&".join(parts)

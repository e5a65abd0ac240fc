"""The one door to ``appliance._native``.

Arguments are checked and turned into the extension's enums here; the C++ core then
runs with the GIL released and returns a status, which becomes one of the
``appliance.errors`` kinds. Nothing else in the package imports ``_native``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn, TypeVar

from appliance import _native
from appliance.errors import (
    CorruptImageError,
    ImageTooLargeError,
    TranscodeError,
    UnsupportedImageError,
)

Fit = Literal["inside", "cover", "pad", "stretch"]
Gravity = Literal["center", "top", "bottom", "left", "right"]
OutputFormat = Literal["jpeg", "png", "webp", "avif"]
IccMode = Literal["keep", "srgb", "strip"]
ChromaMode = Literal["420", "444"]

T = TypeVar("T")

MAX_DIMENSION = 16384
DEFAULT_MAX_SOURCE_PIXELS = 50_000_000
DEFAULT_MAX_OUTPUT_PIXELS = 16_777_216

_FITS = {
    "inside": _native.Fit.INSIDE,
    "cover": _native.Fit.COVER,
    "pad": _native.Fit.PAD,
    "stretch": _native.Fit.STRETCH,
}
_GRAVITIES = {
    "center": _native.Gravity.CENTER,
    "top": _native.Gravity.TOP,
    "bottom": _native.Gravity.BOTTOM,
    "left": _native.Gravity.LEFT,
    "right": _native.Gravity.RIGHT,
}
_FORMATS = {
    None: _native.Format.SAME,
    "jpeg": _native.Format.JPEG,
    "jpg": _native.Format.JPEG,
    "png": _native.Format.PNG,
    "webp": _native.Format.WEBP,
    "avif": _native.Format.AVIF,
}
_ICC = {"keep": _native.IccMode.KEEP, "srgb": _native.IccMode.SRGB, "strip": _native.IccMode.STRIP}
_CHROMA = {None: _native.Chroma.AUTO, "420": _native.Chroma.C420, "444": _native.Chroma.C444}
_ERRORS: dict[str, type[TranscodeError]] = {
    "unsupported": UnsupportedImageError,
    "corrupt": CorruptImageError,
    "too_large": ImageTooLargeError,
}
_MIME_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
}

LIBJPEG_TURBO_VERSION: str = _native.libjpeg_turbo_version


@dataclass(frozen=True, slots=True)
class Result:
    """One transcoded image."""

    data: bytes
    format: str
    width: int
    height: int
    timings: dict[str, float]  # seconds per step: decode, resize, encode

    @property
    def mime_type(self) -> str:
        return _MIME_TYPES[self.format]


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What an image's header says."""

    format: str
    width: int  # as stored, before EXIF orientation
    height: int
    orientation: int
    has_alpha: bool
    has_icc: bool
    progressive: bool
    subsampling: str


def _choice(name: str, value: object, table: Mapping[Any, T]) -> T:
    try:
        return table[value]
    except (KeyError, TypeError):
        allowed = ", ".join(repr(k) for k in table if k is not None)
        raise ValueError(f"{name} must be one of {allowed}, not {value!r}") from None


def _int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {value}")
    return value


def _colour(value: Sequence[int]) -> tuple[int, int, int, int]:
    channels = tuple(value)
    if len(channels) not in (3, 4):
        raise ValueError(f"background must be (r, g, b) or (r, g, b, a), not {value!r}")
    for c in channels:
        _int("background channel", c, 0, 255)
    return (channels[0], channels[1], channels[2], channels[3] if len(channels) == 4 else 255)


def _options(
    *,
    width: int | None,
    height: int | None,
    fit: Fit,
    gravity: Gravity,
    rect: Sequence[int] | None,
    upscale: bool,
    format: OutputFormat | None,
    quality: int | None,
    progressive: bool,
    optimize: bool,
    chroma: ChromaMode | None,
    lossless: bool,
    effort: int | None,
    icc: IccMode,
    autorotate: bool,
    background: Sequence[int],
    max_source_pixels: int,
    max_output_pixels: int,
) -> _native.TranscodeOptions:
    o = _native.TranscodeOptions()
    o.width = 0 if width is None else _int("width", width, 1, MAX_DIMENSION)
    o.height = 0 if height is None else _int("height", height, 1, MAX_DIMENSION)
    o.fit = _choice("fit", fit, _FITS)
    o.gravity = _choice("gravity", gravity, _GRAVITIES)
    if rect is not None:
        parts = tuple(rect)
        if len(parts) != 4:
            raise ValueError(f"rect must be (x, y, w, h), not {rect!r}")
        x, y, w, h = (_int("rect", v, 0, 1 << 20) for v in parts)
        if w == 0 or h == 0:
            raise ValueError("rect width and height must be at least 1")
        o.rect = (x, y, w, h)
    o.upscale = bool(upscale)
    o.format = _choice("format", format, _FORMATS)
    o.quality = 0 if quality is None else _int("quality", quality, 1, 100)
    o.progressive = bool(progressive)
    o.optimize = bool(optimize)
    o.chroma = _choice("chroma", chroma, _CHROMA)
    o.lossless = bool(lossless)
    o.effort = -1 if effort is None else _int("effort", effort, 0, 9)
    o.icc = _choice("icc", icc, _ICC)
    o.autorotate = bool(autorotate)
    o.background = _colour(background)
    o.max_source_pixels = _int("max_source_pixels", max_source_pixels, 1, 1 << 40)
    o.max_output_pixels = _int("max_output_pixels", max_output_pixels, 1, 1 << 40)
    return o


def _raise(error: Exception) -> NoReturn:
    code, message = error.args
    if code == "invalid_argument":
        raise ValueError(message) from None
    raise _ERRORS.get(code, TranscodeError)(message) from None


def transcode_image(
    data: bytes | bytearray | memoryview,
    *,
    width: int | None = None,
    height: int | None = None,
    fit: Fit = "inside",
    gravity: Gravity = "center",
    rect: Sequence[int] | None = None,
    upscale: bool = False,
    format: OutputFormat | None = None,
    quality: int | None = None,
    progressive: bool = False,
    optimize: bool = False,
    chroma: ChromaMode | None = None,
    lossless: bool = False,
    effort: int | None = None,
    icc: IccMode = "keep",
    autorotate: bool = True,
    background: Sequence[int] = (255, 255, 255),
    max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS,
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
) -> Result:
    """Resizes and re-encodes one image; see docs/api.md for every option."""
    options = _options(
        width=width,
        height=height,
        fit=fit,
        gravity=gravity,
        rect=rect,
        upscale=upscale,
        format=format,
        quality=quality,
        progressive=progressive,
        optimize=optimize,
        chroma=chroma,
        lossless=lossless,
        effort=effort,
        icc=icc,
        autorotate=autorotate,
        background=background,
        max_source_pixels=max_source_pixels,
        max_output_pixels=max_output_pixels,
    )
    try:
        out, fmt, w, h, (decode, resize, encode) = _native.transcode(data, options)
    except _native.NativeError as e:
        _raise(e)
    return Result(out, fmt, w, h, {"decode": decode, "resize": resize, "encode": encode})


def transcode(data: bytes | bytearray | memoryview, **options: Any) -> bytes:
    """Like :func:`transcode_image`, returning only the encoded bytes."""
    return transcode_image(data, **options).data


def probe(data: bytes | bytearray | memoryview) -> ImageInfo:
    """Reads an image's header without decoding its pixels."""
    try:
        info = _native.probe(data)
    except _native.NativeError as e:
        _raise(e)
    return ImageInfo(**info)  # type: ignore[arg-type]


def decode_floor(
    data: bytes | bytearray | memoryview, width: int | None = None, height: int | None = None
) -> tuple[int, int]:
    """Decodes a JPEG to planes at the DCT scale ``transcode`` would use for an
    inside-fit into the box, and nothing else: the benchmark's floor."""
    try:
        w, h = _native.decode_floor(data, width or 0, height or 0)
    except _native.NativeError as e:
        _raise(e)
    return w, h


def decode_planes(
    data: bytes | bytearray | memoryview,
    width: int | None = None,
    height: int | None = None,
    *,
    shortcuts: bool = True,
    half_chroma: bool = False,
) -> list[tuple[int, int, bytes]]:
    """The JPEG's planes as ``transcode`` decodes them for that box (``shortcuts``
    on: our own decoders at 1/8 and from 1/4 to 1/2; ``half_chroma`` as for an
    output with 4:2:0 chroma) or as plain libjpeg-turbo does (off).
    For tests: ``[(width, height, pixels), ...]`` per plane, rows packed."""
    try:
        planes: list[tuple[int, int, bytes]] = _native.decode_planes(
            data, width or 0, height or 0, shortcuts, half_chroma
        )
    except _native.NativeError as e:
        _raise(e)
    return planes

"""URL → :class:`ParsedRequest`: the object key and the canonical :class:`Transform`.

Imagizer's parameter names are canonical, imgix's are aliases (url-api.md 10.1). Every alias
becomes its canonical name, values are normalised and settings that cannot change the output are
dropped, so two URLs that mean the same image give equal Transforms and one ``canonical()``.

Rules where the spec is silent, in one place:

* A parameter given twice, under any of its names, is a 400 (``w=1&width=2`` is ambiguous, and
  two caches that resolved it differently would disagree). imgix's ``auto`` is the exception: its
  values add up (``auto=format&auto=compress``), as imgix documents.
* Explicit beats implied: ``upscale=0`` wins over ``fit=clip``, ``progressive=0`` over ``fm=pjpg``.
* ``width``/``height`` accept decimals (CSS pixels); the result of ``dpr`` is rounded half up. A
  value 0<v<=1 written with a decimal point is a fraction of the source: a 400 "not supported
  yet" in every mode, since ignoring it would serve the full-size image. ``w=1`` is one pixel.
* After ``dpr``, a box over ``max_dimension`` is scaled down whole, keeping its aspect ratio.
* ``dpr`` without ``width`` or ``height`` has no effect (``scale`` is not supported yet).
* Features we cannot do yet, whole parameters (``parameters.NOT_SUPPORTED_YET``) or single
  values (``parameters.NOT_SUPPORTED_YET_VALUES``): a 400 in strict mode, else ignored as if
  absent and listed in ``ParsedRequest.ignored``. Unknown parameters likewise. A bad value is a
  400 in every mode.
* ``crop=face`` and the other content-aware crops (no detector yet) fall through the comma list to
  the next item, then to ``center``; never an error. imgix corner anchors (``crop=top,left``)
  keep their first side: the transcoder has no corner gravity.
* imgix ``fit``: clip, crop, scale and fill enlarge; max, min and fillmax do not (url-api.md
  marks only the latter "no-enlarge"). ``crop=x,y,w,h`` is read as ``rect`` in every dialect;
  both at once is a 400.
* Parameter names are case-sensitive (``W`` is unknown); enum values are not (``fm=WEBP``).
  Booleans are ``1``/``0``/``true``/``false``. ``fm=png32`` is ``png``; ``cs=origin`` is
  ``keep`` and ``cs=tinysrgb`` is ``srgb``.
* ``v``/``cb`` is 1-64 of ``A-Z a-z 0-9 . _ ~ -``: an ``&`` or ``=`` in it could forge another
  Transform's ``canonical()`` and poison that cache entry.
* Normalisation drops what cannot change the bytes: fit, gravity and upscale without a box;
  gravity unless cover; progressive unless JPEG may be written; chroma for PNG/WebP; lossless for
  JPEG/PNG; quality for PNG; the background for PNG/WebP/AVIF unless padding.
* ``chromasub=422`` gives 4:4:4: the transcoder writes 4:2:0 or 4:4:4, and 4:4:4 keeps at least
  the chroma asked for.
* ``auto=format`` with ``fm=X`` negotiates, falling back to X instead of the source's family
  (imgix's behaviour); X travels in ``ParsedRequest.fallback_format``.
* Without ``icc``/``cs`` the Transform keeps its default ``keep`` (url-api.md's target default is
  ``srgb``); likewise ``progressive`` defaults to off and ``quality`` to the config's table.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final
from urllib.parse import unquote, unquote_plus

from appliance.request import values
from appliance.request.errors import BadParameter, show
from appliance.request.options import ParseOptions
from appliance.request.parameters import (
    NOT_SUPPORTED_YET,
    NOT_SUPPORTED_YET_VALUES,
    PARAMETERS,
    SIGNING,
)
from appliance.request.transform import Fit, Gravity, OutputFormat, RequestedFormat, Transform

__all__ = [
    "ParseOptions",
    "ParsedRequest",
    "Parser",
    "parse",
    "parse_key",
]

_FORMATS: Final[Mapping[str, RequestedFormat]] = {
    "jpeg": "jpeg",
    "jpg": "jpeg",
    "pjpg": "jpeg",
    "png": "png",
    "png32": "png",
    "webp": "webp",
    "avif": "avif",
    "auto": "auto",
    "original": "original",
}
# imgix fit → (our fit, whether it enlarges). url-api.md names the no-enlarge ones (max, min,
# fillmax); their partners clip, crop, scale and fill enlarge, as in imgix.
_IMGIX_FITS: Final[Mapping[str, tuple[Fit, bool]]] = {
    "clip": ("inside", True),
    "max": ("inside", False),
    "min": ("cover", False),
    "crop": ("cover", True),
    "scale": ("stretch", True),
    "fill": ("pad", True),
    "fillmax": ("pad", False),
}
_SIDES: Final[Mapping[str, Gravity]] = {
    "center": "center",
    "top": "top",
    "bottom": "bottom",
    "left": "left",
    "right": "right",
}
_CONTENT_AWARE: Final = frozenset({"face", "faces", "entropy", "edges", "smart", "focalpoint"})
_SIDE_WORDS: Final = frozenset(_SIDES)
_CROP_WORDS: Final = frozenset({"fit", "pad"}) | _SIDE_WORDS | _CONTENT_AWARE
_ANCHOR_WORDS: Final = _SIDE_WORDS | _CONTENT_AWARE
_ICC: Final[Mapping[str, str]] = {
    "srgb": "srgb",
    "keep": "keep",
    "strip": "strip",
    "origin": "keep",  # imgix: keep the source's colour space
    "tinysrgb": "srgb",  # imgix: sRGB with a compact profile
}
_CHROMA: Final[Mapping[str, str]] = {"420": "420", "444": "444", "422": "444"}


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """What one URL asks for.

    ``key``: the object key, percent-decoded, without the leading ``/``.
    ``transform``: the canonical Transform, dpr applied; its format may be ``"auto"``.
    ``fallback_format``: with ``auto=format`` and ``fm=X``, the X to serve when the client takes
    none of the negotiated formats (pass it to ``negotiate(fallback=...)``); else None.
    ``ignored``: parameters (``name``, or ``name=value`` for a value) that were ignored because
    unknown or not supported yet; always empty in strict mode.
    """

    key: str
    transform: Transform
    fallback_format: OutputFormat | None = None
    ignored: tuple[str, ...] = ()


def parse_key(path: str, max_key_bytes: int = 1024) -> str:
    """The object key of a URL path: one leading ``/`` dropped, percent-decoded once (``+`` is a
    plus sign in a path), and checked: not empty, no NUL, valid UTF-8, at most
    ``max_key_bytes`` bytes."""
    raw = path.removeprefix("/")
    try:
        key = unquote(raw, errors="strict")
        size = len(key.encode("utf-8"))
    except UnicodeError:
        raise BadParameter("key is not valid UTF-8 after percent-decoding") from None
    if not key:
        raise BadParameter("key is empty")
    if "\x00" in key:
        raise BadParameter("key contains a NUL character")
    if size > max_key_bytes:
        raise BadParameter(f"key is longer than {max_key_bytes} bytes")
    return key


def parse(path: str, query: str, *, options: ParseOptions) -> ParsedRequest:
    """Read one request: ``path`` as sent (percent-encoded, with its leading ``/``) and ``query``
    as sent (without the ``?``). Raises :class:`BadParameter` (400)."""
    key = parse_key(path, options.max_key_bytes)
    reader = _Reader(options)
    reader.collect(query)
    transform, fallback = reader.build()
    return ParsedRequest(key, _normalise(transform), fallback, tuple(reader.ignored))


class Parser:
    """:func:`parse` with one set of options, remembering its last ``size`` answers (a
    ParsedRequest is immutable, so one answer serves every request for that URL). A cache hit's
    URL is usually one asked for a moment ago, and parsing it again took a fifth of a worker's
    event loop on cache hits (py-spy, `make bench-http`). A URL that raises is not remembered."""

    def __init__(self, options: ParseOptions, size: int = 4096) -> None:
        self.options = options
        self._cached = functools.lru_cache(maxsize=size)(functools.partial(parse, options=options))

    def __call__(self, path: str, query: str) -> ParsedRequest:
        return self._cached(path, query)


def _split(query: str) -> list[tuple[str, str]]:
    """``name=value`` pairs in order, form-decoded (``+`` is a space), empty pieces skipped."""
    pairs: list[tuple[str, str]] = []
    for piece in query.split("&"):
        if not piece:
            continue
        raw_name, _, raw_value = piece.partition("=")
        try:
            pairs.append(
                (unquote_plus(raw_name, errors="strict"), unquote_plus(raw_value, errors="strict"))
            )
        except UnicodeDecodeError:
            raise BadParameter(
                f"parameter {show(raw_name)} is not valid UTF-8 after percent-decoding"
            ) from None
    return pairs


class _Reader:
    """The parameters of one query, by canonical name, and what was ignored."""

    def __init__(self, options: ParseOptions) -> None:
        self.options = options
        self.given: dict[str, tuple[str, str]] = {}  # canonical → (name as written, value)
        self.auto: list[tuple[str, str]] = []
        self.ignored: list[str] = []

    def not_supported(self, what: str) -> None:
        if self.options.strict:
            raise BadParameter(f"{what} is not supported yet")
        self.ignored.append(what)

    def collect(self, query: str) -> None:
        for name, value in _split(query):
            canonical = PARAMETERS.get(name)
            if canonical is None:
                if name in NOT_SUPPORTED_YET:
                    self.not_supported(name)
                elif self.options.strict:
                    raise BadParameter(f"unknown parameter {show(name)}")
                else:
                    self.ignored.append(name)
            elif canonical in SIGNING:
                continue
            elif canonical == "auto":
                self.auto.append((name, value))
            elif canonical in self.given:
                first = self.given[canonical][0]
                also = "" if first == name else f" (also as {first})"
                raise BadParameter(f"{name} given twice{also}")
            else:
                self.given[canonical] = (name, value)

    def enum(self, canonical: str, table: Mapping[str, Any], expected: str) -> Any | None:
        """The table's entry for a parameter's value (any case), None if absent or not
        supported yet (recorded), a 400 otherwise."""
        if canonical not in self.given:
            return None
        name, text = self.given[canonical]
        lowered = text.lower()
        if lowered in table:
            return table[lowered]
        if lowered in NOT_SUPPORTED_YET_VALUES.get(canonical, ()):
            self.not_supported(f"{name}={lowered}")
            return None
        raise BadParameter(f"{name} must be {expected}, got {show(text)}")

    def value(self, canonical: str) -> tuple[str, str] | None:
        return self.given.get(canonical)

    def build(self) -> tuple[Transform, OutputFormat | None]:
        fields: dict[str, Any] = {}
        fields["width"], fields["height"] = self._box()
        fields.update(self._geometry())
        fields.update(self._format())
        fallback = fields.pop("fallback")
        if (item := self.value("quality")) is not None:
            fields["quality"] = values.integer(*item, 1, 100)
        chroma = self.enum("chromasub", _CHROMA, "420, 422 or 444")
        if chroma is not None:
            fields["chroma"] = chroma
        for canonical in ("lossless", "autorotate"):
            if (item := self.value(canonical)) is not None:
                fields[canonical] = values.boolean(*item)
        if (item := self.value("pad_color")) is not None:
            fields["background"] = values.colour(*item)
        icc = self.enum("icc", _ICC, "srgb, keep or strip (or imgix's origin, tinysrgb)")
        if icc is not None:
            fields["icc"] = icc
        if (item := self.value("v")) is not None:
            fields["cache_buster"] = values.cache_buster(*item)
        self.enum("fill", {"solid": "solid"}, "solid")  # imgix fill: solid is what pad does
        return Transform(**fields), fallback

    def _box(self) -> tuple[int | None, int | None]:
        """Width and height in output pixels: dpr applied, rounded, capped at max_dimension."""
        limit = self.options.max_dimension
        sides: list[Fraction | None] = []
        for canonical in ("width", "height"):
            item = self.value(canonical)
            sides.append(None if item is None else values.size(*item, limit))
        ratio = Fraction(1)
        if (item := self.value("dpr")) is not None:
            ratio = values.dpr(*item, self.options.max_dpr)
        scaled = [None if s is None else s * ratio for s in sides]
        largest = max((s for s in scaled if s is not None), default=Fraction(0))
        if largest > limit:
            scaled = [None if s is None else s * limit / largest for s in scaled]
        width, height = (None if s is None else max(1, values.round_half_up(s)) for s in scaled)
        return width, height

    def _geometry(self) -> dict[str, Any]:
        """fit, gravity, upscale and rect, from fit, crop, rect and upscale."""
        fit: Fit = "inside"
        gravity: Gravity = "center"
        enlarges = False
        imgix_fit = "fit" in self.given or self.options.dialect == "imgix"
        if imgix_fit:
            expected = "clip, max, min, crop, scale, fill or fillmax"
            fit, enlarges = self.enum("fit", _IMGIX_FITS, expected) or _IMGIX_FITS["clip"]
        rect = None
        if (item := self.value("rect")) is not None:
            rect = values.rect(*item)
        if (item := self.value("crop")) is not None:
            name, text = item
            if values.is_coordinates(text):
                if rect is not None:
                    raise BadParameter(f"{name} coordinates and rect both given; use one")
                rect = values.rect(name, text)
            elif imgix_fit:
                gravity = _anchor(name, text)
            else:
                fit, gravity = _crop_mode(name, text)
        upscale = enlarges
        if (item := self.value("upscale")) is not None:
            upscale = values.boolean(*item)
        return {"fit": fit, "gravity": gravity, "upscale": upscale, "rect": rect}

    def _format(self) -> dict[str, Any]:
        """format, progressive and the auto=format fallback."""
        expected = "jpeg, jpg, pjpg, png, webp, avif, auto or original"
        requested: RequestedFormat | None = self.enum("format", _FORMATS, expected)
        progressive = requested is not None and self.given["format"][1].lower() == "pjpg"
        if (item := self.value("progressive")) is not None:
            progressive = values.boolean(*item)
        negotiate = False
        for name, text in self.auto:
            for word in (w.strip().lower() for w in text.split(",")):
                if word == "format":
                    negotiate = True
                elif word in NOT_SUPPORTED_YET_VALUES["auto"]:
                    self.not_supported(f"{name}={word}")
                elif word:
                    raise BadParameter(
                        f"{name} must be a list of format, compress, enhance, redeye, "
                        f"got {show(text)}"
                    )
        fallback: OutputFormat | None = None
        if negotiate:
            if requested in ("jpeg", "png", "webp", "avif"):
                fallback = requested
            requested = "auto"
        return {"format": requested, "progressive": progressive, "fallback": fallback}


def _words(name: str, text: str, allowed: frozenset[str], expected: str) -> list[str]:
    words = [w.strip().lower() for w in text.split(",")]
    if any(w not in allowed for w in words):
        raise BadParameter(f"{name} must be {expected}, got {show(text)}")
    return words


def _crop_mode(name: str, text: str) -> tuple[Fit, Gravity]:
    """Imagizer's crop mode: the first item of the list we can do decides."""
    expected = "fit, pad, top, bottom, left, right, center, face, entropy, smart or x,y,w,h"
    words = _words(name, text, _CROP_WORDS, expected)
    first = next((w for w in words if w not in _CONTENT_AWARE), "center")
    if first == "pad":
        return "pad", "center"
    if first == "fit":
        return "cover", "center"
    return "cover", _SIDES[first]


def _anchor(name: str, text: str) -> Gravity:
    """imgix's crop anchor list (with ``fit``): the first side named, else center."""
    expected = "top, bottom, left, right, center, faces, entropy, edges or focalpoint"
    words = _words(name, text, _ANCHOR_WORDS, expected)
    return next((_SIDES[w] for w in words if w in _SIDES), "center")


def _normalise(t: Transform) -> Transform:
    """Drop settings that cannot change the output, so equal images have equal Transforms."""
    changes: dict[str, Any] = {}
    fit = t.fit
    if t.width is None and t.height is None:  # no box: nothing to fit, nothing to enlarge to
        fit = "inside"
        changes.update(fit=fit, gravity="center", upscale=False)
    elif fit != "cover":
        changes["gravity"] = "center"  # gravity only says where cover crops
    if t.format in ("png", "webp", "avif"):
        changes["progressive"] = False
        if fit != "pad":
            changes["background"] = Transform().background  # alpha is kept, nothing is padded
    if t.format in ("png", "webp"):
        changes["chroma"] = None  # PNG has none; WebP is always 4:2:0
    if t.format in ("jpeg", "png"):
        changes["lossless"] = False  # JPEG cannot be; PNG always is
    if t.format == "png":
        changes["quality"] = None
    return dataclasses.replace(t, **changes) if changes else t

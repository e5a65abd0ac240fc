"""Which format to encode: ``format=auto`` negotiated from ``Accept``, or the source's family.

Only an explicit ``image/avif`` or ``image/webp`` with q > 0 proves support. ``image/*`` and
``*/*`` prove nothing: browsers, apps and crawlers that cannot decode AVIF or WebP send them too,
and would get a broken image. Among the acceptable formats the highest
q wins, ties going to the server's ``preference`` order (browsers send no q on image types, so in
practice the order decides). A header that is exactly one of the tokens our CloudFront Function
writes (``avif``, ``webp``, ``jpeg``) is read as that token; ``avif`` also admits WebP, which
every AVIF-capable browser decodes.

When nothing preferred is acceptable we fall back to the source's family (JPEG → JPEG,
PNG → PNG, GIF → PNG); a WebP or AVIF source falls back to PNG if it has alpha, else JPEG, since
a client that did not take WebP/AVIF cannot be sent the source's own format either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from appliance.request.transform import OutputFormat, RequestedFormat

__all__ = [
    "DEFAULT_PREFERENCE",
    "accepted",
    "fallback_format",
    "negotiate",
    "output_format",
    "source_family",
]

DEFAULT_PREFERENCE: Final[tuple[OutputFormat, ...]] = ("avif", "webp")

_FAMILIES: Final[Mapping[str, OutputFormat]] = {
    "jpeg": "jpeg",
    "jpg": "jpeg",
    "png": "png",
    "gif": "png",
    "webp": "webp",
    "avif": "avif",
}
_MEDIA_TYPES: Final[Mapping[str, OutputFormat]] = {
    "image/avif": "avif",
    "image/webp": "webp",
    "image/jpeg": "jpeg",
    "image/png": "png",
}
_TOKENS: Final[Mapping[str, Mapping[OutputFormat, float]]] = {
    "avif": {"avif": 1.0, "webp": 1.0},
    "webp": {"webp": 1.0},
    "jpeg": {},
}
_QVALUE = re.compile(r"0(?:\.\d{0,3})?|1(?:\.0{0,3})?")


def source_family(source_format: str) -> OutputFormat:
    """The format we write for "keep the source's format": GIF becomes PNG (we write no GIF).
    ``source_format`` is a probe's name (jpeg, png, gif, webp, avif); ValueError otherwise."""
    family = _FAMILIES.get(source_format.lower())
    if family is None:
        raise ValueError(f"unknown source format {source_format!r}")
    return family


def fallback_format(source_format: str, *, has_alpha: bool = False) -> OutputFormat:
    """What a client that takes none of the negotiated formats gets."""
    family = source_family(source_format)
    if family in ("webp", "avif"):
        return "png" if has_alpha else "jpeg"
    return family


def accepted(accept_header: str | None) -> dict[OutputFormat, float]:
    """The q-value of each image format the header names explicitly (the first mention counts;
    a malformed q counts as 0). Wildcards are not listed: they prove nothing."""
    if accept_header is None:
        return {}
    token = _TOKENS.get(accept_header.strip().lower())
    if token is not None:
        return dict(token)
    result: dict[OutputFormat, float] = {}
    for item in accept_header.split(","):
        media, *params = item.split(";")
        fmt = _MEDIA_TYPES.get(media.strip().lower())
        if fmt is None or fmt in result:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                q = float(value) if _QVALUE.fullmatch(value) else 0.0
                break
        result[fmt] = q
    return result


def negotiate(
    accept_header: str | None,
    source_format: str,
    *,
    preference: tuple[str, ...] = DEFAULT_PREFERENCE,
    has_alpha: bool = False,
    fallback: OutputFormat | None = None,
) -> tuple[OutputFormat, bool]:
    """The output format for ``format=auto``, and whether it depends on Accept (then the
    response needs ``Vary: Accept``). ``fallback`` overrides :func:`fallback_format` (imgix's
    ``auto=format&fm=X``). ValueError for an unknown format in ``preference``."""
    ordered = [_checked(name) for name in preference]
    if fallback is None:
        fallback = fallback_format(source_format, has_alpha=has_alpha)
    varies = any(fmt != fallback for fmt in ordered)
    q = accepted(accept_header)
    best = max(
        ((q.get(fmt, 0.0), -rank, fmt) for rank, fmt in enumerate(ordered)),
        default=(0.0, 0, fallback),
    )
    return (best[2] if best[0] > 0 else fallback), varies


def output_format(
    requested: RequestedFormat | None,
    accept_header: str | None,
    source_format: str,
    *,
    preference: tuple[str, ...] = DEFAULT_PREFERENCE,
    has_alpha: bool = False,
    fallback: OutputFormat | None = None,
) -> tuple[OutputFormat, bool]:
    """The format to encode for a Transform's ``format``, and whether to send ``Vary: Accept``:
    ``auto`` negotiates; None and ``original`` keep the source's family; others are as asked."""
    if requested == "auto":
        return negotiate(
            accept_header,
            source_format,
            preference=preference,
            has_alpha=has_alpha,
            fallback=fallback,
        )
    if requested is None or requested == "original":
        return source_family(source_format), False
    return requested, False


def _checked(name: str) -> OutputFormat:
    if name not in _MEDIA_TYPES.values():
        raise ValueError(f"unknown output format {name!r} in preference")
    return _MEDIA_TYPES["image/" + name]

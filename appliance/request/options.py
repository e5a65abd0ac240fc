"""How URLs are read: strictness, limits and the dialect. One frozen value, checked on creation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Dialect = Literal["auto", "imagizer", "imgix"]

DIALECTS: tuple[Dialect, ...] = ("auto", "imagizer", "imgix")
NATIVE_MAX_DIMENSION = 16384  # the transcoder's own bound (appliance.native.MAX_DIMENSION)


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """Settings for :func:`appliance.request.parse.parse`.

    ``strict``: unknown parameters, and features we cannot do yet, are a 400; otherwise they are
    ignored (and listed in ``ParsedRequest.ignored``).

    ``max_dimension``: the largest ``width``/``height`` a URL may ask for, and the cap applied
    after ``dpr`` (the box is scaled down whole, keeping its aspect ratio).

    ``max_dpr``: the largest ``dpr`` accepted (the smallest is 0.5).

    ``dialect``: what a URL means when it does not say. ``auto`` and ``imagizer``: without
    ``fit``, ``crop`` is Imagizer's crop mode and the image is fitted inside the box, never
    enlarged; with ``fit``, ``crop`` is imgix's anchor list. ``imgix``: ``crop`` is always the
    anchor list and a missing ``fit`` means imgix's default ``fit=clip`` (which enlarges).
    ``auto`` and ``imagizer`` differ only in parameters not supported yet (the blur scale).

    ``max_key_bytes``: the longest object key, in UTF-8 bytes (S3's limit is 1024).
    """

    strict: bool = False
    max_dimension: int = 8192
    max_dpr: float = 5.0
    dialect: Dialect = "auto"
    max_key_bytes: int = 1024

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        if not 1 <= self.max_dimension <= NATIVE_MAX_DIMENSION:
            raise ValueError(
                f"max_dimension must be 1-{NATIVE_MAX_DIMENSION}, got {self.max_dimension}"
            )
        if not 1.0 <= self.max_dpr <= 10.0:
            raise ValueError(f"max_dpr must be 1-10, got {self.max_dpr}")
        if self.dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, got {self.dialect!r}")
        if self.max_key_bytes < 1:
            raise ValueError(f"max_key_bytes must be at least 1, got {self.max_key_bytes}")

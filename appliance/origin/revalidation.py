"""Conditional fetches: ``fetch(key, if_none_match=etag)`` on every origin raises NotModified
when the original still has that ETag, so a cached copy can be revalidated without its bytes.

Not part of the Origin protocol yet: the three origins accept the keyword, the protocol does not
require it."""

from __future__ import annotations

import re

_ENTITY_TAG = re.compile(r'(?:W/)?"[^"]*"')


class NotModified(Exception):
    """The original still matches the ETag given in ``if_none_match``. A signal, like
    StopIteration, not an error: it carries no HTTP status."""

    def __init__(self, key: str, etag: str, last_modified: float | None = None) -> None:
        super().__init__(f"{key} not modified")
        self.key = key
        self.etag = etag
        self.last_modified = last_modified


def etag_matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match's weak comparison (RFC 9110 13.1.2): ``*`` or any listed tag whose
    opaque part equals ``etag``'s, ignoring ``W/`` prefixes."""
    if if_none_match.strip() == "*":
        return True
    ours = _opaque(etag)
    return any(_opaque(tag) == ours for tag in _ENTITY_TAG.findall(if_none_match))


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag

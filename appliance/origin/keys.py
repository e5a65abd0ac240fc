"""Checks and encoding for original keys, shared by every origin.

A key is the request's URL path without its leading slash, already percent-decoded. Each origin
refuses the same keys, so one that is served by the directory origin in development is served by
S3 in production, and a traversal that one backend would resolve is refused by all of them.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from appliance.origin.base import KeyRejected

MAX_KEY_BYTES = 1024  # S3's limit on a key, applied to every origin

# NUL and the other C0 controls, DEL, and the backslash (a separator on some servers).
_FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\\]")


def check_key(key: str) -> None:
    """Raises KeyRejected for a key that no origin may fetch: empty, longer than 1,024 bytes
    of UTF-8, not encodable as UTF-8, with a control character or a backslash, absolute
    (a leading slash), or with a ``.`` or ``..`` segment."""
    if not key:
        raise KeyRejected("empty key")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise KeyRejected("key is not valid UTF-8") from None
    if size > MAX_KEY_BYTES:
        raise KeyRejected(f"key is longer than {MAX_KEY_BYTES} bytes")
    if _FORBIDDEN_CHARACTERS.search(key):
        raise KeyRejected("key contains a control character or a backslash")
    if key.startswith("/"):
        raise KeyRejected("key is an absolute path")
    if any(segment in (".", "..") for segment in key.split("/")):
        raise KeyRejected("key contains a '.' or '..' segment")


def encode_key(key: str) -> str:
    """Percent-encodes a key for a URL path: UTF-8, everything but RFC 3986's unreserved
    characters and ``/`` escaped (so ``+`` is ``%2B``, a space ``%20``, ``%`` ``%25``). This is
    also the encoding S3 expects in a SigV4 canonical URI."""
    return quote(key, safe="/~")

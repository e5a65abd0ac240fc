"""URL signatures (url-api.md 10.2): HMAC-SHA256 over the path and the query exactly as sent.

``sig = base64url(HMAC-SHA256(key, path + "?" + query without the sig parameter))``, where
``path`` is the raw path as sent (still percent-encoded, with its leading ``/``) and the query is
the raw query string with the ``sig`` (or imgix's ``s``) parameter cut out wherever it sits, the
other parameters kept byte for byte and in order. The signature may be sent as base64url (padding
optional) or as 64 hex digits. Any of several keys may verify (rotation); the first one signs.
An ``expires`` parameter (unix seconds) is covered by the signature like any other and checked
against the ``now`` the caller passes in: the URL is good while ``now < expires``.

Verify before parsing, so an unsigned caller learns nothing from parameter errors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from urllib.parse import unquote, unquote_plus

from appliance.request.errors import BadParameter, BadSignature, Expired, show
from appliance.request.parameters import EXPIRES_NAMES, SIGNATURE_NAMES

__all__ = ["Key", "sign_url", "signature", "verify"]

Key = bytes | str  # a str key is used as its UTF-8 bytes

_HEX = re.compile(r"[0-9A-Fa-f]{64}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{43}")
_EXPIRES = re.compile(r"\d{1,12}")


def signature(path: str, query: str, key: Key) -> str:
    """The base64url signature (no padding) of ``path`` and ``query`` (which holds no sig)."""
    digest = _digest(_key_bytes(key), _message(path, query))
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_url(path: str, query: str, key: Key, *, expires: int | None = None) -> str:
    """``path?query&sig=...``: the URL signed with ``key``, ``expires=`` appended first if given.
    ``path`` and ``query`` must already be percent-encoded as they will be sent."""
    if expires is not None:
        query = f"{query}&expires={expires}" if query else f"expires={expires}"
    sig = signature(path, query, key)
    return f"{path}?{query}&sig={sig}" if query else f"{path}?sig={sig}"


def verify(path: str, raw_query: str, keys: Sequence[Key], now: float) -> None:
    """Check a request's signature, then its expiry.

    Raises :class:`BadSignature` (403) when the signature is missing, given twice, not hex or
    base64url, or made with none of ``keys``; :class:`Expired` (403) when a signed ``expires``
    is not after ``now``; :class:`BadParameter` (400) when a signed ``expires`` is not unix
    seconds. ``ValueError`` when ``keys`` is empty or holds an empty key.
    """
    secrets = [_key_bytes(key) for key in keys]
    if not secrets:
        raise ValueError("verify needs at least one key")
    unsigned, sent = _cut_signature(raw_query)
    provided = _decode(sent)
    message = _message(path, unsigned)
    matched = False
    for secret in secrets:  # every key is tried, so the time does not say which one matched
        matched |= hmac.compare_digest(_digest(secret, message), provided)
    if not matched:
        raise BadSignature("signature does not match")
    expires = _expires(unsigned)
    if expires is not None and now >= expires:
        raise Expired("URL has expired")


def _key_bytes(key: Key) -> bytes:
    secret = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if not secret:
        raise ValueError("a signing key must not be empty")
    return secret


def _message(path: str, query: str) -> bytes:
    # surrogateescape gives back any raw non-UTF-8 byte the server decoded that way.
    return f"{path}?{query}".encode("utf-8", errors="surrogateescape")


def _digest(secret: bytes, message: bytes) -> bytes:
    return hmac.new(secret, message, hashlib.sha256).digest()


def _name(piece: str) -> str:
    return unquote_plus(piece.partition("=")[0], errors="replace")


def _cut_signature(raw_query: str) -> tuple[str, str]:
    """The query without its signature parameter, and that parameter's raw value."""
    pieces = raw_query.split("&")
    found = [i for i, piece in enumerate(pieces) if _name(piece) in SIGNATURE_NAMES]
    if not found:
        raise BadSignature("missing signature")
    if len(found) > 1:
        raise BadSignature("more than one signature")
    sent = pieces.pop(found[0]).partition("=")[2]
    return "&".join(pieces), sent


def _decode(sent: str) -> bytes:
    """The 32 bytes of a hex or base64url signature (``=`` padding, even as ``%3D``, allowed)."""
    text = unquote(sent, errors="replace")
    if _HEX.fullmatch(text) is not None:
        return bytes.fromhex(text)
    text = text.rstrip("=")
    if _BASE64URL.fullmatch(text) is not None:
        return base64.urlsafe_b64decode(text + "=")
    raise BadSignature("signature must be 64 hex digits or 43 base64url characters")


def _expires(query: str) -> int | None:
    values = [p.partition("=")[2] for p in query.split("&") if _name(p) in EXPIRES_NAMES]
    if not values:
        return None
    if len(values) > 1:
        raise BadParameter("expires given twice")
    text = unquote_plus(values[0], errors="replace")
    if _EXPIRES.fullmatch(text) is None:
        raise BadParameter(f"expires must be unix seconds, got {show(text)}")
    return int(text)

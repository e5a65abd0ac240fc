"""The errors a request can fail with before any image is fetched: a bad parameter value, a bad
or missing signature, an expired URL. Each carries its HTTP status and a one-line public message.
"""

from __future__ import annotations

from appliance.errors import ApplianceError

_SHOWN_CHARS = 40


class BadParameter(ApplianceError):
    """A URL parameter (or the key) has a value we cannot accept."""

    status = 400


class BadSignature(ApplianceError):
    """The signature is missing, malformed, or made with none of the configured keys."""

    status = 403


class Expired(ApplianceError):
    """A correctly signed URL whose ``expires`` time has passed.

    403 rather than 410: url-api.md 10.2 lists "403 bad/missing signature or expired", so every
    signing failure shares one status (and one CDN error-caching rule); the 410 of the parameter
    table is given there as an alternative only.
    """

    status = 403


def show(value: str) -> str:
    """A client-supplied value quoted for an error message: one line (control characters are
    escaped by ``repr``) and at most about 40 characters, whatever the client sent."""
    if len(value) > _SHOWN_CHARS:
        value = value[: _SHOWN_CHARS - 3] + "..."
    return repr(value)

"""The one interface every origin implements, and its errors. Each origin passes the same
contract suite (tests/contract/test_origins.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from appliance.errors import ApplianceError


@dataclass(frozen=True, slots=True)
class Original:
    """An original's bytes and identity."""

    key: str
    data: bytes
    etag: str  # the origin's identity of these bytes (S3/HTTP ETag, or size+mtime for files)
    last_modified: float | None = None  # epoch seconds, when the origin says
    content_type: str | None = None


class Origin(Protocol):
    """Fetches originals by key. Keys are the URL path without its leading slash, decoded."""

    name: str  # for logs and metrics: "s3", "http", "directory"

    async def fetch(self, key: str) -> Original:
        """Raises OriginNotFound, OriginDenied, OriginUnavailable, OriginTimeout,
        SourceTooLarge or KeyRejected."""
        ...

    async def check(self) -> None:
        """Raises an OriginError when the origin cannot serve (for /ready)."""
        ...

    async def close(self) -> None: ...


class OriginError(ApplianceError):
    status = 502


class OriginNotFound(OriginError):
    status = 404


class KeyRejected(OriginError):
    """A key that may not be fetched: path traversal, a private address, a host off the list."""

    status = 403


class OriginDenied(OriginError):
    """The origin refused us (S3 403, HTTP 401/403): a configuration problem, not the client's."""

    status = 502


class OriginUnavailable(OriginError):
    status = 502


class OriginTimeout(OriginError):
    status = 504


class SourceTooLarge(OriginError):
    status = 413

"""What the HTTP and S3 origins share on top of aiohttp: the client session, the deadline and
the mapping of transport failures to origin errors, a body read that stops at the size limit,
and header parsing."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC
from email.utils import parsedate_to_datetime

import aiohttp
from aiohttp.abc import AbstractResolver

from appliance.origin.base import OriginError, OriginTimeout, OriginUnavailable, SourceTooLarge
from appliance.origin.revalidation import NotModified

log = logging.getLogger(__name__)

USER_AGENT = "appliance-origin/1"
_CHUNK = 64 * 1024


def new_session(
    *,
    connect_timeout: float,
    read_timeout: float,
    resolver: AbstractResolver | None = None,
    auto_decompress: bool = True,
) -> aiohttp.ClientSession:
    """One session per origin, created on first use (it binds to the running loop). No cookies,
    no proxy from the environment, no redirects followed by aiohttp (the caller decides)."""
    connector = (
        aiohttp.TCPConnector(resolver=resolver) if resolver is not None else aiohttp.TCPConnector()
    )
    timeout = aiohttp.ClientTimeout(
        total=None, connect=connect_timeout, sock_connect=connect_timeout, sock_read=read_timeout
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": USER_AGENT},
        auto_decompress=auto_decompress,
        trust_env=False,
    )


@asynccontextmanager
async def exchange(origin: str, key: str, *, deadline: float) -> AsyncIterator[None]:
    """Bounds one fetch (redirects included) by ``deadline`` seconds and turns transport
    failures into origin errors: timeouts into OriginTimeout, connection and protocol errors
    into OriginUnavailable. Origin errors and NotModified pass through."""
    try:
        async with asyncio.timeout(deadline):
            yield
    except (OriginError, NotModified):
        raise
    except TimeoutError:
        log.warning("origin.timeout origin=%s key=%r deadline=%.3gs", origin, key, deadline)
        raise OriginTimeout("origin timed out") from None
    except (aiohttp.ClientError, OSError) as exc:
        log.warning("origin.unavailable origin=%s key=%r error=%r", origin, key, exc)
        raise OriginUnavailable("origin unreachable") from None


async def read_body(
    response: aiohttp.ClientResponse, *, limit: int, origin: str, key: str
) -> bytes:
    """The body, or SourceTooLarge as soon as Content-Length or the bytes received so far are
    over ``limit``; the connection is then closed rather than drained."""
    length = response.content_length
    if length is not None and length > limit:
        response.close()
        raise _too_large(origin, key, length, limit)
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            response.close()
            raise _too_large(origin, key, len(body), limit)
    return bytes(body)


async def read_error_body(response: aiohttp.ClientResponse, *, limit: int = _CHUNK) -> bytes:
    """At most ``limit`` bytes of an error response, for its error code."""
    try:
        return await response.content.read(limit)
    except (aiohttp.ClientError, OSError):
        return b""


def parse_http_date(value: str | None) -> float | None:
    """An HTTP date (Last-Modified) as epoch seconds, or None when absent or malformed."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def body_etag(data: bytes) -> str:
    """An ETag for a body that came without one: a hash of the bytes."""
    return '"sha256-' + hashlib.sha256(data).hexdigest()[:32] + '"'


def media_type(value: str | None) -> str | None:
    """``image/jpeg`` from ``image/jpeg; charset=binary``."""
    if not value:
        return None
    return value.split(";", 1)[0].strip().lower() or None


def _too_large(origin: str, key: str, size: int, limit: int) -> SourceTooLarge:
    log.info("origin.too_large origin=%s key=%r size=%d limit=%d", origin, key, size, limit)
    return SourceTooLarge(f"original is larger than the {limit}-byte limit")

"""Originals from an HTTP(S) server: ``base_url`` + the percent-encoded key, behind a host
allowlist and a private-network guard.

- Hosts: every URL fetched (the first and each redirect) must have its host in
  ``allowed_hosts``, compared exactly (case-insensitive, trailing dot ignored, IDNA-encoded).
  Subdomains do not count: ``example.com`` does not allow ``img.example.com``. Ports are not
  restricted. ``base_url``'s own host must be on the list.
- Addresses: unless ``allow_private``, every address a host resolves to is checked
  (appliance.origin.addresses) inside the resolver the connection uses, and IP-literal hosts
  are checked before the request, so DNS rebinding cannot reach a private address.
- Redirects are followed here, at most 3, each hop checked like the first.
"""

from __future__ import annotations

import ipaddress
import logging

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from appliance.config import HttpOriginConfig
from appliance.origin.addresses import GuardedResolver, check_address
from appliance.origin.base import (
    KeyRejected,
    Original,
    OriginDenied,
    OriginNotFound,
    OriginUnavailable,
)
from appliance.origin.keys import check_key, encode_key
from appliance.origin.revalidation import NotModified
from appliance.origin.transfer import (
    body_etag,
    exchange,
    media_type,
    new_session,
    parse_http_date,
    read_body,
)

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class HttpOrigin:
    """Fetches ``base_url + encode_key(key)``. ``resolver`` replaces aiohttp's default DNS
    resolver (tests); the private-network guard wraps whichever is used."""

    name = "http"

    def __init__(
        self,
        config: HttpOriginConfig,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_source_bytes: int,
        resolver: AbstractResolver | None = None,
    ) -> None:
        base = URL(config.base_url)
        if base.scheme not in ("http", "https") or not base.raw_host:
            raise ValueError(f"origin.http.base_url must be an http(s) URL: {config.base_url!r}")
        if base.raw_query_string or base.raw_fragment:
            raise ValueError("origin.http.base_url must not have a query or a fragment")
        self._allowed_hosts = frozenset(_normal_host(host) for host in config.allowed_hosts)
        if _normal_host(base.raw_host) not in self._allowed_hosts:
            raise ValueError(
                f"origin.http.allowed_hosts must list base_url's host {base.raw_host!r}"
            )
        base_path = base.raw_path if base.raw_path.endswith("/") else base.raw_path + "/"
        self._base = base.with_path(base_path, encoded=True)
        self._allow_private = config.allow_private
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_source_bytes = max_source_bytes
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        self._guard: GuardedResolver | None = None

    async def fetch(self, key: str, *, if_none_match: str | None = None) -> Original:
        check_key(key)
        url = URL(str(self._base) + encode_key(key), encoded=True)
        headers = {"If-None-Match": if_none_match} if if_none_match else {}
        session = self._client()
        async with exchange("http", key, deadline=self._connect_timeout + self._read_timeout):
            for hop in range(MAX_REDIRECTS + 1):
                self._check_url(url)
                async with session.get(url, headers=headers, allow_redirects=False) as response:
                    location = response.headers.get("Location")
                    if response.status not in _REDIRECT_STATUSES or not location:
                        return await self._original(key, response, if_none_match)
                    if hop == MAX_REDIRECTS:
                        break
                    url = _redirect_target(url, location)
                    log.debug("origin.redirect origin=http key=%r status=%d", key, response.status)
        log.warning("origin.unavailable origin=http key=%r reason=too_many_redirects", key)
        raise OriginUnavailable("origin redirected too many times")

    async def check(self) -> None:
        """Reachable when the server answers a HEAD of base_url at all, whatever the status."""
        session = self._client()
        async with exchange("http", "", deadline=self._connect_timeout + self._read_timeout):
            self._check_url(self._base)
            async with session.head(self._base, allow_redirects=False) as response:
                log.debug("origin.check origin=http status=%d", response.status)

    async def close(self) -> None:
        session, self._session = self._session, None
        guard, self._guard = self._guard, None
        if session is not None:
            await session.close()
        if guard is not None:  # the connector closes only a resolver it made itself
            await guard.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            owns = self._resolver is None
            inner = self._resolver if self._resolver is not None else aiohttp.DefaultResolver()
            self._guard = GuardedResolver(inner, allow_private=self._allow_private, owns_inner=owns)
            self._session = new_session(
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
                resolver=self._guard,
            )
        return self._session

    def _check_url(self, url: URL) -> None:
        if url.scheme not in ("http", "https") or not url.raw_host:
            log.warning("origin.rejected origin=http scheme=%s reason=scheme", url.scheme)
            raise KeyRejected("origin redirected to a URL that is not http(s)")
        host = _normal_host(url.raw_host)
        if host not in self._allowed_hosts:
            log.warning("origin.rejected origin=http host=%s reason=host_not_allowed", host)
            raise KeyRejected("origin host not allowed")
        if not self._allow_private and _is_ip_literal(host):
            check_address(host, host=host)  # aiohttp does not resolve IP literals

    async def _original(
        self, key: str, response: aiohttp.ClientResponse, if_none_match: str | None
    ) -> Original:
        status = response.status
        if status == 304 and if_none_match:
            etag = response.headers.get("ETag", if_none_match)
            raise NotModified(key, etag, parse_http_date(response.headers.get("Last-Modified")))
        if status in (404, 410):
            raise OriginNotFound("no such original")
        if status in (401, 403):
            log.warning("origin.denied origin=http key=%r status=%d", key, status)
            raise OriginDenied(f"origin refused access (HTTP {status})")
        if status not in (200, 203):
            log.warning("origin.unavailable origin=http key=%r status=%d", key, status)
            raise OriginUnavailable(f"origin answered HTTP {status}")
        data = await read_body(response, limit=self._max_source_bytes, origin="http", key=key)
        etag = response.headers.get("ETag") or body_etag(data)
        return Original(
            key=key,
            data=data,
            etag=etag,
            last_modified=parse_http_date(response.headers.get("Last-Modified")),
            content_type=media_type(response.headers.get("Content-Type")),
        )


def _redirect_target(current: URL, location: str) -> URL:
    try:
        return current.join(URL(location))
    except ValueError:
        raise OriginUnavailable("origin sent a malformed redirect") from None


def _normal_host(host: str) -> str:
    """Lower case, no trailing dot, IDNA-encoded, IPv6 without brackets."""
    host = host.strip().rstrip(".").lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return URL.build(scheme="http", host=host).raw_host or host
    except ValueError:
        return host


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

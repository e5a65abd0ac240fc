"""The HTTP origin against a local server: statuses, limits, timeouts, redirects, and the
host allowlist and private-network guard (with a table resolver instead of DNS)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from aiohttp import web
from servers import ServerThread, TableResolver

from appliance.config import HttpOriginConfig
from appliance.origin import addresses
from appliance.origin.base import (
    KeyRejected,
    Original,
    OriginDenied,
    OriginNotFound,
    OriginTimeout,
    OriginUnavailable,
    SourceTooLarge,
)
from appliance.origin.http import HttpOrigin
from appliance.origin.revalidation import NotModified

T = TypeVar("T")
Run = Callable[[Awaitable[T]], T]

LIMIT = 1000
SLOW = 2.0  # seconds a slow handler stalls; the client gives up long before
REDIRECTS: dict[str, tuple[int, str]] = {}  # name → (status, Location), set by the tests


async def _handle(request: web.Request) -> web.StreamResponse:
    kind, _, rest = request.match_info["tail"].partition("/")
    if kind == "echo":  # the raw path as the body
        return web.Response(body=request.raw_path.encode(), headers={"ETag": '"echo"'})
    if kind == "ok":
        headers = {"ETag": '"v1"', "Last-Modified": "Sun, 06 Nov 1994 08:49:37 GMT"}
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers=headers)
        return web.Response(body=b"image bytes", headers=headers, content_type="image/jpeg")
    if kind == "noetag":
        return web.Response(body=b"abc")
    if kind == "status":
        return web.Response(status=int(rest))
    if kind == "slow-headers":
        await asyncio.sleep(SLOW)
        return web.Response(body=b"late")
    if kind in ("slow-body", "big-streamed"):
        response = web.StreamResponse()
        if kind == "slow-body":
            response.content_length = 100
        await response.prepare(request)
        if kind == "slow-body":  # 10 of the 100 bytes promised, then a stall
            await response.write(b"x" * 10)
            await asyncio.sleep(SLOW)
        else:  # chunked, no Content-Length, 10 times the limit
            for _ in range(100):
                await response.write(b"x" * 100)
        return response
    if kind == "big-declared":
        return web.Response(body=b"x" * (LIMIT + 1))
    if kind == "redirect":
        status, location = REDIRECTS[rest]
        return web.Response(status=status, headers={"Location": location})
    if kind == "chain":  # chain/3 → chain/2 → chain/1 → chain/0 (relative Locations)
        hops = int(rest)
        if hops == 0:
            return web.Response(body=b"end of chain")
        return web.Response(status=302, headers={"Location": str(hops - 1)})
    return web.Response(status=404)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    app = web.Application()
    app.router.add_get("/{tail:.*}", _handle)
    with ServerThread(app) as running:
        yield running


def _origin(
    base_url: str,
    *,
    allowed: tuple[str, ...] = ("127.0.0.1",),
    allow_private: bool = True,
    resolver: TableResolver | None = None,
    timeout: float = 2.0,
) -> HttpOrigin:
    config = HttpOriginConfig(base_url=base_url, allowed_hosts=allowed, allow_private=allow_private)
    return HttpOrigin(
        config,
        connect_timeout=timeout,
        read_timeout=timeout,
        max_source_bytes=LIMIT,
        resolver=resolver,
    )


async def _fetch(origin: HttpOrigin, key: str, **kwargs: Any) -> Original:
    try:
        return await origin.fetch(key, **kwargs)
    finally:
        await origin.close()


async def _check(origin: HttpOrigin) -> None:
    try:
        await origin.check()
    finally:
        await origin.close()


# --- requests and responses ------------------------------------------------------------------


def test_key_is_percent_encoded_after_the_base_path(
    aio: Run[Original], server: ServerThread
) -> None:
    origin = _origin(server.url("/echo/base"))  # no trailing slash: one is added
    original = aio(_fetch(origin, "a b+c%/é日本.jpg"))
    assert original.data == b"/echo/base/a%20b%2Bc%25/%C3%A9%E6%97%A5%E6%9C%AC.jpg"


def test_headers_become_etag_last_modified_and_content_type(
    aio: Run[Original], server: ServerThread
) -> None:
    original = aio(_fetch(_origin(server.url("/")), "ok"))
    assert original == Original(
        key="ok",
        data=b"image bytes",
        etag='"v1"',
        last_modified=784111777.0,
        content_type="image/jpeg",
    )


def test_without_an_etag_header_the_etag_is_a_hash_of_the_body(
    aio: Run[Original], server: ServerThread
) -> None:
    first = aio(_fetch(_origin(server.url("/")), "noetag"))
    second = aio(_fetch(_origin(server.url("/")), "noetag"))
    assert first.etag == second.etag
    assert first.etag.startswith('"sha256-')


def test_matching_etag_gives_not_modified(aio: Run[Original], server: ServerThread) -> None:
    with pytest.raises(NotModified) as caught:
        aio(_fetch(_origin(server.url("/")), "ok", if_none_match='"v1"'))
    assert caught.value.etag == '"v1"'


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, OriginNotFound),
        (410, OriginNotFound),
        (401, OriginDenied),
        (403, OriginDenied),
        (400, OriginUnavailable),
        (418, OriginUnavailable),
        (500, OriginUnavailable),
        (503, OriginUnavailable),
        (204, OriginUnavailable),
        (304, OriginUnavailable),  # without If-None-Match, a 304 is nonsense
    ],
)
def test_status_codes_map_to_origin_errors(
    aio: Run[Original], server: ServerThread, status: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        aio(_fetch(_origin(server.url("/")), f"status/{status}"))


@pytest.mark.parametrize("key", ["big-declared", "big-streamed"])
def test_body_over_the_limit_raises_too_large(
    aio: Run[Original], server: ServerThread, key: str
) -> None:
    with pytest.raises(SourceTooLarge):
        aio(_fetch(_origin(server.url("/")), key))


@pytest.mark.parametrize("key", ["slow-headers", "slow-body"])
def test_a_stalled_server_raises_timeout(
    aio: Run[Original], server: ServerThread, key: str
) -> None:
    started = time.monotonic()
    with pytest.raises(OriginTimeout) as caught:
        aio(_fetch(_origin(server.url("/"), timeout=0.15), key))
    assert time.monotonic() - started < 1.0
    assert caught.value.status == 504


def test_connection_refused_is_unavailable(aio: Run[Any]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(OriginUnavailable):
        aio(_fetch(_origin(f"http://127.0.0.1:{port}/"), "x.jpg"))
    with pytest.raises(OriginUnavailable):
        aio(_check(_origin(f"http://127.0.0.1:{port}/")))


def test_unknown_name_is_unavailable(aio: Run[Original]) -> None:
    origin = _origin("http://nowhere.test/", allowed=("nowhere.test",), resolver=TableResolver({}))
    with pytest.raises(OriginUnavailable):
        aio(_fetch(origin, "x.jpg"))


def test_check_accepts_any_answer(aio: Run[None], server: ServerThread) -> None:
    aio(_check(_origin(server.url("/status/500/"))))  # HEAD of the base URL answers 404


def test_the_origin_is_usable_after_close(aio: Run[Original], server: ServerThread) -> None:
    async def fetch_close_fetch() -> Original:
        origin = _origin(server.url("/"))
        await origin.fetch("ok")
        await origin.close()
        return await _fetch(origin, "ok")

    assert aio(fetch_close_fetch()).data == b"image bytes"


# --- redirects -------------------------------------------------------------------------------


def test_relative_redirects_are_followed_up_to_three(
    aio: Run[Original], server: ServerThread
) -> None:
    assert aio(_fetch(_origin(server.url("/")), "chain/3")).data == b"end of chain"
    with pytest.raises(OriginUnavailable):
        aio(_fetch(_origin(server.url("/")), "chain/4"))


@pytest.mark.parametrize(
    "location",
    [
        "http://evil.test/x.jpg",
        "http://sub.127.0.0.1.nip.io/x.jpg",
        "//evil.test/x.jpg",
        "file:///etc/passwd",
        "ftp://127.0.0.1/x.jpg",
    ],
)
def test_redirect_off_the_allowlist_is_rejected(
    aio: Run[Original], server: ServerThread, location: str
) -> None:
    REDIRECTS["away"] = (302, location)
    resolver = TableResolver({"evil.test": ["127.0.0.1"]})
    with pytest.raises(KeyRejected, match=r"host|http"):
        aio(_fetch(_origin(server.url("/"), resolver=resolver), "redirect/away"))
    assert resolver.asked == []


def test_redirect_within_the_allowlist_is_followed(
    aio: Run[Original], server: ServerThread
) -> None:
    REDIRECTS["home"] = (301, server.url("/ok"))
    assert aio(_fetch(_origin(server.url("/")), "redirect/home")).data == b"image bytes"


# --- hosts and addresses ---------------------------------------------------------------------


def test_base_url_host_must_be_on_the_allowlist() -> None:
    with pytest.raises(ValueError, match="allowed_hosts"):
        _origin("http://images.example.com/", allowed=("example.com",))
    with pytest.raises(ValueError, match="http"):
        _origin("file:///srv/images/", allowed=("",))


def test_hosts_match_case_insensitively_and_ignore_a_trailing_dot(
    aio: Run[Original], server: ServerThread
) -> None:
    resolver = TableResolver({"origin.test.": ["127.0.0.1"], "Origin.Test.": ["127.0.0.1"]})
    origin = _origin(
        f"http://Origin.Test.:{server.port}/", allowed=("origin.test",), resolver=resolver
    )
    assert aio(_fetch(origin, "ok")).data == b"image bytes"
    assert resolver.asked  # the name went through the resolver


@pytest.mark.parametrize(
    "answer",
    [["127.0.0.1"], ["169.254.169.254"], ["10.1.2.3"], ["::1"], ["93.184.215.14", "10.0.0.1"]],
)
def test_name_resolving_to_a_private_address_is_rejected(
    aio: Run[Original], server: ServerThread, answer: list[str]
) -> None:
    seen = len(server.requests)
    resolver = TableResolver({"origin.test": answer})
    origin = _origin(
        f"http://origin.test:{server.port}/",
        allowed=("origin.test",),
        allow_private=False,
        resolver=resolver,
    )
    with pytest.raises(KeyRejected, match="address"):
        aio(_fetch(origin, "ok"))
    assert resolver.asked == ["origin.test"]
    assert len(server.requests) == seen  # nothing was sent


def test_private_ip_literal_is_rejected_before_connecting(
    aio: Run[Any], server: ServerThread
) -> None:
    seen = len(server.requests)
    with pytest.raises(KeyRejected, match="address"):
        aio(_fetch(_origin(server.url("/"), allow_private=False), "ok"))
    with pytest.raises(KeyRejected, match="address"):
        aio(_check(_origin(server.url("/"), allow_private=False)))
    assert len(server.requests) == seen


@pytest.fixture
def loopback_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lets 127.0.0.1 pass the guard, standing in for a public origin server, so that a test
    can reach the local server with allow_private off and be redirected somewhere private."""
    real = addresses.is_forbidden
    monkeypatch.setattr(addresses, "is_forbidden", lambda a: a != "127.0.0.1" and real(a))


@pytest.mark.parametrize(
    "target",
    [
        "http://internal.test/latest/meta-data/",  # a name that resolves to 10.0.0.7
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
    ],
)
def test_redirect_to_a_private_address_is_rejected(
    aio: Run[Original], server: ServerThread, loopback_is_public: None, target: str
) -> None:
    REDIRECTS["inside"] = (307, target)
    resolver = TableResolver({"origin.test": ["127.0.0.1"], "internal.test": ["10.0.0.7"]})
    origin = _origin(
        f"http://origin.test:{server.port}/",
        allowed=("origin.test", "internal.test", "169.254.169.254", "fd00:ec2::254"),
        allow_private=False,
        resolver=resolver,
    )
    assert aio(_fetch(origin, "ok")).data == b"image bytes"  # the first hop is fine
    with pytest.raises(KeyRejected, match="address"):
        aio(_fetch(origin, "redirect/inside"))

"""The server against live origins: a local HTTP server and moto's S3 server, over real sockets
with real SigV4 signing."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from aiohttp import web
from PIL import Image
from servers import ServerThread
from test_server import get, photo, size_of


def jpeg_bytes(seed: int = 1) -> bytes:
    out = io.BytesIO()
    photo(1600, 1000, seed).save(out, "JPEG", quality=90)
    return out.getvalue()


def origin_app(files: dict[str, bytes], delay: float = 0.3) -> web.Application:
    """An HTTP origin that answers slowly enough for requests to overlap; ``redirect.jpg``
    redirects to the EC2 metadata address (SSRF by redirect)."""

    async def handle(request: web.Request) -> web.Response:
        if request.match_info["key"] == "redirect.jpg":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")
        await asyncio.sleep(delay)
        data = files.get(request.match_info["key"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="image/jpeg", headers={"ETag": '"v1"'})

    app = web.Application()
    app.router.add_route("*", "/{key:.*}", handle)
    return app


@pytest.fixture(scope="module")
def http_origin() -> Iterator[ServerThread]:
    with ServerThread(origin_app({"cat.jpg": jpeg_bytes()})) as server:
        yield server


def test_ten_concurrent_misses_make_one_origin_get(start_server, http_origin) -> None:
    http_origin.requests.clear()
    server = start_server(
        origin={
            "kind": "http",
            "http": {
                "base_url": f"http://127.0.0.1:{http_origin.port}/",
                "allowed_hosts": ["127.0.0.1"],
                "allow_private": True,
            },
        }
    )
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: get(server.url, "/cat.jpg?w=321"), range(10)))
    assert [r[0] for r in results] == [200] * 10
    assert len({r[2] for r in results}) == 1 and size_of(results[0][2])[1][0] == 321
    assert [method for method, _, _ in http_origin.requests] == ["GET"]


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:{port}/", "http://169.254.169.254/"])
def test_private_and_metadata_addresses_are_refused(start_server, http_origin, base_url) -> None:
    url = base_url.format(port=http_origin.port)
    host = url.split("/")[2].split(":")[0]
    server = start_server(
        origin={
            "kind": "http",
            "http": {"base_url": url, "allowed_hosts": [host], "allow_private": False},
        },
        http={"ttl_client_error": 5},
    )
    status, _, body = get(server.url, "/cat.jpg?w=100")
    assert status == 403, body


def test_a_redirect_off_the_allowlist_is_refused(start_server, http_origin) -> None:
    server = start_server(
        origin={
            "kind": "http",
            "http": {
                "base_url": f"http://127.0.0.1:{http_origin.port}/",
                "allowed_hosts": ["127.0.0.1"],
                "allow_private": True,
            },
        }
    )
    assert get(server.url, "/redirect.jpg?w=100")[0] == 403


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[dict[str, Any]]:
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    creds = {"aws_access_key_id": "AKIATESTTESTTEST", "aws_secret_access_key": "secret"}
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **creds)
    s3.create_bucket(Bucket="originals")
    s3.put_object(Bucket="originals", Key="photos/a b+é.jpg", Body=jpeg_bytes(3))
    yield {"endpoint": endpoint, **creds}
    moto.stop()


def test_resizes_from_s3_through_sigv4(start_server, moto_s3, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_s3["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_s3["aws_secret_access_key"])
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3 = {"bucket": "originals", "prefix": "photos/", "endpoint_url": moto_s3["endpoint"]}
    server = start_server(origin={"kind": "s3", "s3": s3})
    status, _, body = get(server.url, "/a%20b%2B%C3%A9.jpg?w=400&format=webp")
    assert status == 200, body
    assert size_of(body) == ("WEBP", (400, 250))
    assert get(server.url, "/missing.jpg?w=10")[0] == 404
    assert get(server.url, "/ready")[0] == 200
    with Image.open(io.BytesIO(get(server.url, "/a%20b%2B%C3%A9.jpg")[2])) as im:
        assert im.size == (1600, 1000)  # passed through untouched

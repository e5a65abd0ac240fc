"""One contract, every origin: the directory origin on a temporary directory, the HTTP origin
against a local aiohttp server, the S3 origin against moto's S3 server with IAM authentication
on (so moto verifies every SigV4 signature). Each test runs under asyncio and uvloop."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import boto3
import pytest
import requests
from aiohttp import web
from botocore.exceptions import ClientError
from servers import ADMIN_S3_POLICY, ServerThread, moto_users, s3_client

from appliance.config import DirectoryOriginConfig, HttpOriginConfig, S3OriginConfig
from appliance.origin.base import KeyRejected, Original, OriginNotFound, SourceTooLarge
from appliance.origin.directory import DirectoryOrigin
from appliance.origin.http import HttpOrigin
from appliance.origin.revalidation import NotModified
from appliance.origin.s3 import S3Origin

T = TypeVar("T")
Run = Callable[[Awaitable[T]], T]

LIMIT = 64 * 1024
PREFIX = "originals/"
BUCKET = "photos"


def _bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


OBJECTS: dict[str, bytes] = {
    "plain.jpg": _bytes(1, 3001),
    "with space.jpg": _bytes(2, 3002),
    "plus+sign.jpg": _bytes(3, 3003),
    "café/日本.jpg": _bytes(4, 3004),
    "100%.jpg": _bytes(5, 3005),
    "a/b/c/nested.jpg": _bytes(6, 3006),
    "exactly-the-limit.bin": _bytes(7, LIMIT),
}
TOO_LARGE = ("too-large.bin", _bytes(8, LIMIT + 1))


@dataclass
class Backend:
    name: str
    make: Callable[[], Any]  # a new origin: DirectoryOrigin | HttpOrigin | S3Origin
    put: Callable[[str, bytes], None]  # stores (or replaces) an original


# --- the directory ---------------------------------------------------------------------------


def _directory_backend(tmp: Path) -> Backend:
    root = tmp / "originals"

    def put(key: str, data: bytes) -> None:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def make() -> DirectoryOrigin:
        return DirectoryOrigin(DirectoryOriginConfig(path=str(root)), max_source_bytes=LIMIT)

    return Backend("directory", make, put)


# --- a local HTTP server ---------------------------------------------------------------------


def _file_server(files: dict[str, tuple[bytes, float]]) -> web.Application:
    """Serves ``files`` under /originals/ the way a web server serves files: ETag,
    Last-Modified, Content-Type, 304 on a matching If-None-Match, 404 otherwise."""

    async def serve(request: web.Request) -> web.Response:
        key = unquote(request.rel_url.raw_path.removeprefix("/" + PREFIX))
        if key not in files:
            return web.Response(status=404)
        data, mtime = files[key]
        etag = '"' + hashlib.md5(data).hexdigest() + '"'
        headers = {"ETag": etag, "Last-Modified": formatdate(mtime, usegmt=True)}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        return web.Response(body=data, headers=headers, content_type=content_type)

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)  # and HEAD
    return app


@pytest.fixture(scope="module")
def http_server() -> Iterator[tuple[ServerThread, dict[str, tuple[bytes, float]]]]:
    files: dict[str, tuple[bytes, float]] = {}
    with ServerThread(_file_server(files)) as server:
        yield server, files


def _http_backend(server: ServerThread, files: dict[str, tuple[bytes, float]]) -> Backend:
    def put(key: str, data: bytes) -> None:
        files[key] = (data, time.time())

    def make() -> HttpOrigin:
        config = HttpOriginConfig(
            base_url=f"http://127.0.0.1:{server.port}/{PREFIX}",
            allowed_hosts=("127.0.0.1",),
            allow_private=True,
        )
        return HttpOrigin(config, connect_timeout=2.0, read_timeout=5.0, max_source_bytes=LIMIT)

    return Backend("http", make, put)


# --- moto's S3 server, with IAM authentication -----------------------------------------------

READER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            # moto authorises HEAD bucket as "s3:HeadBucket"; AWS as s3:ListBucket.
            "Action": ["s3:GetObject", "s3:ListBucket", "s3:HeadBucket"],
            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
        }
    ],
}


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[tuple[str, Any]]:
    """moto's server with a bucket, an admin user (to store objects) and a reader user whose
    keys are in the environment, where botocore's chain finds them. Authentication is on from
    the first object stored: every request must carry a valid SigV4 signature."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = "http://{}:{}".format(*server.get_host_and_port())
    # moto's accounts, users and buckets are global to the process: start from nothing.
    requests.post(f"{endpoint}/moto-api/reset", timeout=5).raise_for_status()
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            env.delenv(name, raising=False)
        env.setenv("AWS_CONFIG_FILE", os.devnull)
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        keys = moto_users(endpoint, {"reader": READER_POLICY, "admin": ADMIN_S3_POLICY})
        admin = s3_client(endpoint, keys["admin"])
        admin.create_bucket(Bucket=BUCKET)
        env.setenv("AWS_ACCESS_KEY_ID", keys["reader"]["AccessKeyId"])
        env.setenv("AWS_SECRET_ACCESS_KEY", keys["reader"]["SecretAccessKey"])
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=5).raise_for_status()
        forged = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=keys["reader"]["AccessKeyId"],
            aws_secret_access_key="not-the-secret",
        )
        with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
            forged.list_objects_v2(Bucket=BUCKET)  # moto checks signatures from here on
        try:
            yield endpoint, admin
        finally:
            requests.post(f"{endpoint}/moto-api/reset-auth", data=b"inf", timeout=5)
            requests.post(f"{endpoint}/moto-api/reset", timeout=5)
            server.stop()


def _s3_backend(endpoint: str, admin: Any) -> Backend:
    def put(key: str, data: bytes) -> None:
        admin.put_object(Bucket=BUCKET, Key=PREFIX + key, Body=data)

    def make() -> S3Origin:
        config = S3OriginConfig(bucket=BUCKET, prefix=PREFIX, endpoint_url=endpoint)
        return S3Origin(config, connect_timeout=2.0, read_timeout=5.0, max_source_bytes=LIMIT)

    return Backend("s3", make, put)


# --- the suite -------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["directory", "http", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    if request.param == "directory":
        made = _directory_backend(tmp_path_factory.mktemp("directory-origin"))
    elif request.param == "http":
        made = _http_backend(*request.getfixturevalue("http_server"))
    else:
        made = _s3_backend(*request.getfixturevalue("moto_s3"))
    for key, data in [*OBJECTS.items(), TOO_LARGE]:
        made.put(key, data)
    return made


async def _with_origin(backend: Backend, use: Callable[[Any], Awaitable[T]]) -> T:
    origin = backend.make()
    try:
        return await use(origin)
    finally:
        await origin.close()


@pytest.mark.parametrize("key", list(OBJECTS))
def test_fetch_returns_the_exact_bytes(aio: Run[Original], backend: Backend, key: str) -> None:
    original = aio(_with_origin(backend, lambda origin: origin.fetch(key)))
    assert original.key == key
    assert original.data == OBJECTS[key]
    assert original.etag
    assert original.last_modified is not None
    assert abs(original.last_modified - time.time()) < 3600


def test_etag_is_stable_across_fetches(aio: Run[list[Original]], backend: Backend) -> None:
    async def twice(origin: Any) -> list[Original]:
        return [await origin.fetch("plain.jpg"), await origin.fetch("plain.jpg")]

    first, second = aio(_with_origin(backend, twice))
    assert first.etag == second.etag
    assert first.last_modified == second.last_modified


def test_etag_changes_when_the_original_changes(aio: Run[Original], backend: Backend) -> None:
    backend.put("changing.jpg", b"first version")
    before = aio(_with_origin(backend, lambda origin: origin.fetch("changing.jpg")))
    backend.put("changing.jpg", b"the second version")
    after = aio(_with_origin(backend, lambda origin: origin.fetch("changing.jpg")))
    assert after.data == b"the second version"
    assert after.etag != before.etag


def test_concurrent_fetches_share_one_origin(aio: Run[list[Original]], backend: Backend) -> None:
    async def many(origin: Any) -> list[Original]:
        return list(await asyncio.gather(*(origin.fetch(key) for key in OBJECTS)))

    fetched = aio(_with_origin(backend, many))
    assert [original.data for original in fetched] == list(OBJECTS.values())


@pytest.mark.parametrize("key", ["missing.jpg", "a/b/missing.jpg", "a/b", "plain.jpg/more"])
def test_missing_key_raises_not_found(aio: Run[None], backend: Backend, key: str) -> None:
    with pytest.raises(OriginNotFound) as caught:
        aio(_with_origin(backend, lambda origin: origin.fetch(key)))
    assert caught.value.status == 404


def test_source_over_the_limit_raises_too_large(aio: Run[None], backend: Backend) -> None:
    with pytest.raises(SourceTooLarge) as caught:
        aio(_with_origin(backend, lambda origin: origin.fetch(TOO_LARGE[0])))
    assert caught.value.status == 413


@pytest.mark.parametrize(
    "key", ["../plain.jpg", "a/../../x", "/etc/passwd", "nul\x00.jpg", "back\\slash.jpg", ""]
)
def test_unsafe_key_raises_key_rejected(aio: Run[None], backend: Backend, key: str) -> None:
    with pytest.raises(KeyRejected):
        aio(_with_origin(backend, lambda origin: origin.fetch(key)))


def test_matching_etag_raises_not_modified(aio: Run[Original], backend: Backend) -> None:
    etag = aio(_with_origin(backend, lambda origin: origin.fetch("plain.jpg"))).etag
    with pytest.raises(NotModified) as caught:
        aio(_with_origin(backend, lambda origin: origin.fetch("plain.jpg", if_none_match=etag)))
    assert caught.value.etag == etag
    other = aio(_with_origin(backend, lambda o: o.fetch("plain.jpg", if_none_match='"other"')))
    assert other.data == OBJECTS["plain.jpg"]


def test_check_passes(aio: Run[None], backend: Backend) -> None:
    aio(_with_origin(backend, lambda origin: origin.check()))


def test_close_twice_and_before_use(aio: Run[None], backend: Backend) -> None:
    async def close_twice() -> None:
        origin = backend.make()
        await origin.close()
        await origin.close()

    aio(close_twice())

"""The S3 origin: URLs, signatures, and how S3's answers become origin errors. A local aiohttp
server plays S3 (it records what it receives); moto, with IAM authentication on, gives the real
AccessDenied and SignatureDoesNotMatch answers."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import boto3
import pytest
import requests
from aiohttp import web
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from servers import ServerThread

from appliance.config import S3OriginConfig
from appliance.origin.base import (
    KeyRejected,
    Original,
    OriginDenied,
    OriginNotFound,
    OriginTimeout,
    OriginUnavailable,
    SourceTooLarge,
)
from appliance.origin.s3 import S3Origin, bucket_urls

T = TypeVar("T")
Run = Callable[[Awaitable[T]], T]

KEY_ID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
LIMIT = 1000


def _xml_error(status: int, code: str, **headers: str) -> web.Response:
    body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>m</Message></Error>"
    return web.Response(status=status, text=body, content_type="application/xml", headers=headers)


async def _s3(request: web.Request) -> web.StreamResponse:
    """Bucket "photos": objects by key; other buckets answer as their names say."""
    bucket, _, key = request.match_info["tail"].partition("/")
    if request.method == "HEAD" and not key:
        return {
            "photos": web.Response(status=200),
            "denied": web.Response(status=403),
            "elsewhere": web.Response(status=301, headers={"x-amz-bucket-region": "eu-west-1"}),
        }.get(bucket, web.Response(status=404))
    if bucket != "photos":
        return _xml_error(404, "NoSuchBucket")
    if key == "p/ok.jpg":
        return web.Response(
            body=b"jpeg bytes",
            content_type="image/jpeg",
            headers={"ETag": '"0123abcd"', "Last-Modified": "Sun, 06 Nov 1994 08:49:37 GMT"},
        )
    if key == "p/big.jpg":
        return web.Response(body=b"x" * (LIMIT + 1))
    if key == "p/slow.jpg":
        await asyncio.sleep(2.0)
        return web.Response(body=b"late")
    if key.startswith("p/status-"):
        status, _, code = key.removeprefix("p/status-").partition("-")
        return _xml_error(int(status), code)
    if key == "p/elsewhere.jpg":
        return _xml_error(301, "PermanentRedirect", **{"x-amz-bucket-region": "eu-west-1"})
    return _xml_error(404, "NoSuchKey")


@pytest.fixture(scope="module")
def fake_s3() -> Iterator[ServerThread]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _s3)
    with ServerThread(app) as server:
        yield server


def _static(key_id: str = KEY_ID, secret: str = SECRET, token: str | None = None) -> Any:
    return lambda: Credentials(key_id, secret, token)


def _origin(
    endpoint: str,
    *,
    bucket: str = "photos",
    prefix: str = "p/",
    provider: Any = None,
    retry: float = 30.0,
    timeout: float = 2.0,
) -> S3Origin:
    config = S3OriginConfig(bucket=bucket, prefix=prefix, region="us-east-1", endpoint_url=endpoint)
    return S3Origin(
        config,
        connect_timeout=timeout,
        read_timeout=timeout,
        max_source_bytes=LIMIT,
        credentials_provider=provider if provider is not None else _static(),
        credentials_retry_seconds=retry,
    )


async def _fetch(origin: S3Origin, key: str) -> Original:
    try:
        return await origin.fetch(key)
    finally:
        await origin.close()


async def _check(origin: S3Origin) -> None:
    try:
        await origin.check()
    finally:
        await origin.close()


# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bucket", "region", "endpoint", "expected"),
    [
        ("photos", "eu-west-1", None, "https://photos.s3.eu-west-1.amazonaws.com/"),
        ("my.photos", "us-east-1", None, "https://s3.us-east-1.amazonaws.com/my.photos/"),
        ("photos", "cn-north-1", None, "https://photos.s3.cn-north-1.amazonaws.com.cn/"),
        ("photos", "us-east-1", "http://127.0.0.1:9000/", "http://127.0.0.1:9000/photos/"),
    ],
)
def test_virtual_hosted_on_aws_path_style_elsewhere(
    bucket: str, region: str, endpoint: str | None, expected: str
) -> None:
    config = S3OriginConfig(bucket=bucket, region=region, endpoint_url=endpoint)
    assert bucket_urls(config)[1] == expected


def test_object_url_is_prefix_and_key_percent_encoded() -> None:
    origin = S3Origin(
        S3OriginConfig(bucket="photos", prefix="originals/", region="eu-west-1"),
        connect_timeout=1.0,
        read_timeout=1.0,
        max_source_bytes=LIMIT,
    )
    assert origin.object_url("a b+c%/é日本~.jpg") == (
        "https://photos.s3.eu-west-1.amazonaws.com/originals/a%20b%2Bc%25/%C3%A9%E6%97%A5%E6%9C%AC~.jpg"
    )


def test_empty_bucket_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="bucket"):
        S3Origin(S3OriginConfig(), connect_timeout=1.0, read_timeout=1.0, max_source_bytes=1)


# --- signatures ------------------------------------------------------------------------------

AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/(\d{8})/us-east-1/s3/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})"
)


@pytest.mark.parametrize("token", [None, "session-token"])
def test_request_carries_a_sigv4_signature_of_what_was_sent(
    aio: Run[Original], fake_s3: ServerThread, token: str | None
) -> None:
    fake_s3.requests.clear()
    aio(_fetch(_origin(fake_s3.url("/"), provider=_static(token=token)), "ok.jpg"))
    [(method, raw_path, headers)] = fake_s3.requests
    match = AUTHORIZATION.fullmatch(headers["Authorization"])
    assert match, headers["Authorization"]
    signed = match.group(2).split(";")
    assert {"host", "x-amz-content-sha256", "x-amz-date"} <= set(signed)
    assert ("x-amz-security-token" in signed) == (token is not None)
    assert headers["X-Amz-Date"].startswith(match.group(1))
    # Recompute the signature from the request as the server received it, as S3 does.
    received = AWSRequest(
        method=method,
        url=f"http://{headers['Host']}{raw_path}",
        headers={name: value for name, value in headers.items() if name.lower() in signed},
    )
    received.context["timestamp"] = headers["X-Amz-Date"]
    signer = S3SigV4Auth(Credentials(KEY_ID, SECRET, token), "s3", "us-east-1")
    canonical = signer.canonical_request(received)
    assert signer.signature(signer.string_to_sign(received, canonical), received) == match.group(3)


# --- answers ---------------------------------------------------------------------------------


def test_object_fields_come_from_the_headers(aio: Run[Original], fake_s3: ServerThread) -> None:
    original = aio(_fetch(_origin(fake_s3.url("/")), "ok.jpg"))
    assert original == Original(
        key="ok.jpg",
        data=b"jpeg bytes",
        etag='"0123abcd"',
        last_modified=784111777.0,
        content_type="image/jpeg",
    )


@pytest.mark.parametrize(
    ("key", "error", "message"),
    [
        ("missing.jpg", OriginNotFound, "no such original"),
        (
            "status-403-AccessDenied",
            OriginDenied,
            "origin refused access: check the instance role's s3:GetObject on photos",
        ),
        ("status-403-ExpiredToken", OriginDenied, "refused our AWS credentials"),
        ("status-500-InternalError", OriginUnavailable, "HTTP 500"),
        ("status-503-SlowDown", OriginUnavailable, "HTTP 503"),
        ("status-400-AuthorizationHeaderMalformed", OriginUnavailable, "origin.s3.region"),
        ("elsewhere.jpg", OriginUnavailable, "is in eu-west-1, not us-east-1"),
        ("big.jpg", SourceTooLarge, "limit"),
        ("../escape.jpg", KeyRejected, "segment"),
    ],
)
def test_answers_map_to_origin_errors(
    aio: Run[Original], fake_s3: ServerThread, key: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        aio(_fetch(_origin(fake_s3.url("/")), key))


def test_missing_bucket_on_fetch_is_unavailable_not_not_found(
    aio: Run[Original], fake_s3: ServerThread
) -> None:
    with pytest.raises(OriginUnavailable, match="does not exist"):
        aio(_fetch(_origin(fake_s3.url("/"), bucket="gone"), "ok.jpg"))


def test_a_stalled_s3_raises_timeout(aio: Run[Original], fake_s3: ServerThread) -> None:
    with pytest.raises(OriginTimeout):
        aio(_fetch(_origin(fake_s3.url("/"), timeout=0.15), "slow.jpg"))


@pytest.mark.parametrize(
    ("bucket", "error", "message"),
    [
        ("photos", None, ""),
        ("denied", OriginDenied, "s3:ListBucket on denied"),
        ("gone", OriginNotFound, "bucket gone does not exist"),
        ("elsewhere", OriginUnavailable, "eu-west-1"),
    ],
)
def test_check_heads_the_bucket(
    aio: Run[None],
    fake_s3: ServerThread,
    bucket: str,
    error: type[Exception] | None,
    message: str,
) -> None:
    fake_s3.requests.clear()
    origin = _origin(fake_s3.url("/"), bucket=bucket)
    if error is None:
        aio(_check(origin))
    else:
        with pytest.raises(error, match=message):
            aio(_check(origin))
    [(method, raw_path, headers)] = fake_s3.requests
    assert (method, raw_path) == ("HEAD", f"/{bucket}")
    assert AUTHORIZATION.fullmatch(headers["Authorization"])


# --- credentials -----------------------------------------------------------------------------


class _Provider:
    """The credential chain: nothing until ``found`` is set; counts calls and their threads."""

    def __init__(self) -> None:
        self.found: Credentials | None = None
        self.calls = 0
        self.threads: set[int] = set()

    def __call__(self) -> Credentials | None:
        self.calls += 1
        self.threads.add(threading.get_ident())
        return self.found


def test_credentials_that_appear_later_are_picked_up(
    aio: Run[Original], fake_s3: ServerThread
) -> None:
    provider = _Provider()

    async def scenario() -> Original:
        origin = _origin(fake_s3.url("/"), provider=provider, retry=0.0)
        try:
            with pytest.raises(OriginDenied, match="no AWS credentials"):
                await origin.fetch("ok.jpg")
            provider.found = Credentials(KEY_ID, SECRET)  # the role is attached
            return await origin.fetch("ok.jpg")
        finally:
            await origin.close()

    assert aio(scenario()).data == b"jpeg bytes"
    assert provider.calls == 2
    assert threading.get_ident() not in provider.threads


def test_missing_credentials_are_looked_up_at_most_every_retry_interval(
    aio: Run[None], fake_s3: ServerThread
) -> None:
    provider = _Provider()

    async def scenario() -> None:
        origin = _origin(fake_s3.url("/"), provider=provider, retry=60.0)
        try:
            for _ in range(3):
                with pytest.raises(OriginDenied):
                    await origin.fetch("ok.jpg")
        finally:
            await origin.close()

    aio(scenario())
    assert provider.calls == 1


def test_expired_token_makes_the_next_fetch_look_credentials_up_again(
    aio: Run[None], fake_s3: ServerThread
) -> None:
    provider = _Provider()
    provider.found = Credentials(KEY_ID, SECRET, "old-token")

    async def scenario() -> None:
        origin = _origin(fake_s3.url("/"), provider=provider, retry=0.0)
        try:
            await origin.fetch("ok.jpg")
            await origin.fetch("ok.jpg")
            assert provider.calls == 1  # cached
            with pytest.raises(OriginDenied):
                await origin.fetch("status-403-ExpiredToken")
            await origin.fetch("ok.jpg")
            assert provider.calls == 2
        finally:
            await origin.close()

    aio(scenario())


# --- moto, with IAM authentication: real denials ---------------------------------------------


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[tuple[str, dict[str, str]]]:
    """Bucket "photos" with one object; user "nobody" has keys and no permissions, "reader"
    has s3:GetObject only. Every request after setup must be signed by a known key and allowed
    by IAM."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = "http://{}:{}".format(*server.get_host_and_port())
    # moto's accounts, users and buckets are global to the process: start from nothing.
    requests.post(f"{endpoint}/moto-api/reset", timeout=5).raise_for_status()
    boot = {"aws_access_key_id": "bootstrap", "aws_secret_access_key": "bootstrap"}
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **boot)
    s3.create_bucket(Bucket="photos")
    s3.put_object(Bucket="photos", Key="p/ok.jpg", Body=b"jpeg bytes")
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", **boot)
    iam.create_user(UserName="nobody")
    keys = iam.create_access_key(UserName="nobody")["AccessKey"]
    iam.create_user(UserName="reader")
    iam.put_user_policy(
        UserName="reader",
        PolicyName="get",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
                ],
            }
        ),
    )
    reader = iam.create_access_key(UserName="reader")["AccessKey"]
    requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=5).raise_for_status()
    try:
        yield (
            endpoint,
            {
                "nobody": keys["AccessKeyId"],
                "nobody-secret": keys["SecretAccessKey"],
                "reader": reader["AccessKeyId"],
                "reader-secret": reader["SecretAccessKey"],
            },
        )
    finally:
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"inf", timeout=5)
        requests.post(f"{endpoint}/moto-api/reset", timeout=5)
        server.stop()


def test_s3_access_denied_names_the_permission_and_bucket(
    aio: Run[Original], moto_s3: tuple[str, dict[str, str]]
) -> None:
    endpoint, keys = moto_s3
    origin = _origin(endpoint, provider=_static(keys["nobody"], keys["nobody-secret"]))
    with pytest.raises(OriginDenied) as caught:
        aio(_fetch(origin, "ok.jpg"))
    assert caught.value.public_message == (
        "origin refused access: check the instance role's s3:GetObject on photos"
    )
    assert caught.value.status == 502


def test_s3_rejects_a_wrong_secret_as_a_credentials_problem(
    aio: Run[Original], moto_s3: tuple[str, dict[str, str]]
) -> None:
    endpoint, keys = moto_s3
    origin = _origin(endpoint, provider=_static(keys["reader"], "not-the-secret"))
    with pytest.raises(OriginDenied, match="SignatureDoesNotMatch"):
        aio(_fetch(origin, "ok.jpg"))
    origin = _origin(endpoint, provider=_static(keys["reader"], keys["reader-secret"]))
    assert aio(_fetch(origin, "ok.jpg")).data == b"jpeg bytes"


def test_check_without_list_bucket_is_denied(
    aio: Run[None], moto_s3: tuple[str, dict[str, str]]
) -> None:
    endpoint, keys = moto_s3
    origin = _origin(endpoint, provider=_static(keys["reader"], keys["reader-secret"]))
    with pytest.raises(OriginDenied, match="s3:ListBucket on photos"):
        aio(_check(origin))

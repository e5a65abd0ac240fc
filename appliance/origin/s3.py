"""Originals from an S3 bucket: plain GETs over aiohttp, signed with SigV4 by botocore.

- URLs: virtual-hosted style on AWS (``https://{bucket}.s3.{region}.amazonaws.com/{key}``;
  path style for bucket names with dots, which the wildcard certificate does not cover), path
  style with ``endpoint_url`` (MinIO, moto, other S3-compatible stores).
- The object key is ``prefix + key``, percent-encoded as S3 expects (appliance.origin.keys).
- Signing: botocore's S3SigV4Auth, the SigV4 signer with S3's rules (the path is signed as
  sent, not normalised or encoded twice); the payload hash is that of the empty body.
- Credentials: appliance.origin.credentials (the standard chain, off the event loop).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote, urlsplit

import aiohttp
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from yarl import URL

from appliance.config import S3OriginConfig
from appliance.origin.base import (
    Original,
    OriginDenied,
    OriginNotFound,
    OriginUnavailable,
)
from appliance.origin.credentials import CredentialCache, CredentialsProvider
from appliance.origin.keys import check_key, encode_key
from appliance.origin.revalidation import NotModified
from appliance.origin.transfer import (
    body_etag,
    exchange,
    media_type,
    new_session,
    parse_http_date,
    read_body,
    read_error_body,
)

log = logging.getLogger(__name__)

_ERROR_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")
# S3 codes that mean our credentials, not the bucket policy, are the problem: look them up again.
_CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "InvalidToken",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)


class S3Origin:
    """Fetches ``s3://{bucket}/{prefix}{key}``."""

    name = "s3"

    def __init__(
        self,
        config: S3OriginConfig,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_source_bytes: int,
        credentials_provider: CredentialsProvider | None = None,
        credentials_retry_seconds: float = 30.0,
    ) -> None:
        if not config.bucket:
            raise ValueError("origin.s3.bucket is empty")
        self._bucket = config.bucket
        self._prefix = config.prefix
        self._region = config.region
        self._bucket_url, self._object_base = bucket_urls(config)
        self._credentials = CredentialCache(
            credentials_provider, retry_seconds=credentials_retry_seconds
        )
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_source_bytes = max_source_bytes
        self._session: aiohttp.ClientSession | None = None

    def object_url(self, key: str) -> str:
        """The URL of ``prefix + key``, percent-encoded, as it is signed and sent."""
        return self._object_base + encode_key(self._prefix + key)

    async def fetch(self, key: str, *, if_none_match: str | None = None) -> Original:
        check_key(key)
        url = self.object_url(key)
        extra = {"If-None-Match": if_none_match} if if_none_match else {}
        headers = await self._signed_headers("GET", url, extra)  # botocore's own timeouts
        async with exchange("s3", key, deadline=self._connect_timeout + self._read_timeout):
            async with self._client().get(
                URL(url, encoded=True), headers=headers, allow_redirects=False
            ) as response:
                if response.status == 200:
                    data = await read_body(
                        response, limit=self._max_source_bytes, origin="s3", key=key
                    )
                    return Original(
                        key=key,
                        data=data,
                        etag=response.headers.get("ETag") or body_etag(data),
                        last_modified=parse_http_date(response.headers.get("Last-Modified")),
                        content_type=media_type(response.headers.get("Content-Type")),
                    )
                if response.status == 304 and if_none_match:
                    etag = response.headers.get("ETag", if_none_match)
                    last_modified = parse_http_date(response.headers.get("Last-Modified"))
                    raise NotModified(key, etag, last_modified)
                code = _error_code(await read_error_body(response))
                raise self._error(key, response, code, "s3:GetObject")

    async def check(self) -> None:
        """A signed HEAD of the bucket (S3's HeadBucket, which needs s3:ListBucket): OriginDenied
        on 403, OriginNotFound when the bucket does not exist."""
        headers = await self._signed_headers("HEAD", self._bucket_url, {})
        async with exchange("s3", "", deadline=self._connect_timeout + self._read_timeout):
            async with self._client().head(
                URL(self._bucket_url, encoded=True), headers=headers, allow_redirects=False
            ) as response:
                if response.status == 200:
                    return
                if response.status == 404:
                    log.warning("origin.check_failed origin=s3 bucket=%s status=404", self._bucket)
                    raise OriginNotFound(f"origin bucket {self._bucket} does not exist")
                raise self._error("", response, None, "s3:ListBucket")

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = new_session(
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
                auto_decompress=False,  # the object's bytes as stored
            )
        return self._session

    async def _signed_headers(self, method: str, url: str, extra: dict[str, str]) -> dict[str, str]:
        credentials = await self._credentials.get()
        if credentials is None:
            raise OriginDenied(
                "origin has no AWS credentials: attach an instance role with s3:GetObject"
                f" on {self._bucket}"
            )
        return sign(method, url, credentials, self._region, extra)

    def _error(
        self, key: str, response: aiohttp.ClientResponse, code: str | None, permission: str
    ) -> Exception:
        status = response.status
        fields = f"origin=s3 bucket={self._bucket} key={key!r} status={status} code={code}"
        if status == 404 and code == "NoSuchBucket":
            log.error("origin.unavailable %s", fields)
            return OriginUnavailable(f"origin bucket {self._bucket} does not exist")
        if status == 404:
            return OriginNotFound("no such original")
        if status == 403:
            log.error("origin.denied %s", fields)
            if code in _CREDENTIAL_CODES:
                self._credentials.invalidate()
                return OriginDenied(f"origin refused our AWS credentials ({code})")
            return OriginDenied(
                f"origin refused access: check the instance role's {permission} on {self._bucket}"
            )
        if status in (301, 307, 400) and (
            "x-amz-bucket-region" in response.headers
            or code in ("PermanentRedirect", "AuthorizationHeaderMalformed")
        ):
            region = response.headers.get("x-amz-bucket-region", "another region")
            log.error("origin.unavailable %s region=%s", fields, region)
            return OriginUnavailable(
                f"origin bucket {self._bucket} is in {region}, not {self._region}:"
                " check origin.s3.region"
            )
        log.warning("origin.unavailable %s", fields)
        return OriginUnavailable(f"origin answered HTTP {status}")


def bucket_urls(config: S3OriginConfig) -> tuple[str, str]:
    """(the bucket's URL for HeadBucket, the prefix that an encoded object key is appended to)."""
    bucket = quote(config.bucket, safe="")
    if config.endpoint_url:
        root = config.endpoint_url.rstrip("/")
        return f"{root}/{bucket}", f"{root}/{bucket}/"
    suffix = "amazonaws.com.cn" if config.region.startswith("cn-") else "amazonaws.com"
    if "." in config.bucket:
        root = f"https://s3.{config.region}.{suffix}"
        return f"{root}/{bucket}", f"{root}/{bucket}/"
    root = f"https://{bucket}.s3.{config.region}.{suffix}"
    return f"{root}/", f"{root}/"


def sign(
    method: str,
    url: str,
    credentials: ReadOnlyCredentials,
    region: str,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The headers of a SigV4-signed S3 request: Host, X-Amz-Date, X-Amz-Content-SHA256,
    X-Amz-Security-Token (temporary credentials), Authorization, and ``extra`` (signed too).
    ``url`` must be already percent-encoded, exactly as it is sent."""
    headers = {"Host": _host_header(url), **(extra or {})}
    request = AWSRequest(method=method, url=url, headers=headers)
    S3SigV4Auth(credentials, "s3", region).add_auth(request)
    return dict(request.headers.items())


def _host_header(url: str) -> str:
    """Host as botocore signs it: lower case, the port only when not the scheme's default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port != default_port:
        host = f"{host}:{parts.port}"
    return host


def _error_code(body: bytes) -> str | None:
    match = _ERROR_CODE.search(body)
    return match.group(1).decode("utf-8", "replace") if match else None

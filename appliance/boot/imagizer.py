"""Imagizer's configuration key names translated into ours, for user-data written for Imagizer.

:func:`translate` takes a decoded user-data document that may mix Imagizer's camelCase keys with
our sections and returns our document, the problems found (one line each, named by the Imagizer
key) and which Imagizer key set each of our key paths, so a validation error can say where a value
came from. Keys with an equivalent are translated (``TRANSLATED``); switches whose ``false`` is what
the appliance always does accept only ``false`` (``ONLY_FALSE``); the rest are errors naming the
key (``UNSUPPORTED``). docs/user-data.md has the same table for users.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from appliance.config import merge

Translate = Callable[[str, Any, list[str]], dict[str, Any]]


def _backend(key: str, value: Any, errors: list[str]) -> dict[str, Any]:
    usage = "must be a URL: http://host/path, https://host/path or s3://bucket/prefix"
    if not isinstance(value, str) or not value.strip():
        errors.append(f"{key}: {usage}")
        return {}
    url = value.strip()
    if "://" not in url:
        url = "http://" + url  # Imagizer takes a bare host name
    parts = urlsplit(url)
    if parts.scheme == "s3" and parts.netloc:
        s3 = {"bucket": parts.netloc}
        if prefix := parts.path.strip("/"):
            s3["prefix"] = prefix + "/"
        return {"origin": {"kind": "s3", "s3": s3}}
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        errors.append(f"{key}: {usage}, not {value!r}")
        return {}
    base_url = url if url.endswith("/") else url + "/"
    http = {"base_url": base_url, "allowed_hosts": [parts.hostname]}
    return {"origin": {"kind": "http", "http": http}}


def _aws_authorization(key: str, value: Any, errors: list[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        errors.append(f"{key}: must be a mapping with a bucket, not {_kind(value)}")
        return {}
    for name in value:
        if name in ("key", "secret"):
            if value[name]:
                errors.append(
                    f"{key}.{name}: not supported: the appliance reads S3 with the instance's "
                    "role; attach a role that may s3:GetObject and remove the access key"
                )
        elif name != "bucket":
            errors.append(f"{key}.{name}: unknown key")
    bucket = value.get("bucket")
    if not isinstance(bucket, str) or not bucket:
        errors.append(f"{key}.bucket: required, the name of the S3 bucket")
        return {}
    return {"origin": {"kind": "s3", "s3": {"bucket": bucket}}}


def _buckets_allowed(key: str, value: Any, errors: list[str]) -> dict[str, Any]:
    buckets = [value] if isinstance(value, str) else value
    if not isinstance(buckets, list) or not all(isinstance(b, str) and b for b in buckets):
        errors.append(f"{key}: must be a list of bucket names")
        return {}
    if len(buckets) != 1:
        errors.append(
            f"{key}: not supported with {len(buckets)} buckets: the appliance serves one "
            "bucket, origin.s3.bucket, and has no bucket parameter"
        )
        return {}
    return {"origin": {"kind": "s3", "s3": {"bucket": buckets[0]}}}


def _pass_through(key: str, value: Any, errors: list[str]) -> dict[str, Any]:
    return {"images": {"pass_through_originals": value}}


# Imagizer's configuration keys (docs/user-data.md has the same table). Translated: the key ->
# (our keys it sets, the translation).
TRANSLATED: dict[str, tuple[str, Translate]] = {
    "backend": (
        "origin.kind = http, origin.http.base_url, origin.http.allowed_hosts; an "
        "s3://bucket/prefix URL: origin.kind = s3, origin.s3.bucket, origin.s3.prefix",
        _backend,
    ),
    "awsAuthorization": ("origin.kind = s3, origin.s3.bucket", _aws_authorization),
    "bucketsAllowed": ("origin.kind = s3, origin.s3.bucket (one bucket)", _buckets_allowed),
    "allowOriginalImageRequest": ("images.pass_through_originals", _pass_through),
}
# Switches whose false is what the appliance always does: false is accepted, true is an error.
ONLY_FALSE: dict[str, str] = {
    "allowDynamicOrigin": "the origin is fixed by the configuration (origin.*)",
    "allowAnimatedGifs": "animations are rendered from their first frame",
    "allowDataUrls": "images come from the configured origin only",
}
_HEADERS = "the appliance sets Cache-Control from http.ttl_* and adds no custom headers"
# No equivalent: an error naming the key.
UNSUPPORTED: dict[str, str] = {
    "addResponseHeaders": _HEADERS,
    "customHeaders": _HEADERS,
    "accessControl": "the admin port listens on server.admin_host, loopback by default",
    "applicationWorkers": "autotune sizes the workers; set server.workers and server.threads",
    "cluster": "instances share nothing; put a load balancer in front",
}
IMAGIZER_KEYS = frozenset(TRANSLATED) | frozenset(ONLY_FALSE) | frozenset(UNSUPPORTED)


def _translate_one(key: str, value: Any, errors: list[str]) -> dict[str, Any]:
    if key in TRANSLATED:
        return TRANSLATED[key][1](key, value, errors)
    if key in ONLY_FALSE:
        if value is not False:
            shown = json.dumps(value, default=str)
            errors.append(f"{key}: {shown} is not supported: {ONLY_FALSE[key]}")
        return {}
    errors.append(f"{key}: not supported: {UNSUPPORTED[key]}")
    return {}


def translate(document: Mapping[str, Any]) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """Our document from one that may use Imagizer's key names. Returns the document, the
    problems found, and which Imagizer key set each of our key paths."""
    errors: list[str] = []
    own = {k: v for k, v in document.items() if k not in IMAGIZER_KEYS}
    flat: dict[str, tuple[Any, str]] = {}  # our key path -> (value, the Imagizer key)
    for key, value in document.items():
        if key not in IMAGIZER_KEYS:
            continue
        for path, leaf in _leaves(_translate_one(key, value, errors)):
            if path in flat and flat[path][0] != leaf:
                other, was = flat[path][1], flat[path][0]
                errors.append(f"{key}: sets {path} to {leaf!r} but {other} sets it to {was!r}")
                continue
            flat[path] = (leaf, key)
    translated: dict[str, Any] = {}
    for path, (leaf, key) in flat.items():
        found, mine = _lookup(own, path)
        if found and not _agrees(leaf, mine):
            errors.append(f"{key}: sets {path} to {leaf!r} but the document sets it to {mine!r}")
        *sections, name = path.split(".")
        node = translated
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = leaf
    return merge(translated, own), errors, {path: key for path, (_, key) in flat.items()}


def _leaves(document: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in document.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _lookup(document: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = document
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _agrees(alias_value: Any, own_value: Any) -> bool:
    if isinstance(alias_value, list) and isinstance(own_value, list):
        return all(item in own_value for item in alias_value)  # the document may add hosts
    return bool(alias_value == own_value)


def _kind(value: Any) -> str:
    names = {str: "a string", list: "a list", int: "a number", float: "a number", bool: "a bool"}
    return names.get(type(value), type(value).__name__)

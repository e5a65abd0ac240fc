"""signature: HMAC-SHA256 over the raw path and query, key rotation, expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

import pytest

from appliance.errors import ApplianceError
from appliance.request.errors import BadParameter, BadSignature, Expired
from appliance.request.signature import Key, sign_url, signature, verify

KEY = b"current-secret"
OLD = b"previous-secret"
NOW = 1_700_000_000


def split(url: str) -> tuple[str, str]:
    path, _, query = url.partition("?")
    return path, query


def reference(path: str, query: str, key: bytes) -> bytes:
    """The spec's formula written out independently of the module."""
    return hmac.new(key, f"{path}?{query}".encode(), hashlib.sha256).digest()


def b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def rejected(path: str, query: str, keys: list[Key] | None = None, now: float = NOW) -> str:
    with pytest.raises(BadSignature) as caught:
        verify(path, query, keys or [KEY], now)
    assert caught.value.status == 403
    assert isinstance(caught.value, ApplianceError)
    return caught.value.public_message


def test_signature_is_base64url_hmac_sha256_of_path_question_mark_query() -> None:
    expected = b64(reference("/a.jpg", "w=400&fm=webp", KEY))
    assert signature("/a.jpg", "w=400&fm=webp", KEY) == expected
    assert sign_url("/a.jpg", "w=400&fm=webp", KEY) == f"/a.jpg?w=400&fm=webp&sig={expected}"


def test_empty_query_signs_path_and_question_mark() -> None:
    expected = b64(reference("/a.jpg", "", KEY))
    assert sign_url("/a.jpg", "", KEY) == f"/a.jpg?sig={expected}"
    verify("/a.jpg", f"sig={expected}", [KEY], NOW)


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/a.jpg", ""),
        ("/a.jpg", "w=400"),
        ("/a.jpg", "w=400&fm=webp&q=80"),
        ("/dir/a%20b.jpg", "w=400"),
        ("/caf%C3%A9+x.jpg", "bg=%23fff&v=a%2Bb"),
        ("/100%25.jpg", "a=%20b&c=d+e&&f"),
        ("/a.jpg", "w=400&w=400"),
        ("/a.jpg", "v=é"),
    ],
)
def test_signed_url_verifies(path: str, query: str) -> None:
    verify(*split(sign_url(path, query, KEY)), [KEY], NOW)


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("name", ["sig", "s", "%73ig"])
def test_signature_parameter_may_sit_anywhere_under_either_name(where: str, name: str) -> None:
    sig = signature("/a.jpg", "w=400&fm=webp", KEY)
    query = {
        "first": f"{name}={sig}&w=400&fm=webp",
        "middle": f"w=400&{name}={sig}&fm=webp",
        "last": f"w=400&fm=webp&{name}={sig}",
    }[where]
    verify("/a.jpg", query, [KEY], NOW)


@pytest.mark.parametrize(
    "encode",
    [
        lambda d: d.hex(),
        lambda d: d.hex().upper(),
        lambda d: base64.urlsafe_b64encode(d).decode(),  # with "=" padding
        lambda d: base64.urlsafe_b64encode(d).decode().replace("=", "%3D"),
        b64,
    ],
    ids=["hex", "HEX", "base64url-padded", "base64url-%3D", "base64url"],
)
def test_signature_may_be_hex_or_base64url(encode: Callable[[bytes], str]) -> None:
    digest = reference("/a.jpg", "w=400", KEY)
    verify("/a.jpg", f"w=400&sig={encode(digest)}", [KEY], NOW)


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/a.jpg", "w=401"),  # a value changed
        ("/a.jpg", "fm=webp&w=400"),  # reordered
        ("/a.jpg", "w=400&fm=webp&q=10"),  # appended
        ("/a.jpg", "w=%34%30%30&fm=webp"),  # same meaning, other bytes
        ("/b.jpg", "w=400&fm=webp"),  # another object
        ("/a%2Ejpg", "w=400&fm=webp"),  # path bytes differ
        ("a.jpg", "w=400&fm=webp"),  # no leading slash
    ],
)
def test_tampered_url_is_rejected(path: str, query: str) -> None:
    sig = signature("/a.jpg", "w=400&fm=webp", KEY)
    assert rejected(path, f"{query}&sig={sig}") == "signature does not match"


def test_url_signed_with_another_key_is_rejected() -> None:
    assert rejected(*split(sign_url("/a.jpg", "w=400", b"someone-else"))) == (
        "signature does not match"
    )


@pytest.mark.parametrize("signer", [KEY, OLD])
def test_any_configured_key_verifies_during_rotation(signer: bytes) -> None:
    verify(*split(sign_url("/a.jpg", "w=400", signer)), [KEY, OLD], NOW)


def test_retired_key_no_longer_verifies() -> None:
    assert rejected(*split(sign_url("/a.jpg", "w=400", OLD)), keys=[KEY]) == (
        "signature does not match"
    )


def test_str_key_is_its_utf8_bytes() -> None:
    assert signature("/a.jpg", "w=1", "clé") == signature("/a.jpg", "w=1", "clé".encode())
    verify(*split(sign_url("/a.jpg", "w=1", b"secret")), ["secret"], NOW)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("w=400", "missing signature"),
        ("", "missing signature"),
        ("w=400&sig=a&s=b", "more than one signature"),
        ("sig=a&sig=a", "more than one signature"),
        ("w=400&sig=abc", "signature must be 64 hex digits or 43 base64url characters"),
        ("w=400&sig=", "signature must be 64 hex digits or 43 base64url characters"),
        ("w=400&sig=" + "z" * 64, "signature must be 64 hex digits or 43 base64url characters"),
        ("w=400&sig=" + "a" * 44, "signature must be 64 hex digits or 43 base64url characters"),
        ("w=400&sig=" + "+" * 43, "signature must be 64 hex digits or 43 base64url characters"),
    ],
)
def test_missing_or_malformed_signature_is_a_403(query: str, message: str) -> None:
    assert rejected("/a.jpg", query) == message


def test_expires_is_appended_and_signed() -> None:
    url = sign_url("/a.jpg", "w=400", KEY, expires=NOW + 60)
    assert url.startswith(f"/a.jpg?w=400&expires={NOW + 60}&sig=")
    assert sign_url("/a.jpg", "", KEY, expires=5).startswith("/a.jpg?expires=5&sig=")


@pytest.mark.parametrize("now", [NOW - 10**6, NOW + 59, NOW + 59.999])
def test_url_is_good_before_it_expires(now: float) -> None:
    verify(*split(sign_url("/a.jpg", "w=400", KEY, expires=NOW + 60)), [KEY], now)


@pytest.mark.parametrize("now", [NOW + 60, NOW + 61, NOW + 10**6])
def test_expired_url_is_a_403(now: float) -> None:
    with pytest.raises(Expired) as caught:
        verify(*split(sign_url("/a.jpg", "w=400", KEY, expires=NOW + 60)), [KEY], now)
    assert caught.value.status == 403
    assert caught.value.public_message == "URL has expired"


def test_extending_expires_breaks_the_signature() -> None:
    url = sign_url("/a.jpg", "w=400", KEY, expires=NOW - 1)
    forged = url.replace(f"expires={NOW - 1}", f"expires={NOW + 3600}")
    assert rejected(*split(forged)) == "signature does not match"


def test_expires_added_after_signing_breaks_the_signature() -> None:
    assert rejected(*split(sign_url("/a.jpg", "w=400", KEY) + "&expires=1")) == (
        "signature does not match"
    )


def test_bad_signature_is_reported_before_expiry() -> None:
    sig = signature("/a.jpg", "w=400", KEY)
    assert rejected("/a.jpg", f"w=400&expires=1&sig={sig}") == "signature does not match"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("expires=soon", "expires must be unix seconds, got 'soon'"),
        ("expires=-1", "expires must be unix seconds, got '-1'"),
        ("expires=", "expires must be unix seconds, got ''"),
        ("expires=1&expires=2", "expires given twice"),
    ],
)
def test_signed_expires_that_is_not_unix_seconds_is_a_400(query: str, message: str) -> None:
    with pytest.raises(BadParameter) as caught:
        verify(*split(sign_url("/a.jpg", query, KEY)), [KEY], NOW)
    assert caught.value.status == 400
    assert caught.value.public_message == message


@pytest.mark.parametrize("keys", [[], [b""], [""], [KEY, b""]])
def test_verify_without_a_usable_key_is_a_programming_error(keys: list[Key]) -> None:
    with pytest.raises(ValueError):
        verify("/a.jpg", "sig=x", keys, NOW)

"""Key checks and encoding shared by every origin, conditional-fetch matching, header parsing."""

from __future__ import annotations

import pytest

from appliance.origin.base import KeyRejected
from appliance.origin.keys import MAX_KEY_BYTES, check_key, encode_key
from appliance.origin.revalidation import etag_matches
from appliance.origin.transfer import media_type, parse_http_date


@pytest.mark.parametrize(
    "key",
    [
        "",
        "../x",
        "a/../../x",
        "a/..",
        "./x",
        "a/./b",
        "/etc/passwd",
        "//host/x",
        "nul\x00.jpg",
        "line\nbreak.jpg",
        "del\x7f.jpg",
        "back\\slash.jpg",
        "..\\..\\windows",
        "lone\udcffsurrogate.jpg",
        "x" * (MAX_KEY_BYTES + 1),
        "é" * (MAX_KEY_BYTES // 2 + 1),  # 2 bytes each in UTF-8
    ],
)
def test_check_key_rejects_unsafe_keys(key: str) -> None:
    with pytest.raises(KeyRejected) as caught:
        check_key(key)
    assert caught.value.status == 403


@pytest.mark.parametrize(
    "key",
    [
        "a.jpg",
        "a/b/c.jpg",
        "with space.jpg",
        "plus+sign.jpg",
        "100%.jpg",
        "%2e%2e/x",  # not decoded here: a literal name, not a traversal
        "café/日本.jpg",
        "..hidden/x..y/...",
        "a//b.jpg",
        "x" * MAX_KEY_BYTES,
    ],
)
def test_check_key_accepts_ordinary_keys(key: str) -> None:
    check_key(key)


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        ("a/b c.jpg", "a/b%20c.jpg"),
        ("plus+sign.jpg", "plus%2Bsign.jpg"),
        ("100%.jpg", "100%25.jpg"),
        ("café/日本.jpg", "caf%C3%A9/%E6%97%A5%E6%9C%AC.jpg"),
        ("q?x=1#frag;a&b=c:d@e", "q%3Fx%3D1%23frag%3Ba%26b%3Dc%3Ad%40e"),
        ("tilde~-_.jpg", "tilde~-_.jpg"),
    ],
)
def test_encode_key_percent_encodes_all_but_unreserved_and_slash(key: str, encoded: str) -> None:
    assert encode_key(key) == encoded


@pytest.mark.parametrize(
    ("header", "etag", "matches"),
    [
        ('"abc"', '"abc"', True),
        ('W/"abc"', '"abc"', True),
        ('"abc"', 'W/"abc"', True),
        ('"x", "abc"', '"abc"', True),
        ('"a,b"', '"a,b"', True),
        ("*", '"abc"', True),
        ('"abd"', '"abc"', False),
        ("", '"abc"', False),
    ],
)
def test_etag_matches_uses_weak_comparison(header: str, etag: str, matches: bool) -> None:
    assert etag_matches(header, etag) is matches


def test_parse_http_date() -> None:
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777.0
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 -0000") == 784111777.0
    assert parse_http_date("yesterday") is None
    assert parse_http_date(None) is None


def test_media_type_drops_parameters() -> None:
    assert media_type("Image/JPEG; charset=binary") == "image/jpeg"
    assert media_type("") is None
    assert media_type(None) is None

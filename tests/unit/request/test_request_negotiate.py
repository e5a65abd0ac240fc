"""negotiate: format=auto from Accept; the fallback family; when to send Vary: Accept."""

from __future__ import annotations

import pytest

from appliance.request.negotiate import (
    accepted,
    fallback_format,
    negotiate,
    output_format,
    source_family,
)

CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
FIREFOX = "image/avif,image/webp,*/*"
FIREFOX_OLD = "image/webp,*/*"
SAFARI_OLD = "image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
WILDCARDS = "image/*,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "source", "expected"),
    [
        (CHROME, "jpeg", "avif"),
        (FIREFOX, "jpeg", "avif"),
        (FIREFOX_OLD, "jpeg", "webp"),
        (SAFARI_OLD, "jpeg", "jpeg"),
        (WILDCARDS, "jpeg", "jpeg"),
        (WILDCARDS, "png", "png"),
        ("*/*", "jpeg", "jpeg"),
        ("image/*", "gif", "png"),
        (None, "jpeg", "jpeg"),
        ("", "jpeg", "jpeg"),
        ("image/avif;q=0,image/webp", "jpeg", "webp"),
        ("image/avif;q=0.0,image/webp;q=0", "jpeg", "jpeg"),
        ("image/webp;q=1,image/avif;q=0.5", "jpeg", "webp"),  # the client's higher q wins
        ("image/avif;q=0.8,image/webp;q=0.8", "jpeg", "avif"),  # ties: our preference
        ("image/avif;q=0.001", "jpeg", "avif"),
        ("IMAGE/AVIF", "jpeg", "avif"),
        ("image/avif ; q=0.5 , image/webp;q=0.4", "jpeg", "avif"),
        ("image/avif;level=1;q=0.9", "jpeg", "avif"),
        ("image/avif;q=abc,image/webp", "jpeg", "webp"),  # malformed q counts as 0
        ("image/avif;q=1.5", "jpeg", "jpeg"),
        ("image/avif;q=0,image/avif", "jpeg", "jpeg"),  # the first mention counts
        ("image/jpeg,image/png", "jpeg", "jpeg"),
        ("text/html,application/xhtml+xml", "png", "png"),
    ],
)
def test_only_explicit_avif_or_webp_proves_support(
    accept: str | None, source: str, expected: str
) -> None:
    assert negotiate(accept, source) == (expected, True)


@pytest.mark.parametrize(
    ("token", "expected"),
    [("avif", "avif"), ("webp", "webp"), ("jpeg", "jpeg"), (" AVIF ", "avif"), ("Webp", "webp")],
)
def test_cloudfront_token_is_read_as_that_format(token: str, expected: str) -> None:
    assert negotiate(token, "jpeg") == (expected, True)


def test_cloudfront_avif_token_also_admits_webp() -> None:
    assert negotiate("avif", "jpeg", preference=("webp",)) == ("webp", True)
    assert negotiate("webp", "jpeg", preference=("avif",)) == ("jpeg", True)


@pytest.mark.parametrize(
    ("accept", "source", "has_alpha", "expected"),
    [
        (WILDCARDS, "jpeg", False, "jpeg"),
        (WILDCARDS, "jpg", False, "jpeg"),
        (WILDCARDS, "png", False, "png"),
        (WILDCARDS, "png", True, "png"),
        (WILDCARDS, "gif", True, "png"),
        (WILDCARDS, "webp", False, "jpeg"),
        (WILDCARDS, "webp", True, "png"),
        (WILDCARDS, "avif", False, "jpeg"),
        (WILDCARDS, "avif", True, "png"),
        (FIREFOX_OLD, "avif", True, "webp"),
        (CHROME, "png", True, "avif"),
    ],
)
def test_fallback_keeps_the_source_family_and_never_loses_alpha(
    accept: str, source: str, has_alpha: bool, expected: str
) -> None:
    assert negotiate(accept, source, has_alpha=has_alpha)[0] == expected


@pytest.mark.parametrize(
    ("accept", "preference", "expected"),
    [
        (CHROME, ("webp",), "webp"),
        (CHROME, ("webp", "avif"), "webp"),
        (FIREFOX_OLD, ("avif",), "jpeg"),
        (CHROME, ("avif", "webp", "png"), "avif"),
        ("image/png", ("avif", "webp", "png"), "png"),
    ],
)
def test_preference_orders_the_candidates(
    accept: str, preference: tuple[str, ...], expected: str
) -> None:
    assert negotiate(accept, "jpeg", preference=preference)[0] == expected


@pytest.mark.parametrize(
    ("source", "preference", "vary"),
    [
        ("jpeg", (), False),
        ("jpeg", ("jpeg",), False),
        ("png", ("png",), False),
        ("jpeg", ("avif",), True),
        ("jpeg", ("avif", "webp"), True),
        ("png", ("jpeg",), True),
    ],
)
def test_vary_accept_only_when_the_answer_can_change(
    source: str, preference: tuple[str, ...], vary: bool
) -> None:
    for accept in (CHROME, WILDCARDS, None):
        assert negotiate(accept, source, preference=preference)[1] is vary


def test_fallback_argument_replaces_the_source_family() -> None:
    assert negotiate(WILDCARDS, "jpeg", fallback="png") == ("png", True)
    assert negotiate(CHROME, "jpeg", fallback="png") == ("avif", True)
    assert negotiate(WILDCARDS, "jpeg", preference=("png",), fallback="png") == ("png", False)


def test_unknown_preference_or_source_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="preference"):
        negotiate(CHROME, "jpeg", preference=("jxl",))
    with pytest.raises(ValueError, match="source format"):
        negotiate(CHROME, "heic")


@pytest.mark.parametrize(
    ("source", "family"),
    [
        ("jpeg", "jpeg"),
        ("jpg", "jpeg"),
        ("JPEG", "jpeg"),
        ("png", "png"),
        ("gif", "png"),
        ("webp", "webp"),
        ("avif", "avif"),
    ],
)
def test_source_family_is_what_format_none_writes(source: str, family: str) -> None:
    assert source_family(source) == family


@pytest.mark.parametrize(
    ("source", "has_alpha", "expected"),
    [
        ("jpeg", False, "jpeg"),
        ("png", False, "png"),
        ("gif", False, "png"),
        ("webp", False, "jpeg"),
        ("webp", True, "png"),
        ("avif", True, "png"),
    ],
)
def test_fallback_format(source: str, has_alpha: bool, expected: str) -> None:
    assert fallback_format(source, has_alpha=has_alpha) == expected


@pytest.mark.parametrize(
    ("requested", "accept", "source", "expected"),
    [
        (None, CHROME, "jpeg", ("jpeg", False)),
        (None, CHROME, "gif", ("png", False)),
        (None, WILDCARDS, "webp", ("webp", False)),  # asked for the source's own format
        ("original", CHROME, "png", ("png", False)),
        ("webp", None, "jpeg", ("webp", False)),
        ("jpeg", CHROME, "png", ("jpeg", False)),
        ("auto", CHROME, "jpeg", ("avif", True)),
        ("auto", WILDCARDS, "png", ("png", True)),
    ],
)
def test_output_format_negotiates_only_for_auto(
    requested: str | None, accept: str | None, source: str, expected: tuple[str, bool]
) -> None:
    assert output_format(requested, accept, source) == expected  # type: ignore[arg-type]


def test_accepted_lists_only_explicit_image_types() -> None:
    assert accepted(CHROME) == {"avif": 1.0, "webp": 1.0}
    assert accepted("image/*,*/*") == {}
    assert accepted("image/webp;q=0.5,image/png") == {"webp": 0.5, "png": 1.0}
    assert accepted(None) == {}

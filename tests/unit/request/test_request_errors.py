"""The request errors: their statuses and one-line messages."""

from __future__ import annotations

import pytest

from appliance.errors import ApplianceError
from appliance.request.errors import BadParameter, BadSignature, Expired, show


@pytest.mark.parametrize(
    ("kind", "status"), [(BadParameter, 400), (BadSignature, 403), (Expired, 403)]
)
def test_request_errors_carry_their_status(kind: type[ApplianceError], status: int) -> None:
    error = kind("why")
    assert isinstance(error, ApplianceError)
    assert error.status == status
    assert error.public_message == "why"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("abc", "'abc'"),
        ("", "''"),
        ("a\nb", "'a\\nb'"),
        ("\x00", "'\\x00'"),
        ("x" * 41, "'" + "x" * 37 + "...'"),
        ("x" * 40, "'" + "x" * 40 + "'"),
    ],
)
def test_show_quotes_a_value_on_one_short_line(value: str, shown: str) -> None:
    assert show(value) == shown

"""The IMDSv2 client against the fake IMDS over real localhost sockets. Backoff sleeps are
injected and recorded, never slept."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from image.fake_imds import FakeImds, Request

from appliance.boot.imds import Imds, ImdsUnavailable

STATE: dict[str, Any] = {
    "instance_type": "m7i.4xlarge",
    "instance_id": "i-0a1b2c3d4e5f60718",
    "region": "ap-southeast-2",
    "availability_zone": "ap-southeast-2c",
    "user_data": "server: {workers: 3}",
}
TOKEN_PUT = Request("PUT", "/latest/api/token", False)


@pytest.fixture
def imds() -> Iterator[FakeImds]:
    with FakeImds(dict(STATE)) as fake:
        yield fake


@pytest.fixture
def slept() -> list[float]:
    return []


def client(url: str, slept: list[float], **kwargs: Any) -> Imds:
    return Imds(url, sleep=slept.append, **kwargs)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_helpers_read_the_metadata_with_one_token(imds: FakeImds, slept: list[float]) -> None:
    c = client(imds.base_url, slept)
    assert c.instance_type() == STATE["instance_type"]
    assert c.instance_id() == STATE["instance_id"]
    assert c.region() == STATE["region"]
    assert c.user_data() == STATE["user_data"].encode()
    assert imds.requests[0] == TOKEN_PUT
    assert imds.requests.count(TOKEN_PUT) == 1
    assert all(r.had_token for r in imds.requests if r.method == "GET")
    assert slept == []


def test_ttl_header_asks_for_the_longest_token(imds: FakeImds, slept: list[float]) -> None:
    assert client(imds.base_url, slept).instance_id() == STATE["instance_id"]
    assert imds.requests[:2] == [TOKEN_PUT, Request("GET", "/latest/meta-data/instance-id", True)]


def test_region_falls_back_to_the_zone_without_its_letter(slept: list[float]) -> None:
    with FakeImds({"region": "", "availability_zone": "us-gov-west-1b"}) as imds:
        assert client(imds.base_url, slept).region() == "us-gov-west-1"
        paths = [r.path for r in imds.requests if r.method == "GET"]
        assert paths == [
            "/latest/meta-data/placement/region",
            "/latest/meta-data/placement/availability-zone",
        ]


def test_a_revoked_token_is_replaced_once(imds: FakeImds, slept: list[float]) -> None:
    c = client(imds.base_url, slept)
    assert c.instance_type() == STATE["instance_type"]
    imds.revoke_tokens()
    assert c.instance_id() == STATE["instance_id"]
    assert imds.requests == [
        TOKEN_PUT,
        Request("GET", "/latest/meta-data/instance-type", True),
        Request("GET", "/latest/meta-data/instance-id", True),  # 401: the old token
        TOKEN_PUT,
        Request("GET", "/latest/meta-data/instance-id", True),
    ]


def test_missing_paths_are_none(imds: FakeImds, slept: list[float]) -> None:
    c = client(imds.base_url, slept)
    assert c.get("meta-data/no-such-thing") is None
    assert c.get("/latest/meta-data/instance-type") == STATE["instance_type"].encode()


def test_no_user_data_is_none_not_an_error(slept: list[float]) -> None:
    with FakeImds({}) as imds:
        assert client(imds.base_url, slept).user_data() is None


def test_server_errors_are_retried_with_exponential_backoff(
    imds: FakeImds, slept: list[float]
) -> None:
    imds.fail_next(3, 503)
    c = client(imds.base_url, slept, attempts=4, backoff=0.1)
    assert c.instance_type() == STATE["instance_type"]
    assert slept == [0.1, 0.2, 0.4]


def test_backoff_is_capped(imds: FakeImds, slept: list[float]) -> None:
    imds.fail_next(5, 500)
    c = client(imds.base_url, slept, attempts=6, backoff=0.5, max_backoff=1.0)
    assert c.instance_id() == STATE["instance_id"]
    assert slept == [0.5, 1.0, 1.0, 1.0, 1.0]


def test_persistent_errors_give_up_after_the_attempts(
    imds: FakeImds, slept: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    imds.fail_next(100, 500)
    c = client(imds.base_url, slept, attempts=3)
    with caplog.at_level(logging.INFO, logger="appliance.boot.imds"):
        assert c.instance_type() is None
        with pytest.raises(ImdsUnavailable):
            c.user_data()
    assert len(imds.requests) == 3  # the second call did not try again
    assert len(slept) == 2
    events = [r.getMessage().split()[0] for r in caplog.records]
    assert events == ["imds.retry", "imds.retry", "imds.unavailable"]


def test_unreachable_imds_gives_none_and_user_data_raises(slept: list[float]) -> None:
    c = client(f"http://127.0.0.1:{closed_port()}", slept, attempts=3)
    assert c.instance_type() is None
    assert c.instance_id() is None
    assert c.region() is None
    with pytest.raises(ImdsUnavailable):
        c.user_data()
    assert len(slept) == 2  # retried once, then every later call failed at once


def test_a_silent_server_times_out_and_is_retried(slept: list[float]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts connections (the backlog) but never answers
        port = listener.getsockname()[1]
        c = client(f"http://127.0.0.1:{port}", slept, attempts=2, timeout=0.2)
        with pytest.raises(ImdsUnavailable, match="timed out"):
            c.user_data()
    assert len(slept) == 1


def test_refused_token_is_unavailable_without_retrying(imds: FakeImds, slept: list[float]) -> None:
    imds.fail_next(1, 403)  # IMDS turned off for the instance answers 403
    c = client(imds.base_url, slept)
    with pytest.raises(ImdsUnavailable, match="403"):
        c.user_data()
    assert c.instance_type() is None  # without asking again
    assert (slept, imds.requests) == ([], [TOKEN_PUT])


def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPLIANCE_IMDS_URL", "http://127.0.0.1:8169/")
    assert Imds().base_url == "http://127.0.0.1:8169"
    assert Imds("http://127.0.0.2:80").base_url == "http://127.0.0.2:80"
    monkeypatch.delenv("APPLIANCE_IMDS_URL")
    assert Imds().base_url == "http://169.254.169.254"
    with pytest.raises(ValueError):
        Imds("https://169.254.169.254")

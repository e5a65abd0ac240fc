"""The fake IMDSv2 the image test boots against, checked with plain http.client (not our
client) so that the two cannot share a misunderstanding."""

from __future__ import annotations

import base64
import http.client
import json
import selectors
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from image.fake_imds import FakeImds, Request

FAKE = Path(__file__).parents[2] / "image" / "fake_imds.py"
STATE: dict[str, Any] = {
    "instance_type": "c7g.2xlarge",
    "instance_id": "i-0fedcba9876543210",
    "region": "eu-west-3",
    "availability_zone": "eu-west-3b",
    "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFake tester@laptop",
    "user_data": '{"origin": {"kind": "s3"}}',
    "role": None,
}


def call(
    port: int, method: str, path: str, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def token(port: int) -> str:
    status, body = call(
        port, "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    )
    assert status == 200
    return body.decode()


def get(port: int, path: str) -> tuple[int, bytes]:
    return call(port, "GET", path, {"X-aws-ec2-metadata-token": token(port)})


@pytest.fixture
def imds() -> Iterator[FakeImds]:
    with FakeImds(dict(STATE)) as fake:
        yield fake


def test_get_without_a_token_is_refused(imds: FakeImds) -> None:
    assert call(imds.port, "GET", "/latest/meta-data/instance-type")[0] == 401
    bogus = {"X-aws-ec2-metadata-token": "not-a-token-it-issued"}
    assert call(imds.port, "GET", "/latest/meta-data/instance-type", bogus)[0] == 401


@pytest.mark.parametrize("ttl", [None, "0", "21601", "soon"])
def test_token_needs_a_ttl_between_1_and_21600(imds: FakeImds, ttl: str | None) -> None:
    headers = {} if ttl is None else {"X-aws-ec2-metadata-token-ttl-seconds": ttl}
    assert call(imds.port, "PUT", "/latest/api/token", headers)[0] == 400


def test_token_request_through_a_proxy_is_refused(imds: FakeImds) -> None:
    headers = {"X-aws-ec2-metadata-token-ttl-seconds": "21600", "X-Forwarded-For": "10.0.0.1"}
    assert call(imds.port, "PUT", "/latest/api/token", headers)[0] == 403


def test_serves_the_state_with_a_token(imds: FakeImds) -> None:
    for path, key in [
        ("/latest/meta-data/instance-type", "instance_type"),
        ("/latest/meta-data/instance-id", "instance_id"),
        ("/latest/meta-data/placement/region", "region"),
        ("/latest/meta-data/placement/availability-zone", "availability_zone"),
        ("/latest/user-data", "user_data"),
    ]:
        assert get(imds.port, path) == (200, STATE[key].encode())


def test_dated_versions_are_served_as_latest(imds: FakeImds) -> None:
    assert get(imds.port, "/2021-01-03/meta-data/instance-type") == (
        200,
        STATE["instance_type"].encode(),
    )
    assert get(imds.port, "/not-a-version/meta-data/instance-type")[0] == 404


def test_directories_list_their_children(imds: FakeImds) -> None:
    status, body = get(imds.port, "/latest/meta-data/")
    assert status == 200
    listing = body.decode().split("\n")
    for name in ["instance-type", "instance-id", "ami-id", "hostname", "local-ipv4"]:
        assert name in listing
    assert "placement/" in listing and "public-keys/" in listing
    assert "iam/" not in listing  # no role in the state
    assert get(imds.port, "/latest/meta-data/placement")[1].decode().split("\n") == [
        "availability-zone",
        "region",
    ]


def test_public_keys_are_listed_the_way_cloud_init_reads_them(imds: FakeImds) -> None:
    name = STATE["public_key"].split()[2]
    assert get(imds.port, "/latest/meta-data/public-keys/") == (200, f"0={name}".encode())
    assert get(imds.port, "/latest/meta-data/public-keys/0/") == (200, b"openssh-key")
    assert get(imds.port, "/latest/meta-data/public-keys/0/openssh-key") == (
        200,
        STATE["public_key"].encode(),
    )


def test_identity_document_and_its_directories(imds: FakeImds) -> None:
    assert get(imds.port, "/latest/dynamic/") == (200, b"instance-identity/")
    assert get(imds.port, "/latest/dynamic/instance-identity/") == (200, b"document")
    status, body = get(imds.port, "/latest/dynamic/instance-identity/document")
    document = json.loads(body)
    assert status == 200
    assert (document["instanceType"], document["region"], document["availabilityZone"]) == (
        STATE["instance_type"],
        STATE["region"],
        STATE["availability_zone"],
    )


def test_no_user_data_is_404(imds: FakeImds) -> None:
    assert isinstance(imds.state, dict)
    imds.state.pop("user_data")
    assert get(imds.port, "/latest/user-data")[0] == 404
    assert "user-data" not in get(imds.port, "/latest/")[1].decode().split("\n")


def test_binary_user_data_from_base64_state() -> None:
    payload = bytes(range(256))
    state = {"user_data_base64": base64.b64encode(payload).decode()}
    with FakeImds(state) as imds:
        assert get(imds.port, "/latest/user-data") == (200, payload)


def test_state_file_is_reread_so_a_role_can_be_attached_later(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps({"user_data": "first"}))
    with FakeImds(state_file) as imds:
        assert get(imds.port, "/latest/user-data") == (200, b"first")
        assert get(imds.port, "/latest/meta-data/iam/security-credentials/")[0] == 404
        role = {"name": "images", "access_key_id": "AKIDTEST", "secret_access_key": "s3cr3t"}
        role["token"] = "session-token"
        state_file.write_text(json.dumps({"user_data": "second", "role": role}))
        assert get(imds.port, "/latest/user-data") == (200, b"second")
        listing = get(imds.port, "/latest/meta-data/iam/security-credentials/")
        assert listing == (200, b"images")
        status, body = get(imds.port, "/latest/meta-data/iam/security-credentials/images")
        credentials = json.loads(body)
        assert status == 200 and credentials["Code"] == "Success"
        assert (credentials["AccessKeyId"], credentials["SecretAccessKey"]) == (
            "AKIDTEST",
            "s3cr3t",
        )
        assert credentials["Token"] == "session-token" and credentials["Expiration"].endswith("Z")
        info = json.loads(get(imds.port, "/latest/meta-data/iam/info")[1])
        assert info["InstanceProfileArn"].endswith(":instance-profile/images")


def test_requests_log_the_token_flow(imds: FakeImds) -> None:
    get(imds.port, "/latest/meta-data/instance-id")
    call(imds.port, "GET", "/latest/meta-data/instance-id")
    assert imds.requests == [
        Request("PUT", "/latest/api/token", False),
        Request("GET", "/latest/meta-data/instance-id", True),
        Request("GET", "/latest/meta-data/instance-id", False),
    ]


def test_revoked_tokens_and_injected_failures(imds: FakeImds) -> None:
    held = token(imds.port)
    headers = {"X-aws-ec2-metadata-token": held}
    assert call(imds.port, "GET", "/latest/meta-data/instance-id", headers)[0] == 200
    imds.revoke_tokens()
    assert call(imds.port, "GET", "/latest/meta-data/instance-id", headers)[0] == 401
    imds.fail_next(2, 503)
    assert call(imds.port, "PUT", "/latest/api/token", {})[0] == 503
    assert call(imds.port, "GET", "/latest/meta-data/instance-id")[0] == 503
    assert get(imds.port, "/latest/meta-data/instance-id")[0] == 200


def test_runs_as_a_process_and_prints_its_port(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(STATE))
    command = [sys.executable, str(FAKE), "--port", "0", "--state", str(state_file), "--quiet"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                assert selector.select(timeout=20), "the fake IMDS printed no port"
            port = int(process.stdout.readline())
            assert get(port, "/latest/meta-data/instance-type") == (
                200,
                STATE["instance_type"].encode(),
            )
        finally:
            process.terminate()
    assert process.returncode is not None

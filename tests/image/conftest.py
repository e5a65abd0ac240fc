"""Fixtures of the image test: the image built once, moto's S3 server on the host holding the
customer's bucket, the fake IMDS, and two boots of the image with different sizes and
user-data. Run by `make image-test` (never by `make test`: a boot takes a minute under TCG)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from servers import ADMIN_S3_POLICY, moto_users, s3_client

from . import harness

BUCKET = "customer-photos"
SIGNING_KEY = "image-test-signing-key-0123456789"
READER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:ListBucket", "s3:HeadBucket"],
            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
        }
    ],
}


@pytest.fixture(scope="session")
def image() -> Path:
    for tool in ("qemu-system-x86_64", "qemu-img", "packer", "mmdebstrap", "socat"):
        if shutil.which(tool) is None:
            # make image-test installs them; running pytest by hand without them cannot work
            pytest.fail(f"{tool} is missing: run `make image-test`, which installs it")
    return harness.build_image()


@dataclass
class S3:
    endpoint: str  # as the host reaches it
    guest_endpoint: str  # as the guest reaches it (slirp's host address)
    reader: dict[str, str]  # the instance role's keys: may read the bucket, nothing else
    admin: Any  # boto3 client that stores objects


@pytest.fixture(scope="session")
def s3() -> Iterator[S3]:
    """moto's S3 server with IAM authentication on: every request the guest makes must carry
    a valid SigV4 signature made with the role credentials the fake IMDS hands out."""
    import requests
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    requests.post(f"{endpoint}/moto-api/reset", timeout=5).raise_for_status()
    keys = moto_users(endpoint, {"instance-role": READER_POLICY, "admin": ADMIN_S3_POLICY})
    admin = s3_client(endpoint, keys["admin"])
    admin.create_bucket(Bucket=BUCKET)
    photo = next(p for p in sorted(harness.samples().iterdir()) if p.suffix == ".jpg")
    admin.put_object(Bucket=BUCKET, Key="photos/cat one.jpg", Body=photo.read_bytes())
    requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=5).raise_for_status()
    reader = {
        "access_key_id": keys["instance-role"]["AccessKeyId"],
        "secret_access_key": keys["instance-role"]["SecretAccessKey"],
    }
    try:
        yield S3(endpoint, f"http://{harness.GUEST_HOST}:{port}", reader, admin)
    finally:
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"inf", timeout=5)
        server.stop()


@pytest.fixture(scope="session")
def imds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Imds]:
    with harness.Imds(tmp_path_factory.mktemp("imds") / "state.json") as server:
        yield server


def public_key() -> str:
    return harness.ssh_key().with_suffix(".pub").read_text().strip()


@dataclass
class Boot:
    vm: harness.Vm
    host: Any  # testinfra.host.Host over SSH, sudo on

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.vm.http_port}"

    def json(self, path: str) -> Any:
        return json.loads(self.host.file(path).content_string)


def boot(image: Path, imds: harness.Imds, *, cpus: int, memory_mib: int) -> Iterator[Boot]:
    import testinfra

    with harness.booted(image, imds.port, cpus=cpus, memory_mib=memory_mib) as vm:
        host = testinfra.get_host("ssh://vm", ssh_config=str(vm.ssh_config), sudo=True)
        # The image boots to SSH before the appliance units finish: wait for them.
        vm.ssh(
            "timeout 300 sh -c 'until systemctl is-active -q appliance.service || "
            "systemctl is-failed -q appliance.service; do sleep 1; done'",
            check=False,
            timeout=330,
        )
        yield Boot(vm, host)


@pytest.fixture(scope="module")
def configured(image: Path, s3: S3, imds: harness.Imds) -> Iterator[Boot]:
    """First boot: 1 vCPU, 1 GiB, user-data pointing at the bucket, signing on, and no
    instance role yet: test_a_role_attached_later... attaches it while the service runs."""
    user_data = {
        "origin": {
            "kind": "s3",
            "s3": {"bucket": BUCKET, "region": "us-east-1", "endpoint_url": s3.guest_endpoint},
        },
        "signing": {"enabled": True, "keys": [SIGNING_KEY]},
    }
    imds.write(
        harness.default_state(
            public_key(), instance_type="c6i.large", user_data=json.dumps(user_data), role=None
        )
    )
    yield from boot(image, imds, cpus=1, memory_mib=1024)


def attach_role(imds: harness.Imds, s3: S3) -> None:
    """What `aws ec2 associate-iam-instance-profile` does, as the instance sees it."""
    state = json.loads(imds.state_path.read_text())
    state["role"] = {
        "name": "appliance-instance",
        "access_key_id": s3.reader["access_key_id"],
        "secret_access_key": s3.reader["secret_access_key"],
        "token": "",
    }
    imds.write(state)


@pytest.fixture(scope="module")
def broken(image: Path, imds: harness.Imds) -> Iterator[Boot]:
    """Second boot: 2 vCPUs, 2 GiB, a user-data document with a wrong key and no role."""
    user_data = "#cloud-config\nappliance:\n  origin:\n    kind: s3\n    s3:\n      bucket: ''\n"
    imds.write(harness.default_state(public_key(), instance_type="c6i.xlarge", user_data=user_data))
    yield from boot(image, imds, cpus=2, memory_mib=2048)


def pytest_report_header() -> str:
    return f"image test: accelerator {harness.accelerator()}, cache {harness.cache_dir()}" + (
        "" if os.environ.get("CI") is None else " (CI)"
    )

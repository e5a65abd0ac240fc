"""`appliance bake aws|list|prune` against moto's EC2 server over real HTTP.

We cannot reach AWS from here, so Packer's amazon-ebs build is played by a stand-in executable:
the test registers an image in moto as the build would have made it, and the stand-in prints
what Packer 1.6.6 prints for an amazon-ebs build (machine-readable, with the manifest
post-processor repeating the artifact) with that AMI as its artifact. Everything after Packer is
the real code against moto: IMDSv2, tags on the image and its snapshots, list and prune.

moto (5.2) accepts ModifyImageAttribute with ImdsSupport but does not keep the value, so the
requests go through a small recording proxy in front of moto, and the test reads the
ImdsSupport that reached the server there.
"""

from __future__ import annotations

import dataclasses
import http.client
import logging
import os
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from packer_stand_in import calls, stand_in_packer, will_print

from appliance import __version__
from appliance.cli import main

REGION = "us-east-1"
COPY_REGION = "eu-west-1"
ARCH_EC2 = {"amd64": "x86_64", "arm64": "arm64"}


@dataclass
class Recorder:
    """The EC2 Query API requests (form fields) that reached moto, with moto's status."""

    requests: list[tuple[dict[str, str], int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def calls(self, action: str) -> list[dict[str, str]]:
        with self.lock:
            return [f for f, status in self.requests if f.get("Action") == action and status == 200]


def start_recording_proxy(upstream: str, recorder: Recorder) -> ThreadingHTTPServer:
    target = urllib.parse.urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            conn = http.client.HTTPConnection(target.hostname or "", target.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            conn.request("POST", self.path, body=body, headers=headers)
            reply = conn.getresponse()
            data = reply.read()
            conn.close()
            form = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
            with recorder.lock:
                recorder.requests.append((form, reply.status))
            self.send_response(reply.status)
            for key, value in reply.getheaders():
                if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@dataclass
class Aws:
    endpoint: str  # the recording proxy in front of moto
    recorder: Recorder

    def ec2(self, region: str = REGION) -> Any:
        return boto3.client("ec2", region_name=region, endpoint_url=self.endpoint)


@pytest.fixture(scope="module")
def moto_behind_proxy() -> Iterator[tuple[str, str, Recorder]]:
    """moto's server and the recording proxy in front of it: (moto, proxy, recorder)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    moto = "http://{}:{}".format(*server.get_host_and_port())
    recorder = Recorder()
    proxy = start_recording_proxy(moto, recorder)
    try:
        yield moto, "http://{}:{}".format(*proxy.server_address[:2]), recorder
    finally:
        proxy.shutdown()
        proxy.server_close()
        requests.post(f"{moto}/moto-api/reset", timeout=5)
        server.stop()


@pytest.fixture
def aws(moto_behind_proxy: tuple[str, str, Recorder], monkeypatch: pytest.MonkeyPatch) -> Aws:
    moto, proxy, recorder = moto_behind_proxy
    # moto's state is global to the process: start from nothing, without IAM checks
    requests.post(f"{moto}/moto-api/reset", timeout=5).raise_for_status()
    requests.post(f"{moto}/moto-api/reset-auth", data=b"inf", timeout=5).raise_for_status()
    with recorder.lock:
        recorder.requests.clear()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_EC2", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return Aws(proxy, recorder)


def register_built_image(ec2: Any, arch: str, name: str) -> str:
    """An AMI as Packer leaves it (moto gives it a root snapshot), before our post-build steps."""
    image_id: str = ec2.register_image(
        Name=name,
        Architecture=ARCH_EC2[arch],
        RootDeviceName="/dev/xvda",
        VirtualizationType="hvm",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
    )["ImageId"]
    return image_id


def packer_transcript(amis: dict[str, dict[str, str]]) -> str:
    """What Packer 1.6.6 prints for `build -machine-readable` of amazon-ebs sources:
    ``amis`` maps a build name (amazon-ebs.amd64) to {region: ami id}."""
    lines = []
    for build in amis:
        lines += [
            f"1764150000,,ui,say,==> {build}: Prevalidating any provided VPC information",
            f"1764150003,,ui,say,==> {build}: Launching a source AWS instance...",
            f"1764150200,,ui,say,==> {build}: Creating AMI appliance from instance i-0123",
            f"1764150400,,ui,say,Build '{build}' finished after 6 minutes 40 seconds.",
        ]
    lines.append(
        "1764150460,,ui,say,\\n==> Builds finished. The artifacts of successful builds are:"
    )
    for build, by_region in amis.items():
        ident = "%!(PACKER_COMMA)".join(f"{r}:{a}" for r, a in sorted(by_region.items()))
        text = "AMIs were created:\\n" + "".join(
            f"{r}: {a}\\n" for r, a in sorted(by_region.items())
        )
        lines.append(f"1764150460,{build},artifact-count,2")
        for index in (0, 1):  # the manifest post-processor hands the same artifact on
            lines += [
                f"1764150460,{build},artifact,{index},builder-id,mitchellh.amazonebs",
                f"1764150460,{build},artifact,{index},id,{ident}",
                f"1764150460,{build},artifact,{index},string,{text}",
                f"1764150460,{build},artifact,{index},files-count,0",
                f"1764150460,{build},artifact,{index},end",
                f"1764150460,,ui,say,--> {build}: {text}",
            ]
    return "\n".join(lines) + "\n"


@dataclass
class StandIn:
    exe: Path

    def will_print(self, output: str, exit_code: int = 0) -> None:
        will_print(self.exe, output, exit_code)

    def last_build(self) -> list[str]:
        last: list[str] = [call for call in calls(self.exe) if call[:1] == ["build"]][-1]
        return last


@pytest.fixture
def packer(tmp_path: Path) -> StandIn:
    return StandIn(stand_in_packer(tmp_path / "bin"))


@pytest.fixture
def template(tmp_path: Path) -> Path:
    folder = tmp_path / "repo" / "packer"
    folder.mkdir(parents=True)
    (folder / "appliance.pkr.hcl").write_text("# the stand-in does not read it\n")
    return folder


def bake_aws(aws: Aws, packer: StandIn, template: Path, *extra: str) -> int:
    argv = ["bake", "aws", "--template", str(template), "--packer", str(packer.exe)]
    return main([*argv, "--endpoint-url", aws.endpoint, *extra])


def build_and_bake(aws: Aws, packer: StandIn, template: Path, arch: str, n: int) -> str:
    image_id = register_built_image(aws.ec2(), arch, f"appliance-{arch}-{n}")
    packer.will_print(packer_transcript({f"amazon-ebs.{arch}": {REGION: image_id}}))
    assert bake_aws(aws, packer, template, "--arch", arch, "--region", REGION) == 0
    return image_id


def tags_of(ec2: Any, resource: str) -> dict[str, str]:
    found = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [resource]}])["Tags"]
    return {t["Key"]: t["Value"] for t in found}


def test_bake_aws_requires_imdsv2_and_tags_the_ami_and_its_snapshot(
    aws: Aws, packer: StandIn, template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ec2 = aws.ec2()
    image_id = register_built_image(ec2, "amd64", "appliance-0.1.0-debian13-amd64")
    packer.will_print(packer_transcript({"amazon-ebs.amd64": {REGION: image_id}}))

    assert bake_aws(aws, packer, template, "--arch", "amd64", "--region", REGION) == 0

    build = packer.last_build()
    assert build[:3] == ["build", "-machine-readable", "-only=amazon-ebs.amd64"]
    assert "-force" not in build
    variables = dict(v.split("=", 1) for v in build[4:-1:2])
    assert variables["version"] == __version__
    assert variables["aws_region"] == REGION
    assert variables["debian_release"] == "13"
    assert "ami_regions" not in variables  # no copies unless asked

    imds = aws.recorder.calls("ModifyImageAttribute")
    assert [(c["ImageId"], c.get("ImdsSupport.Value")) for c in imds] == [(image_id, "v2.0")]

    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    assert image.get("ImdsSupport", "v2.0") == "v2.0"  # where moto keeps it, it must be v2.0
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    assert tags["Name"] == f"appliance {__version__} amd64"
    assert tags["appliance:version"] == __version__
    assert tags["appliance:git-commit"] == variables["git_commit"]
    assert tags["appliance:debian-release"] == "13"
    assert tags["appliance:arch"] == "amd64"
    assert tags["appliance:built-at"].endswith("Z")
    snapshot = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    assert tags_of(ec2, snapshot) == tags
    assert f"amd64 {REGION} {image_id}: IMDSv2 required" in capsys.readouterr().out


def test_bake_aws_all_arches_finishes_every_regional_copy(
    aws: Aws, packer: StandIn, template: Path
) -> None:
    made = {
        f"amazon-ebs.{arch}": {
            region: register_built_image(aws.ec2(region), arch, f"appliance-{arch}")
            for region in (REGION, COPY_REGION)
        }
        for arch in ("amd64", "arm64")
    }
    packer.will_print(packer_transcript(made))

    argv = ["--arch", "all", "--region", REGION, "--copy-to", COPY_REGION, "--release", "12"]
    assert bake_aws(aws, packer, template, *argv) == 0

    build = packer.last_build()
    assert build[2] == "-only=amazon-ebs.amd64,amazon-ebs.arm64"
    assert f'ami_regions=["{COPY_REGION}"]' in build
    finished = {c["ImageId"] for c in aws.recorder.calls("ModifyImageAttribute")}
    every = {image for by_region in made.values() for image in by_region.values()}
    assert finished == every  # each once, though the manifest repeats the artifacts
    assert len(aws.recorder.calls("ModifyImageAttribute")) == 4
    for build_name, by_region in made.items():
        for region, image_id in by_region.items():
            tags = tags_of(aws.ec2(region), image_id)
            assert tags["appliance:arch"] == build_name.split(".")[1]
            assert tags["appliance:debian-release"] == "12"


def test_bake_aws_fails_when_packer_built_nothing(
    aws: Aws, packer: StandIn, template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    packer.will_print(
        "1764150000,,ui,say,\\n==> Builds finished but no artifacts were created.\n", exit_code=0
    )
    assert bake_aws(aws, packer, template, "--arch", "arm64", "--region", REGION) == 1
    assert "built nothing" in capsys.readouterr().err
    assert aws.recorder.calls("ModifyImageAttribute") == []


def test_bake_aws_finishes_the_ami_that_was_made_when_another_build_failed(
    aws: Aws, packer: StandIn, template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image_id = register_built_image(aws.ec2(), "amd64", "appliance-amd64")
    output = packer_transcript({"amazon-ebs.amd64": {REGION: image_id}})
    output += "1764150461,amazon-ebs.arm64,error,Timeout waiting for SSH.\n"
    packer.will_print(output, exit_code=1)

    assert bake_aws(aws, packer, template, "--arch", "all", "--region", REGION) == 1

    assert "amazon-ebs.arm64: Timeout waiting for SSH." in capsys.readouterr().err
    assert [c["ImageId"] for c in aws.recorder.calls("ModifyImageAttribute")] == [image_id]
    assert tags_of(aws.ec2(), image_id)["appliance:arch"] == "amd64"


def test_list_shows_our_amis_newest_first_and_nothing_else(
    aws: Aws, packer: StandIn, template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    older = build_and_bake(aws, packer, template, "amd64", 1)
    newer = build_and_bake(aws, packer, template, "arm64", 2)
    foreign = register_built_image(aws.ec2(), "amd64", "someone-elses-image")
    capsys.readouterr()

    assert main(["bake", "list", "--region", REGION, "--endpoint-url", aws.endpoint]) == 0

    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[:3] == ["IMAGE", "ARCH", "VERSION"]
    assert [row.split()[:3] for row in rows[1:]] == [
        [newer, "arm64", __version__],
        [older, "amd64", __version__],
    ]
    assert foreign not in "\n".join(rows)


def test_list_finds_the_endpoint_in_the_environment(
    aws: Aws,
    packer: StandIn,
    template: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image_id = build_and_bake(aws, packer, template, "amd64", 1)
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", aws.endpoint)
    before = len(aws.recorder.requests)
    capsys.readouterr()
    assert main(["bake", "list", "--region", REGION]) == 0
    assert [f["Action"] for f, _ in aws.recorder.requests[before:]] == ["DescribeImages"]
    assert image_id in capsys.readouterr().out


def test_a_snapshot_another_image_still_uses_is_kept(aws: Aws) -> None:
    from appliance.bake import ami

    ec2 = aws.ec2()
    doomed = ami.describe(ec2, register_built_image(ec2, "amd64", "old"))
    other = ami.describe(ec2, register_built_image(ec2, "amd64", "still-registered"))
    sharing = dataclasses.replace(doomed, snapshots=doomed.snapshots + other.snapshots)

    removal = ami.remove_image(ec2, sharing)

    assert removal.deleted_snapshots == doomed.snapshots
    assert removal.kept_snapshots == other.snapshots
    assert ec2.describe_snapshots(SnapshotIds=list(other.snapshots))["Snapshots"]


def test_prune_keeps_the_newest_per_arch_and_deletes_the_rest_with_their_snapshots(
    aws: Aws, packer: StandIn, template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    amd64 = [build_and_bake(aws, packer, template, "amd64", n) for n in range(4)]
    arm64 = [build_and_bake(aws, packer, template, "arm64", n) for n in range(2)]
    ec2 = aws.ec2()
    snapshots = {
        i["ImageId"]: i["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        for i in ec2.describe_images(ImageIds=amd64 + arm64)["Images"]
    }
    prune = ["bake", "prune", "--keep", "2", "--region", REGION, "--endpoint-url", aws.endpoint]
    capsys.readouterr()

    assert main(prune) == 0  # a dry run: says what would go, touches nothing
    said = capsys.readouterr().out
    assert [line.split()[2] for line in said.splitlines() if line.startswith("would")] == [
        amd64[1],
        amd64[0],
    ]
    assert aws.recorder.calls("DeregisterImage") == []

    assert main([*prune, "--yes"]) == 0

    gone = [c["ImageId"] for c in aws.recorder.calls("DeregisterImage")]
    assert sorted(gone) == sorted(amd64[:2])
    left = {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}
    assert left == set(amd64[2:] + arm64)
    for image_id in amd64[:2]:
        with pytest.raises(ClientError, match=r"InvalidSnapshot\.NotFound"):
            ec2.describe_snapshots(SnapshotIds=[snapshots[image_id]])
    kept = ec2.describe_snapshots(SnapshotIds=[snapshots[i] for i in amd64[2:] + arm64])
    assert len(kept["Snapshots"]) == 4

    assert main([*prune, "--yes"]) == 0  # nothing more to do
    assert "nothing to prune" in capsys.readouterr().out

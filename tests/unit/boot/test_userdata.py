"""``appliance userdata`` end to end through ``appliance.cli.main``: the fake IMDS over a real
localhost socket (``APPLIANCE_IMDS_URL``) or ``--file``, and the files it leaves behind."""

from __future__ import annotations

import base64
import functools
import gzip
import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import pytest
import yaml
from image.fake_imds import FakeImds

from appliance.boot import imds as imds_module
from appliance.cli import main

EXAMPLES = Path(__file__).parents[3] / "configs" / "examples"
S3 = {"origin": {"kind": "s3", "s3": {"bucket": "originals-bucket", "region": "eu-west-1"}}}
SIGNED = {"signing": {"enabled": True, "keys": ["a-signing-key-of-32-characters-xx"]}}
BROKEN = {"origin": {"kind": "s3"}, "images": {"jpeg_quality": 500}}


@dataclass
class Box:
    """The directories of one instance, and the fake IMDS it reads."""

    imds: FakeImds
    run_dir: Path
    state_dir: Path
    config: Path

    def set_user_data(self, data: bytes | str | None) -> None:
        state: dict[str, Any] = self.imds.state  # type: ignore[assignment]
        state.pop("user_data", None)
        state.pop("user_data_base64", None)
        if isinstance(data, bytes):
            state["user_data_base64"] = base64.b64encode(data).decode()
        elif data is not None:
            state["user_data"] = data

    def run(self, *extra: str) -> int:
        return main(
            [
                "userdata",
                "--run-dir",
                str(self.run_dir),
                "--state-dir",
                str(self.state_dir),
                "--config",
                str(self.config),
                *extra,
            ]
        )

    @property
    def userdata(self) -> Any:
        path = self.run_dir / "userdata.json"
        return json.loads(path.read_text()) if path.exists() else None

    @property
    def problems(self) -> Any:
        path = self.run_dir / "problems.json"
        return json.loads(path.read_text()) if path.exists() else None

    @property
    def last_good(self) -> Any:
        path = self.state_dir / "userdata.last-good.json"
        return json.loads(path.read_text()) if path.exists() else None

    def reboot(self) -> None:
        """/run is a tmpfs: empty again after a reboot."""
        for path in self.run_dir.iterdir():
            path.unlink()


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Box]:
    with FakeImds({}) as imds:
        monkeypatch.setenv("APPLIANCE_IMDS_URL", imds.base_url)
        yield Box(imds, tmp_path / "run", tmp_path / "state", tmp_path / "appliance.json")


def expected(document: dict[str, Any]) -> dict[str, Any]:
    """What userdata.json holds for a valid document of our own keys: the document, and no
    welcome page unless it asks for one."""
    out: dict[str, Any] = json.loads(json.dumps(document))
    out.setdefault("server", {}).setdefault("welcome_page", False)
    return out


# -- the formats ------------------------------------------------------------------------------


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data)  # with line breaks, as people paste it


ENCODINGS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "json": lambda d: json.dumps(d).encode(),
    "yaml": lambda d: yaml.safe_dump(d).encode(),
    "cloud-config": lambda d: b"#cloud-config\n" + yaml.safe_dump({"appliance": d}).encode(),
    "gzip": lambda d: gz(json.dumps(d).encode()),
    "base64": lambda d: b64(yaml.safe_dump(d).encode()),
    "gzip+base64": lambda d: b64(gz(json.dumps(d).encode())),
    "base64 cloud-config": lambda d: b64(
        b"#cloud-config\n" + yaml.safe_dump({"appliance": d}).encode()
    ),
}


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_each_format_gives_the_same_document(box: Box, encoding: str) -> None:
    document = {**S3, **SIGNED}
    box.set_user_data(ENCODINGS[encoding](document))
    assert box.run() == 0
    assert box.userdata == expected(document)
    assert box.last_good == box.userdata
    assert box.problems is None


def test_cloud_config_keys_other_than_appliance_are_ignored(box: Box) -> None:
    text = "#cloud-config\npackages: [htop]\nruncmd:\n  - [touch, /tmp/x]\n"
    box.set_user_data(text + yaml.safe_dump({"appliance": S3}))
    assert box.run() == 0
    assert box.userdata == expected(S3)


def test_cloud_config_without_appliance_key_is_no_configuration(box: Box) -> None:
    box.set_user_data("#cloud-config\npackages: [htop]\n")
    assert box.run() == 0
    assert (box.userdata, box.problems) == (None, None)


def multipart(*parts: Any) -> bytes:
    message = MIMEMultipart()
    for part in parts:
        message.attach(part)
    return message.as_bytes()


def test_mime_multipart_takes_our_part_and_ignores_the_shell_script(box: Box) -> None:
    script = MIMEText("#!/bin/sh\necho hello\n", "x-shellscript")
    ours = MIMEApplication(json.dumps(S3).encode(), "x-appliance-config")  # base64 inside
    box.set_user_data(multipart(script, ours))
    assert box.run() == 0
    assert box.userdata == expected(S3)


def test_mime_cloud_config_part_with_an_appliance_key(box: Box) -> None:
    script = MIMEText("#!/bin/sh\necho hello\n", "x-shellscript")
    cloud = MIMEText(yaml.safe_dump({"timezone": "UTC", "appliance": SIGNED}), "cloud-config")
    ours = MIMEApplication(gz(json.dumps(S3).encode()), "x-appliance-config")
    box.set_user_data(multipart(script, cloud, ours))
    assert box.run() == 0
    assert box.userdata == expected({**SIGNED, **S3})


def test_mime_without_our_part_is_no_configuration(box: Box) -> None:
    box.set_user_data(multipart(MIMEText("#!/bin/sh\ntrue\n", "x-shellscript")))
    assert box.run() == 0
    assert (box.userdata, box.problems) == (None, None)


def test_a_shell_script_is_no_configuration(box: Box) -> None:
    box.set_user_data("#!/bin/bash\napt-get update\n")
    assert box.run() == 0
    assert (box.userdata, box.problems) == (None, None)


def test_the_welcome_page_stays_when_the_document_asks_for_it(box: Box) -> None:
    document = {"server": {"welcome_page": True, "workers": 2}}
    box.set_user_data(json.dumps(document))
    assert box.run() == 0
    assert box.userdata == document


def test_layers_below_complete_the_document(box: Box) -> None:
    box.config.write_text(json.dumps({"origin": {"s3": {"bucket": "from-the-baked-config"}}}))
    box.set_user_data(json.dumps({"origin": {"kind": "s3"}}))
    assert box.run() == 0
    assert box.userdata == expected({"origin": {"kind": "s3"}})  # only the user-data's keys
    assert box.problems is None


def test_tuned_values_are_validated_with_the_document(box: Box) -> None:
    box.run_dir.mkdir()
    (box.run_dir / "tuned.json").write_text(json.dumps({"server": {"workers": 0}}))
    box.set_user_data(json.dumps(S3))
    assert box.run() == 0
    assert [p.split(":")[0] for p in box.problems["user-data"]] == ["server.workers"]


# -- Imagizer's names -----------------------------------------------------------------------


def test_imagizer_backend_becomes_an_http_origin(box: Box) -> None:
    document = {
        "backend": "https://images.example.com/originals",
        "allowOriginalImageRequest": False,
        "allowDynamicOrigin": False,
        "allowAnimatedGifs": False,
    }
    box.set_user_data(json.dumps(document))
    assert box.run() == 0
    assert box.problems is None
    origin = box.userdata["origin"]
    assert origin["kind"] == "http"
    assert origin["http"] == {
        "base_url": "https://images.example.com/originals/",
        "allowed_hosts": ["images.example.com"],
    }
    assert box.userdata["images"] == {"pass_through_originals": False}


def test_imagizer_bucket_keys_become_an_s3_origin(box: Box) -> None:
    document = {"awsAuthorization": {"bucket": "photos"}, "bucketsAllowed": ["photos"]}
    box.set_user_data(yaml.safe_dump(document))
    assert box.run() == 0
    assert box.userdata["origin"] == {"kind": "s3", "s3": {"bucket": "photos"}}


def test_imagizer_and_our_keys_mix(box: Box) -> None:
    box.set_user_data(json.dumps({"bucketsAllowed": "photos", **SIGNED}))
    assert box.run() == 0
    assert box.userdata["origin"]["s3"]["bucket"] == "photos"
    assert box.userdata["signing"] == SIGNED["signing"]


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ({**S3, "addResponseHeaders": ["X-Served-By: us"]}, "addResponseHeaders"),
        ({**S3, "customHeaders": ["X-A: b"]}, "customHeaders"),
        ({**S3, "cluster": {"enable": True}}, "cluster"),
        ({**S3, "allowDynamicOrigin": True}, "allowDynamicOrigin"),
        ({"bucketsAllowed": ["one", "two"]}, "bucketsAllowed"),
        (
            {"awsAuthorization": {"bucket": "b", "key": "AKID", "secret": "x"}},
            "awsAuthorization.key",
        ),
    ],
)
def test_imagizer_keys_without_an_equivalent_are_named_as_unsupported(
    box: Box, document: dict[str, Any], key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    box.set_user_data(json.dumps(document))
    assert box.run() == 0
    lines = [line for line in box.problems["user-data"] if line.startswith(f"{key}: ")]
    assert lines and "not supported" in lines[0]
    assert f"userdata.invalid key={key} " in capsys.readouterr().err


def test_imagizer_key_conflicting_with_ours_is_an_error(box: Box) -> None:
    box.set_user_data(json.dumps({"backend": "https://a.example.com/", **S3}))
    assert box.run() == 0
    assert any(p.startswith("backend: sets origin.kind") for p in box.problems["user-data"])


def test_a_bad_value_under_an_imagizer_name_says_where_it_came_from(box: Box) -> None:
    box.set_user_data(json.dumps({"allowOriginalImageRequest": "yes"}))
    assert box.run() == 0
    [line] = box.problems["user-data"]
    assert line.startswith("images.pass_through_originals: ")
    assert line.endswith("(set by allowOriginalImageRequest)")


# -- invalid, none, unreachable ---------------------------------------------------------------


def test_invalid_document_keeps_the_last_good_and_names_every_key(
    box: Box, capsys: pytest.CaptureFixture[str]
) -> None:
    box.set_user_data(json.dumps(S3))
    assert box.run() == 0
    good = box.userdata
    box.set_user_data(json.dumps(BROKEN))
    box.reboot()
    assert box.run() == 0
    keys = sorted(p.split(":")[0] for p in box.problems["user-data"])
    assert keys == ["images.jpeg_quality", "origin.s3.bucket"]
    assert box.userdata == good == box.last_good
    err = capsys.readouterr().err.splitlines()
    invalid = [line for line in err if line.startswith("userdata.invalid ")]
    assert sorted(line.split()[1] for line in invalid) == [
        "key=images.jpeg_quality",
        "key=origin.s3.bucket",
    ]
    # fixed: the problems go and the new document is in force
    box.set_user_data(json.dumps(SIGNED))
    assert box.run() == 0
    assert (box.userdata, box.problems) == (expected(SIGNED), None)


def test_invalid_document_without_a_last_good_leaves_the_defaults(box: Box) -> None:
    box.set_user_data(json.dumps(BROKEN))
    assert box.run() == 0
    assert box.userdata is None
    assert len(box.problems["user-data"]) == 2


@pytest.mark.parametrize("text", ["{{{ not: [closed", "just a sentence", "- a\n- list\n"])
def test_undecodable_user_data_is_one_problem(box: Box, text: str) -> None:
    box.set_user_data(text)
    assert box.run() == 0
    [line] = box.problems["user-data"]
    assert line.startswith("user-data: not JSON, YAML, #cloud-config, gzip, base64 or MIME: ")


def test_broken_gzip_is_a_problem_not_a_crash(box: Box) -> None:
    box.set_user_data(gz(json.dumps(S3).encode())[:-12])
    assert box.run() == 0
    [line] = box.problems["user-data"]
    assert line.startswith("user-data: ") and "gzip" in line


@pytest.mark.parametrize("data", [None, "", "  \n\t\n"])
def test_no_user_data_means_no_files(box: Box, data: str | None) -> None:
    box.set_user_data(json.dumps(BROKEN))
    box.run()  # leaves a problems.json behind
    box.set_user_data(data)
    assert box.run() == 0
    assert (box.userdata, box.problems) == (None, None)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("had_good", [True, False])
def test_unreachable_imds_runs_on_the_last_good(
    box: Box, monkeypatch: pytest.MonkeyPatch, had_good: bool
) -> None:
    if had_good:
        box.set_user_data(json.dumps(S3))
        assert box.run() == 0
        box.reboot()
    slept: list[float] = []
    monkeypatch.setenv("APPLIANCE_IMDS_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setattr(
        imds_module, "Imds", functools.partial(imds_module.Imds, sleep=slept.append)
    )
    assert box.run() == 0
    assert slept, "IMDS was not retried"
    assert box.userdata == (expected(S3) if had_good else None)
    assert box.problems is None


# -- the command ------------------------------------------------------------------------------


def test_file_instead_of_imds(box: Box, tmp_path: Path) -> None:
    path = tmp_path / "user-data.yaml"
    path.write_text(yaml.safe_dump(S3))
    assert box.run("--file", str(path)) == 0
    assert box.userdata == expected(S3)
    assert box.imds.requests == []


def test_missing_file_is_a_usage_error(box: Box, tmp_path: Path) -> None:
    assert box.run("--file", str(tmp_path / "nope.json")) == 2


def test_unwritable_run_dir_fails(box: Box, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    box.run_dir = blocker / "run"
    box.set_user_data(json.dumps(S3))
    assert box.run() == 1


def test_files_are_replaced_atomically(box: Box) -> None:
    box.set_user_data(json.dumps(S3))
    assert box.run() == 0
    box.set_user_data(json.dumps(SIGNED))
    assert box.run() == 0
    assert sorted(p.name for p in box.run_dir.iterdir()) == ["userdata.json"]
    assert sorted(p.name for p in box.state_dir.iterdir()) == ["userdata.last-good.json"]


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir()))
def test_shipped_examples_are_valid(box: Box, example: str) -> None:
    assert box.run("--file", str(EXAMPLES / example)) == 0
    assert box.problems is None
    assert box.userdata["origin"]["kind"] in ("s3", "http")

"""The Packer template: Debian's Packer 1.6.6 formats and validates it, the AWS sources
included, without AWS credentials. (The qemu source is built and booted by `make image-test`.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    shutil.which("packer") is None, reason="packer is not installed (make image-test installs it)"
)


def packer(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["CHECKPOINT_DISABLE"] = "1"  # no update check
    return subprocess.run(
        ["packer", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_template_is_formatted() -> None:
    result = packer("fmt", "-check", "-diff", "packer/")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def inputs(tmp_path: Path) -> list[str]:
    """The files the template reads at validate time, made up: validate needs them to exist."""
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    for name in ("payload-amd64", "payload-arm64", "samples"):
        (tmp_path / name).mkdir()
    (tmp_path / "base.qcow2").write_bytes(b"")
    return [
        f"ssh_key={key}",
        f"base_image={tmp_path / 'base.qcow2'}",
        f"payload_amd64={tmp_path / 'payload-amd64'}",
        f"payload_arm64={tmp_path / 'payload-arm64'}",
        f"samples_dir={tmp_path / 'samples'}",
        f"output_dir={tmp_path / 'output'}",  # must not exist yet
    ]


def _vars(pairs: list[str]) -> list[str]:
    return [arg for pair in pairs for arg in ("-var", pair)]


def test_every_source_validates_without_credentials(inputs: list[str]) -> None:
    result = packer("validate", *_vars(inputs), "packer/")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("source", ["amazon-ebs.amd64", "amazon-ebs.arm64", "qemu.local"])
def test_each_source_validates_on_its_own(inputs: list[str], source: str) -> None:
    result = packer("validate", f"-only={source}", *_vars(inputs), "packer/")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_release_without_a_codename_is_refused(inputs: list[str]) -> None:
    result = packer("validate", *_vars([*inputs, "debian_release=11"]), "packer/")
    assert result.returncode != 0


def test_validate_catches_a_broken_template(inputs: list[str], tmp_path: Path) -> None:
    broken = tmp_path / "packer"
    shutil.copytree(REPO / "packer", broken)
    text = (broken / "appliance.pkr.hcl").read_text()
    (broken / "appliance.pkr.hcl").write_text(text.replace("encrypt_boot", "encrypt_bootx", 1))
    result = packer("validate", *_vars(inputs), str(broken))
    assert result.returncode != 0

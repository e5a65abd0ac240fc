"""The provisioners' other path: no wheelhouse for the target (the arm64 AMI is baked that way),
so install-appliance.sh compiles the source distribution inside the image and then purges the
compiler and -dev packages while keeping the libraries the extension links.

The AMI build runs on real Graviton hardware; here the same two scripts run, in packer's order,
in a fresh chroot of the image's Debian release (amd64: the scripts are architecture-neutral).
The chroot reaches the Debian archive and PyPI like an EC2 instance would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from . import harness

RELEASE = "trixie"
REPO = harness.REPO


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, **kwargs)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sdist")
    run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(out), str(REPO)],
        capture_output=True,
    )
    (path,) = out.glob("appliance-*.tar.gz")
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minimal Debian like the one packer starts from (no compiler, no -dev packages)."""
    if os.geteuid() != 0:
        pytest.fail("the chroot needs root; make image-test runs as root in CI")
    path = tmp_path_factory.mktemp("chroot") / "root"
    run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            "--include=ca-certificates",
            '--aptopt=Acquire::Check-Valid-Until "false"',
            RELEASE,
            str(path),
        ]
    )
    return path


def in_chroot(root: Path, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # the chroot shares the host's network (apt, PyPI) but gets its own mounts and /proc
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    exports = " ".join(f"{k}={v}" for k, v in env.items())
    return run(
        [
            "unshare",
            "--mount",
            "--pid",
            "--fork",
            f"--mount-proc={root / 'proc'}",
            "chroot",
            str(root),
            "/usr/bin/env",
            "-i",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root",
            "sh",
            "-c",
            f"{exports} {command}",
        ],
        capture_output=True,
    )


def test_the_sdist_path_compiles_installs_and_cleans_up(root: Path, sdist: Path) -> None:
    src = root / "tmp/appliance-src"
    (src / "payload").mkdir(parents=True)
    shutil.copy(sdist, src / "payload")
    shutil.copytree(harness.samples(), src / "samples")
    for script in ("install-packages.sh", "install-appliance.sh"):
        shutil.copy(REPO / "packer/scripts" / script, src / script)
    env = {"APPLIANCE_SRC": "/tmp/appliance-src", "DEBIAN_FRONTEND": "noninteractive"}
    # This machine reaches PyPI through a proxy whose CA only the host's bundle holds; an EC2
    # instance needs nothing of the sort. Hand the chroot's pip the host's bundle.
    shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/host-ca.crt")
    env["PIP_CERT"] = "/etc/ssl/host-ca.crt"
    try:
        for script in ("install-packages.sh", "install-appliance.sh"):
            in_chroot(root, f"bash /tmp/appliance-src/{script}", env)
    except subprocess.CalledProcessError as e:
        pytest.fail(f"{e.cmd[-1]} failed:\n{e.stdout[-3000:]}\n{e.stderr[-3000:]}")

    # the installed appliance works, with the image's libraries
    sample = next(p.name for p in (src / "samples").iterdir() if p.suffix == ".jpg")
    result = in_chroot(
        root,
        f"/opt/appliance/bin/appliance transcode /opt/appliance/samples/{sample} /tmp/out.webp "
        "--width 200 && /opt/appliance/bin/appliance probe /tmp/out.webp",
        {},
    )
    assert "200" in result.stdout and "webp" in result.stdout.lower(), result.stdout
    # ...and the build tools are gone again
    packages = in_chroot(root, "dpkg-query -W -f '${Package}\\n'", {}).stdout.split()
    assert not [p for p in packages if p.endswith("-dev") or p in ("g++", "gcc", "cmake")], packages
    for library in ("libjpeg62-turbo", "libwebp7", "libavif16", "libyuv0", "libspng0"):
        assert library in packages

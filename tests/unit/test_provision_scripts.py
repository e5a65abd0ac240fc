"""The Packer provisioner scripts: shellcheck on every one, and install-units.sh, harden.sh and
validate.sh run for real on a fake image tree (ROOT=tmp_path/root) that carries what a build
leaves behind. Only `sshd -T` is faked (through PATH): it needs a real sshd installation."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "packer" / "scripts"
LOCAL_APPLIANCE = Path(sys.executable).parent / "appliance"
UNITS = (
    "appliance-disks.service",
    "appliance-autotune.service",
    "appliance.socket",
    "appliance.service",
)
CHECK_LINE = re.compile(r"^(ok  |FAIL) (.*)$")

# `sshd -T` for a tree: the value of each keyword is the first one read, Include globs are
# resolved inside $ROOT, Match blocks end the global part; like sshd, it refuses to run
# without a host key (-h).
FAKE_SSHD = """#!{python}
import glob, os, sys
args = sys.argv[1:]
if "-T" not in args:
    sys.exit("fake sshd: only -T")
if "-h" not in args or not os.path.exists(args[args.index("-h") + 1]):
    sys.exit("sshd: no hostkeys available -- exiting.")
root = os.environ.get("ROOT", "").rstrip("/")
seen = {{}}
def read(path):
    for line in open(path):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        key = words[0].lower()
        if key == "match":
            return
        if key == "include":
            for pattern in words[1:]:
                for included in sorted(glob.glob(root + pattern)):
                    read(included)
        else:
            seen.setdefault(key, words[1].lower())
read(args[args.index("-f") + 1])
defaults = dict(passwordauthentication="yes", kbdinteractiveauthentication="yes",
                permitrootlogin="prohibit-password", permitemptypasswords="no")
for key, value in {{**defaults, **seen}}.items():
    print(key, value)
"""

DEBIAN_SSHD_CONFIG = """\
# as Debian ships it, trimmed
Include /etc/ssh/sshd_config.d/*.conf
KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding yes
Subsystem sftp /usr/lib/openssh/sftp-server
"""


def need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed here; the scripts need it")


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def built_image(root: Path) -> None:
    """A tree as the build leaves it before harden.sh: the appliance installed, and keys,
    IDs, histories, package lists, logs and temporary files everywhere."""
    passwd = [
        "root:x:0:0:root:/root:/bin/bash",
        "sshd:x:100:65534::/run/sshd:/usr/sbin/nologin",
        "admin:x:1000:1000:Debian:/home/admin:/bin/bash",
    ]
    write(root / "etc/passwd", "\n".join(passwd) + "\n")
    write(root / "etc/group", "root:x:0:\nnogroup:x:65534:\nadmin:x:1000:\n")
    shadow = [
        "root:$y$j9T$salt$hash:20000:0:99999:7:::",
        "sshd:!*:20000::::::",
        "admin:!:20000:::::",
    ]
    write(root / "etc/shadow", "\n".join(shadow) + "\n", 0o640)
    write(root / "etc/gshadow", "root:*::\nnogroup:*::\nadmin:!::\n", 0o640)
    write(root / "root/.ssh/authorized_keys", "ssh-ed25519 AAAAbuild packer\n", 0o600)
    write(root / "root/.python_history", "import os\n")
    write(root / "home/admin/.ssh/authorized_keys", "ssh-ed25519 AAAAbuild packer\n", 0o600)
    write(root / "home/admin/.bash_history", "sudo apt-get install\n")
    write(root / "home/admin/.lesshst", ".less-history-file:\n")
    write(root / "etc/ssh/sshd_config", DEBIAN_SSHD_CONFIG)
    write(root / "etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication yes\n")
    write(root / "etc/ssh/ssh_host_ed25519_key", "PRIVATE\n", 0o600)
    write(root / "etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAAhost\n")
    write(root / "etc/machine-id", "0123456789abcdef0123456789abcdef\n")
    write(root / "var/lib/dbus/machine-id", "0123456789abcdef0123456789abcdef\n")
    write(root / "var/lib/apt/lists/mirror.invalid_debian_dists_trixie_InRelease", "Origin\n")
    write(root / "var/lib/apt/lists/lock", "")
    write(root / "var/cache/apt/pkgcache.bin", "cache")
    write(root / "var/cache/apt/archives/python3_3.13_amd64.deb", "deb")
    write(root / "var/log/dpkg.log", "install python3\n")
    write(root / "var/log/apt/history.log", "Start-Date: today\n")
    write(root / "var/log/syslog.1.gz", "old")
    write(root / "var/log/journal/0123/system.journal", "LPKSHHRH")
    write(root / "var/log/cloud-init.log", "cloud-init ran\n")
    write(root / "tmp/script_4242.sh", "#!/bin/sh\n")
    write(root / "tmp/appliance-src/configs/appliance.json", "{}")
    (root / "tmp/systemd-private-abc-chrony.service-x").mkdir(parents=True)
    write(root / "var/tmp/leftover", "x")
    write(root / "usr/bin/cloud-init", "#!/bin/sh\n", 0o755)
    (root / "etc/cloud/cloud.cfg.d").mkdir(parents=True)
    write(root / "var/lib/cloud/instances/i-0123/user-data.txt", "{}")
    write(root / "var/lib/cloud/seed/nocloud/meta-data", "instance-id: local\n")
    # install-appliance.sh's part: the venv (here a wrapper around this one) and the samples.
    write(
        root / "opt/appliance/bin/appliance", f'#!/bin/sh\nexec "{LOCAL_APPLIANCE}" "$@"\n', 0o755
    )
    write(root / "opt/appliance/samples/sample.jpg", "JPEG")


@pytest.fixture
def image(tmp_path: Path) -> Path:
    need("systemctl", "useradd", "usermod", "ssh-keygen")
    root = tmp_path / "root"
    built_image(root)
    fake = tmp_path / "bin"
    write(fake / "sshd", FAKE_SSHD.format(python=sys.executable), 0o755)
    run("install-units.sh", root)
    return root


def run(script: str, root: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ROOT": str(root),
        "APPLIANCE_SRC": str(REPO),
        "PATH": f"{root.parent / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    done = subprocess.run(
        ["bash", str(SCRIPTS / script)], env=env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert done.returncode == 0, f"{script}:\n{done.stdout}\n{done.stderr}"
    return done


def checks(output: str) -> dict[str, str]:
    """validate.sh's lines as {check: "ok" or the FAIL details}."""
    result = {}
    for line in output.splitlines():
        match = CHECK_LINE.match(line)
        if match:
            status, rest = match.groups()
            name, _, detail = rest.partition(": ") if status == "FAIL" else (rest, "", "")
            result[name] = "ok" if status == "ok  " else detail
    return result


def failed(output: str) -> dict[str, str]:
    return {name: detail for name, detail in checks(output).items() if detail != "ok"}


# --- shellcheck ---------------------------------------------------------------------------


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.sh")))
def test_script_passes_shellcheck(script: str) -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck; make installs it)")
    done = subprocess.run(["shellcheck", str(SCRIPTS / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.sh")))
def test_script_is_strict_bash(script: str) -> None:
    lines = (SCRIPTS / script).read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -o errexit -o nounset -o pipefail" in lines


# --- install-units.sh ---------------------------------------------------------------------


def test_install_units_adds_a_system_user_without_shell_or_home(image: Path) -> None:
    entry = next(
        line.split(":")
        for line in (image / "etc/passwd").read_text().splitlines()
        if line.startswith("appliance:")
    )
    uid, home, shell = int(entry[2]), entry[5], entry[6]
    assert uid < 1000 and shell == "/usr/sbin/nologin" and home == "/nonexistent"
    assert not (image / "nonexistent").exists()
    group = next(
        line
        for line in (image / "etc/group").read_text().splitlines()
        if line.startswith("appliance:")
    )
    assert group.split(":")[2] == entry[3]


def test_install_units_installs_config_and_units_and_enables_them(image: Path) -> None:
    config = image / "etc/appliance/appliance.json"
    assert config.read_bytes() == (REPO / "configs/appliance.json").read_bytes()
    assert config.stat().st_mode & 0o777 == 0o644
    for unit in UNITS:
        assert (image / "etc/systemd/system" / unit).read_bytes() == (
            REPO / "systemd" / unit
        ).read_bytes()
    wants = {p.name for p in (image / "etc/systemd/system").glob("*.wants/*")}
    assert wants == set(UNITS)
    assert (image / "etc/cloud/cloud.cfg.d/90-appliance.cfg").exists()
    # Every unit's Documentation=file: page is in the image.
    for unit in UNITS:
        for line in (REPO / "systemd" / unit).read_text().splitlines():
            if line.startswith("Documentation=file:"):
                assert (image / line.removeprefix("Documentation=file:/")).is_file(), line


def test_install_units_twice_changes_nothing(image: Path) -> None:
    before = (image / "etc/passwd").read_text()
    run("install-units.sh", image)
    assert (image / "etc/passwd").read_text() == before


def test_install_units_without_cloud_init_skips_its_settings(tmp_path: Path) -> None:
    need("systemctl", "useradd")
    root = tmp_path / "root"
    built_image(root)
    shutil.rmtree(root / "etc/cloud")
    done = run("install-units.sh", root)
    assert "no cloud-init" in done.stdout
    assert not (root / "etc/cloud").exists()


# --- harden.sh + validate.sh ----------------------------------------------------------------


def test_validate_lists_every_leftover_of_an_unhardened_image(image: Path) -> None:
    done = run("validate.sh", image, check=False)
    assert done.returncode == 1
    problems = failed(done.stdout)
    assert set(problems) == {
        "no authorized_keys with content",
        "no shell or tool histories",
        "no SSH host keys",
        "machine-id empty",
        "root password locked",
        "no account with a usable password",
        "sshd allows no passwords and no root",
        "no apt lists or package caches",
        "no logs or journal files",
        "cloud-init state clean (next boot is a first boot)",
    }, done.stdout
    assert str(image / "root/.ssh/authorized_keys") in problems["no authorized_keys with content"]
    assert str(image / "home/admin/.lesshst") in problems["no shell or tool histories"]
    leftovers = {
        "no apt lists or package caches": [
            "var/lib/apt/lists/mirror.invalid_debian_dists_trixie_InRelease",
            "var/cache/apt/pkgcache.bin",
        ],
        "no logs or journal files": ["var/log/dpkg.log", "var/log/journal/0123/system.journal"],
        "no SSH host keys": ["etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub"],
    }
    for check, paths in leftovers.items():
        listed = problems[check].split()
        assert str(image / paths[0]) in listed and str(image / paths[1]) in listed, listed
    assert "not 'passwordauthentication no'" in problems["sshd allows no passwords and no root"]
    assert "not 'permitrootlogin no'" in problems["sshd allows no passwords and no root"]
    assert f"validate: {len(checks(done.stdout))} checks, {len(problems)} failed" in done.stdout


def test_validate_passes_after_harden(image: Path) -> None:
    run("harden.sh", image)
    done = run("validate.sh", image, check=False)
    assert done.returncode == 0, done.stdout
    assert failed(done.stdout) == {}
    assert f"validate: {len(checks(done.stdout))} checks, 0 failed" in done.stdout
    assert "appliance installed (appliance " in done.stdout


def test_harden_leaves_a_first_boot_image(image: Path) -> None:
    run("harden.sh", image)
    assert (image / "etc/machine-id").read_bytes() == b""
    assert not (image / "var/lib/dbus/machine-id").exists()
    assert (image / "etc/shadow").read_text().startswith("root:!$y$")
    assert (image / "var/log/dpkg.log").stat().st_size == 0
    assert not (image / "var/log/syslog.1.gz").exists()
    assert list((image / "var/log/journal").iterdir()) == []
    assert list((image / "var/lib/apt/lists").iterdir()) == [image / "var/lib/apt/lists/partial"]
    assert [p.name for p in (image / "var/lib/cloud").iterdir()] == ["seed"]
    assert [p.name for p in (image / "tmp").iterdir()] == ["systemd-private-abc-chrony.service-x"]
    assert list((image / "var/tmp").iterdir()) == []
    assert not (image / "home/admin/.ssh/authorized_keys").exists()
    # Our drop-in is read before cloud-init's, which stays where it is.
    drop_ins = sorted(p.name for p in (image / "etc/ssh/sshd_config.d").iterdir())
    assert drop_ins == ["00-appliance.conf", "50-cloud-init.conf"]
    # What harden.sh must leave alone.
    assert (image / "etc/appliance/appliance.json").exists()
    assert (image / "opt/appliance/samples/sample.jpg").exists()


def test_harden_twice_is_harmless(image: Path) -> None:
    run("harden.sh", image)
    run("harden.sh", image)
    assert run("validate.sh", image, check=False).returncode == 0


def _no_binary(root: Path) -> None:
    (root / "opt/appliance/bin/appliance").unlink()


def _broken_binary(root: Path) -> None:
    write(
        root / "opt/appliance/bin/appliance",
        "#!/bin/sh\necho 'no module named appliance' >&2\nexit 1\n",
        0o755,
    )


def _disabled_unit(root: Path) -> None:
    command = ["systemctl", f"--root={root}", "disable", "appliance.socket"]
    subprocess.run(command, check=True, capture_output=True)


def _login_shell(root: Path) -> None:
    passwd = root / "etc/passwd"
    passwd.write_text(
        passwd.read_text().replace("/nonexistent:/usr/sbin/nologin", "/nonexistent:/bin/bash")
    )


def _bad_config(root: Path) -> None:
    write(root / "etc/appliance/appliance.json", '{"server": {"port": "eighty"}}')


def _launch_key_left(root: Path) -> None:
    write(root / "home/admin/.ssh/authorized_keys", "ssh-ed25519 AAAAlater\n")


def _passwords_back_on(root: Path) -> None:
    (root / "etc/ssh/sshd_config.d/00-appliance.conf").rename(
        root / "etc/ssh/sshd_config.d/99-appliance.conf"
    )


def _no_host_key_regeneration(root: Path) -> None:
    (root / "usr/bin/cloud-init").unlink()


def _no_samples(root: Path) -> None:
    shutil.rmtree(root / "opt/appliance/samples")


def _machine_id_deleted(root: Path) -> None:
    (root / "etc/machine-id").unlink()


CONFIG_CHECK = "baked config passes appliance check-config"


@pytest.mark.parametrize(
    "damage,check,detail",
    [
        (_no_binary, "appliance installed", "is missing"),
        (_broken_binary, "appliance installed", "--version failed: no module named appliance"),
        (_disabled_unit, "units enabled", "appliance.socket is disabled"),
        (_login_shell, "service user appliance without a login shell", "/bin/bash"),
        (_bad_config, CONFIG_CHECK, "server.port"),
        (_launch_key_left, "no authorized_keys with content", "home/admin/.ssh"),
        (_passwords_back_on, "sshd allows no passwords and no root", "passwordauthentication"),
        (_no_host_key_regeneration, "SSH host keys regenerated at boot (nothing)", "ssh-keygen"),
        (_no_samples, "sample images present", "samples is empty"),
        (_machine_id_deleted, "machine-id empty", "must exist, empty"),
    ],
)
def test_validate_fails_on_each_problem(
    image: Path, damage: Callable[[Path], None], check: str, detail: str
) -> None:
    run("harden.sh", image)
    assert run("validate.sh", image, check=False).returncode == 0
    damage(image)
    done = run("validate.sh", image, check=False)
    assert done.returncode == 1
    problems = failed(done.stdout)
    # Without a working appliance its config cannot be checked either.
    also = {CONFIG_CHECK} if check == "appliance installed" else set()
    assert set(problems) == {check} | also, done.stdout
    assert detail in problems[check]


# --- cloud-init ---------------------------------------------------------------------------


def test_cloud_init_keeps_off_the_instance_store_and_keeps_ec2() -> None:
    settings = yaml.safe_load((REPO / "configs/cloud-init/90-appliance.cfg").read_text())
    # cloud-init's mounts module: an entry with only the device (or a None mount point)
    # removes its default entry, here ephemeral0 -> /mnt.
    removed = {m[0] for m in settings["mounts"] if len(m) == 1 or m[1] is None}
    assert "ephemeral0" in removed
    assert "Ec2" in settings["datasource_list"]
    assert settings["ssh_pwauth"] is False
    assert settings["disable_root"] is True

"""Builds the local appliance image and boots it under QEMU, the way the image test and
`make image` use it. Standard library only, plus tests/image/fake_imds.py.

The pieces, each cached under $APPLIANCE_CACHE (default .cache/image):
- an SSH key pair: the fake IMDS serves its public half as public-keys/0, which cloud-init in
  the image installs for `admin`, as on EC2;
- the base image (scripts/build-base-image.sh: Debian with cloud-init, like Debian's AMI);
- the payload (scripts/build-wheelhouse.sh: the appliance wheel compiled for the image's
  Debian release, its dependencies, and the Debian packages it needs);
- sample images (a few corpus photos, or generated ones when the corpus is absent);
- the image itself: `appliance bake local` (packer's qemu source with the same provisioners as
  the AMI), rebuilt only when an input changed.
A booted VM gets a throwaway overlay, SSH and HTTP forwarded to loopback ports, and the fake
IMDS at 169.254.169.254 (the slirp network is moved to 169.254.0.0/16 so guestfwd can reach it;
docs/local-image.md). The host is 169.254.0.2 from the guest: moto's S3 server is reached there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("APPLIANCE_CORPUS", REPO.parent / "shared" / "corpus"))
GUEST_HOST = "169.254.0.2"  # the host, as the guest sees it through slirp
SSH_USER = "admin"
SAMPLE_NAMES = ("o_dragonfly.jpg", "o_picos.jpg", "p_gulp_alpha.png", "o_kleiber.jpg")


def cache_dir() -> Path:
    path = Path(os.environ.get("APPLIANCE_CACHE", REPO / ".cache" / "image"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def log(message: str) -> None:
    print(f"[image {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def accelerator() -> str:
    """kvm only where /dev/kvm is hardware virtualisation. The nested PVM flavour these CI
    machines have accepts KVM_CREATE_VM and then fails or hangs the guest (docs/local-image.md)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "tcg"
    usable = os.access("/dev/kvm", os.W_OK) and not Path("/sys/module/kvm_pvm").exists()
    return "kvm" if usable and re.search(r"\b(vmx|svm)\b", cpuinfo) else "tcg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_script(argv: Sequence[str]) -> str:
    """Runs a build script, its progress on our stderr; returns the last line of its stdout."""
    started = time.monotonic()
    result = subprocess.run(argv, cwd=REPO, stdout=subprocess.PIPE, text=True, check=True)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    log(f"{Path(argv[0]).name}: {time.monotonic() - started:.0f} s")
    return lines[-1].strip()


def ssh_key() -> Path:
    key = cache_dir() / "id_ed25519"
    if not key.exists():
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "appliance-image-test",
                "-f",
                str(key),
            ],
            check=True,
        )
    return key


def base_image() -> Path:
    return Path(run_script(["scripts/build-base-image.sh", str(cache_dir() / "base")]))


def payload() -> Path:
    return Path(run_script(["scripts/build-wheelhouse.sh", str(cache_dir() / "payload-amd64")]))


def samples() -> Path:
    """A few photos an unconfigured instance serves: corpus files when there is a corpus."""
    out = cache_dir() / "samples"
    out.mkdir(exist_ok=True)
    found = [CORPUS / n for n in SAMPLE_NAMES if (CORPUS / n).is_file()]
    for path in found:
        if not (out / path.name).exists():
            shutil.copyfile(path, out / path.name)
    if not any(out.iterdir()):
        width, height = 640, 480
        rgb = bytes(
            v
            for y in range(height)
            for x in range(width)
            for v in (x * 255 // width, y * 255 // height, 128)
        )
        png = _png(width, height, rgb)
        (out / "gradient.png").write_bytes(png)
        from appliance import transcode  # the host's build of our own encoder

        (out / "gradient.jpg").write_bytes(transcode(png, format="jpeg"))
    return out


def _png(width: int, height: int, rgb: bytes) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\0" + rgb[y * width * 3 : (y + 1) * width * 3] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def tree_digest(paths: Sequence[Path]) -> str:
    """A hash of the files under ``paths`` (names and contents), for cache keys."""
    digest = hashlib.sha256()
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            digest.update(
                str(path.relative_to(REPO) if path.is_relative_to(REPO) else path.name).encode()
            )
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


@dataclass
class Imds:
    """The fake IMDS, in this process, with its state in a file the tests rewrite."""

    state_path: Path
    server: Any = None
    port: int = 0

    def write(self, state: dict[str, Any]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_path)

    def __enter__(self) -> Imds:
        from .fake_imds import FakeImds

        self.server = FakeImds(self.state_path)
        url = self.server.start()
        self.port = int(url.rsplit(":", 1)[1].strip("/"))
        return self

    def __exit__(self, *_: object) -> None:
        self.server.stop()


def default_state(public_key: str, **extra: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "instance_type": "t3.micro",
        "instance_id": "i-0123456789abcdef0",
        "region": "eu-west-1",
        "availability_zone": "eu-west-1a",
        "public_key": public_key,
        "user_data": None,
        "role": None,
    }
    state.update(extra)
    return state


def build_image(force: bool = False) -> Path:
    """The baked image: the cached one when no input changed, else `appliance bake local`."""
    key_path = ssh_key()
    base = base_image()
    wheels = payload()
    sample_dir = samples()
    output = cache_dir() / "output"
    image = output / "appliance.qcow2"
    inputs = [REPO / "packer", REPO / "systemd", REPO / "configs", wheels, sample_dir, base]
    key = tree_digest(inputs)
    stamp = cache_dir() / "output.key"
    if not force and image.exists() and stamp.exists() and stamp.read_text() == key:
        log(f"image up to date: {image}")
        return image
    state_path = cache_dir() / "bake-imds.json"
    with Imds(state_path) as imds:
        imds.write(default_state(key_path.with_suffix(".pub").read_text().strip()))
        started = time.monotonic()
        argv = [
            sys.executable,
            "-m",
            "appliance",
            "bake",
            "local",
            "--accelerator",
            accelerator(),
            "--var",
            f"base_image={base}",
            "--var",
            f"ssh_key={key_path}",
            "--var",
            f"payload_amd64={wheels}",
            "--var",
            f"samples_dir={sample_dir}",
            "--var",
            f"imds_port={imds.port}",
            "--var",
            f"output_dir={output}",
        ]
        subprocess.run(argv, cwd=REPO, check=True)
        log(f"packer build: {time.monotonic() - started:.0f} s")
    if not image.exists():
        raise RuntimeError(f"the bake produced no {image}")
    stamp.write_text(key)
    return image


@dataclass
class Vm:
    """One boot of the image: a throwaway overlay, loopback forwards, the fake IMDS."""

    image: Path
    imds_port: int
    cpus: int = 1
    memory_mib: int = 1024
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="appliance-vm-")))
    ssh_port: int = 0
    http_port: int = 0
    admin_port: int = 0
    pid: int = 0

    @property
    def ssh_config(self) -> Path:
        return self.workdir / "ssh_config"

    @property
    def console(self) -> Path:
        return self.workdir / "console.log"

    def start(self) -> None:
        overlay = self.workdir / "overlay.qcow2"
        subprocess.run(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                str(self.image),
                "-F",
                "qcow2",
                str(overlay),
            ],
            check=True,
        )
        self.ssh_port, self.http_port, self.admin_port = free_port(), free_port(), free_port()
        netdev = ",".join(
            [
                "user,id=n0,net=169.254.0.0/16",
                f"host={GUEST_HOST},dns=169.254.0.3,dhcpstart=169.254.0.15",
                f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22",
                f"hostfwd=tcp:127.0.0.1:{self.http_port}-:80",
                f"guestfwd=tcp:169.254.169.254:80-cmd:socat - TCP:127.0.0.1:{self.imds_port}",
            ]
        )
        accel = accelerator()
        pidfile = self.workdir / "vm.pid"
        subprocess.run(
            [
                "qemu-system-x86_64",
                "-accel",
                accel,
                "-cpu",
                "host" if accel == "kvm" else "qemu64",
                "-smp",
                str(self.cpus),
                "-m",
                str(self.memory_mib),
                "-display",
                "none",
                "-no-user-config",
                "-nodefaults",
                "-serial",
                f"file:{self.console}",
                "-drive",
                f"file={overlay},if=virtio,format=qcow2",
                "-netdev",
                netdev,
                "-device",
                "virtio-net-pci,netdev=n0",
                "-smbios",
                "type=1,manufacturer=Amazon EC2,product=appliance-local,"
                "uuid=ec2e1916-0000-4000-8000-000000000002",
                "-daemonize",
                "-pidfile",
                str(pidfile),
            ],
            check=True,
        )
        self.pid = int(pidfile.read_text())
        self.ssh_config.write_text(
            "Host vm\n"
            f"  HostName 127.0.0.1\n  Port {self.ssh_port}\n  User {SSH_USER}\n"
            f"  IdentityFile {ssh_key()}\n  IdentitiesOnly yes\n"
            "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
            "  BatchMode yes\n  ConnectTimeout 5\n"
            f"  ControlMaster auto\n  ControlPath {self.workdir}/ssh-%C\n  ControlPersist 300\n"
        )

    def wait_for_ssh(self, timeout: float = 600.0) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if not self.running:
                raise RuntimeError(f"the VM exited during boot; console:\n{self.console_tail()}")
            if self.ssh("true", check=False, timeout=15).returncode == 0:
                return time.monotonic() - started
            time.sleep(1)
        raise TimeoutError(f"no SSH after {timeout:.0f} s; console:\n{self.console_tail()}")

    def ssh(
        self, command: str, *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-F", str(self.ssh_config), "vm", command],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def ssh_as(self, user: str, command: str) -> subprocess.CompletedProcess[str]:
        """The same key, another user (root must be refused)."""
        return subprocess.run(
            [
                "ssh",
                "-F",
                str(self.ssh_config),
                "-o",
                f"User={user}",
                "-o",
                "ControlPath=none",
                "vm",
                command,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    def ssh_password_probe(self) -> subprocess.CompletedProcess[str]:
        """Offers no key: sshd's refusal lists the methods it would accept, e.g.
        "Permission denied (publickey)." """
        return subprocess.run(
            [
                "ssh",
                "-F",
                str(self.ssh_config),
                "-o",
                "ControlPath=none",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "NumberOfPasswordPrompts=0",
                "vm",
                "true",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    @property
    def running(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True

    def console_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.console.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no console log)"

    def stop(self) -> None:
        subprocess.run(
            ["ssh", "-F", str(self.ssh_config), "-O", "exit", "vm"],
            capture_output=True,
            check=False,
        )
        if self.pid and self.running:
            os.kill(self.pid, signal.SIGTERM)
            for _ in range(50):
                if not self.running:
                    break
                time.sleep(0.1)
            else:
                os.kill(self.pid, signal.SIGKILL)
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def booted(image: Path, imds_port: int, *, cpus: int = 1, memory_mib: int = 1024) -> Iterator[Vm]:
    vm = Vm(image, imds_port, cpus=cpus, memory_mib=memory_mib)
    vm.start()
    try:
        seconds = vm.wait_for_ssh()
        log(f"VM ({cpus} vCPU, {memory_mib} MiB) reached SSH in {seconds:.0f} s")
        yield vm
    finally:
        vm.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.image.harness", description=__doc__)
    parser.add_argument("command", choices=["build", "boot"])
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    image = build_image(force=args.force)
    print(image)
    if args.command == "boot":  # for poking around by hand: Ctrl-C stops it
        with Imds(cache_dir() / "boot-imds.json") as imds:
            imds.write(default_state(ssh_key().with_suffix(".pub").read_text().strip()))
            with booted(image, imds.port) as vm:
                print(f"ssh -F {vm.ssh_config} vm   |   http://127.0.0.1:{vm.http_port}/")
                try:
                    while vm.running:
                        time.sleep(1)
                except KeyboardInterrupt:
                    pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

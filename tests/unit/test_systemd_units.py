"""The systemd units and the baked config: systemd's own checks (verify, the security
exposure), the boot order, the units' command lines against the CLI, and `appliance serve`
started the way appliance.socket + appliance.service start it (listening socket as fd 3,
sd_notify from the main process, MemoryDenyWriteExecute, SIGHUP, SIGTERM)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from PIL import Image

from appliance import cli
from appliance.config import ServerConfig, load, read_document

REPO = Path(__file__).resolve().parents[2]
UNITS_DIR = REPO / "systemd"
UNITS = (
    "appliance-disks.service",
    "appliance-autotune.service",
    "appliance.socket",
    "appliance.service",
)
BAKED_CONFIG = REPO / "configs" / "appliance.json"
INSTALLED_APPLIANCE = "/opt/appliance/bin/appliance"
# The venv's own `appliance`: an executable that exists here, standing in for the image's.
LOCAL_APPLIANCE = Path(sys.executable).parent / "appliance"
MAX_EXPOSURE = 2.0
EXPOSURE = re.compile(r"Overall exposure level for (\S+): (\d+\.\d+)")

Unit = dict[str, list[tuple[str, str]]]


def read_unit(path: Path) -> Unit:
    """Sections of (key, value) pairs in file order; keys may repeat (ExecStart=, After=)."""
    unit: Unit = {}
    section: list[tuple[str, str]] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = unit.setdefault(line.strip("[]"), [])
            continue
        key, _, value = line.partition("=")
        section.append((key.strip(), value.strip()))
    return unit


def values(unit: Unit, section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def words(unit: Unit, section: str, key: str) -> set[str]:
    return {w for v in values(unit, section, key) for w in v.split()}


def seconds(text: str) -> float:
    """A systemd time span as used in our units: 45, 45s, 5min, 2min 30s."""
    scale = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text):
        total += float(number) * scale[unit]
    return total


@pytest.fixture(scope="module")
def units() -> dict[str, Unit]:
    return {name: read_unit(UNITS_DIR / name) for name in UNITS}


def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here (Debian package systemd)")
    return tool


def local_copies(directory: Path, edit: dict[str, tuple[str, str]] | None = None) -> list[Path]:
    """The units copied into ``directory`` with the image's executable replaced by one that
    exists here; ``edit`` maps a unit name to (old, new) text to break it on purpose."""
    directory.mkdir(exist_ok=True)
    paths = []
    for name in UNITS:
        text = (UNITS_DIR / name).read_text()
        assert INSTALLED_APPLIANCE in text or name.endswith(".socket")
        text = text.replace(INSTALLED_APPLIANCE, str(LOCAL_APPLIANCE))
        if edit and name in edit:
            old, new = edit[name]
            assert old in text
            text = text.replace(old, new)
        (directory / name).write_text(text)
        paths.append(directory / name)
    return paths


def verify(paths: list[Path]) -> tuple[int, list[str]]:
    """systemd-analyze verify: its exit code and the lines it printed about our units (it
    prints warnings, such as an unknown key, with exit code 0)."""
    run = subprocess.run(
        [systemd_analyze(), "verify", *map(str, paths)], capture_output=True, text=True
    )
    ours = [
        line
        for line in (run.stdout + run.stderr).splitlines()
        if any(p.name in line or str(p.parent) in line for p in paths)
    ]
    return run.returncode, ours


def exposure(path: Path) -> float:
    run = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", str(path)],
        capture_output=True,
        text=True,
    )
    match = EXPOSURE.search(run.stdout + run.stderr)
    assert match, f"no exposure in the output of systemd-analyze security:\n{run.stderr}"
    return float(match.group(2))


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    code, lines = verify(local_copies(tmp_path))
    assert (code, lines) == (0, [])


@pytest.mark.parametrize(
    "unit,old,new",
    [
        ("appliance.service", "Type=notify", "Type=notify\nNotAKey=1"),
        ("appliance.service", "Type=notify", "Type=notfy"),
        ("appliance-disks.service", f"{LOCAL_APPLIANCE} disks", "/nonexistent/appliance disks"),
        ("appliance.socket", "ListenStream=80", "ListenStream=eighty"),
    ],
)
def test_verify_reports_a_broken_unit(tmp_path: Path, unit: str, old: str, new: str) -> None:
    """The check above can fail: the same copies, one of them broken."""
    paths = local_copies(tmp_path)
    broken = paths[UNITS.index(unit)]
    broken.write_text(broken.read_text().replace(old, new, 1))
    code, lines = verify(paths)
    assert code != 0 or any(unit in line for line in lines)


def test_service_exposure_is_at_most_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    service = next(p for p in local_copies(tmp_path) if p.name == "appliance.service")
    level = exposure(service)
    with capsys.disabled():
        print(f"\nsystemd-analyze security appliance.service: exposure {level}")
    assert level <= MAX_EXPOSURE


def test_exposure_is_high_without_the_hardening(tmp_path: Path) -> None:
    """The exposure check can fail: the service with its sandbox section removed."""
    service = next(p for p in local_copies(tmp_path) if p.name == "appliance.service")
    text = service.read_text()
    start, end = text.index("# Sandbox."), text.index("[Install]")
    service.write_text(text[:start] + text[end:])
    assert exposure(service) > 5.0


def test_every_unit_has_documentation(units: dict[str, Unit]) -> None:
    for name, unit in units.items():
        docs = values(unit, "Unit", "Documentation")
        assert docs, name
        for doc in docs:
            assert doc.startswith(("man:", "file:/", "https://", "http://", "info:")), doc


def test_boot_steps_run_in_order_and_never_after_cloud_final(units: dict[str, Unit]) -> None:
    disks, autotune = units["appliance-disks.service"], units["appliance-autotune.service"]
    service = units["appliance.service"]
    assert "appliance-autotune.service" in words(disks, "Unit", "Before")
    assert "appliance-disks.service" in words(autotune, "Unit", "After")
    assert "network-online.target" in words(autotune, "Unit", "After")
    assert "network-online.target" in words(autotune, "Unit", "Wants")
    assert {"appliance.socket", "appliance-autotune.service"} <= words(service, "Unit", "After")
    assert "appliance.socket" in words(service, "Unit", "Requires")
    for name, unit in units.items():
        for key in ("After", "Requires", "Wants", "BindsTo"):
            assert "cloud-final.service" not in words(unit, "Unit", key), name
    assert values(units["appliance.socket"], "Install", "WantedBy") == ["sockets.target"]
    for name in UNITS[:2] + UNITS[3:]:
        assert values(units[name], "Install", "WantedBy") == ["multi-user.target"], name


def test_unit_commands_are_appliance_subcommands(units: dict[str, Unit]) -> None:
    parser = cli.build_parser()
    expected = {
        "appliance-disks.service": ["disks"],
        "appliance-autotune.service": ["autotune", "userdata"],
        "appliance.service": ["serve"],
    }
    for name, commands in expected.items():
        # "-" before the program: a failure is logged and the next command still runs.
        lines = [line.removeprefix("-") for line in values(units[name], "Service", "ExecStart")]
        assert [line.split()[1] for line in lines] == commands, name
        for line in lines:
            program, *argv = line.split()
            assert program == INSTALLED_APPLIANCE
            assert callable(parser.parse_args(argv).run)


def test_boot_steps_share_a_run_directory_the_service_can_read(units: dict[str, Unit]) -> None:
    service = units["appliance.service"]
    user = values(service, "Service", "User")
    assert user == ["appliance"]
    tuned = cli.DEFAULT_CONFIG_FILES[0]  # /run/appliance/tuned.json, read by `appliance serve`
    assert values(service, "Service", "ReadOnlyPaths") == [f"-{tuned.parent}"]
    for name in ("appliance-disks.service", "appliance-autotune.service"):
        unit = units[name]
        assert values(unit, "Service", "User") == [], f"{name} runs as root"
        assert values(unit, "Service", "Group") == user, name
        assert values(unit, "Service", "RuntimeDirectory") == [tuned.parent.name], name
        assert values(unit, "Service", "RuntimeDirectoryPreserve") == ["yes"], name
        mode = int(values(unit, "Service", "RuntimeDirectoryMode")[0], 8)
        assert mode & 0o050 == 0o050 and mode & 0o007 == 0, f"{name}: group r-x, others none"
        umask = int(values(unit, "Service", "UMask")[0], 8)
        assert umask & 0o040 == 0, f"{name}: files it writes stay group-readable"
    assert values(units["appliance-autotune.service"], "Service", "StateDirectory") == ["appliance"]


def test_service_can_write_only_the_cache_disk(units: dict[str, Unit]) -> None:
    """The cache directory is where `appliance disks` mounts the cache by default, which is
    the disk_path that autotune writes into tuned.json."""
    service = units["appliance.service"]
    assert values(service, "Service", "ProtectSystem") == ["strict"]
    assert values(service, "Service", "ReadWritePaths") == []
    cache = values(service, "Service", "CacheDirectory")
    mount_point = cli.build_parser().parse_args(["disks"]).mount_point
    assert [f"/var/cache/{name}" for name in cache] == [str(mount_point)]


def test_service_is_stopped_only_after_it_drained(units: dict[str, Unit]) -> None:
    service = units["appliance.service"]
    timeout = seconds(values(service, "Service", "TimeoutStopSec")[0])
    baked = load([read_document(BAKED_CONFIG)])
    assert timeout > max(baked.server.drain_seconds, ServerConfig().drain_seconds) + 5
    assert values(service, "Service", "KillMode") == ["mixed"]
    assert values(service, "Service", "Restart") == ["on-failure"]
    assert seconds(values(service, "Service", "RestartSec")[0]) >= 1


def test_baked_config_is_valid_and_leaves_tuned_keys_to_autotune(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["check-config", str(BAKED_CONFIG)]) == 0
    assert capsys.readouterr().out == "config ok\n"
    document = read_document(BAKED_CONFIG)
    config = load([document])
    assert config.server.welcome_page is True
    assert (config.server.host, config.server.port) == ("0.0.0.0", 80)
    assert (config.server.admin_host, config.server.admin_port) == ("127.0.0.1", 8081)
    assert config.server.access_log == "json"
    assert (config.origin.kind, config.origin.directory.path) == (
        "directory",
        "/opt/appliance/samples",
    )
    assert isinstance(json.loads(BAKED_CONFIG.read_text()), dict), "JSON, not just YAML"
    # tuned.json is read first: a key here would silently override what autotune computed.
    assert not {"workers", "threads", "queue_depth"} & set(document["server"])
    assert "cache" not in document  # autotune sizes it, disk_path included (none: no disk tier)
    assert config.server.problems_file == "/run/appliance/problems.json"


def test_socket_is_dual_stack_port_80_with_a_deep_backlog(units: dict[str, Unit]) -> None:
    sock = units["appliance.socket"]
    assert values(sock, "Socket", "ListenStream") == ["80"]
    assert values(sock, "Socket", "BindIPv6Only") == ["both"]
    assert values(sock, "Socket", "ReusePort") == ["no"]
    assert int(values(sock, "Socket", "Backlog")[0]) >= 1024
    assert load([read_document(BAKED_CONFIG)]).server.port == 80


# --- `appliance serve` started as systemd starts it --------------------------------------

# Runs in the child, then becomes `appliance serve`: the listening socket moved to fd 3 with
# LISTEN_PID naming this process (exec keeps the pid), the unit's UMask=, and the kernel's
# PR_SET_MDWE, which refuses write+execute memory as MemoryDenyWriteExecute=yes does and is kept
# across fork and exec. Exit 77: PR_SET_MDWE failed; 78: W+X memory was not refused.
LAUNCHER = """
import ctypes, mmap, os, sys
os.dup2(int(os.environ.pop("SOCKET_FD")), 3)
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:
    sys.exit(77)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    pass
else:
    sys.exit(78)
os.umask(0o077)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="appliance.socket")
os.execv(sys.argv[1], sys.argv[1:])
"""


class Notifications:
    """The NOTIFY_SOCKET end: each datagram with the pid of the process that sent it."""

    def __init__(self) -> None:
        self.name = f"@appliance-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind("\0" + self.name[1:])
        self.sock.settimeout(60)

    def next(self) -> tuple[str, int]:
        data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pids = [
            struct.unpack("3i", payload[:12])[0]
            for level, kind, payload in ancillary
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
        ]
        return data.decode(), pids[0]


def fetch(port: int, path: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as response:
        return response.status, response.headers["Content-Type"], response.read()


def kernel_has_mdwe() -> bool:
    probe = "import ctypes, sys; sys.exit(ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0)"
    return subprocess.run([sys.executable, "-c", probe]).returncode == 0


def test_serve_runs_as_the_units_start_it(tmp_path: Path, units: dict[str, Unit]) -> None:
    if not kernel_has_mdwe():
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+) to stand in for the unit")
    samples = tmp_path / "samples"
    samples.mkdir()
    Image.linear_gradient("L").convert("RGB").resize((320, 200)).save(samples / "sample.jpg")
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    port = listener.getsockname()[1]
    notifications = Notifications()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APPLIANCE_", "LISTEN_"))}
    env.update(
        SOCKET_FD=str(listener.fileno()),
        NOTIFY_SOCKET=notifications.name,
        APPLIANCE_SERVER_WORKERS="2",
        APPLIANCE_SERVER_ADMIN_PORT="0",  # the image's 8081 may be taken on this machine
        APPLIANCE_ORIGIN_DIRECTORY__PATH=str(samples),
        APPLIANCE_CACHE_DISK_PATH=str(tmp_path / "cache"),
    )
    log = (tmp_path / "serve.log").open("w")
    argv = [str(LOCAL_APPLIANCE), "serve", "--config", str(BAKED_CONFIG)]
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, *argv],
        env=env,
        pass_fds=(listener.fileno(),),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    listener.close()
    try:
        assert notifications.next() == ("READY=1", process.pid)
        status, kind, body = fetch(port, "/")
        assert (status, kind.split(";")[0]) == (200, "text/html")
        assert b"sample.jpg" in body
        for fmt in ("jpeg", "webp", "avif"):
            status, kind, body = fetch(port, f"/sample.jpg?width=64&format={fmt}")
            assert (status, kind) == (200, f"image/{fmt}")
            if fmt != "avif":
                assert Image.open(io.BytesIO(body)).size == (64, 40)

        process.send_signal(signal.SIGHUP)
        assert notifications.next() == ("RELOADING=1", process.pid)
        assert notifications.next() == ("READY=1", process.pid)
        assert fetch(port, "/sample.jpg?width=32")[0] == 200

        process.send_signal(signal.SIGTERM)
        assert notifications.next() == ("STOPPING=1", process.pid)
        timeout = seconds(values(units["appliance.service"], "Service", "TimeoutStopSec")[0])
        assert process.wait(timeout) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
        notifications.sock.close()
    written = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert written, "the disk cache tier wrote nothing"
    assert [p for p in written if p.stat().st_mode & 0o077] == [], "UMask=0077"

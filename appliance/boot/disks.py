"""``appliance disks``: the cache disk, prepared once per boot before autotune.

Instance-store NVMe disks are found by their model string in sysfs. They are blank after a
stop/start, so they are formatted on every boot unless the filesystem label says it is ours and it
mounts cleanly (a reboot keeps the cache). One disk is formatted and mounted as it is; several
become one RAID 0 array with mdadm (without mdadm: the largest one). Disks that are mounted,
swap, partitioned or held by another device are left alone. Without an instance store, the cache
is a directory on whatever filesystem holds the mount point (the root volume), capped to a share
of its free space. The outcome is recorded in ``/run/appliance/disks.json``, which autotune reads:
``{"path", "kind": "instance-store" | "root-volume" | "none", "bytes", "devices"}``.

External commands go through a :class:`Commands` object so tests record them against a fake sysfs
tree. A failing command is logged and the cache falls back to the root volume: the service must
still start. Operations guide: docs/operations.md, "Boot: disks and autotune".
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

MiB = 1024 * 1024
GiB = 1024 * MiB

INSTANCE_STORE_MODEL = "Amazon EC2 NVMe Instance Storage"
LABEL = "appliance-cache"  # the filesystem label (and md array name) that says "ours"
ARRAY_NAME = LABEL
# mkfs.ext4: -F (the disk is ours), -m 0 (no root reserve on a cache), lazy inode table and
# journal init so mkfs returns in seconds on terabytes, nodiscard (the disk is already blank).
MKFS = ("mkfs.ext4", "-F", "-q", "-L", LABEL, "-m", "0")
MKFS_EXTENDED = "lazy_itable_init=1,lazy_journal_init=1,nodiscard"
MOUNT_OPTIONS = "noatime"

# A dedicated filesystem: the cache may fill 90% of it (directories, block rounding and the
# disk tier's overshoot before eviction live in the rest).
INSTANCE_STORE_SHARE = 0.9
# The root volume is shared with the OS, logs and packages: a quarter of its free space, at most
# 20 GiB, and no disk cache at all when less than 1 GiB is free.
ROOT_VOLUME_DIVISOR = 4
ROOT_VOLUME_MAX = 20 * GiB
ROOT_VOLUME_MIN_FREE = 1 * GiB

Kind = Literal["instance-store", "root-volume", "none"]
KINDS: tuple[str, ...] = ("instance-store", "root-volume", "none")

# Commands that only read; everything else is skipped (and listed) under --dry-run.
READ_ONLY = frozenset({"blkid"})


@dataclass(frozen=True, slots=True)
class DiskRecord:
    """The contents of disks.json."""

    path: str
    kind: Kind
    bytes: int  # what the cache may use there
    devices: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "bytes": self.bytes,
            "devices": [*self.devices],
        }

    @classmethod
    def from_json(cls, doc: Any) -> DiskRecord:
        if not isinstance(doc, dict):
            raise ValueError("disks.json: not a JSON object")
        path, kind, size = doc.get("path"), doc.get("kind"), doc.get("bytes")
        devices = doc.get("devices", [])
        if not isinstance(path, str) or not path:
            raise ValueError("disks.json: path must be a non-empty string")
        if kind not in KINDS:
            raise ValueError(f"disks.json: kind must be one of {', '.join(KINDS)}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError("disks.json: bytes must be a non-negative integer")
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise ValueError("disks.json: devices must be a list of strings")
        return cls(path, kind, size, tuple(devices))


def write_json(path: Path, doc: Any) -> None:
    """Writes ``doc`` to ``path`` atomically (a temp file in the same directory, then rename),
    with the mode a plain open() would give under the umask: the boot units run with
    ``Group=appliance`` and ``UMask=0027``, so the service reads the file through its group."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
            f.write("\n")
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True, slots=True)
class BlockDevice:
    name: str  # "nvme1n1"
    device: str  # "/dev/nvme1n1"
    size: int  # bytes
    holders: tuple[str, ...] = ()  # devices built on this one ("md127", "dm-0")
    partitions: tuple[str, ...] = ()  # "nvme1n1p1", ...


def find_instance_store(sysfs: Path, dev: Path) -> list[BlockDevice]:
    """Every NVMe block device whose model is the instance-store one, by name."""
    found = []
    for block in sorted((sysfs / "block").glob("nvme*")):
        try:
            model = (block / "device" / "model").read_text(encoding="utf-8", errors="replace")
            sectors = int((block / "size").read_text().strip() or 0)
        except (OSError, ValueError):
            continue
        if model.strip() != INSTANCE_STORE_MODEL:
            continue
        holders = block / "holders"
        found.append(
            BlockDevice(
                name=block.name,
                device=str(dev / block.name),
                size=sectors * 512,
                holders=tuple(sorted(h.name for h in holders.iterdir()))
                if holders.is_dir()
                else (),
                partitions=tuple(
                    sorted(p.name for p in block.iterdir() if (p / "partition").is_file())
                ),
            )
        )
    return found


def _unescape(text: str) -> str:
    """/proc/self/mounts writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def read_mounts(proc: Path) -> list[tuple[str, str]]:
    """(source, mount point) for every mount this process sees."""
    try:
        lines = (proc / "self" / "mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    mounts = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2:
            mounts.append((_unescape(parts[0]), _unescape(parts[1])))
    return mounts


def read_swaps(proc: Path) -> list[str]:
    try:
        lines = (proc / "swaps").read_text(encoding="utf-8").splitlines()[1:]
    except OSError:
        return []
    return [_unescape(line.split()[0]) for line in lines if line.strip()]


def _same(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


@dataclass(frozen=True, slots=True)
class Completed:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Commands(Protocol):
    def run(self, argv: Sequence[str]) -> Completed: ...

    def available(self, tool: str) -> bool: ...


class SystemCommands:
    """Runs commands for real; stdout and stderr are captured for the log."""

    def __init__(self, timeout: float = 600.0) -> None:
        self.timeout = timeout

    def run(self, argv: Sequence[str]) -> Completed:
        log.info("disks.run argv=%s", " ".join(argv))
        try:
            done = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                check=False,
                timeout=self.timeout,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return Completed(-1, "", str(e))
        return Completed(done.returncode, done.stdout, done.stderr)

    def available(self, tool: str) -> bool:
        return shutil.which(tool) is not None


@dataclass
class DryRun:
    """Runs read-only commands, records the others and pretends they succeeded."""

    inner: Commands
    skipped: list[list[str]] = field(default_factory=list)

    def run(self, argv: Sequence[str]) -> Completed:
        if argv[0] in READ_ONLY:
            return self.inner.run(argv)
        self.skipped.append(list(argv))
        return Completed(0)

    def available(self, tool: str) -> bool:
        return self.inner.available(tool)


@dataclass(frozen=True, slots=True)
class Space:
    total: int
    free: int  # available to unprivileged users


def statvfs_space(path: Path) -> Space:
    st = os.statvfs(path)
    return Space(st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize)


class CommandFailed(Exception):
    pass


@dataclass
class Disks:
    """Prepares the cache disk. Every dependency on the machine is a field, for tests."""

    sysfs: Path
    dev: Path
    proc: Path
    mount_point: Path
    commands: Commands
    space: Callable[[Path], Space] = statvfs_space
    owner: tuple[int, int] | None = None  # (uid, gid) that gets the cache directory
    dry_run: bool = False

    def prepare(self) -> DiskRecord:
        target = str(self.mount_point)
        mounts = read_mounts(self.proc)
        mounted_here = [src for src, where in mounts if _same(where, target)]
        if mounted_here:
            source = mounted_here[-1]
            if self._label(source) == LABEL:  # a rerun: our disk is already there
                log.info("disks.already_mounted device=%s path=%s", source, target)
                return self._instance_store(self._members(source), estimate=None)
            log.warning("disks.mount_point_busy device=%s path=%s", source, target)
            return self.root_volume()
        disks = find_instance_store(self.sysfs, self.dev)
        if not disks:
            log.info("disks.no_instance_store")
            return self.root_volume()
        try:
            reused = self._reuse_array(disks, mounts)
            if reused is not None:
                return reused
            busy = {src for src, _ in mounts if src.startswith("/")} | set(read_swaps(self.proc))
            free = []
            for disk in find_instance_store(self.sysfs, self.dev):  # again: an array was stopped?
                why = self._in_use(disk, busy)
                if why:
                    log.warning("disks.skipped device=%s reason=%s", disk.device, why)
                else:
                    free.append(disk)
            if free:
                return self._use(free)
        except CommandFailed as e:
            log.error("disks.instance_store_failed error=%s; using the root volume", e)
        return self.root_volume()

    def root_volume(self) -> DiskRecord:
        """A directory at the mount point, capped to a share of its filesystem's free space."""
        if not self.dry_run:
            self.mount_point.mkdir(parents=True, exist_ok=True)
            self._own()
        probe = self.mount_point
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free = self.space(probe).free
        if free < ROOT_VOLUME_MIN_FREE:
            log.warning("disks.root_volume_full free=%d: no disk cache", free)
            return DiskRecord(str(self.mount_point), "none", 0)
        return DiskRecord(
            str(self.mount_point), "root-volume", min(free // ROOT_VOLUME_DIVISOR, ROOT_VOLUME_MAX)
        )

    def _in_use(self, disk: BlockDevice, busy: set[str]) -> str:
        if any(_same(disk.device, b) for b in busy):
            return "mounted-or-swap"
        if disk.partitions:
            return "partitioned"
        if disk.holders:
            return "held-by-" + ",".join(disk.holders)
        return ""

    def _reuse_array(
        self, disks: list[BlockDevice], mounts: list[tuple[str, str]]
    ) -> DiskRecord | None:
        """After a reboot the array may be assembled already: mount it if it is ours."""
        arrays = {h for d in disks for h in d.holders if h.startswith("md")}
        if len(arrays) != 1:
            return None
        array = arrays.pop()
        device = str(self.dev / array)
        if any(_same(device, src) for src, _ in mounts) or self._label(device) != LABEL:
            return None
        members = tuple(d.device for d in disks if array in d.holders)
        if self._mount(device):
            log.info("disks.reused device=%s members=%s", device, ",".join(members))
            return self._instance_store(members, estimate=sum(d.size for d in disks))
        log.warning("disks.array_unmountable device=%s: recreating it", device)
        self._check(["mdadm", "--stop", device])
        return None

    def _use(self, free: list[BlockDevice]) -> DiskRecord:
        if len(free) > 1 and not self.commands.available("mdadm"):
            largest = max(free, key=lambda d: d.size)
            log.warning("disks.no_mdadm: using the largest disk only device=%s", largest.device)
            free = [largest]
        members = tuple(d.device for d in free)
        size = sum(d.size for d in free)
        if len(free) == 1:
            device = members[0]
            if self._label(device) == LABEL and self._mount(device):
                log.info("disks.reused device=%s", device)
                return self._instance_store(members, estimate=size)
        for member in members:
            if self.commands.available("wipefs"):
                self._check(["wipefs", "--all", member])
        if len(free) > 1:
            device = str(self.dev / "md" / ARRAY_NAME)
            self._check(
                [
                    "mdadm",
                    "--create",
                    device,
                    "--run",
                    "--level=0",
                    f"--raid-devices={len(members)}",
                    f"--name={ARRAY_NAME}",
                    *members,
                ]
            )
            if self.commands.available("udevadm"):
                self.commands.run(["udevadm", "settle"])
        self._check([*MKFS, "-E", MKFS_EXTENDED, device])
        if not self._mount(device):
            raise CommandFailed(f"mount {device} {self.mount_point} failed after mkfs")
        log.info("disks.formatted device=%s members=%s", device, ",".join(members))
        return self._instance_store(members, estimate=size)

    def _instance_store(self, members: Sequence[str], estimate: int | None) -> DiskRecord:
        """``estimate``: the free bytes to assume under --dry-run, where nothing was mounted."""
        self._own()
        if self.dry_run and estimate is not None:
            free = estimate
        else:
            free = self.space(self.mount_point).free
        return DiskRecord(
            str(self.mount_point), "instance-store", int(free * INSTANCE_STORE_SHARE), (*members,)
        )

    def _members(self, device: str) -> tuple[str, ...]:
        """The disks under a mounted device: an md array's slaves, or the instance-store disk
        that is the device, by the name we give it."""
        name = Path(os.path.realpath(device)).name
        slaves = self.sysfs / "block" / name / "slaves"
        if name.startswith("md") and slaves.is_dir():
            return tuple(str(self.dev / s.name) for s in sorted(slaves.iterdir()))
        same = [
            d.device for d in find_instance_store(self.sysfs, self.dev) if _same(d.device, device)
        ]
        return tuple(same[:1]) or (device,)

    def _label(self, device: str) -> str:
        done = self.commands.run(["blkid", "-o", "value", "-s", "LABEL", device])
        return done.stdout.strip() if done.returncode == 0 else ""

    def _mount(self, device: str) -> bool:
        if not self.dry_run:
            self.mount_point.mkdir(parents=True, exist_ok=True)
        target = str(self.mount_point)
        done = self.commands.run(["mount", "-t", "ext4", "-o", MOUNT_OPTIONS, device, target])
        if done.returncode != 0:
            log.warning("disks.mount_failed device=%s error=%s", device, done.stderr.strip())
        return done.returncode == 0

    def _check(self, argv: list[str]) -> None:
        done = self.commands.run(argv)
        if done.returncode != 0:
            raise CommandFailed(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")

    def _own(self) -> None:
        if self.owner is None or self.dry_run:
            return
        os.chown(self.mount_point, *self.owner)
        os.chmod(self.mount_point, 0o750)


def register(commands: Any) -> None:
    p = commands.add_parser(
        "disks", help="prepare the cache disk: instance store, else the root volume (boot)"
    )
    p.add_argument("--sysfs", type=Path, default=Path("/sys"))
    p.add_argument("--proc", type=Path, default=Path("/proc"), help="for mounts and swaps")
    p.add_argument("--dev", type=Path, default=Path("/dev"), help="where device nodes are")
    p.add_argument("--mount-point", type=Path, default=Path("/var/cache/appliance"))
    p.add_argument("--run-dir", type=Path, default=Path("/run/appliance"))
    p.add_argument("--owner", default="appliance", help="user that owns the cache directory")
    p.add_argument(
        "--dry-run", action="store_true", help="print what would be done; change nothing"
    )
    p.set_defaults(run=run)


def _owner(name: str) -> tuple[int, int] | None:
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        log.warning("disks.owner_missing user=%s: the cache directory stays root's", name)
        return None
    return entry.pw_uid, entry.pw_gid


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    system = SystemCommands()
    commands: Commands = DryRun(system) if args.dry_run else system
    disks = Disks(
        sysfs=args.sysfs,
        dev=args.dev,
        proc=args.proc,
        mount_point=args.mount_point,
        commands=commands,
        owner=None if args.dry_run else _owner(args.owner),
        dry_run=args.dry_run,
    )
    record = disks.prepare()
    if isinstance(commands, DryRun):
        print(json.dumps({"disks": record.to_json(), "would_run": commands.skipped}, indent=2))
        return 0
    write_json(args.run_dir / "disks.json", record.to_json())
    log.info(
        "disks.ready kind=%s path=%s bytes=%d devices=%s",
        record.kind,
        record.path,
        record.bytes,
        ",".join(record.devices) or "-",
    )
    print(f"disks: {record.kind} at {record.path}, cache may use {record.bytes / GiB:.1f} GiB")
    return 0

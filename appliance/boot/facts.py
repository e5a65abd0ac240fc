"""The facts about this machine that autotune sizes for, read from the OS: :func:`probe`.

Everything is read under a root directory, so tests give it a fake /proc, /sys/fs/cgroup and /run:
the CPUs we may use (the affinity mask, cut by a cgroup v1 or v2 CPU quota rounded up), memory
(MemTotal, cut by a cgroup memory limit), the cache disk that ``appliance disks`` recorded in
disks.json, and the instance type, region and id from IMDS. Nothing here raises for a missing
cgroup, disks.json or IMDS: boot must not depend on them.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from appliance.boot.disks import DiskRecord

log = logging.getLogger(__name__)


class InstanceMetadata(Protocol):
    """What autotune needs from IMDS; appliance.boot.imds.Imds provides it."""

    def instance_type(self) -> str | None: ...

    def instance_id(self) -> str | None: ...

    def region(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Facts:
    cpus: int  # CPUs we may use: the affinity mask, cut by a cgroup quota rounded up
    memory_bytes: int  # MemTotal, cut by a cgroup limit
    disk_path: str | None = None  # from disks.json; None: no disk facts
    disk_bytes: int = 0
    disk_kind: str | None = None
    instance_type: str | None = None  # from IMDS; None off EC2
    region: str | None = None
    instance_id: str | None = None
    # How cpus and memory_bytes were found, for autotune.json.
    affinity_cpus: int | None = None
    cpu_quota: float | None = None  # in CPUs; None: no quota
    meminfo_bytes: int | None = None
    cgroup_memory_bytes: int | None = None  # None: no limit
    cgroup: str | None = None  # "v1" or "v2" when limits were read from one

    @property
    def memory_from_cgroup(self) -> bool:
        """The memory is a container's (or slice's) limit, not the machine's."""
        limit = self.cgroup_memory_bytes
        return limit is not None and (self.meminfo_bytes is None or limit < self.meminfo_bytes)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cpu_list_count(text: str) -> int:
    """ "0-3,8,10-11" -> 7."""
    count = 0
    for part in text.split(","):
        if "-" in part:
            first, last = part.split("-", 1)
            count += int(last) - int(first) + 1
        elif part.strip():
            count += 1
    return count


def _affinity(root: Path) -> int:
    if root == Path("/"):
        return len(os.sched_getaffinity(0))
    status = _read(root / "proc/self/status") or ""
    for line in status.splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return _cpu_list_count(line.split(":", 1)[1].strip())
    return len(os.sched_getaffinity(0))


def _meminfo(root: Path) -> int:
    for line in (root / "proc/meminfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"{root / 'proc/meminfo'}: no MemTotal line")


def _cgroup_dirs(mount: Path, path: str) -> list[Path]:
    """The cgroup's directory and its ancestors up to the mount, innermost first. In a container
    without a cgroup namespace /proc/self/cgroup names the host's path (/docker/abc) while the
    container sees its own cgroup at the mount: leading parts that do not exist are dropped."""
    parts = [p for p in path.split("/") if p]
    while parts and not mount.joinpath(*parts).is_dir():
        parts = parts[1:]
    dirs = [mount.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]
    return [d for d in dirs if d.is_dir()]


def _v1_mount(root: Path, controllers: str, wanted: str) -> Path | None:
    base = root / "sys/fs/cgroup"
    for name in (controllers, wanted, "cpu,cpuacct" if wanted == "cpu" else wanted):
        if (base / name).is_dir():
            return base / name
    return None


def _limit(text: str | None) -> int | None:
    """A byte limit from memory.max / memory.high / memory.limit_in_bytes; None for no limit
    ("max" in v2; in v1 a huge page-aligned number near 2**63)."""
    if text is None or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return None if value >= 1 << 62 else value


def _quota(text: str | None, period_text: str | None = None) -> float | None:
    """CPUs from v2 cpu.max ("max 100000", "200000 100000") or v1 quota and period files."""
    if text is None:
        return None
    parts = text.split()
    if period_text is not None:
        parts = [parts[0] if parts else "-1", period_text]
    if len(parts) != 2 or parts[0] in ("max", "-1"):
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _cgroup_limits(root: Path) -> tuple[float | None, int | None, str | None]:
    """(CPU quota, memory limit, "v1"/"v2") for this process's cgroup and its ancestors."""
    text = _read(root / "proc/self/cgroup")
    if text is None:
        return None, None, None
    v1: dict[str, tuple[str, str]] = {}  # controller -> (mount dir name, cgroup path)
    v2: str | None = None
    for line in text.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        hierarchy, controllers, path = fields
        if hierarchy == "0" and not controllers:
            v2 = path
            continue
        for controller in controllers.split(","):
            v1[controller] = (controllers, path)
    quotas: list[float] = []
    limits: list[int] = []
    version: str | None = None
    if "cpu" in v1 or "memory" in v1:
        version = "v1"
        if "cpu" in v1 and (mount := _v1_mount(root, v1["cpu"][0], "cpu")):
            for d in _cgroup_dirs(mount, v1["cpu"][1]):
                q = _quota(_read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us"))
                quotas += [q] if q is not None else []
        if "memory" in v1 and (mount := _v1_mount(root, v1["memory"][0], "memory")):
            for d in _cgroup_dirs(mount, v1["memory"][1]):
                m = _limit(_read(d / "memory.limit_in_bytes"))
                limits += [m] if m is not None else []
    elif v2 is not None:
        base = root / "sys/fs/cgroup"
        mount = base if (base / "cgroup.controllers").exists() else base / "unified"
        version = "v2"
        for d in _cgroup_dirs(mount, v2):
            q = _quota(_read(d / "cpu.max"))
            quotas += [q] if q is not None else []
            for name in ("memory.max", "memory.high"):
                m = _limit(_read(d / name))
                limits += [m] if m is not None else []
    return (min(quotas) if quotas else None), (min(limits) if limits else None), version


def _disk_facts(run_dir: Path) -> DiskRecord | None:
    path = run_dir / "disks.json"
    try:
        return DiskRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("autotune.disks_unreadable path=%s error=%s", path, e)
        return None


def _ask(imds: InstanceMetadata | None, what: str) -> str | None:
    if imds is None:
        return None
    try:
        value = getattr(imds, what)()
    except Exception as e:  # the client should not raise; boot must not depend on it
        log.warning("autotune.imds_failed field=%s error=%s", what, e)
        return None
    return value if isinstance(value, str) and value else None


def probe(
    root: Path = Path("/"), imds: InstanceMetadata | None = None, run_dir: Path | None = None
) -> Facts:
    """The facts, read under ``root``; disks.json from ``run_dir`` (default root/run/appliance)."""
    affinity = _affinity(root)
    meminfo = _meminfo(root)
    quota, limit, version = _cgroup_limits(root)
    cpus = affinity
    if quota is not None:
        cpus = max(1, min(affinity, -(-int(quota * 1000) // 1000)))  # round a fraction up
    disk = _disk_facts(run_dir if run_dir is not None else root / "run/appliance")
    return Facts(
        cpus=cpus,
        memory_bytes=min(meminfo, limit) if limit is not None else meminfo,
        disk_path=disk.path if disk is not None and disk.kind != "none" else None,
        disk_bytes=disk.bytes if disk is not None and disk.kind != "none" else 0,
        disk_kind=disk.kind if disk is not None else None,
        instance_type=_ask(imds, "instance_type"),
        region=_ask(imds, "region"),
        instance_id=_ask(imds, "instance_id"),
        affinity_cpus=affinity,
        cpu_quota=quota,
        meminfo_bytes=meminfo,
        cgroup_memory_bytes=limit,
        cgroup=version,
    )

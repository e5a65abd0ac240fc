"""``appliance autotune``: facts about this machine -> a pure plan -> files under /run/appliance.

The facts (CPUs we may use, memory, the cache disk, the instance type) come from
:func:`appliance.boot.facts.probe`. :func:`plan` turns facts into worker processes, transcode
threads, queue depth, cache sizes and sysctls with no I/O and no clock; the rules and their numbers
are explained in docs/decisions/0008-autotune-sizing.md. The command writes ``tuned.json`` (a config
layer, checked with appliance.config.load first), raises sysctls (never lowers one) and writes
``autotune.json`` (facts, plan, what happened to each sysctl).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from appliance.boot.disks import write_json
from appliance.boot.facts import Facts, InstanceMetadata, probe

log = logging.getLogger(__name__)

MiB = 1024 * 1024
GiB = 1024 * MiB

# --- Sizing constants (decision 0008) ---
SUPERVISOR_RSS = 64 * MiB  # the parent process that forks and watches the workers
WORKER_RSS = 80 * MiB  # one worker's Python process with its libraries, caches empty
TRANSCODE_SET = 96 * MiB  # one transcode at worst: a 50 MP source is ~75 MB of planes + buffers
QUEUED_SOURCE = 8 * MiB  # a transcode waiting in the queue holds its source's bytes
MAX_WORKERS = 8  # event loops; each has every CPU's worth of transcode threads (decision 0007)
HEADROOM_DIVISOR = 4  # a quarter of what is not reserved for the OS stays unplanned
CACHE_SHARE = 0.4  # of the planned memory, for the memory caches of all workers together
VARIANT_SHARE = 2 / 3  # of a worker's memory cache, for variants (the rest: originals)
MEMORY_CACHE_LIMITS = {"variants": (16 * MiB, 4 * GiB), "originals": (8 * MiB, 2 * GiB)}
MIN_DISK_CACHE = 256 * MiB  # below this a disk tier is not worth its directory scans
DISK_VARIANT_SHARE = 0.5  # of the disk cache, for variants (the rest: originals)
PORT_RANGE = (10240, 65535)  # ephemeral ports; keeps 8080/8081 and other service ports out
NR_OPEN = 1_048_576  # the kernel's default fs.nr_open: LimitNOFILE may not exceed it


@dataclass(frozen=True, slots=True)
class Sysctl:
    name: str  # "net.core.somaxconn"
    value: tuple[int, ...]  # one number, or (low, high) for a range

    def text(self) -> str:
        return " ".join(str(v) for v in self.value)


@dataclass(frozen=True, slots=True)
class Plan:
    workers: int
    threads: int  # transcode threads per worker
    queue_depth: int  # per worker
    memory_bytes: int  # variant memory cache, per worker
    original_memory_bytes: int  # original memory cache, per worker
    disk_path: str | None
    disk_bytes: int
    original_disk_bytes: int
    sysctls: tuple[Sysctl, ...]
    limit_nofile: int
    burstable: bool
    # The memory arithmetic behind the numbers, for people reading autotune.json.
    os_reserve_bytes: int
    # The OS reserve + every process at full RSS, every thread on a 50 MP source, every queue
    # full and every cache full: what the plan promises stays under the memory fact.
    worst_case_bytes: int
    notes: tuple[str, ...] = ()

    def tuned(self) -> dict[str, Any]:
        """The config layer for /run/appliance/tuned.json: keys of appliance.config only."""
        cache: dict[str, Any] = {
            "memory_bytes": self.memory_bytes,
            "original_memory_bytes": self.original_memory_bytes,
            "disk_path": self.disk_path,
        }
        if self.disk_path is not None:
            cache["disk_bytes"] = self.disk_bytes
            cache["original_disk_bytes"] = self.original_disk_bytes
        server = {"workers": self.workers, "threads": self.threads, "queue_depth": self.queue_depth}
        return {"server": server, "cache": cache}


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))


def is_burstable(instance_type: str | None) -> bool:
    """t2, t3, t3a, t4g...: CPU credits run out and the CPU drops to a baseline."""
    family = (instance_type or "").split(".")[0]
    return len(family) >= 2 and family[0] == "t" and family[1].isdigit()


def os_reserve(facts: Facts) -> int:
    """Memory left to everything that is not us. A container's limit covers only us (and our page
    cache); a machine also runs the kernel, systemd, journald, sshd and agents."""
    if facts.memory_from_cgroup:
        return _clamp(facts.memory_bytes // 16, 32 * MiB, 1 * GiB)
    return _clamp(facts.memory_bytes // 8, 192 * MiB, 4 * GiB)


def queue_depth(threads: int, burstable: bool) -> int:
    """Waiting transcodes per worker: two rounds of the thread pool, so a request waits about two
    transcode times before it starts; beyond that a 503 with Retry-After is the better answer. A
    burstable instance out of credits runs several times slower: one round only."""
    if burstable:
        return _clamp(threads, 2, 8)
    return _clamp(2 * threads, 4, 256)


def worker_bytes(threads: int, burstable: bool) -> int:
    """One worker at worst, caches aside: its process, every thread on a 50 MP source, a full
    queue of sources."""
    return WORKER_RSS + threads * TRANSCODE_SET + queue_depth(threads, burstable) * QUEUED_SOURCE


def plan(facts: Facts) -> Plan:
    """A pure function of the facts. Memory is split into an OS reserve, unplanned headroom, the
    memory caches (CACHE_SHARE of the rest) and the work budget (processes, transcode working sets,
    queues at their worst). Threads per worker = CPUs (decision 0007) unless one worker at worst
    would not fit the work budget; then workers = CPUs, at most MAX_WORKERS, while they fit."""
    cpus = max(1, facts.cpus)
    memory = max(0, facts.memory_bytes)
    burstable = is_burstable(facts.instance_type)
    notes: list[str] = []

    reserve = os_reserve(facts)
    usable = max(0, memory - reserve)
    planned = usable - usable // HEADROOM_DIVISOR
    cache_budget = int(planned * CACHE_SHARE)
    work_budget = planned - cache_budget - SUPERVISOR_RSS

    threads = cpus
    while threads > 1 and worker_bytes(threads, burstable) > work_budget:
        threads -= 1
    if threads < cpus:
        notes.append(f"memory allows {threads} of {cpus} transcode threads per worker")
    per_worker = worker_bytes(threads, burstable)
    workers = _clamp(work_budget // per_worker, 1, min(cpus, MAX_WORKERS))
    if per_worker > work_budget:
        notes.append(
            "memory is below one worker's worst case: many large sources at once may exhaust it;"
            " lower images.max_source_pixels"
        )

    low, high = MEMORY_CACHE_LIMITS["variants"]
    cache_per_worker = cache_budget // workers
    variants = _clamp(int(cache_per_worker * VARIANT_SHARE), low, high)
    low, high = MEMORY_CACHE_LIMITS["originals"]
    originals = _clamp(cache_per_worker - int(cache_per_worker * VARIANT_SHARE), low, high)

    disk_path: str | None = None
    disk_variants = disk_originals = 0
    if facts.disk_path and facts.disk_bytes >= MIN_DISK_CACHE:
        disk_path = facts.disk_path
        disk_variants = int(facts.disk_bytes * DISK_VARIANT_SHARE)
        disk_originals = facts.disk_bytes - disk_variants
    elif facts.disk_path:
        notes.append(f"disk cache of {facts.disk_bytes} bytes is too small: no disk tier")

    somaxconn = _clamp(1024 * cpus, 4096, 65535)
    nofile = _clamp(16 * somaxconn, 65536, NR_OPEN)
    sysctls = (
        Sysctl("net.core.somaxconn", (somaxconn,)),
        Sysctl("net.ipv4.tcp_max_syn_backlog", (2 * somaxconn,)),
        Sysctl("net.ipv4.ip_local_port_range", PORT_RANGE),
        Sysctl("fs.file-max", (max(2_097_152, nofile * (workers + 2)),)),
        Sysctl("net.core.netdev_max_backlog", (_clamp(1024 * cpus, 4096, 65536),)),
    )
    worst = reserve + SUPERVISOR_RSS + workers * (per_worker + variants + originals)
    if burstable:
        notes.append("burstable instance type: queue depth of one round of threads")
    return Plan(
        workers=workers,
        threads=threads,
        queue_depth=queue_depth(threads, burstable),
        memory_bytes=variants,
        original_memory_bytes=originals,
        disk_path=disk_path,
        disk_bytes=disk_variants,
        original_disk_bytes=disk_originals,
        sysctls=sysctls,
        limit_nofile=nofile,
        burstable=burstable,
        os_reserve_bytes=reserve,
        worst_case_bytes=worst,
        notes=tuple(notes),
    )


# --- Sysctls -------------------------------------------------------------------------------


def raised(current: tuple[int, ...], planned: tuple[int, ...]) -> tuple[int, ...]:
    """Never lowers what is set: a number only goes up, a (low, high) range only widens."""
    if len(current) == 2 and len(planned) == 2:
        return (min(current[0], planned[0]), max(current[1], planned[1]))
    return (max(current[0], planned[0]),) if current else planned


def apply_sysctls(root: Path, sysctls: tuple[Sysctl, ...]) -> dict[str, dict[str, Any]]:
    """Writes /proc/sys under ``root``; returns each sysctl's outcome for autotune.json."""
    outcome: dict[str, dict[str, Any]] = {}
    for sysctl in sysctls:
        path = root / "proc/sys" / sysctl.name.replace(".", "/")
        entry: dict[str, Any] = {"planned": sysctl.text()}
        try:
            before = tuple(int(v) for v in path.read_text(encoding="ascii").split())
            entry["before"] = " ".join(str(v) for v in before)
            value = raised(before, sysctl.value)
            if value == before:
                entry["status"] = "kept"
            else:
                fd = os.open(path, os.O_WRONLY)  # never O_CREAT: a missing sysctl is a failure
                try:
                    os.write(fd, (" ".join(str(v) for v in value) + "\n").encode())
                finally:
                    os.close(fd)
                entry["status"], entry["value"] = "applied", " ".join(str(v) for v in value)
        except (OSError, ValueError) as e:
            entry["status"], entry["error"] = "failed", str(e)
            log.warning("autotune.sysctl_failed name=%s error=%s", sysctl.name, e)
        outcome[sysctl.name] = entry
    return outcome


# --- The command ---------------------------------------------------------------------------


def register(commands: Any) -> None:
    p = commands.add_parser(
        "autotune", help="size workers, threads, caches and sysctls for this machine (boot)"
    )
    p.add_argument("--root", type=Path, default=Path("/"), help="read /proc, /sys under this")
    p.add_argument(
        "--run-dir",
        type=Path,
        help="reads disks.json, writes tuned.json and autotune.json (default: ROOT/run/appliance)",
    )
    p.add_argument("--no-sysctl", action="store_true", help="plan sysctls but do not apply them")
    p.add_argument("--dry-run", action="store_true", help="print the plan as JSON; write nothing")
    p.add_argument("--no-imds", action="store_true", help="do not ask EC2 instance metadata")
    p.add_argument("--imds-url", help="default: $APPLIANCE_IMDS_URL, else http://169.254.169.254")
    p.add_argument("--imds-timeout", type=float, default=2.0, help="seconds")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from appliance.config import load

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    root: Path = args.root
    run_dir: Path = args.run_dir if args.run_dir is not None else root / "run/appliance"
    imds: InstanceMetadata | None = None
    if not args.no_imds:
        from appliance.boot.imds import Imds

        imds = Imds(base_url=args.imds_url, timeout=args.imds_timeout)
    facts = probe(root, imds, run_dir)
    the_plan = plan(facts)
    tuned = the_plan.tuned()
    document = {"facts": asdict(facts), "plan": asdict(the_plan), "tuned": tuned}
    if args.dry_run:
        print(json.dumps(document, indent=2, sort_keys=True))
        return 0
    load([tuned])  # raises ConfigError if the plan is not a valid config layer
    write_json(run_dir / "tuned.json", tuned)
    if args.no_sysctl:
        skipped = {"status": "skipped"}
        document["sysctls"] = {s.name: {"planned": s.text(), **skipped} for s in the_plan.sysctls}
    else:
        document["sysctls"] = apply_sysctls(root, the_plan.sysctls)
    write_json(run_dir / "autotune.json", document)
    fields = {**tuned["server"], **tuned["cache"], "cpus": facts.cpus, "memory": facts.memory_bytes}
    fields["instance_type"] = facts.instance_type
    log.info("autotune.plan %s", " ".join(f"{k}={v}" for k, v in fields.items()))
    print(
        f"autotune: {the_plan.workers} worker(s) x {the_plan.threads} thread(s), memory cache "
        f"{(the_plan.memory_bytes + the_plan.original_memory_bytes) // MiB} MiB per worker, disk "
        f"cache {(the_plan.disk_bytes + the_plan.original_disk_bytes) // MiB} MiB "
        f"-> {run_dir / 'tuned.json'}"
    )
    return 0

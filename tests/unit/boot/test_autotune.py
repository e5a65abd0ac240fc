"""Autotune: plan() on a table of machines asserting properties (not the plan's numbers), sysctls
against a fake /proc/sys, the command end to end with --root and --run-dir in tmp_path (the fake
trees come from test_facts, which tests probe())."""

from __future__ import annotations

import itertools
import json
import logging
import os
import stat
import sys
import types
from dataclasses import replace
from pathlib import Path

import pytest

from appliance.boot import autotune
from appliance.boot.autotune import Plan, plan, raised
from appliance.boot.facts import Facts, probe
from appliance.cli import main
from appliance.config import load, read_document

from .test_facts import FakeImds, host, write

MiB = 1024 * 1024
GiB = 1024 * MiB

# Independent of the plan's own constants: what the brief measured and assumed.
PYTHON_RSS = 80 * MiB  # each Python process, supervisor included
PLANES_50MP = 75_000_000  # one transcode thread decoding a 50 MP source
MACHINE_OS = 128 * MiB  # kernel, systemd, sshd on a minimal Debian

# (instance type, vCPUs, memory GiB, instance-store GB or 0). Sorted by size: vCPUs and memory
# never shrink from one row to the next.
INSTANCES = [
    ("t2.micro", 1, 1, 0),
    ("t4g.micro", 2, 1, 0),
    ("t4g.small", 2, 2, 0),
    ("c7g.large", 2, 4, 0),
    ("m7g.large", 2, 8, 0),
    ("c7g.xlarge", 4, 8, 0),
    ("c6gd.2xlarge", 8, 16, 474),
    ("m7g.4xlarge", 16, 64, 0),
    ("c7gd.8xlarge", 32, 64, 1900),
    ("r7g.8xlarge", 32, 256, 0),
    ("m7gd.16xlarge", 64, 256, 3800),
    ("c7i.48xlarge", 192, 384, 0),
    ("m7i.48xlarge", 192, 768, 0),
]


def machine(kind: str, cpus: int, gib: float, store_gb: int = 0) -> Facts:
    memory = int(gib * GiB)
    disk = {}
    if store_gb:
        disk = {
            "disk_path": "/var/cache/appliance",
            "disk_bytes": int(store_gb * 1e9 * 0.9),
            "disk_kind": "instance-store",
        }
    return Facts(
        cpus=cpus,
        memory_bytes=memory,
        instance_type=kind,
        affinity_cpus=cpus,
        meminfo_bytes=memory,
        **disk,  # type: ignore[arg-type]
    )


def container(cpus: int, gib: float, host_cpus: int = 64, host_gib: int = 256) -> Facts:
    return Facts(
        cpus=cpus,
        memory_bytes=int(gib * GiB),
        affinity_cpus=host_cpus,
        cpu_quota=float(cpus),
        meminfo_bytes=host_gib * GiB,
        cgroup_memory_bytes=int(gib * GiB),
        cgroup="v2",
    )


CONTAINERS = [container(1, 0.75), container(2, 1), container(4, 2), container(16, 2)]
ALL = (
    [machine(*row) for row in INSTANCES]
    + [
        replace(machine(*row), disk_path="/var/cache/appliance", disk_bytes=5 * GiB)
        for row in INSTANCES
    ]
    + CONTAINERS
)


def ids(facts: Facts) -> str:
    kind = facts.instance_type or "container"
    return f"{kind}-{facts.cpus}cpu-{facts.memory_bytes // MiB}MiB-disk{facts.disk_bytes // GiB}G"


def worst_case(p: Plan, facts: Facts) -> int:
    """Every process at its RSS, every thread on a 50 MP source, every memory cache full."""
    caches = p.memory_bytes + p.original_memory_bytes
    return (p.workers + 1) * PYTHON_RSS + p.workers * (p.threads * PLANES_50MP + caches)


# --- plan(): properties over the table --------------------------------------------------------


@pytest.mark.parametrize("facts", ALL, ids=ids)
def test_no_worker_runs_more_transcodes_at_once_than_there_are_cpus(facts: Facts) -> None:
    p = plan(facts)
    assert 1 <= p.threads <= facts.cpus
    assert 1 <= p.workers <= facts.cpus
    assert p.queue_depth >= 1


@pytest.mark.parametrize("facts", ALL, ids=ids)
def test_caches_and_working_sets_fit_in_memory_with_headroom(facts: Facts) -> None:
    p = plan(facts)
    others = 0 if facts.memory_from_cgroup else MACHINE_OS
    assert worst_case(p, facts) + others <= 0.85 * facts.memory_bytes
    assert p.worst_case_bytes <= facts.memory_bytes  # the plan's own, stricter accounting


@pytest.mark.parametrize("facts", [machine(*row) for row in INSTANCES], ids=ids)
def test_each_worker_gets_a_thread_per_cpu_on_real_instance_sizes(facts: Facts) -> None:
    # Decision 0007: keep-alive connections stick to a worker, so any worker may use every CPU.
    assert plan(facts).threads == facts.cpus


@pytest.mark.parametrize("facts", ALL, ids=ids)
def test_tuned_document_loads_through_the_config_loader(facts: Facts) -> None:
    p = plan(facts)
    config = load([p.tuned()])
    assert (config.server.workers, config.server.threads, config.server.queue_depth) == (
        p.workers,
        p.threads,
        p.queue_depth,
    )
    assert config.cache.memory_bytes == p.memory_bytes
    assert config.cache.original_memory_bytes == p.original_memory_bytes
    assert config.cache.disk_path == facts.disk_path


@pytest.mark.parametrize("facts", ALL, ids=ids)
def test_disk_cache_is_split_from_the_disk_fact_and_absent_without_one(facts: Facts) -> None:
    p = plan(facts)
    if facts.disk_path is None:
        assert p.disk_path is None
        assert "disk_bytes" not in p.tuned()["cache"]
    else:
        assert p.disk_path == facts.disk_path
        assert p.disk_bytes > 0 and p.original_disk_bytes > 0
        assert p.disk_bytes + p.original_disk_bytes <= facts.disk_bytes


def test_a_disk_fact_too_small_to_be_worth_a_tier_gives_none() -> None:
    facts = replace(machine("m7g.large", 2, 8), disk_path="/var/cache/appliance", disk_bytes=MiB)
    p = plan(facts)
    assert p.disk_path is None and p.notes


def test_the_smallest_machines_get_one_worker_and_small_caches() -> None:
    for facts in (machine("t2.micro", 1, 1), machine("t4g.micro", 2, 1)):
        p = plan(facts)
        assert p.workers == 1
        assert p.memory_bytes + p.original_memory_bytes <= facts.memory_bytes // 2


FIELDS = ("workers", "threads", "queue_depth", "limit_nofile")


def totals(p: Plan) -> tuple[int, ...]:
    somaxconn = dict((s.name, s.value[0]) for s in p.sysctls)["net.core.somaxconn"]
    memory_caches = p.workers * (p.memory_bytes + p.original_memory_bytes)
    return (*(getattr(p, f) for f in FIELDS), memory_caches, p.workers * p.threads, somaxconn)


@pytest.mark.parametrize("family", ["c7g", "m7g", "r7g"])
def test_a_bigger_size_of_the_same_family_never_gets_less(family: str) -> None:
    gib_per_cpu = {"c7g": 2, "m7g": 4, "r7g": 8}[family]
    plans = [
        plan(machine(f"{family}.x", cpus, cpus * gib_per_cpu)) for cpus in (1, 2, 4, 8, 16, 32, 64)
    ]
    for smaller, bigger in itertools.pairwise(plans):
        assert all(b >= s for s, b in zip(totals(smaller), totals(bigger), strict=True))
    assert totals(plans[-1]) != totals(plans[0])


@pytest.mark.parametrize("cpus", [1, 2, 4, 16, 64, 192])
def test_more_memory_with_the_same_cpus_never_gets_less(cpus: int) -> None:
    plans = [plan(machine("m7g.x", cpus, gib)) for gib in (0.5, 1, 2, 4, 8, 32, 128, 768)]
    for smaller, bigger in itertools.pairwise(plans):
        assert all(b >= s for s, b in zip(totals(smaller), totals(bigger), strict=True))


def test_more_cpus_with_plenty_of_memory_never_gets_less() -> None:
    plans = [plan(machine("m7g.x", cpus, 1024)) for cpus in (1, 2, 3, 4, 8, 24, 96, 192)]
    for smaller, bigger in itertools.pairwise(plans):
        assert all(b >= s for s, b in zip(totals(smaller), totals(bigger), strict=True))


def test_burstable_types_get_a_shallower_queue_than_the_same_size() -> None:
    for cpus, gib in ((2, 4), (2, 8), (8, 32)):
        burst, steady = plan(machine("t3.x", cpus, gib)), plan(machine("m6i.x", cpus, gib))
        assert burst.burstable and not steady.burstable
        assert burst.queue_depth < steady.queue_depth


def test_the_plan_needs_no_instance_type() -> None:
    known = machine("m7g.xlarge", 4, 16)
    p = plan(replace(known, instance_type=None))
    load([p.tuned()])
    assert p == plan(known)  # a non-burstable type refines nothing


@pytest.mark.parametrize("facts", CONTAINERS, ids=ids)
def test_a_cgroup_limited_container_is_planned_for_its_limits_not_the_host(facts: Facts) -> None:
    p = plan(facts)
    host = plan(machine("m7g.16xlarge", facts.affinity_cpus or 0, (facts.meminfo_bytes or 0) / GiB))
    assert p.workers * p.threads <= host.workers * host.threads
    assert p.workers * (p.memory_bytes + p.original_memory_bytes) < facts.memory_bytes


def test_memory_below_one_worker_still_plans_one_worker_and_says_so() -> None:
    p = plan(container(4, 0.25))
    assert (p.workers, p.threads) == (1, 1)
    assert any("memory" in note for note in p.notes)
    load([p.tuned()])


def test_plan_does_no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("plan() did I/O")

    facts = machine("c7gd.8xlarge", 32, 64, 1900)
    expected = plan(facts)
    monkeypatch.setattr("builtins.open", refuse)
    monkeypatch.setattr(os, "sched_getaffinity", refuse)
    monkeypatch.setattr(os, "statvfs", refuse)
    assert plan(facts) == expected


# --- sysctl arithmetic --------------------------------------------------------------------------


def test_raised_never_lowers_a_number_and_only_widens_a_range() -> None:
    assert raised((128,), (4096,)) == (4096,)
    assert raised((1_000_000,), (4096,)) == (1_000_000,)
    assert raised((32768, 60999), (10240, 65535)) == (10240, 65535)
    assert raised((1024, 61000), (10240, 65535)) == (1024, 65535)


# --- the command ------------------------------------------------------------------------------


def proc_sys(root: Path) -> dict[str, Path]:
    """A fake /proc/sys: values a stock kernel might have, one the admin raised, one unwritable."""
    files = {
        "net.core.somaxconn": "128\n",
        "net.ipv4.tcp_max_syn_backlog": "16777216\n",  # the admin's: bigger than any plan
        "net.ipv4.ip_local_port_range": "32768\t60999\n",
        "fs.file-max": "9223372036854775807\n",
    }
    paths = {}
    for name, text in files.items():
        path = root / "proc/sys" / name.replace(".", "/")
        write(root, {str(path.relative_to(root)): text})
        paths[name] = path
    backlog = root / "proc/sys/net/core/netdev_max_backlog"
    backlog.mkdir(parents=True)  # a directory: reading it fails like a denied write would
    paths["net.core.netdev_max_backlog"] = backlog
    return paths


def test_command_writes_tuned_and_autotune_json_and_raises_sysctls(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = host(tmp_path / "root", cpu_list="0-3", mem_gib=8)
    paths = proc_sys(root)
    run_dir = tmp_path / "run"
    disk = {"path": str(tmp_path / "cache"), "kind": "root-volume", "bytes": 4 * GiB, "devices": []}
    write(run_dir, {"disks.json": json.dumps(disk)})
    with caplog.at_level(logging.INFO):
        assert main(["autotune", "--root", str(root), "--run-dir", str(run_dir), "--no-imds"]) == 0

    tuned = run_dir / "tuned.json"
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(tuned.stat().st_mode) == 0o666 & ~umask  # as open() would make it
    config = load([read_document(tuned)])
    report = json.loads((run_dir / "autotune.json").read_text())
    assert report["facts"]["cpus"] == 4 and report["facts"]["memory_bytes"] == 8 * GiB
    assert config.server.workers == report["plan"]["workers"]
    assert config.server.threads == 4
    assert config.cache.disk_path == str(tmp_path / "cache")
    assert config.cache.disk_bytes + config.cache.original_disk_bytes <= 4 * GiB
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []  # no temp files

    sysctls = report["sysctls"]
    assert sysctls["net.core.somaxconn"]["status"] == "applied"
    assert (
        paths["net.core.somaxconn"].read_text().strip() == sysctls["net.core.somaxconn"]["planned"]
    )
    assert sysctls["net.ipv4.tcp_max_syn_backlog"]["status"] == "kept"
    assert paths["net.ipv4.tcp_max_syn_backlog"].read_text() == "16777216\n"
    assert sysctls["fs.file-max"]["status"] == "kept"
    low, high = (int(v) for v in paths["net.ipv4.ip_local_port_range"].read_text().split())
    assert low <= 32768 and high >= 60999 and (low, high) != (32768, 60999)
    assert sysctls["net.core.netdev_max_backlog"]["status"] == "failed"
    assert "autotune.sysctl_failed name=net.core.netdev_max_backlog" in caplog.text
    assert f"autotune.plan workers={config.server.workers}" in caplog.text


def test_command_never_creates_a_sysctl_that_does_not_exist(tmp_path: Path) -> None:
    root = host(tmp_path / "root")
    (root / "proc/sys").mkdir(parents=True)
    assert main(["autotune", "--root", str(root), "--no-imds"]) == 0
    report = json.loads((root / "run/appliance/autotune.json").read_text())
    assert {s["status"] for s in report["sysctls"].values()} == {"failed"}
    assert [p for p in (root / "proc/sys").rglob("*") if p.is_file()] == []


def test_command_no_sysctl_leaves_proc_sys_alone(tmp_path: Path) -> None:
    root = host(tmp_path / "root")
    paths = proc_sys(root)
    run_dir = tmp_path / "run"
    argv = ["autotune", "--root", str(root), "--run-dir", str(run_dir), "--no-imds", "--no-sysctl"]
    assert main(argv) == 0
    assert paths["net.core.somaxconn"].read_text() == "128\n"
    report = json.loads((run_dir / "autotune.json").read_text())
    assert {s["status"] for s in report["sysctls"].values()} == {"skipped"}
    assert read_document(run_dir / "tuned.json")["cache"]["disk_path"] is None


def test_command_dry_run_prints_the_plan_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = host(tmp_path / "root", cpu_list="0-1", mem_gib=4)
    paths = proc_sys(root)
    run_dir = tmp_path / "run"
    argv = ["autotune", "--root", str(root), "--run-dir", str(run_dir), "--no-imds", "--dry-run"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["facts"]["cpus"] == 2
    load([printed["tuned"]])
    assert not run_dir.exists()
    assert paths["net.core.somaxconn"].read_text() == "128\n"


def test_command_asks_imds_through_the_imds_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[dict[str, object]] = []

    class Imds(FakeImds):
        def __init__(self, base_url: str | None = None, timeout: float = 2.0) -> None:
            super().__init__(instance_type="t4g.small", instance_id="i-0123")
            made.append({"base_url": base_url, "timeout": timeout})

    fake = types.ModuleType("appliance.boot.imds")
    fake.Imds = Imds  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "appliance.boot.imds", fake)
    root = host(tmp_path / "root", cpu_list="0-1", mem_gib=2)
    argv = ["autotune", "--root", str(root), "--no-sysctl", "--imds-url", "http://127.0.0.1:9"]
    assert main([*argv, "--imds-timeout", "0.5"]) == 0
    assert made == [{"base_url": "http://127.0.0.1:9", "timeout": 0.5}]
    report = json.loads((root / "run/appliance/autotune.json").read_text())
    assert report["facts"]["instance_type"] == "t4g.small"
    assert report["plan"]["burstable"] is True


def test_command_plan_matches_plan_of_probe(tmp_path: Path) -> None:
    root = host(tmp_path / "root", cpu_list="0-15", mem_gib=64)
    assert main(["autotune", "--root", str(root), "--no-imds", "--no-sysctl"]) == 0
    tuned = read_document(root / "run/appliance/tuned.json")
    assert tuned == autotune.plan(probe(root)).tuned()

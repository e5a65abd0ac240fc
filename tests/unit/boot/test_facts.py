"""probe() against fake /proc, /sys/fs/cgroup and /run trees (cgroup v1, v2 and hybrid layouts,
disks.json, a fake IMDS client), and once against this machine."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from appliance.boot.autotune import plan
from appliance.boot.facts import probe

MiB = 1024 * 1024
GiB = 1024 * MiB


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def host(
    root: Path, cpu_list: str = "0-7", mem_gib: int = 32, files: dict[str, str] | None = None
) -> Path:
    return write(
        root,
        {
            "proc/self/status": f"Name:\tpython\nCpus_allowed_list:\t{cpu_list}\n",
            "proc/meminfo": f"MemTotal:       {mem_gib * 1024 * 1024} kB\nMemFree: 1 kB\n",
            **(files or {}),
        },
    )


def test_probe_cgroup_v2_takes_the_tightest_of_the_cgroup_and_its_ancestors(tmp_path: Path) -> None:
    root = host(
        tmp_path,
        files={
            "proc/self/cgroup": "0::/system.slice/appliance-autotune.service\n",
            "sys/fs/cgroup/cgroup.controllers": "cpu memory\n",
            "sys/fs/cgroup/system.slice/cpu.max": "max 100000\n",
            "sys/fs/cgroup/system.slice/memory.max": str(3 * GiB),
            "sys/fs/cgroup/system.slice/appliance-autotune.service/cpu.max": "250000 100000\n",
            "sys/fs/cgroup/system.slice/appliance-autotune.service/memory.max": str(4 * GiB),
            "sys/fs/cgroup/system.slice/appliance-autotune.service/memory.high": "max\n",
        },
    )
    facts = probe(root)
    assert (facts.cpus, facts.cpu_quota, facts.affinity_cpus) == (3, 2.5, 8)
    assert facts.memory_bytes == 3 * GiB and facts.memory_from_cgroup
    assert facts.cgroup == "v2"


def test_probe_cgroup_v2_without_limits_gives_the_machine(tmp_path: Path) -> None:
    root = host(
        tmp_path,
        cpu_list="0-3,8,10-11",
        files={
            "proc/self/cgroup": "0::/\n",
            "sys/fs/cgroup/cgroup.controllers": "cpu memory\n",
            "sys/fs/cgroup/cpu.max": "max 100000\n",
            "sys/fs/cgroup/memory.max": "max\n",
        },
    )
    facts = probe(root)
    assert (facts.cpus, facts.memory_bytes, facts.cgroup_memory_bytes) == (7, 32 * GiB, None)
    assert not facts.memory_from_cgroup


def test_probe_cgroup_v2_memory_high_counts_as_a_limit(tmp_path: Path) -> None:
    root = host(
        tmp_path,
        files={
            "proc/self/cgroup": "0::/app\n",
            "sys/fs/cgroup/cgroup.controllers": "",
            "sys/fs/cgroup/app/memory.max": "max",
            "sys/fs/cgroup/app/memory.high": str(GiB),
        },
    )
    assert probe(root).memory_bytes == GiB


def test_probe_cgroup_v1_understands_no_limit(tmp_path: Path) -> None:
    root = host(
        tmp_path,
        files={
            "proc/self/cgroup": "4:cpu,cpuacct:/user.slice\n3:memory:/user.slice\n1:name=systemd:/",
            "sys/fs/cgroup/cpu,cpuacct/user.slice/cpu.cfs_quota_us": "-1\n",
            "sys/fs/cgroup/cpu,cpuacct/user.slice/cpu.cfs_period_us": "100000\n",
            "sys/fs/cgroup/memory/user.slice/memory.limit_in_bytes": "9223372036854771712\n",
        },
    )
    facts = probe(root)
    assert (facts.cpus, facts.memory_bytes, facts.cgroup) == (8, 32 * GiB, "v1")


def test_probe_cgroup_v1_container_without_a_cgroup_namespace(tmp_path: Path) -> None:
    # /proc/self/cgroup names the host's path; the container sees its own cgroup at the mount.
    root = host(
        tmp_path,
        files={
            "proc/self/cgroup": "5:memory:/docker/0123abc\n4:cpu,cpuacct:/docker/0123abc\n",
            "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "150000\n",
            "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
            "sys/fs/cgroup/memory/memory.limit_in_bytes": str(768 * MiB),
        },
    )
    facts = probe(root)
    assert (facts.cpus, facts.memory_bytes) == (2, 768 * MiB)


def test_probe_hybrid_layout_reads_the_v1_controllers(tmp_path: Path) -> None:
    root = host(
        tmp_path,
        cpu_list="0",
        files={
            "proc/self/cgroup": "9:memory:/jobs/1\n2:cpu:/\n0::/\n",
            "sys/fs/cgroup/memory/jobs/1/memory.limit_in_bytes": str(2 * GiB),
            "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1",
            "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000",
            "sys/fs/cgroup/unified/cgroup.procs": "",
        },
    )
    facts = probe(root)
    assert (facts.cpus, facts.memory_bytes, facts.cgroup) == (1, 2 * GiB, "v1")


def test_probe_a_tiny_quota_still_gives_one_cpu(tmp_path: Path) -> None:
    root = host(
        tmp_path,
        files={
            "proc/self/cgroup": "0::/\n",
            "sys/fs/cgroup/cgroup.controllers": "cpu\n",
            "sys/fs/cgroup/cpu.max": "10000 100000\n",
        },
    )
    assert probe(root).cpus == 1


class FakeImds:
    def __init__(self, **values: str | None) -> None:
        self.values = values

    def instance_type(self) -> str | None:
        return self.values.get("instance_type")

    def instance_id(self) -> str | None:
        return self.values.get("instance_id")

    def region(self) -> str | None:
        raise RuntimeError("IMDS exploded")  # the client promises not to; boot must survive it


def test_probe_reads_disks_json_and_imds(tmp_path: Path) -> None:
    root = host(tmp_path)
    record = {"path": "/var/cache/appliance", "kind": "instance-store", "bytes": 50 * GiB}
    write(root, {"run/appliance/disks.json": json.dumps(record)})
    facts = probe(root, FakeImds(instance_type="c7gd.large", instance_id="i-0abc"))
    assert (facts.disk_path, facts.disk_bytes, facts.disk_kind) == (
        "/var/cache/appliance",
        50 * GiB,
        "instance-store",
    )
    assert (facts.instance_type, facts.instance_id, facts.region) == ("c7gd.large", "i-0abc", None)


def test_probe_without_a_usable_disk_record_has_no_disk_facts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = host(tmp_path)
    assert probe(root).disk_path is None  # absent
    none = {"path": "/var/cache/appliance", "kind": "none", "bytes": 0, "devices": []}
    write(root, {"run/appliance/disks.json": json.dumps(none)})
    facts = probe(root)
    assert (facts.disk_path, facts.disk_kind) == (None, "none")
    write(root, {"run/appliance/disks.json": '{"path": 3}'})
    with caplog.at_level(logging.WARNING):
        assert probe(root).disk_path is None
    assert "autotune.disks_unreadable" in caplog.text


def test_probe_of_this_machine_stays_within_what_the_process_may_use() -> None:
    facts = probe(Path("/"))
    assert 1 <= facts.cpus <= len(os.sched_getaffinity(0))
    total = facts.meminfo_bytes or 0
    assert 0 < facts.memory_bytes <= total
    assert plan(facts).workers >= 1

"""``appliance disks``: commands recorded against a fake sysfs tree, the root-volume cap, the
command end to end, and one real loop-file "instance store" formatted and mounted."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from appliance.boot.disks import (
    INSTANCE_STORE_MODEL,
    LABEL,
    Completed,
    DiskRecord,
    Disks,
    DryRun,
    Space,
    SystemCommands,
    find_instance_store,
    write_json,
)
from appliance.cli import main
from appliance.config import read_document

MiB = 1024 * 1024
GiB = 1024 * MiB
EBS_MODEL = "Amazon Elastic Block Store"


def escape(path: str) -> str:
    """As the kernel writes a mount point in /proc/self/mounts."""
    return path.replace("\\", "\\134").replace(" ", "\\040")


@dataclass
class FakeCommands:
    """Records every command. blkid answers from ``labels``; mkfs gives a device our label;
    a mount of a device in ``unmountable`` fails; a tool in ``failing`` exits 1."""

    labels: dict[str, str] = field(default_factory=dict)
    unmountable: set[str] = field(default_factory=set)
    failing: set[str] = field(default_factory=set)
    tools: set[str] = field(default_factory=lambda: {"mdadm", "wipefs", "udevadm"})
    calls: list[list[str]] = field(default_factory=list)
    hooks: dict[tuple[str, str], Callable[[], None]] = field(default_factory=dict)

    def run(self, argv: Sequence[str]) -> Completed:
        self.calls.append(list(argv))
        hook = self.hooks.get((argv[0], argv[1]) if len(argv) > 1 else (argv[0], ""))
        if hook is not None:
            hook()
        if argv[0] in self.failing:
            return Completed(1, "", f"{argv[0]}: failed")
        if argv[0] == "blkid":
            label = self.labels.get(argv[-1])
            return Completed(0, label + "\n") if label else Completed(2)
        if argv[0] == "mount" and argv[-2] in self.unmountable:
            return Completed(32, "", "mount: wrong fs type, bad superblock")
        if argv[0] == "mkfs.ext4":
            self.labels[argv[-1]] = argv[argv.index("-L") + 1]
            self.unmountable.discard(argv[-1])
        return Completed(0)

    def available(self, tool: str) -> bool:
        return tool in self.tools

    def named(self, tool: str) -> list[list[str]]:
        return [c for c in self.calls if c[0] == tool]


@dataclass
class Machine:
    root: Path
    commands: FakeCommands = field(default_factory=FakeCommands)
    free: int = 100 * GiB  # what the fake statvfs says for any path

    @property
    def sysfs(self) -> Path:
        return self.root / "sys"

    @property
    def dev(self) -> Path:
        return self.root / "dev"

    @property
    def proc(self) -> Path:
        return self.root / "proc"

    @property
    def mount_point(self) -> Path:
        return self.root / "var/cache/appliance"

    def disk(
        self,
        name: str,
        gib: int,
        model: str = INSTANCE_STORE_MODEL,
        holders: Sequence[str] = (),
        partitions: Sequence[str] = (),
    ) -> str:
        block = self.sysfs / "block" / name
        (block / "device").mkdir(parents=True)
        (block / "device" / "model").write_text(model.ljust(40) + "\n")  # sysfs pads with spaces
        (block / "size").write_text(f"{gib * GiB // 512}\n")
        (block / "holders").mkdir()
        for holder in holders:
            (block / "holders" / holder).touch()
        for partition in partitions:
            (block / partition).mkdir()
            (block / partition / "partition").write_text("1\n")
        return str(self.dev / name)

    def mounts(self, *entries: tuple[str, str], swaps: Sequence[str] = ()) -> None:
        (self.proc / "self").mkdir(parents=True, exist_ok=True)
        lines = [f"{src} {escape(where)} ext4 rw 0 0" for src, where in entries]
        (self.proc / "self" / "mounts").write_text("\n".join(["/dev/vda1 / ext4 rw 0 0", *lines]))
        swap_lines = [f"{s} partition 1048572 0 -2" for s in swaps]
        (self.proc / "swaps").write_text(
            "\n".join(["Filename Type Size Used Priority", *swap_lines])
        )

    def disks(self, dry_run: bool = False) -> Disks:
        commands = DryRun(self.commands) if dry_run else self.commands
        return Disks(
            sysfs=self.sysfs,
            dev=self.dev,
            proc=self.proc,
            mount_point=self.mount_point,
            commands=commands,
            space=lambda path: Space(2 * self.free, self.free),
            dry_run=dry_run,
        )


@pytest.fixture
def m(tmp_path: Path) -> Machine:
    machine = Machine(tmp_path)
    (machine.sysfs / "block").mkdir(parents=True)
    machine.dev.mkdir()
    machine.disk("nvme0n1", 8, model=EBS_MODEL)  # the root volume is an EBS NVMe disk too
    machine.mounts(("/dev/nvme0n1p1", "/"))
    return machine


def test_finds_instance_store_disks_by_model_and_ignores_ebs(m: Machine) -> None:
    store = m.disk("nvme1n1", 474)
    found = find_instance_store(m.sysfs, m.dev)
    assert [(d.device, d.size) for d in found] == [(store, 474 * GiB)]


def test_one_instance_store_is_formatted_and_mounted_noatime(m: Machine) -> None:
    store = m.disk("nvme1n1", 474)
    record = m.disks().prepare()
    mkfs = m.commands.named("mkfs.ext4")
    assert len(mkfs) == 1 and mkfs[0][-1] == store
    assert mkfs[0][mkfs[0].index("-L") + 1] == LABEL
    assert mkfs[0][mkfs[0].index("-m") + 1] == "0"
    assert "nodiscard" in mkfs[0][mkfs[0].index("-E") + 1]
    assert m.commands.named("mount") == [
        ["mount", "-t", "ext4", "-o", "noatime", store, str(m.mount_point)]
    ]
    order = [c[0] for c in m.commands.calls if c[0] != "blkid"]
    assert order == ["wipefs", "mkfs.ext4", "mount"]
    assert (record.kind, record.devices, record.path) == (
        "instance-store",
        (store,),
        str(m.mount_point),
    )
    assert 0.8 * m.free <= record.bytes < m.free  # a dedicated disk, less some slack
    assert m.mount_point.is_dir()


def test_no_instance_store_gives_a_capped_directory_on_the_root_volume(m: Machine) -> None:
    m.free = 8 * GiB
    record = m.disks().prepare()
    assert [c[0] for c in m.commands.calls] == []  # nothing formatted, nothing mounted
    assert (record.kind, record.bytes, record.devices) == ("root-volume", 2 * GiB, ())
    assert m.mount_point.is_dir()


@pytest.mark.parametrize(
    ("free", "kind", "size"),
    [
        (400 * GiB, "root-volume", 20 * GiB),
        (2 * GiB, "root-volume", GiB // 2),
        (GiB - 1, "none", 0),
    ],
)
def test_root_volume_cap_is_a_quarter_of_free_space_at_most_20_gib(
    m: Machine, free: int, kind: str, size: int
) -> None:
    m.free = free
    record = m.disks().prepare()
    assert (record.kind, record.bytes) == (kind, size)


def test_two_instance_stores_become_one_raid0_array(m: Machine) -> None:
    first, second = m.disk("nvme1n1", 1900), m.disk("nvme2n1", 1900)
    record = m.disks().prepare()
    (create,) = m.commands.named("mdadm")
    assert create[:2] == ["mdadm", "--create"] and "--level=0" in create
    assert "--raid-devices=2" in create and create[-2:] == [first, second]
    array = create[2]
    assert m.commands.named("mkfs.ext4")[0][-1] == array
    assert m.commands.named("mount")[0][-2:] == [array, str(m.mount_point)]
    assert [c[-1] for c in m.commands.named("wipefs")] == [first, second]
    assert record.devices == (first, second) and record.kind == "instance-store"


def test_without_mdadm_the_largest_instance_store_is_used(m: Machine) -> None:
    m.commands.tools.discard("mdadm")
    m.disk("nvme1n1", 900)
    largest = m.disk("nvme2n1", 1900)
    record = m.disks().prepare()
    assert m.commands.named("mdadm") == []
    assert [c[-1] for c in m.commands.named("mkfs.ext4")] == [largest]
    assert record.devices == (largest,)


@pytest.mark.parametrize("how", ["mounted", "mounted-partition", "swap", "partitioned", "held"])
def test_disks_in_use_are_left_alone(m: Machine, how: str) -> None:
    busy = m.disk(
        "nvme1n1",
        900,
        holders=("dm-0",) if how == "held" else (),
        partitions=("nvme1n1p1",) if how in ("partitioned", "mounted-partition") else (),
    )
    free = m.disk("nvme2n1", 900)
    if how == "mounted":
        m.mounts(("/dev/nvme0n1p1", "/"), (busy, "/mnt"))
    if how == "mounted-partition":
        m.mounts(("/dev/nvme0n1p1", "/"), (busy + "p1", "/data"))
    if how == "swap":
        m.mounts(("/dev/nvme0n1p1", "/"), swaps=[busy])
    record = m.disks().prepare()
    touched = {c[-1] for c in m.commands.calls if c[0] in ("wipefs", "mkfs.ext4", "mdadm")}
    assert busy not in touched and free in touched
    assert record.devices == (free,)


def test_a_disk_of_ours_that_mounts_is_kept_without_formatting(m: Machine) -> None:
    store = m.disk("nvme1n1", 474)
    m.commands.labels[store] = LABEL  # a reboot: instance-store data survives
    record = m.disks().prepare()
    assert m.commands.named("mkfs.ext4") == [] and m.commands.named("wipefs") == []
    assert len(m.commands.named("mount")) == 1
    assert record.devices == (store,)


def test_a_disk_of_ours_that_does_not_mount_is_formatted_again(m: Machine) -> None:
    store = m.disk("nvme1n1", 474)
    m.commands.labels[store] = LABEL
    m.commands.unmountable.add(store)
    record = m.disks().prepare()
    assert [c[-1] for c in m.commands.named("mkfs.ext4")] == [store]
    assert len(m.commands.named("mount")) == 2
    assert record.kind == "instance-store"


def test_someone_elses_filesystem_is_formatted(m: Machine) -> None:
    store = m.disk("nvme1n1", 474)
    m.commands.labels[store] = "data"
    m.disks().prepare()
    assert [c[-1] for c in m.commands.named("mkfs.ext4")] == [store]


def test_an_assembled_array_of_ours_is_mounted_again_after_a_reboot(m: Machine) -> None:
    first = m.disk("nvme1n1", 1900, holders=("md127",))
    second = m.disk("nvme2n1", 1900, holders=("md127",))
    m.commands.labels[str(m.dev / "md127")] = LABEL
    record = m.disks().prepare()
    assert m.commands.named("mdadm") == [] and m.commands.named("mkfs.ext4") == []
    assert m.commands.named("mount")[0][-2] == str(m.dev / "md127")
    assert record.devices == (first, second)


def test_an_array_of_ours_that_does_not_mount_is_stopped_and_recreated(m: Machine) -> None:
    m.disk("nvme1n1", 1900, holders=("md127",))
    m.disk("nvme2n1", 1900, holders=("md127",))
    array = str(m.dev / "md127")
    m.commands.labels[array] = LABEL
    m.commands.unmountable.add(array)
    holders = [m.sysfs / "block" / name / "holders" / "md127" for name in ("nvme1n1", "nvme2n1")]

    def stop() -> None:  # once stopped, the array holds its members no more
        for holder in holders:
            holder.unlink()

    m.commands.hooks["mdadm", "--stop"] = stop
    record = m.disks().prepare()
    mdadm = m.commands.named("mdadm")
    assert mdadm[0] == ["mdadm", "--stop", array] and mdadm[1][1] == "--create"
    assert record.kind == "instance-store" and len(record.devices) == 2


def test_a_failed_mkfs_falls_back_to_the_root_volume(m: Machine) -> None:
    m.disk("nvme1n1", 474)
    m.commands.failing.add("mkfs.ext4")
    m.free = 40 * GiB
    record = m.disks().prepare()
    assert m.commands.named("mount") == []
    assert (record.kind, record.bytes) == ("root-volume", 10 * GiB)


def test_a_rerun_finds_our_disk_already_mounted_and_changes_nothing(m: Machine) -> None:
    m.disk("nvme1n1", 1900, holders=("md127",))
    m.disk("nvme2n1", 1900, holders=("md127",))
    slaves = m.sysfs / "block" / "md127" / "slaves"
    slaves.mkdir(parents=True)
    for name in ("nvme1n1", "nvme2n1"):
        (slaves / name).touch()
    array = str(m.dev / "md127")
    m.commands.labels[array] = LABEL
    m.mounts(("/dev/nvme0n1p1", "/"), (array, str(m.mount_point)))
    record = m.disks().prepare()
    assert [c[0] for c in m.commands.calls] == ["blkid"]
    assert record.devices == (str(m.dev / "nvme1n1"), str(m.dev / "nvme2n1"))


def test_a_mount_point_holding_someone_elses_filesystem_is_used_as_a_directory(
    m: Machine,
) -> None:
    m.disk("nvme1n1", 474)
    m.mounts(("/dev/nvme0n1p1", "/"), ("/dev/xvdf", str(m.mount_point)))
    record = m.disks().prepare()
    assert [c[0] for c in m.commands.calls] == ["blkid"]
    assert record.kind == "root-volume"


def test_dry_run_runs_only_blkid_and_lists_the_rest(m: Machine) -> None:
    store = m.disk("nvme1n1", 474)
    disks = m.disks(dry_run=True)
    record = disks.prepare()
    assert [c[0] for c in m.commands.calls] == ["blkid"]
    assert isinstance(disks.commands, DryRun)
    assert [c[0] for c in disks.commands.skipped] == ["wipefs", "mkfs.ext4", "mount"]
    assert record.devices == (store,) and 0 < record.bytes < 474 * GiB
    assert not m.mount_point.exists()


def test_the_cache_directory_is_given_to_the_service_user(m: Machine) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    disks = m.disks()
    disks.owner = (65534, 65534)
    disks.prepare()
    st = m.mount_point.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o750)


def test_records_are_written_atomically_with_the_umask_of_the_unit(tmp_path: Path) -> None:
    target = tmp_path / "run" / "disks.json"
    record = DiskRecord("/var/cache/appliance", "root-volume", GiB)
    previous = os.umask(0o027)  # the boot units' UMask=: group appliance reads, others nothing
    try:
        write_json(target, record.to_json())
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert DiskRecord.from_json(json.loads(target.read_text())) == record
    assert [p.name for p in target.parent.iterdir()] == ["disks.json"]


def test_record_round_trips_and_rejects_bad_documents() -> None:
    record = DiskRecord("/var/cache/appliance", "instance-store", 5 * GiB, ("/dev/nvme1n1",))
    assert DiskRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    bad: object
    for bad in ({"path": "/x", "kind": "tape", "bytes": 1}, {"path": "/x", "kind": "none"}, []):
        with pytest.raises(ValueError):
            DiskRecord.from_json(bad)


# --- the command ------------------------------------------------------------------------------


def test_command_writes_disks_json_that_autotune_turns_into_a_disk_tier(m: Machine) -> None:
    run_dir = m.root / "run"
    argv = ["disks", "--sysfs", str(m.sysfs), "--proc", str(m.proc), "--dev", str(m.dev)]
    argv += ["--mount-point", str(m.mount_point), "--run-dir", str(run_dir)]
    before = os.statvfs(m.root)
    assert main([*argv, "--owner", "no-such-user-here"]) == 0
    after = os.statvfs(m.root)
    record = DiskRecord.from_json(json.loads((run_dir / "disks.json").read_text()))
    assert record.path == str(m.mount_point) and m.mount_point.is_dir()
    free = sorted(s.f_bavail * s.f_frsize for s in (before, after))
    if free[1] < GiB:
        assert (record.kind, record.bytes) == ("none", 0)
    else:
        assert record.kind == "root-volume"
        # other processes write to this disk meanwhile (CI, image builds): a loose lower bound
        assert (
            min(free[0] // 4, 20 * GiB) - 512 * MiB <= record.bytes <= min(free[1] // 4, 20 * GiB)
        )

    root = m.root / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc/meminfo").write_text(f"MemTotal: {4 * 1024 * 1024} kB\n")
    (root / "proc/self").mkdir()
    (root / "proc/self/status").write_text("Cpus_allowed_list:\t0-1\n")
    tune = ["autotune", "--root", str(root), "--run-dir", str(run_dir), "--no-imds", "--no-sysctl"]
    assert main(tune) == 0
    cache = read_document(run_dir / "tuned.json")["cache"]
    if record.kind == "root-volume":
        assert cache["disk_path"] == str(m.mount_point)
        assert cache["disk_bytes"] + cache["original_disk_bytes"] <= record.bytes
    else:
        assert cache["disk_path"] is None


def test_command_dry_run_prints_and_writes_nothing(
    m: Machine, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = m.root / "run"
    argv = ["disks", "--sysfs", str(m.sysfs), "--proc", str(m.proc), "--dev", str(m.dev)]
    argv += ["--mount-point", str(m.mount_point), "--run-dir", str(run_dir), "--dry-run"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["disks"]["path"] == str(m.mount_point) and printed["would_run"] == []
    assert not run_dir.exists() and not m.mount_point.exists()


# --- a real loop-file instance store ----------------------------------------------------------


def _sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("formatting and mounting a loop device needs root")
    missing = [
        t for t in ("losetup", "mkfs.ext4", "mount", "umount", "blkid") if not shutil.which(t)
    ]
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)}")
    image = tmp_path / "instance-store.img"
    with image.open("wb") as f:
        f.truncate(64 * MiB)
    attached = _sh("losetup", "--find", "--show", str(image))
    if attached.returncode != 0:
        pytest.skip(f"losetup cannot attach a file here: {attached.stderr.strip()}")
    device = attached.stdout.strip()
    try:
        yield device
    finally:
        for _ in range(3):  # the test may leave it mounted; umount until nothing is left
            if _sh("umount", device).returncode != 0:
                break
        _sh("losetup", "--detach", device)


def test_formats_and_mounts_a_loop_file_instance_store(tmp_path: Path, loop_device: str) -> None:
    machine = Machine(tmp_path / "fake")
    sectors = Path("/sys/block", Path(loop_device).name, "size").read_text()
    block = machine.sysfs / "block" / "nvme9n1"
    (block / "device").mkdir(parents=True)
    (block / "device" / "model").write_text(INSTANCE_STORE_MODEL.ljust(40) + "\n")
    (block / "size").write_text(sectors)
    (block / "holders").mkdir()
    machine.dev.mkdir(parents=True)
    (machine.dev / "nvme9n1").symlink_to(loop_device)  # the "instance store" is the loop device

    def disks() -> Disks:
        return Disks(
            sysfs=machine.sysfs,
            dev=machine.dev,
            proc=Path("/proc"),  # the real mount table
            mount_point=machine.mount_point,
            commands=SystemCommands(timeout=60),
        )

    record = disks().prepare()
    assert record.kind == "instance-store" and record.devices == (str(machine.dev / "nvme9n1"),)
    assert 0 < record.bytes < 64 * MiB
    shown = _sh("findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", str(machine.mount_point))
    source, fstype, options = shown.stdout.split()
    assert (source, fstype) == (loop_device, "ext4") and "noatime" in options.split(",")
    assert _sh("blkid", "-o", "value", "-s", "LABEL", loop_device).stdout.strip() == LABEL
    (machine.mount_point / "kept").write_text("cached")

    rerun = disks().prepare()  # already mounted: nothing changes but the free space
    assert (rerun.kind, rerun.path, rerun.devices) == (record.kind, record.path, record.devices)
    assert _sh("umount", str(machine.mount_point)).returncode == 0
    assert disks().prepare().kind == "instance-store"  # a reboot: ours, mounts, not formatted
    assert (machine.mount_point / "kept").read_text() == "cached"

"""What the benchmark ran on: CPU, kernel, load. Library versions come from the workers."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Machine:
    cpu_model: str
    cores_online: int
    kernel: str
    python: str
    node: str
    loadavg: str  # 1, 5, 15 min, at the start of the run

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def describe() -> Machine:
    return Machine(
        cpu_model=_cpu_model(),
        cores_online=os.cpu_count() or 0,
        kernel=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        node=_node_version(),
        loadavg=loadavg(),
    )


def loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as f:
        return " ".join(f.read().split()[:3])


class CpuWatch:
    """How busy the CPUs other than the pinned one were: while a worker runs the runner idles,
    so their busy time is other work on the machine, which may also have taken turns on ours.
    (The load average cannot tell: a pinned peer with two runnable threads counts as 2.)"""

    def __init__(self, pinned: int) -> None:
        self._pinned = pinned
        self._first = self._last = _jiffies()
        self.worst = 0.0

    def sample(self) -> float:
        """Busy fraction of the other CPUs since the previous sample."""
        now = _jiffies()
        fraction = _busy_fraction(self._last, now, self._pinned)
        self._last = now
        self.worst = max(self.worst, fraction)
        return fraction

    def overall(self) -> float:
        """Busy fraction of the other CPUs from the start to the last sample."""
        return _busy_fraction(self._first, self._last, self._pinned)


def _jiffies() -> dict[int, tuple[int, int]]:
    """CPU number -> (busy, total) jiffies since boot, from /proc/stat."""
    out = {}
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                v = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
                out[int(name[3:])] = (sum(v) - v[3] - v[4], sum(v))
    return out


def _busy_fraction(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], pinned: int
) -> float:
    busy = total = 0
    for cpu, (b1, t1) in after.items():
        if cpu != pinned and cpu in before:
            busy += b1 - before[cpu][0]
            total += t1 - before[cpu][1]
    return busy / total if total > 0 else 0.0


def default_cpu() -> int:
    """The last CPU this process may run on."""
    return max(os.sched_getaffinity(0))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _node_version() -> str:
    node = shutil.which("node")
    if node is None:
        return "not installed"
    done = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"

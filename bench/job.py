"""What the runner hands one worker (JSON on stdin) and what it hands back (JSON on stdout).

bench/sharp_worker.mjs speaks the same protocol; keep the two in step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bench.workloads import Workload


@dataclass(frozen=True, slots=True)
class FileSpec:
    name: str
    path: str  # absolute, but only ever passed through a pipe, never written to a file
    width: int  # as stored
    height: int
    orientation: int
    target_width: int  # nominal output size, displayed orientation
    target_height: int

    @property
    def transposed(self) -> bool:
        return self.orientation in (5, 6, 7, 8)

    @property
    def stored_target(self) -> tuple[int, int]:
        """The nominal output size in the stored (un-rotated) orientation."""
        if self.transposed:
            return self.target_height, self.target_width
        return self.target_width, self.target_height


@dataclass(frozen=True, slots=True)
class Timing:
    min_time_s: float
    min_runs: int
    max_runs: int
    warmup: int


@dataclass(frozen=True, slots=True)
class Job:
    peer: str
    workload: Workload
    files: tuple[FileSpec, ...]
    timing: Timing
    out_dir: str  # outputs land in out_dir/<peer>/<workload>/; a temporary directory
    tiny_jpeg: str  # a small JPEG for measuring a per-process peer's baseline memory

    def to_json(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "workload": self.workload.to_json(),
            "files": [asdict(f) for f in self.files],
            "timing": asdict(self.timing),
            "out_dir": self.out_dir,
            "tiny_jpeg": self.tiny_jpeg,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Job:
        w = raw["workload"]
        return cls(
            peer=raw["peer"],
            workload=Workload(w["name"], w["width"], w["height"], w["format"], w["quality"]),
            files=tuple(FileSpec(**f) for f in raw["files"]),
            timing=Timing(**raw["timing"]),
            out_dir=raw["out_dir"],
            tiny_jpeg=raw["tiny_jpeg"],
        )


@dataclass(slots=True)
class FileResult:
    name: str
    ms: float | None = None  # median wall time of one conversion
    runs: int = 0
    bytes: int | None = None
    output: str | None = None  # file name under the job's output directory
    decoded: list[int] | None = None  # the decode floor's (w, h); it writes no output
    error: str | None = None
    # Filled in by the runner's scoring pass, outside the timed process:
    width: int | None = None
    height: int | None = None
    ssim: float | None = None


@dataclass(slots=True)
class WorkerResult:
    peer: str
    workload: str
    version: str = ""
    error: str | None = None  # the peer could not run at all
    cpus: list[int] = field(default_factory=list)
    baseline_rss_kb: int | None = None
    peak_rss_kb: int | None = None
    files: list[FileResult] = field(default_factory=list)
    others_busy: float | None = None  # set by the runner: busy fraction of the other CPUs

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> WorkerResult:
        files = [FileResult(**f) for f in raw.pop("files", [])]
        return cls(files=files, **raw)

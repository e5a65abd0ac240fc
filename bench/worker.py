"""One (peer, workload) measurement in its own process: `python -m bench.worker < job.json`.

The runner pins this process to one CPU before it starts. It imports only its peer, reads every
file into memory, notes its baseline RSS, then per file: one warm-up, timed runs until both the
minimum time and the minimum run count are reached, the median kept. Prints a WorkerResult.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

from bench.job import FileResult, FileSpec, Job, Timing, WorkerResult
from bench.peers import Convert, Output, Peer, load


def main() -> int:
    job = Job.from_json(json.load(sys.stdin))
    result = WorkerResult(
        peer=job.peer, workload=job.workload.name, cpus=sorted(os.sched_getaffinity(0))
    )
    try:
        peer = load(job.peer, job.workload, job.tiny_jpeg)
    except Exception as exc:  # any import or setup failure: "not available"
        result.error = f"{type(exc).__name__}: {exc}"
        print(json.dumps(result.to_json()))
        return 0
    result.version = peer.version
    run(peer, job, result)
    print(json.dumps(result.to_json()))
    return 0


def run(peer: Peer, job: Job, result: WorkerResult) -> None:
    inputs = [(spec, Path(spec.path).read_bytes()) for spec in job.files]
    out_dir = Path(job.out_dir) / job.peer / job.workload.name
    out_dir.mkdir(parents=True, exist_ok=True)
    child = peer.child_memory
    result.baseline_rss_kb = child.baseline_kb() if child else _status_kb("VmRSS")
    child_peak = result.baseline_rss_kb
    for spec, data in inputs:
        row = _measure(peer.convert, spec, data, job.timing, out_dir, job)
        result.files.append(row)
        if child and child_peak is not None and row.error is None:
            peak = child.peak_kb(data, spec)  # one more conversion, untimed, to read its memory
            child_peak = None if peak is None else max(child_peak, peak)
    result.peak_rss_kb = child_peak if child else _status_kb("VmHWM")


def _measure(
    convert: Convert, spec: FileSpec, data: bytes, timing: Timing, out_dir: Path, job: Job
) -> FileResult:
    row = FileResult(name=spec.name)
    try:
        out: Output = b""
        for _ in range(timing.warmup):
            out = convert(data, spec)
        times_ns: list[int] = []
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            while True:
                t0 = time.perf_counter_ns()
                out = convert(data, spec)
                times_ns.append(time.perf_counter_ns() - t0)
                enough = (
                    len(times_ns) >= timing.min_runs
                    and time.perf_counter() - started >= timing.min_time_s
                )
                if enough or len(times_ns) >= timing.max_runs:
                    break
        finally:
            gc.enable()
    except Exception as exc:  # one failing file must not stop the others
        row.error = f"{type(exc).__name__}: {exc}"[:500]
        return row
    row.ms = statistics.median(times_ns) / 1e6
    row.runs = len(times_ns)
    if isinstance(out, tuple):
        row.decoded = list(out)
    else:
        name = f"{Path(spec.name).stem}.{job.workload.extension}"
        (out_dir / name).write_bytes(out)
        row.bytes = len(out)
        row.output = name
    return row


def _status_kb(key: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process's own address space, in KiB. Not ru_maxrss:
    Linux carries the parent's high-water mark across fork and exec into it."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/self/status")


if __name__ == "__main__":
    raise SystemExit(main())

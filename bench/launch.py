"""Start one worker process pinned to one CPU, hand it a Job, read back its WorkerResult."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from bench.corpus import REPO_ROOT
from bench.job import Job, WorkerResult
from bench.peers import NODE_PEERS

SHARP_WORKER = REPO_ROOT / "bench" / "sharp_worker.mjs"

# One thread everywhere: the pin to one core does the real limiting, these keep the libraries
# from queueing work for threads that would only share that core.
SINGLE_THREAD_ENV = {
    "VIPS_CONCURRENCY": "1",
    "UV_THREADPOOL_SIZE": "1",
    "OMP_NUM_THREADS": "1",
    "MAGICK_THREAD_LIMIT": "1",
}


def command(peer: str) -> list[str]:
    if peer in NODE_PEERS:
        node = shutil.which("node")
        if node is None:
            raise FileNotFoundError("node is not on PATH")
        return [node, str(SHARP_WORKER)]
    return [sys.executable, "-m", "bench.worker"]


def run_worker(job: Job, cpu: int, timeout_s: float) -> WorkerResult:
    """Never raises for a peer's failure: it comes back as WorkerResult.error."""
    failed = WorkerResult(peer=job.peer, workload=job.workload.name)
    try:
        argv = command(job.peer)
    except FileNotFoundError as exc:
        failed.error = str(exc)
        return failed
    try:
        done = subprocess.run(
            argv,
            input=json.dumps(job.to_json()),
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, **SINGLE_THREAD_ENV},
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),  # runner is single-threaded
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        failed.error = f"timed out after {timeout_s:.0f} s"
        return failed
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-3:]
        failed.error = f"worker exited {done.returncode}: {' | '.join(tail)}"
        return failed
    result = WorkerResult.from_json(json.loads(lines[-1]))
    if result.error is None and result.cpus and result.cpus != [cpu]:
        result.error = f"worker not pinned: runs on CPUs {result.cpus}, wanted [{cpu}]"
    return result

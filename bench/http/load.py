"""Load generators: wrk (closed loop, as fast as it goes) and an open loop at a fixed rate."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.http.servers import pinned

# The wrk script: rotate through the paths; with `unique`, end each with the request number (the
# paths end in "...&v=<run>-" or "...?n=<run>-"), so no two requests ask for the same URL.
# done() prints one JSON line, which is all we parse of wrk's output.
WRK_LUA = """\
local paths = {{ {paths} }}
local unique = {unique}
local i = 0
request = function()
  i = i + 1
  local p = paths[(i - 1) % #paths + 1]
  if unique then p = p .. i end
  return wrk.format("GET", p)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True, slots=True)
class Result:
    requests: int
    seconds: float
    errors: int  # socket errors (connect, read, write, timeout) + non-2xx/3xx responses
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_bytes: float
    note: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "errors": self.errors,
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "max_ms": round(self.max_ms, 2),
            "mean_bytes": round(self.mean_bytes),
            "note": self.note,
        }


def wrk(
    cpus: list[int],
    base_url: str,
    paths: list[str],
    unique: bool,
    seconds: float,
    connections: int,
    work: Path,
    tag: str,
) -> Result:
    """One wrk run: 1 thread, `connections` connections, pinned to the servers' CPUs."""
    script = work / f"wrk-{tag}.lua"
    quoted = ", ".join(json.dumps(p) for p in paths)
    script.write_text(WRK_LUA.format(paths=quoted, unique="true" if unique else "false"))
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base_url + paths[0],
    ]
    done = subprocess.run(pinned(cpus, argv), capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    d = json.loads(line.removeprefix("WRKJSON "))
    errors = d["connect"] + d["read"] + d["write"] + d["timeout"] + d["status"]
    return Result(
        requests=d["requests"],
        seconds=d["duration_us"] / 1e6,
        errors=errors,
        p50_ms=d["p50_us"] / 1e3,
        p99_ms=d["p99_us"] / 1e3,
        max_ms=d["max_us"] / 1e3,
        mean_bytes=d["bytes"] / d["requests"] if d["requests"] else 0.0,
    )


def open_loop(base_url: str, paths: list[str], rate: float, seconds: float) -> Result:
    """Requests sent at a fixed rate whatever the answers do (wrk2-style, in Python: Debian has
    no wrk2). Latency runs from when a request was due, not from when it went out, so a stall
    of the generator or the server is counted, not hidden (no coordinated omission)."""
    try:
        import uvloop

        return uvloop.run(_open_loop(base_url, paths, rate, seconds))
    except ImportError:
        return asyncio.run(_open_loop(base_url, paths, rate, seconds))


async def _open_loop(base_url: str, paths: list[str], rate: float, seconds: float) -> Result:
    latencies: list[float] = []
    errors = 0
    total_bytes = 0
    worst_lag = 0.0
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        loop = asyncio.get_running_loop()

        async def one(i: int, due: float) -> None:
            nonlocal errors, total_bytes
            url = base_url + paths[i % len(paths)] + str(i + 1)
            try:
                async with session.get(url) as r:
                    body = await r.read()
                    ok = r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                latencies.append(loop.time() - due)
                total_bytes += len(body)
            else:
                errors += 1

        n = int(rate * seconds)
        start = loop.time() + 0.05
        wall = time.perf_counter()
        tasks = []
        for i in range(n):
            due = start + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            worst_lag = max(worst_lag, loop.time() - due)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - wall
    latencies.sort()
    return Result(
        requests=len(latencies),
        seconds=elapsed,
        errors=errors,
        p50_ms=_percentile(latencies, 50) * 1e3,
        p99_ms=_percentile(latencies, 99) * 1e3,
        max_ms=(latencies[-1] if latencies else 0.0) * 1e3,
        mean_bytes=total_bytes / len(latencies) if latencies else 0.0,
        note=f"{n} requests due at {rate:.1f}/s; worst send lag {worst_lag * 1e3:.1f} ms",
    )


def _percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest rank."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]

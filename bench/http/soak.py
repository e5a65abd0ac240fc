"""The soak: `appliance serve` at saturation for ten minutes (mostly cold transforms, some cache
hits), every worker's RSS sampled; it passes when no worker grows more than 10% after the first
minute and every answer is 200, 304 or 503.

    .venv/bin/python -m bench.http.soak [--seconds 600] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.corpus import REPO_ROOT, display_path, resolve_corpus
from bench.http import servers

RESULT = REPO_ROOT / "bench" / "results" / "soak-latest.md"
ALLOWED = {200, 304, 503}
MiB = 1024 * 1024


@dataclass
class Soak:
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    rss: dict[int, list[tuple[float, int]]] = field(default_factory=dict)  # pid -> (t, bytes)


def worker_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def rss_of(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


async def load(base: str, files: list[str], seconds: float, connections: int, soak: Soak) -> None:
    counter = itertools.count()
    deadline = time.monotonic() + seconds

    async def one_client(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            n = next(counter)
            name = files[n % len(files)]
            # 7 in 10 cold (a new variant), 3 in 10 a small set of hot variants
            path = f"/{name}?width=800&v={n}" if n % 10 < 7 else f"/{name}?width={600 + n % 3}"
            try:
                async with session.get(base + path) as r:
                    await r.read()
                    soak.statuses[r.status] += 1
            except (aiohttp.ClientError, TimeoutError) as e:
                soak.failures[type(e).__name__] += 1

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(one_client(session) for _ in range(connections)))


async def sample(server_pid: int, seconds: float, soak: Soak, start: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for pid in worker_pids(server_pid):
            value = rss_of(pid)
            if value is not None:
                soak.rss.setdefault(pid, []).append((time.monotonic() - start, value))
        await asyncio.sleep(5)


def verdict(soak: Soak, seconds: float) -> tuple[list[str], bool]:
    lines = [
        "| worker | RSS at 60 s MiB | max after MiB | growth | samples |",
        "|---|---:|---:|---:|---:|",
    ]
    flat = True
    for pid, samples in sorted(soak.rss.items()):
        at_minute = [v for t, v in samples if t >= 60]
        if len(at_minute) < 2:
            lines.append(f"| {pid} | — | — | — | {len(samples)} (too few after 60 s) |")
            continue
        base, top = at_minute[0], max(at_minute)
        growth = (top - base) / base
        flat = flat and growth < 0.10
        lines.append(
            f"| {pid} | {base / MiB:.1f} | {top / MiB:.1f} | {growth:+.1%} | {len(samples)} |"
        )
    return lines, flat and seconds >= 120


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.http.soak", description=__doc__)
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--corpus", help="corpus directory (default ../shared/corpus)")
    args = p.parse_args(argv)
    corpus = resolve_corpus(args.corpus)
    files = sorted(f.name for f in corpus.glob("*4mp.jpg"))
    cpus = sorted(os.sched_getaffinity(0))
    soak = Soak()
    with tempfile.TemporaryDirectory(prefix="appliance-soak-") as tmp:
        # A small memory cache fills within the first minute, so growth after it is a leak.
        server = servers.ours(cpus, corpus, Path(tmp), 2, 1, memory_bytes=32 * MiB)
        server.start()
        try:
            assert server.proc is not None
            start = time.monotonic()

            async def run() -> None:
                await asyncio.gather(
                    load(server.base_url, files, args.seconds, args.connections, soak),
                    sample(server.proc.pid, args.seconds, soak, start),  # type: ignore[union-attr]
                )

            asyncio.run(run())
            elapsed = time.monotonic() - start
        finally:
            server.stop()
    table, flat = verdict(soak, args.seconds)
    statuses_ok = set(soak.statuses) <= ALLOWED and not soak.failures
    total = sum(soak.statuses.values())
    report = [
        "# Soak: appliance serve at saturation",
        "",
        f"- {args.seconds:.0f} s, {args.connections} connections from one client on the same "
        f"{len(cpus)} CPUs, 2 workers x 1 transcode thread, 32 MiB memory caches per worker; "
        f"originals from `{display_path(corpus)}` ({', '.join(files)}); 7 in 10 requests a new "
        "800 px variant, 3 in 10 one of a few hot variants.",
        f"- {total:,} answers in {elapsed:.0f} s ({total / elapsed:.1f}/s): "
        + ", ".join(f"{s}: {n:,}" for s, n in sorted(soak.statuses.items()))
        + (f"; client errors {dict(soak.failures)}" if soak.failures else ""),
        "",
        *table,
        "",
        f"**Memory flat (< 10% after the first minute): {'pass' if flat else 'FAIL'}. "
        f"Only 200/304/503: {'pass' if statuses_ok else 'FAIL'}.**",
    ]
    text = "\n".join(report) + "\n"
    print(text)
    RESULT.write_text(text)
    return 0 if flat and statuses_ok else 1


if __name__ == "__main__":
    sys.exit(main())

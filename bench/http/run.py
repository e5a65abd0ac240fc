"""python -m bench.http: ours against thumbor (and nginx as the cache-hit ceiling) over HTTP."""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from importlib import metadata
from pathlib import Path

from PIL import Image

from bench import machine
from bench.corpus import REPO_ROOT, display_path, load_sources, resolve_corpus
from bench.http import load, report, servers
from bench.http.report import Report

MAX_PIXELS = 4_200_000  # the photos of 4.2 MP or less
WIDTH = 800
QUALITY = 80
RESULT = REPO_ROOT / "bench" / "results" / "http-latest.md"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__)
    p.add_argument(
        "--corpus", help="corpus directory (default: $APPLIANCE_CORPUS, ../shared/corpus)"
    )
    p.add_argument("--seconds", type=float, default=15.0, help="each measured wrk run (15)")
    p.add_argument("--warmup", type=float, default=3.0, help="unmeasured wrk run before each (3)")
    p.add_argument("--hit-connections", type=int, default=16, help="wrk connections, hits (16)")
    p.add_argument("--cold-connections", type=int, default=8, help="wrk connections, cold (8)")
    p.add_argument("--open-seconds", type=float, default=25.0, help="the fixed-rate run (25)")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="our transcode threads per worker (default: the CPUs used; see "
        "docs/decisions/0007-threads-per-worker.md)",
    )
    p.add_argument("--no-thumbor", action="store_true", help="skip thumbor")
    p.add_argument("--no-write", action="store_true", help=f"do not write {display_path(RESULT)}")
    args = p.parse_args(argv)

    if shutil.which("wrk") is None:
        print("bench.http: wrk not found (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, cpus)  # the harness (and its open-loop generator) shares them too
    if args.threads <= 0:
        args.threads = len(cpus)
    corpus = resolve_corpus(args.corpus)
    files = [s.name for s in load_sources(corpus) if s.pixels <= MAX_PIXELS]
    if not files:
        print(f"bench.http: no JPEG of <= 4.2 MP in {display_path(corpus)}", file=sys.stderr)
        return 2

    r = Report(
        machine=machine.describe(),
        cpus=cpus,
        files=files,
        corpus=display_path(corpus),
        seconds=args.seconds,
        warmup=args.warmup,
        hit_connections=args.hit_connections,
        cold_connections=args.cold_connections,
        open_seconds=args.open_seconds,
        threads=args.threads,
    )
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-http-"))
    running: list[servers.Server] = []
    try:
        work.chmod(0o755)  # nginx workers may run as another user
        _measure(args, r, corpus, work, running)
    finally:
        for server in reversed(running):
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    r.total_seconds = time.monotonic() - started
    r.loadavg_end = machine.loadavg()
    text = report.render(r)
    print(text)
    if not args.no_write:
        RESULT.write_text(text)
        print(f"bench.http: wrote {display_path(RESULT)}", file=sys.stderr)
    for why in r.unavailable:
        print(f"bench.http: !!! {why}", file=sys.stderr)
    return 0


def _measure(
    args: argparse.Namespace,
    r: Report,
    corpus: Path,
    work: Path,
    running: list[servers.Server],
) -> None:
    cpus, workers = r.cpus, len(r.cpus)
    # Both servers read the corpus directory itself (only the <= 4.2 MP files are requested):
    # our directory origin refuses symlinks that leave its root, so a dir of links would not do.
    origin = corpus
    static = work / "static"
    static.mkdir()
    run_id = str(int(time.time()))
    ours_hit = [f"/{f}?width={WIDTH}&quality={QUALITY}" for f in r.files]
    ours_cold = [f"{p}&v={run_id}-" for p in ours_hit]
    th_hit = [f"/unsafe/{WIDTH}x0/{f}" for f in r.files]
    th_cold = [f"{p}?n={run_id}-" for p in th_hit]

    def wrk(server: servers.Server, paths: list[str], unique: bool, tag: str) -> load.Result:
        conns = args.cold_connections if unique else args.hit_connections
        warm = [p.replace(f"={run_id}-", f"=w{run_id}-") for p in paths]
        _log(f"{server.name}: {tag} (warm-up {args.warmup:g} s, then {args.seconds:g} s)")
        load.wrk(cpus, server.base_url, warm, unique, args.warmup, conns, work, f"{tag}-warm")
        res = load.wrk(cpus, server.base_url, paths, unique, args.seconds, conns, work, tag)
        _log(
            f"  {res.rps:.1f} req/s, p50 {res.p50_ms:.2f} ms, p99 {res.p99_ms:.2f} ms, "
            f"{res.errors} errors"
        )
        return res

    # ours, up for the whole run
    r.ours_tree = servers.working_tree_state()
    ours = servers.ours(cpus, origin, work, workers, args.threads)
    running.append(ours)
    _log(f"starting ours: {workers} workers, {args.threads} transcode thread(s) each")
    ours.start()
    for f, path in zip(r.files, ours_hit, strict=True):
        (static / f).write_bytes(_fetch_jpeg(ours.base_url + path, "ours"))
    r.versions["ours"] = (
        f"appliance {_dist('appliance')}, aiohttp {_dist('aiohttp')}, uvloop {_dist('uvloop')}"
    )
    r.sequential["ours, hit"] = _sequential_ms(ours.base_url + ours_hit[0])

    # thumbor
    thumbor_bin: Path | None = None
    if args.no_thumbor:
        r.unavailable.append("thumbor not available: skipped (--no-thumbor)")
    else:
        thumbor_bin, why = servers.ensure_thumbor()
        if thumbor_bin is None:
            r.unavailable.append(f"thumbor not available: {why}")
        else:
            r.versions["thumbor"] = why

    # (a) cache hits
    r.results[("ours", "hits")] = wrk(ours, ours_hit, False, "ours-hits")
    if thumbor_bin is not None:
        th = servers.thumbor(cpus, thumbor_bin, origin, work, workers, result_storage=True)
        running.append(th)
        try:
            th.start()
            _fetch_jpeg(th.base_url + th_hit[0], th.name)
            r.results[("thumbor", "hits")] = wrk(th, th_hit, False, "thumbor-hits")
            r.sequential["thumbor, result storage on"] = _sequential_ms(th.base_url + th_hit[0])
            stored = work / "thumbor-results"
            r.thumbor_stored = sum(1 for p in stored.rglob("*") if p.is_file())
        except (RuntimeError, OSError) as e:
            r.unavailable.append(f"thumbor (hits) failed: {e}")
        th.stop()
        running.remove(th)
    ng = servers.nginx(cpus, static, work, workers)
    running.append(ng)
    ng.start()
    r.versions["nginx"] = servers.version_of(["nginx", "-v"])
    r.results[("nginx", "hits")] = wrk(ng, [f"/{f}" for f in r.files], False, "nginx-hits")
    ng.stop()
    running.remove(ng)

    # (b) cold transforms
    r.sequential["ours, cold"] = _sequential_ms(ours.base_url + ours_cold[0], unique=True)
    cold = r.results[("ours", "cold")] = wrk(ours, ours_cold, True, "ours-cold")
    if thumbor_bin is not None:
        th = servers.thumbor(cpus, thumbor_bin, origin, work, workers, result_storage=False)
        running.append(th)
        try:
            th.start()
            _fetch_jpeg(th.base_url + th_cold[0] + "0", th.name)
            # the same URL again and again: with result storage off each one must be a transform
            r.sequential["thumbor, result storage off (same URL)"] = _sequential_ms(
                th.base_url + th_hit[0]
            )
            r.results[("thumbor", "cold")] = wrk(th, th_cold, True, "thumbor-cold")
        except (RuntimeError, OSError) as e:
            r.unavailable.append(f"thumbor (cold) failed: {e}")
        th.stop()
        running.remove(th)

    # (c) ours, cold, at a fixed rate: half of what it sustained above
    rate = cold.rps / 2
    open_paths = [p.replace(f"={run_id}-", f"=o{run_id}-") for p in ours_cold]
    _log(f"ours: cold at a fixed {rate:.1f} req/s for {args.open_seconds:g} s")
    r.open_loop = load.open_loop(ours.base_url, open_paths, rate, args.open_seconds)
    r.open_rate = rate
    o = r.open_loop
    _log(f"  p50 {o.p50_ms:.2f} ms, p99 {o.p99_ms:.2f} ms, {o.errors} errors; {o.note}")
    r.versions["wrk"] = servers.version_of(["wrk", "--version"]).split(" Copyright")[0]


def _fetch_jpeg(url: str, who: str) -> bytes:
    """One GET that must answer a JPEG WIDTH pixels wide."""
    with urllib.request.urlopen(url, timeout=30) as resp:
        body: bytes = resp.read()
        ctype = resp.headers.get("Content-Type", "")
    with Image.open(io.BytesIO(body)) as im:
        if im.format != "JPEG" or im.width != WIDTH:
            raise RuntimeError(
                f"{who}: {url} gave {ctype} {im.format} {im.size}, not a JPEG {WIDTH} wide"
            )
    return body


def _sequential_ms(url: str, n: int = 7, unique: bool = False) -> float:
    """Median ms of one request at a time (after one untimed): how a single request fares."""
    times = []
    for i in range(n + 1):
        t = time.perf_counter()
        with urllib.request.urlopen(url + (f"s{i}" if unique else ""), timeout=30) as resp:
            resp.read()
        if i:
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def _dist(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def _log(message: str) -> None:
    print(f"bench.http: {message}", file=sys.stderr, flush=True)

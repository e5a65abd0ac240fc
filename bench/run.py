"""`python -m bench`: every peer on every workload, one pinned process each, then the report."""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from bench import machine, report
from bench.corpus import REPO_ROOT, Source, display_path, load_sources, resolve_corpus
from bench.job import FileSpec, Job, Timing, WorkerResult
from bench.launch import run_worker
from bench.peers import ALL_PEERS
from bench.score import score
from bench.workloads import WORKLOADS, Workload, by_name

RESULTS_DIR = REPO_ROOT / "bench" / "results"
FULL = Timing(min_time_s=0.5, min_runs=3, max_runs=200, warmup=1)
QUICK = Timing(min_time_s=0.0, min_runs=1, max_runs=1, warmup=1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "--corpus",
        help="corpus directory (default: $APPLIANCE_CORPUS, else "
        "../shared/corpus from the repository root)",
    )
    p.add_argument(
        "--cpu",
        type=int,
        default=machine.default_cpu(),
        help="CPU every worker is pinned to (default: the last one allowed)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="one warm-up and one timed run per file: a smoke test, not a measurement",
    )
    p.add_argument("--min-time", type=float, help=f"seconds per file (default {FULL.min_time_s})")
    p.add_argument("--min-runs", type=int, help=f"runs per file (default {FULL.min_runs})")
    p.add_argument("--max-runs", type=int, help=f"cap on runs per file (default {FULL.max_runs})")
    p.add_argument(
        "--peers",
        default=",".join(ALL_PEERS),
        help="comma-separated subset of: " + ", ".join(ALL_PEERS),
    )
    p.add_argument(
        "--workloads",
        default=",".join(w.name for w in WORKLOADS),
        help="comma-separated subset of: " + ", ".join(w.name for w in WORKLOADS),
    )
    p.add_argument("--no-ssim", action="store_true", help="skip the SSIM scoring pass")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--no-write", action="store_true", help="print only, write no result files")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per worker process")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if unknown := [p for p in peers if p not in ALL_PEERS]:
        print(f"unknown peer(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    try:
        workloads = by_name([w.strip() for w in args.workloads.split(",") if w.strip()])
        corpus = resolve_corpus(args.corpus)
        sources = load_sources(corpus)
    except (ValueError, FileNotFoundError) as exc:
        print(exc, file=sys.stderr)
        return 2
    base = QUICK if args.quick else FULL
    timing = replace(
        base,
        min_time_s=base.min_time_s if args.min_time is None else args.min_time,
        min_runs=base.min_runs if args.min_runs is None else args.min_runs,
        max_runs=base.max_runs if args.max_runs is None else args.max_runs,
    )
    if not sources:
        print(f"no JPEG in {display_path(corpus)}", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    host = machine.describe()
    _log(
        f"{len(sources)} JPEGs from {display_path(corpus)}; CPU {args.cpu}; "
        f"load {host.loadavg}; {'quick' if args.quick else 'full'} run"
    )

    with tempfile.TemporaryDirectory(prefix="appliance-bench-") as tmp:
        out_dir = Path(tmp)
        tiny = _tiny_jpeg(out_dir)
        cpus = machine.CpuWatch(args.cpu)
        results = _measure_all(peers, workloads, sources, timing, args, out_dir, tiny, cpus)
        largest = max(sources, key=lambda s: (s.pixels, s.size_bytes))
        memory = _measure_memory(peers, largest, args, out_dir, tiny, cpus)
        if not args.no_ssim:
            score(sources, [r for rs in results.values() for r in rs], out_dir, _log)

    rep = report.Report(
        started=started,
        machine=host,
        loadavg_end=machine.loadavg(),
        others_busy=cpus.overall(),
        others_busy_worst=cpus.worst,
        corpus=display_path(corpus),
        sources=sources,
        cpu=args.cpu,
        timing=timing,
        quick=args.quick,
        workloads=workloads,
        results=results,
        memory=memory,
        largest=largest,
    )
    print(report.render(rep, per_file=False))
    if not args.no_write:
        for path in report.write(rep, args.results_dir):
            _log(f"wrote {display_path(path)}")
    _shout_missing(rep.unavailable())
    if report.busy(rep):
        _log(
            f"WARNING: other CPUs were {cpus.overall():.0%} busy while measuring: numbers are noisy"
        )
    ran = any(r.error is None for rs in results.values() for r in rs)
    return 0 if ran else 1


def _measure_all(
    peers: list[str],
    workloads: list[Workload],
    sources: list[Source],
    timing: Timing,
    args: argparse.Namespace,
    out_dir: Path,
    tiny: Path,
    cpus: machine.CpuWatch,
) -> dict[str, list[WorkerResult]]:
    """Workloads outer, peers inner, so a drift in machine load hits every peer alike. A peer
    that failed is tried again on the next workload: a crash on one need not mean all."""
    results: dict[str, list[WorkerResult]] = {}
    for wl in workloads:
        results[wl.name] = []
        for peer in peers:
            job = _job(peer, wl, sources, timing, out_dir, tiny)
            results[wl.name].append(_run_logged(job, wl.name, args, cpus))
    return results


def _measure_memory(
    peers: list[str],
    largest: Source,
    args: argparse.Namespace,
    out_dir: Path,
    tiny: Path,
    cpus: machine.CpuWatch,
) -> list[WorkerResult]:
    """thumb200 of the largest JPEG alone per fresh process: its peak RSS over its baseline."""
    thumb = by_name(["thumb200"])[0]
    once = Timing(min_time_s=0.0, min_runs=1, max_runs=1, warmup=1)
    return [
        _run_logged(
            _job(peer, thumb, [largest], once, out_dir / "memory", tiny), "memory", args, cpus
        )
        for peer in peers
    ]


def _run_logged(
    job: Job, label: str, args: argparse.Namespace, cpus: machine.CpuWatch
) -> WorkerResult:
    _log(f"{label:9} {job.peer:12} ...")
    result = run_worker(job, args.cpu, args.timeout)
    result.others_busy = cpus.sample()
    if result.error is not None:
        _shout_missing({job.peer: result.error})
    else:
        _log(f"{label:9} {job.peer:12} {_brief(result)}, other CPUs {result.others_busy:.0%} busy")
    return result


def _job(
    peer: str, wl: Workload, sources: list[Source], timing: Timing, out_dir: Path, tiny: Path
) -> Job:
    files = []
    for s in sources:
        tw, th = wl.target_size(*s.display_size)
        files.append(FileSpec(s.name, str(s.path), s.width, s.height, s.orientation, tw, th))
    return Job(peer, wl, tuple(files), timing, str(out_dir), str(tiny))


def _tiny_jpeg(directory: Path) -> Path:
    path = directory / "tiny.jpg"
    Image.new("RGB", (16, 16), (128, 64, 32)).save(path, "JPEG", quality=80)
    return path


def _brief(result: WorkerResult) -> str:
    ok = [f.ms for f in result.files if f.ms]
    failed = sum(1 for f in result.files if f.error)
    median = sorted(ok)[len(ok) // 2] if ok else float("nan")
    return (
        f"{len(ok)} files, median {median:.1f} ms, peak RSS "
        f"{(result.peak_rss_kb or 0) / 1024:.0f} MiB" + (f", {failed} FAILED" if failed else "")
    )


def _shout_missing(missing: dict[str, str]) -> None:
    for peer, why in missing.items():
        bar = "!" * 78
        print(f"\n{bar}\n!!! PEER {peer.upper()} NOT AVAILABLE: {why}\n{bar}\n", file=sys.stderr)


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)

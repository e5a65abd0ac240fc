"""The report: markdown tables (stdout and bench/results/) and the full JSON beside them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from bench.corpus import Source
from bench.job import Timing, WorkerResult
from bench.machine import Machine
from bench.summary import FLOOR, OURS, PeerRow, ours_over_floor, summarize
from bench.workloads import Workload

SMALL_PIXELS = 4_200_000  # "4 MP or less" photos
BUSY = 0.15  # busy fraction of the unpinned CPUs over the run above which the numbers are noisy
BUSY_WORST = 0.5  # ... or during any one worker


@dataclass(frozen=True, slots=True)
class Report:
    started: datetime  # UTC
    machine: Machine
    loadavg_end: str
    others_busy: float  # busy fraction of the CPUs we did not pin to, while measuring
    others_busy_worst: float  # the same, during the worst single worker
    corpus: str  # relative to the repository root
    sources: list[Source]
    cpu: int
    timing: Timing
    quick: bool
    workloads: list[Workload]
    results: dict[str, list[WorkerResult]]  # by workload name, peers in run order
    memory: list[WorkerResult]  # thumb200 of the largest JPEG alone, one per peer
    largest: Source | None

    @property
    def small(self) -> set[str]:
        return {s.name for s in self.sources if s.pixels <= SMALL_PIXELS}

    @property
    def progressive(self) -> set[str]:
        return {s.name for s in self.sources if s.progressive}

    def unavailable(self) -> dict[str, str]:
        """Each peer that could not run somewhere, with its first reason."""
        out: dict[str, str] = {}
        for r in [*(r for rs in self.results.values() for r in rs), *self.memory]:
            if r.error is not None:
                out.setdefault(r.peer, f"{r.workload}: {r.error}")
        return out


def render(report: Report, per_file: bool) -> str:
    parts = [_header(report)]
    for wl in report.workloads:
        rows = summarize(report.results[wl.name])
        parts.append(f"## {wl.name}: {_describe(wl)}, {len(report.sources)} JPEGs\n")
        parts.append(_table(rows, memory=True))
        ratio = ours_over_floor(rows)
        if ratio is not None:
            parts.append(
                f"ours / decode floor = **{ratio:.2f}x** (time of the whole conversion "
                f"over the bare DCT-scaled decode, same files)\n"
            )
        parts.append(_errors(rows))
    parts.append(
        _subset(
            report, "w800", report.small, f"Photos of 4.2 MP or less ({len(report.small)}), w800"
        )
    )
    parts.append(
        _subset(
            report,
            "thumb200",
            report.progressive,
            f"Progressive JPEGs ({len(report.progressive)}), thumb200",
        )
    )
    parts.append(_memory(report))
    parts.append(_unavailable(report))
    if per_file:
        parts += [_per_file(report, wl) for wl in report.workloads]
    return "\n".join(p for p in parts if p)


def to_json(report: Report) -> dict[str, object]:
    return {
        "meta": {
            "started_utc": report.started.isoformat(),
            "machine": report.machine.to_json(),
            "loadavg_end": report.loadavg_end,
            "others_busy": report.others_busy,
            "others_busy_worst": report.others_busy_worst,
            "busy": busy(report),
            "corpus": report.corpus,
            "cpu": report.cpu,
            "timing": {"quick": report.quick, **asdict(report.timing)},
            "orientation": "EXIF orientation applied by every peer and by the SSIM reference",
        },
        "files": [s.to_json() for s in report.sources],
        "workloads": {
            wl.name: {
                "workload": wl.to_json(),
                "summary": [r.to_json() for r in summarize(report.results[wl.name])],
                "runs": [r.to_json() for r in report.results[wl.name]],
            }
            for wl in report.workloads
        },
        "small_w800": _subset_json(report, "w800", report.small),
        "progressive_thumb200": _subset_json(report, "thumb200", report.progressive),
        "memory_largest_thumb200": {
            "file": report.largest.to_json() if report.largest else None,
            "runs": [r.to_json() for r in report.memory],
        },
        "unavailable": report.unavailable(),
    }


def write(report: Report, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"transcode-{report.started:%Y%m%dT%H%M%SZ}"
    md = render(report, per_file=True)
    paths = [directory / f"{stem}.md", directory / f"{stem}.json", directory / "latest.md"]
    paths[0].write_text(md, encoding="utf-8")
    paths[1].write_text(json.dumps(to_json(report), indent=1) + "\n", encoding="utf-8")
    paths[2].write_text(md, encoding="utf-8")
    return paths


def busy(r: Report) -> bool:
    return r.others_busy > BUSY or r.others_busy_worst > BUSY_WORST


def _header(r: Report) -> str:
    m, t = r.machine, r.timing
    title = f"# Transcoder benchmark, {r.started:%Y-%m-%d %H:%M} UTC"
    runs = f">= {t.min_time_s:g} s and >= {t.min_runs} runs per file (at most {t.max_runs})"
    return "\n".join(
        [
            title + (" (quick run: one timed run per file, not a measurement)" if r.quick else ""),
            "",
            f"- Machine: {m.cpu_model}, {m.cores_online} cores online, {m.kernel}; load average "
            f"{m.loadavg} at start, {r.loadavg_end} at end; other CPUs {r.others_busy:.0%} busy "
            f"while measuring (worst worker {r.others_busy_worst:.0%}); "
            f"Python {m.python}, node {m.node}",
            f"- Libraries: {_versions(r)}",
            f"- Corpus: `{r.corpus}`, {len(r.sources)} JPEGs ({len(r.progressive)} progressive, "
            f"{len(r.small)} of <= 4.2 MP); every peer applies EXIF orientation",
            f"- Method: each (peer, workload) in its own process pinned to CPU {r.cpu}, "
            f"single-threaded, files in memory, {t.warmup} warm-up then runs until {runs}; "
            "median per file, geometric mean over files; x ours = peer ms / ours ms (> 1: ours "
            "is faster). ImageMagick is one `convert` process per image, process start included.",
            "- Measures: SSIM on BT.601 luma against the full-size Pillow decode resized to each "
            "output's size in float32 Lanczos (Gaussian 1.5, after timing); RSS: the worker's "
            "own after imports and reading the files -> its peak (VmHWM), delta in brackets.",
            "",
            *(
                [
                    f"**Warning: other work ran during the measurement (the unpinned CPUs were "
                    f"{r.others_busy:.0%} busy, {r.others_busy_worst:.0%} during the worst "
                    "worker): it may have shared the pinned core, the numbers are noisy.**",
                    "",
                ]
                if busy(r)
                else []
            ),
        ]
    )


def _versions(r: Report) -> str:
    seen: dict[str, str] = {}
    for results in r.results.values():
        for res in results:
            if res.version and res.peer != FLOOR:
                seen.setdefault(res.peer, res.version)
    return "; ".join(f"{peer}: {v}" for peer, v in seen.items()) or "none measured"


def _describe(wl: Workload) -> str:
    box = f"fit inside {wl.width}x{wl.height}" if wl.height else f"{wl.width} px wide"
    return f"{box}, {wl.format.upper()} q{wl.quality}, no upscaling"


def _f(value: float | int | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _mb(kb: int | None) -> str:
    return _f(None if kb is None else kb / 1024, ".0f")


def _table(rows: list[PeerRow], memory: bool) -> str:
    head = "| peer | ms/image (geomean) | images/s | x ours | mean bytes | mean SSIM | files |"
    sep = "|---|---:|---:|---:|---:|---:|---:|"
    if memory:
        head += " RSS MB base -> peak (delta) |"
        sep += "---:|"
    lines = [head, sep]
    for row in rows:
        if row.error is not None:
            lines.append(f"| {row.peer} | not available: {row.error} |" + " |" * (6 + memory))
            continue
        cells = [
            row.peer,
            _f(row.geomean_ms, ".2f"),
            _f(row.images_per_s, ".1f"),
            _f(row.vs_ours, ".2f"),
            _f(row.mean_bytes, ",.0f"),
            _f(row.mean_ssim, ".4f"),
            f"{row.files_ok}/{row.files_total}",
        ]
        if memory:
            delta = row.delta_rss_kb
            cells.append(f"{_mb(row.baseline_rss_kb)} -> {_mb(row.peak_rss_kb)} ({_mb(delta)})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _errors(rows: list[PeerRow]) -> str:
    errors = [f"- {row.peer}: {e}" for row in rows for e in row.file_errors]
    return ("Failed files:\n" + "\n".join(errors) + "\n") if errors else ""


def _subset(r: Report, workload: str, names: set[str], title: str) -> str:
    if workload not in r.results or not names:
        return ""
    rows = summarize(r.results[workload], only=names)
    ours = next((row for row in rows if row.peer == OURS and row.images_per_s), None)
    headline = (
        f"ours: **{ours.images_per_s:.1f} conversions/s per core** "
        f"({ours.geomean_ms:.2f} ms geomean)\n"
        if ours and ours.geomean_ms
        else "ours: not measured\n"
    )
    return f"## {title}\n\nFiles: {', '.join(sorted(names))}\n\n{headline}\n" + _table(
        rows, memory=False
    )


def _subset_json(r: Report, workload: str, names: set[str]) -> dict[str, object]:
    if workload not in r.results:
        return {}
    return {
        "files": sorted(names),
        "summary": [row.to_json() for row in summarize(r.results[workload], only=names)],
    }


def _memory(r: Report) -> str:
    if r.largest is None or not r.memory:
        return ""
    s = r.largest
    rgb = s.pixels * 3
    lines = [
        f"## Peak memory, thumb200 of the largest JPEG: {s.name} ({s.width}x{s.height}, "
        f"w*h*3 = {rgb / 2**20:.1f} MiB)\n",
        "Each peer alone in a fresh process on this one file. delta = peak RSS - baseline.\n",
        "| peer | baseline MiB | peak MiB | delta MiB | delta / (w*h*3) |",
        "|---|---:|---:|---:|---:|",
    ]
    for res in r.memory:
        if res.error is not None:
            lines.append(f"| {res.peer} | not available: {res.error} | | | |")
            continue
        if res.peak_rss_kb is None or res.baseline_rss_kb is None:
            continue
        delta = (res.peak_rss_kb - res.baseline_rss_kb) * 1024
        lines.append(
            f"| {res.peer} | {res.baseline_rss_kb / 1024:.1f} | "
            f"{res.peak_rss_kb / 1024:.1f} | {delta / 2**20:.1f} | {delta / rgb:.3f} |"
        )
    return "\n".join(lines) + "\n"


def _unavailable(r: Report) -> str:
    missing = r.unavailable()
    if not missing:
        return ""
    return (
        "## Not available\n\n"
        + "\n".join(f"- **{peer}**: {why}" for peer, why in missing.items())
        + "\n"
    )


def _per_file(r: Report, wl: Workload) -> str:
    results = [res for res in r.results[wl.name] if res.error is None]
    if not results:
        return ""
    lines = [
        f"### Per file, {wl.name}: ms (SSIM)\n",
        "| file | " + " | ".join(res.peer for res in results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    for s in r.sources:
        cells = []
        for res in results:
            row = next((f for f in res.files if f.name == s.name), None)
            if row is None or row.ms is None:
                cells.append("error" if row and row.error else "—")
            else:
                q = f" ({row.ssim:.3f})" if row.ssim is not None else ""
                cells.append(f"{row.ms:.1f}{q}")
        lines.append(f"| {s.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

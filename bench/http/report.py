"""The markdown report of one run."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.http.load import Result
from bench.machine import Machine

COLD_TARGET = 2.0  # ours / thumbor req/s, cold transforms
HIT_TARGET = 3.0  # ours / thumbor req/s, cache hits
P99_TARGET_MS = 25.0  # ours, cold, at half its saturation rate


@dataclass
class Report:
    machine: Machine
    cpus: list[int]
    files: list[str]
    corpus: str
    seconds: float
    warmup: float
    hit_connections: int
    cold_connections: int
    open_seconds: float
    threads: int
    ours_tree: str = ""
    results: dict[tuple[str, str], Result] = field(default_factory=dict)
    sequential: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    unavailable: list[str] = field(default_factory=list)
    thumbor_stored: int | None = None
    open_loop: Result | None = None
    open_rate: float = 0.0
    total_seconds: float = 0.0
    loadavg_end: str = ""


def render(r: Report) -> str:
    parts = [
        "# HTTP benchmark: appliance serve vs thumbor (nginx as the ceiling)",
        "",
        _method(r),
        "",
        "## Throughput and latency (wrk, closed loop)",
        "",
        _table(r),
        "",
        "## Targets",
        "",
        _targets(r),
        "",
        "## One request at a time (median of 7, after one untimed)",
        "",
        "| server, case | ms |",
        "|---|---:|",
        *(f"| {k} | {v:.2f} |" for k, v in r.sequential.items()),
        "",
        _notes(r),
    ]
    if r.unavailable:
        parts += ["", *(f"**{why}**" for why in r.unavailable)]
    return "\n".join(parts) + "\n"


def _method(r: Report) -> str:
    m = r.machine
    cpus = ",".join(map(str, r.cpus))
    versions = "; ".join(f"{k}: {v}" for k, v in r.versions.items())
    return "\n".join(
        [
            f"- Machine: {m.cpu_model}, {m.cores_online} cores online, {m.kernel}, "
            f"Python {m.python}; load average {m.loadavg} at the start, {r.loadavg_end} at "
            f"the end; whole run {r.total_seconds:.0f} s.",
            f"- Versions: {versions}.",
            f"- One run on one machine. Every server, its children, wrk and the harness are pinned "
            f"to the same CPUs ({cpus}) with taskset: **the load generator shares the cores with "
            "the server**, the same way for every server, so the figures are lower than with a "
            "separate client machine, and the servers that need less CPU per request lose more "
            "to wrk's share.",
            f"- Servers: ours `appliance serve` ({r.ours_tree}), {len(r.cpus)} workers, "
            f"{r.threads} transcode thread(s) each, memory cache only; "
            f"thumbor with `--processes={len(r.cpus)}`, its "
            "file loader (`FILE_LOADER_ROOT_PATH`), unsafe URLs, `QUALITY = 80`, PIL engine, "
            f"no original storage; nginx {len(r.cpus)} worker processes serving ours' output "
            "files as static files (sendfile, keep-alive).",
            f"- Images: {', '.join(r.files)} (the corpus photos of <= 4.2 MP, {r.corpus}), "
            f"each resized to 800 px wide, JPEG q80: ours `/<file>?width=800&quality=80`, "
            "thumbor `/unsafe/800x0/<file>`.",
            f"- wrk: 1 thread, {r.seconds:g} s per run after a {r.warmup:g} s unmeasured warm-up "
            "with its own URLs; a Lua script rotates through the files. "
            f"Cache hits: {r.hit_connections} connections, the 3 URLs over and over (ours: the "
            "per-worker memory cache; thumbor: `RESULT_STORAGE = "
            "'thumbor.result_storages.file_storage'` with `RESULT_STORAGE_STORES_UNSAFE`, "
            f"{_stored(r)}; nginx: static files). Cold transforms: {r.cold_connections} "
            "connections, every URL unique (ours `&v=<run>-<n>`, thumbor `?n=<run>-<n>` with "
            "result storage off, so every request is a transform).",
            "- Errors = wrk's socket errors (connect, read, write, timeout) + non-2xx/3xx answers.",
            f"- Fixed rate: ours, cold, at half its cold req/s above for {r.open_seconds:g} s, "
            "by a Python asyncio/aiohttp open-loop generator (Debian has no wrk2), latency "
            "counted from when each request was due.",
        ]
    )


def _stored(r: Report) -> str:
    if r.thumbor_stored is None:
        return "not run"
    return f"{r.thumbor_stored} files in its result storage after the run"


def _table(r: Report) -> str:
    rows = [
        "| server | mode | req/s | p50 ms | p99 ms | max ms | errors | bytes/ans. | ours / this |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in ("hits", "cold"):
        ours = r.results.get(("ours", mode))
        for server in ("ours", "thumbor", "nginx"):
            res = r.results.get((server, mode))
            if res is None:
                if server == "thumbor":
                    rows.append(f"| thumbor | {mode} | not available | | | | | | |")
                continue
            ratio = f"{ours.rps / res.rps:.2f}x" if ours and res.rps and server != "ours" else ""
            rows.append(
                f"| {server} | {mode} | {res.rps:,.0f} | {res.p50_ms:.2f} | {res.p99_ms:.2f} | "
                f"{res.max_ms:.1f} | {res.errors} | {res.mean_bytes:,.0f} | {ratio} |"
            )
    return "\n".join(rows)


def _targets(r: Report) -> str:
    rows = ["| target | measured | result |", "|---|---|---|"]
    for mode, target in (("cold", COLD_TARGET), ("hits", HIT_TARGET)):
        ours, th = r.results.get(("ours", mode)), r.results.get(("thumbor", mode))
        name = f"{mode}: ours req/s >= {target:g}x thumbor's"
        if ours is None or th is None or not th.rps:
            rows.append(f"| {name} | thumbor not measured | n/a |")
        else:
            ratio = ours.rps / th.rps
            rows.append(f"| {name} | {ratio:.2f}x | {_pass(ratio >= target)} |")
    o = r.open_loop
    name = f"cold at half saturation ({r.open_rate:.0f} req/s): ours p99 < {P99_TARGET_MS:g} ms"
    if o is None:
        rows.append(f"| {name} | not measured | n/a |")
    else:
        ok = o.p99_ms < P99_TARGET_MS and o.errors == 0
        rows.append(
            f"| {name} | p50 {o.p50_ms:.2f} ms, p99 {o.p99_ms:.2f} ms, max {o.max_ms:.1f} ms, "
            f"{o.errors} errors, {o.rps:.1f} answers/s | {_pass(ok)} |"
        )
    ours, ng = r.results.get(("ours", "hits")), r.results.get(("nginx", "hits"))
    if ours and ng and ng.rps:
        rows.append(
            f"| hits: ours as a fraction of nginx static (the ceiling) | "
            f"{ours.rps / ng.rps:.0%} | (no target) |"
        )
    return "\n".join(rows)


def _notes(r: Report) -> str:
    o = r.open_loop
    lines = [
        "Reading it: `ours / this` > 1 means we served that many times more requests per second. "
        "Cold figures are CPU-bound (decode, resize, encode); cache-hit figures are mostly HTTP "
        "overhead, and wrk's one thread may be the limit for nginx (it shares the cores). "
        "bytes/answer differ because each server encodes its own way (thumbor's PIL vs ours); "
        "nginx serves ours' bytes. Ours keeps originals in memory; thumbor's file loader reads "
        "them from the page cache on each request.",
    ]
    if o is not None:
        lines.append(f"Fixed-rate run: {o.note}.")
    return "\n\n".join(lines)


def _pass(ok: bool) -> str:
    return "**pass**" if ok else "**FAIL**"

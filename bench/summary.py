"""From per-file worker results to one row per peer: geometric means, ratios, memory."""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field

from bench.job import FileResult, WorkerResult

OURS = "ours"
FLOOR = "floor"


@dataclass(frozen=True, slots=True)
class PeerRow:
    peer: str
    version: str
    error: str | None  # the peer could not run at all
    files_ok: int
    files_total: int
    geomean_ms: float | None
    images_per_s: float | None
    vs_ours: float | None  # geomean of peer_ms / ours_ms over the files both converted; >1: we win
    mean_bytes: float | None
    mean_ssim: float | None
    baseline_rss_kb: int | None
    peak_rss_kb: int | None
    file_errors: list[str] = field(default_factory=list)

    @property
    def delta_rss_kb(self) -> int | None:
        if self.peak_rss_kb is None or self.baseline_rss_kb is None:
            return None
        return self.peak_rss_kb - self.baseline_rss_kb

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "delta_rss_kb": self.delta_rss_kb}


def geomean(values: Collection[float]) -> float | None:
    if not values:
        return None
    return math.exp(statistics.fmean(math.log(v) for v in values))


def summarize(results: list[WorkerResult], only: set[str] | None = None) -> list[PeerRow]:
    """One row per worker result; `only` restricts to those file names (a corpus subset)."""

    def rows_of(result: WorkerResult) -> list[FileResult]:
        return [r for r in result.files if only is None or r.name in only]

    ours = next((r for r in results if r.peer == OURS and r.error is None), None)
    ours_ms = {r.name: r.ms for r in rows_of(ours) if r.ms} if ours else {}
    return [_row(result, rows_of(result), ours_ms) for result in results]


def ours_over_floor(rows: list[PeerRow]) -> float | None:
    """How many times the bare decode our full conversion takes (geomeans over the same files)."""
    by_peer = {r.peer: r for r in rows}
    ours, floor = by_peer.get(OURS), by_peer.get(FLOOR)
    if ours is None or floor is None or ours.vs_ours is None or floor.vs_ours is None:
        return None
    return 1 / floor.vs_ours  # floor.vs_ours is floor_ms / ours_ms over the common files


def _row(result: WorkerResult, files: list[FileResult], ours_ms: Mapping[str, float]) -> PeerRow:
    ok = [f for f in files if f.ms and f.error is None]
    gm = geomean([f.ms for f in ok if f.ms])
    ratios = [f.ms / o for f in ok if f.ms and (o := ours_ms.get(f.name))]
    sizes = [f.bytes for f in ok if f.bytes is not None]
    ssims = [f.ssim for f in ok if f.ssim is not None]
    return PeerRow(
        peer=result.peer,
        version=result.version,
        error=result.error,
        files_ok=len(ok),
        files_total=len(files),
        geomean_ms=gm,
        images_per_s=1000 / gm if gm else None,
        vs_ours=geomean(ratios),
        mean_bytes=statistics.fmean(sizes) if sizes else None,
        mean_ssim=statistics.fmean(ssims) if ssims else None,
        baseline_rss_kb=result.baseline_rss_kb,
        peak_rss_kb=result.peak_rss_kb,
        file_errors=[f"{f.name}: {f.error}" for f in files if f.error],
    )

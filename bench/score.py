"""The scoring pass, after all timing: output size and SSIM of every output any peer wrote."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

from bench.corpus import Source
from bench.job import WorkerResult
from bench.ssim import Reference, decode_luma, ssim


def score(
    sources: list[Source],
    results: list[WorkerResult],
    out_dir: Path,
    progress: Callable[[str], None],
) -> None:
    """Fills width, height and ssim on each FileResult that has an output. One source at a time:
    its full-size reference is decoded once and dropped before the next."""
    for source in sources:
        rows = [
            (result, row)
            for result in results
            for row in result.files
            if row.name == source.name and row.output is not None
        ]
        if not rows:
            continue
        progress(f"scoring {source.name} ({len(rows)} outputs)")
        reference = Reference(source.path)
        for result, row in rows:
            assert row.output is not None
            output = decode_luma(
                (out_dir / result.peer / result.workload / row.output).read_bytes()
            )
            row.height, row.width = output.shape
            row.ssim = ssim(output, reference.luma((row.width, row.height)))
        del reference
        gc.collect()

"""A bounded pool of transcode threads. A call beyond ``threads + queue_depth`` in flight is
refused at once with Overloaded (503 + Retry-After) instead of queueing without bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from appliance.errors import ApplianceError

T = TypeVar("T")


class Overloaded(ApplianceError):
    status = 503
    retry_after = 1  # seconds


class TranscodePool:
    def __init__(self, threads: int, queue_depth: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="transcode")
        self._limit = threads + queue_depth
        self._threads = threads
        self.in_flight = 0  # running + waiting, for /ready and /metrics

    @property
    def saturated(self) -> bool:
        return self.in_flight >= self._limit

    @property
    def queued(self) -> int:
        return max(0, self.in_flight - self._threads)

    async def run(
        self, fn: Callable[[], T], on_start: Callable[[float], object] | None = None
    ) -> T:
        """Runs ``fn`` on a transcode thread. ``on_start`` receives the seconds the call waited
        in the queue (for the queue-wait histogram), from that thread."""
        if self.in_flight >= self._limit:
            raise Overloaded("server busy: transcode queue full, retry shortly")
        self.in_flight += 1
        queued = time.perf_counter()

        def timed() -> T:
            if on_start is not None:
                on_start(time.perf_counter() - queued)
            return fn()

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, timed)
        finally:
            self.in_flight -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)

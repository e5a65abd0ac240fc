"""A bounded pool of transcode threads. A call beyond ``threads + queue_depth`` in flight is
refused at once with Overloaded (503 + Retry-After) instead of queueing without bound."""

from __future__ import annotations

import asyncio
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

    async def run(self, fn: Callable[[], T]) -> T:
        if self.in_flight >= self._limit:
            raise Overloaded("server busy: transcode queue full, retry shortly")
        self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        finally:
            self.in_flight -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)

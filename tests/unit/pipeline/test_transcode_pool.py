"""The bounded transcode pool: a call beyond threads + queue_depth is refused at once."""

from __future__ import annotations

import asyncio
import threading

import pytest

from appliance.pipeline.pool import Overloaded, TranscodePool


def test_refuses_at_once_when_threads_and_queue_are_full(aio) -> None:
    release = threading.Event()
    pool = TranscodePool(threads=1, queue_depth=1)

    async def scenario() -> list[object]:
        running = asyncio.ensure_future(pool.run(release.wait))
        queued = asyncio.ensure_future(pool.run(lambda: "queued"))
        await asyncio.sleep(0)
        assert pool.in_flight == 2 and pool.saturated and pool.queued == 1
        with pytest.raises(Overloaded) as refused:
            await pool.run(lambda: "third")
        assert refused.value.status == 503
        release.set()
        return list(await asyncio.gather(running, queued))

    try:
        assert aio(scenario()) == [True, "queued"]
        assert pool.in_flight == 0 and not pool.saturated
    finally:
        release.set()
        pool.close()


def test_an_exception_in_the_thread_reaches_the_caller_and_frees_the_slot(aio) -> None:
    pool = TranscodePool(threads=1, queue_depth=0)

    def fail() -> None:
        raise ValueError("bad image")

    try:
        with pytest.raises(ValueError, match="bad image"):
            aio(pool.run(fail))
        assert pool.in_flight == 0
        assert aio(pool.run(lambda: 7)) == 7
    finally:
        pool.close()

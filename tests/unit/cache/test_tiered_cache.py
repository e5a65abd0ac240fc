"""TieredCache: read-through with back-fill, single-flight creation, errors, cancellation, stats."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.cache.disk import DiskTier
from appliance.cache.memory import MemoryTier
from appliance.cache.tier import CacheKey, Entry
from appliance.cache.tiered import CacheStats, TieredCache

Run = Callable[[Awaitable[Any]], Any]
KEY = CacheKey("photos/cat.jpg", "w=800|webp")
ENTRY = Entry(b"rendered", "image/webp", '"v1"', 1.7e9, {"w": "800"})
TIMEOUT = 5.0  # only reached when the code under test is broken: a failure, not a hang


class FakeTier:
    """A dict; ``put`` can be held at a gate or made to fail."""

    def __init__(self, name: str, *, gate: asyncio.Event | None = None, broken: bool = False):
        self.name = name
        self.data: dict[CacheKey, Entry] = {}
        self.gate = gate
        self.broken = broken
        self.closed = False

    async def get(self, key: CacheKey) -> Entry | None:
        return self.data.get(key)

    async def put(self, key: CacheKey, entry: Entry) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.broken:
            raise OSError("disk on fire")
        self.data[key] = entry

    async def purge(self, source: str) -> int:
        keys = [key for key in self.data if key.source == source]
        for key in keys:
            del self.data[key]
        return len(keys)

    async def close(self) -> None:
        self.closed = True  # keeps its data, as a disk does


class Creator:
    """A create() that counts its calls, says when it started and waits to be released."""

    def __init__(self, result: Entry | Exception = ENTRY) -> None:
        self.result = result
        self.calls = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self) -> Entry:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def test_a_hit_in_a_later_tier_is_back_filled_into_the_earlier_ones(
    aio: Run, tmp_path: Path
) -> None:
    async def scenario() -> None:
        memory, disk = MemoryTier(1 << 20), DiskTier(tmp_path, 1 << 20)
        cache = TieredCache([memory, disk])
        await disk.put(KEY, ENTRY)
        assert await cache.get(KEY) == (ENTRY, "disk")
        assert await memory.get(KEY) == ENTRY
        assert await cache.get(KEY) == (ENTRY, "memory")
        assert await cache.get(CacheKey("missing.jpg")) is None
        await cache.close()

    aio(asyncio.wait_for(scenario(), TIMEOUT))


def test_get_or_create_answers_from_memory_then_disk_then_creates_and_stores_everywhere(
    aio: Run, tmp_path: Path
) -> None:
    async def scenario() -> None:
        memory, disk = MemoryTier(1 << 20), DiskTier(tmp_path, 1 << 20)
        cache = TieredCache([memory, disk])
        create = Creator()
        create.release.set()

        assert await cache.get_or_create(KEY, create) == (ENTRY, "created")
        await cache.drain()  # the flight writes the disk after answering
        assert await memory.get(KEY) == ENTRY
        assert await disk.get(KEY) == ENTRY
        assert await cache.get_or_create(KEY, create) == (ENTRY, "memory")
        await memory.purge(KEY.source)
        assert await cache.get_or_create(KEY, create) == (ENTRY, "disk")
        assert await memory.get(KEY) == ENTRY  # back-filled
        assert create.calls == 1
        await cache.close()

    aio(asyncio.wait_for(scenario(), TIMEOUT))


def test_ten_concurrent_misses_for_one_key_create_once_and_share_the_entry(
    aio: Run, tmp_path: Path
) -> None:
    async def scenario() -> None:
        cache = TieredCache([MemoryTier(1 << 20), DiskTier(tmp_path, 1 << 20)])
        create = Creator()
        calls = [asyncio.create_task(cache.get_or_create(KEY, create)) for _ in range(10)]
        await create.started.wait()
        create.release.set()
        results = await asyncio.gather(*calls)

        assert create.calls == 1
        assert all(entry is results[0][0] and source == "created" for entry, source in results)
        assert cache.stats() == CacheStats(
            hits={"memory": 0, "disk": 0},
            misses={"memory": 10, "disk": 1},
            created=1,
            create_errors=0,
            coalesced=9,
        )
        await cache.close()

    aio(asyncio.wait_for(scenario(), TIMEOUT))


def test_a_failed_creation_reaches_every_waiter_and_caches_nothing(
    aio: Run, tmp_path: Path
) -> None:
    async def scenario() -> None:
        memory, disk = MemoryTier(1 << 20), DiskTier(tmp_path, 1 << 20)
        cache = TieredCache([memory, disk])
        error = RuntimeError("origin says no")
        failing = Creator(error)
        calls = [asyncio.create_task(cache.get_or_create(KEY, failing)) for _ in range(10)]
        await failing.started.wait()
        failing.release.set()
        results = await asyncio.gather(*calls, return_exceptions=True)

        assert results == [error] * 10
        assert failing.calls == 1
        assert await memory.get(KEY) is None
        assert await disk.get(KEY) is None
        assert cache.stats().create_errors == 1

        working = Creator()
        working.release.set()
        assert await cache.get_or_create(KEY, working) == (ENTRY, "created")  # not stuck
        await cache.close()

    aio(asyncio.wait_for(scenario(), TIMEOUT))


def test_a_cancelled_waiter_does_not_cancel_the_creation_for_the_others(aio: Run) -> None:
    async def scenario() -> None:
        memory = MemoryTier(1 << 20)
        cache = TieredCache([memory])
        create = Creator()
        first, second, third = (
            asyncio.create_task(cache.get_or_create(KEY, create)) for _ in range(3)
        )
        await create.started.wait()
        first.cancel()  # the caller whose create() is running
        with pytest.raises(asyncio.CancelledError):
            await first
        create.release.set()

        assert await second == (ENTRY, "created")
        assert await third == (ENTRY, "created")
        assert create.calls == 1
        assert await memory.get(KEY) == ENTRY
        await cache.close()

    aio(asyncio.wait_for(scenario(), TIMEOUT))


def test_a_creation_whose_waiters_all_left_still_fills_the_cache(aio: Run) -> None:
    async def scenario() -> None:
        memory = MemoryTier(1 << 20)
        cache = TieredCache([memory])
        create = Creator()
        waiters = [asyncio.create_task(cache.get_or_create(KEY, create)) for _ in range(3)]
        await create.started.wait()
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        create.release.set()

        late = Creator()
        entry, _ = await cache.get_or_create(KEY, late)  # joins the flight, or hits memory
        assert entry is ENTRY
        assert (create.calls, late.calls) == (1, 0)
        assert await memory.get(KEY) == ENTRY
        await cache.close()

    aio(asyncio.wait_for(scenario(), TIMEOUT))


def test_waiters_are_released_once_the_first_tier_has_the_entry(aio: Run) -> None:
    async def scenario() -> None:
        slow_disk = FakeTier("disk", gate=asyncio.Event())
        cache = TieredCache([MemoryTier(1 << 20), slow_disk])
        create = Creator()
        create.release.set()
        assert await cache.get_or_create(KEY, create) == (ENTRY, "created")
        assert KEY not in slow_disk.data  # still being written
        assert slow_disk.gate is not None
        slow_disk.gate.set()
        await cache.drain()
        assert slow_disk.data[KEY] == ENTRY
        await cache.close()

    aio(asyncio.wait_for(scenario(), TIMEOUT))


def test_a_purge_during_a_creation_answers_the_waiters_but_stores_nothing(aio: Run) -> None:
    async def scenario() -> None:
        memory = MemoryTier(1 << 20)
        cache = TieredCache([memory])
        stale = Creator()
        waiter = asyncio.create_task(cache.get_or_create(KEY, stale))
        await stale.started.wait()
        assert await cache.purge(KEY.source) == 0
        fresh = Creator(Entry(b"new", "image/webp", '"v2"'))
        after = asyncio.create_task(cache.get_or_create(KEY, fresh))  # does not join the old one
        await fresh.started.wait()
        fresh.release.set()
        assert await after == (fresh.result, "created")
        stale.release.set()  # the old creation ends last, and must not overwrite the new entry
        assert await waiter == (ENTRY, "created")
        await cache.drain()
        assert await memory.get(KEY) == fresh.result
        await cache.close()

    aio(asyncio.wait_for(scenario(), TIMEOUT))


def test_a_tier_that_fails_to_store_costs_a_miss_not_the_request(
    aio: Run, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        memory = MemoryTier(1 << 20)
        cache = TieredCache([memory, FakeTier("disk", broken=True)])
        create = Creator()
        create.release.set()
        with caplog.at_level(logging.ERROR, "appliance.cache.tiered"):
            assert await cache.get_or_create(KEY, create) == (ENTRY, "created")
            await cache.drain()
        assert "cache.put_error tier=disk" in caplog.text
        assert await memory.get(KEY) == ENTRY
        await cache.close()

    aio(asyncio.wait_for(scenario(), TIMEOUT))


def test_stats_count_hits_and_misses_per_tier(aio: Run, tmp_path: Path) -> None:
    async def scenario() -> None:
        memory, disk = MemoryTier(1 << 20), DiskTier(tmp_path, 1 << 20)
        cache = TieredCache([memory, disk])
        create = Creator()
        create.release.set()
        await cache.get_or_create(KEY, create)  # memory miss, disk miss, created
        await cache.drain()
        await cache.get_or_create(KEY, create)  # memory hit
        await cache.get(KEY)  # memory hit
        await memory.purge(KEY.source)
        await cache.get(KEY)  # memory miss, disk hit
        await cache.get(CacheKey("other.jpg"))  # memory miss, disk miss

        stats = cache.stats()
        assert stats.hits == {"memory": 2, "disk": 1}
        assert stats.misses == {"memory": 3, "disk": 2}
        assert (stats.created, stats.create_errors, stats.coalesced) == (1, 0, 0)
        stats.hits["memory"] = 99  # a snapshot: changing it changes nothing
        assert cache.stats().hits["memory"] == 2
        await cache.close()

    aio(asyncio.wait_for(scenario(), TIMEOUT))


def test_close_cancels_flights_in_progress_and_closes_the_tiers(aio: Run) -> None:
    async def scenario() -> None:
        memory = MemoryTier(1 << 20)
        await memory.put(CacheKey("other.jpg"), ENTRY)
        cache = TieredCache([memory])
        create = Creator()
        waiter = asyncio.create_task(cache.get_or_create(KEY, create))
        await create.started.wait()
        await cache.close()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert len(memory) == 0

    aio(asyncio.wait_for(scenario(), TIMEOUT))


def test_close_lets_a_created_entry_finish_its_writes(aio: Run) -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        slow_disk = FakeTier("disk", gate=gate)
        cache = TieredCache([MemoryTier(1 << 20), slow_disk])
        create = Creator()
        create.release.set()
        await cache.get_or_create(KEY, create)
        asyncio.get_running_loop().call_soon(gate.set)
        await cache.close()
        assert KEY in slow_disk.data
        assert slow_disk.closed

    aio(asyncio.wait_for(scenario(), TIMEOUT))


def test_tier_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        TieredCache([FakeTier("memory"), FakeTier("memory")])

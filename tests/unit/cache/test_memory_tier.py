"""MemoryTier: what the contract suite does not see (accounting, the purge index, isolation)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from appliance.cache.memory import ENTRY_OVERHEAD, MemoryTier, entry_size
from appliance.cache.tier import CacheKey, Entry

Run = Callable[[Awaitable[Any]], Any]


def test_an_entry_costs_its_bytes_strings_and_a_fixed_overhead() -> None:
    key = CacheKey("src", "var")
    entry = Entry(b"12345", "image/png", '"e"', None, {"w": "80"})
    assert entry_size(key, entry) == 5 + 3 + 3 + 9 + 3 + 3 + ENTRY_OVERHEAD


def test_bytes_used_follows_puts_overwrites_evictions_and_purges(aio: Run) -> None:
    async def scenario() -> None:
        tier = MemoryTier(100_000)
        a, b = CacheKey("a", "1"), CacheKey("b", "1")
        await tier.put(a, Entry(bytes(1000), "", ""))
        await tier.put(a, Entry(bytes(3000), "", ""))
        await tier.put(b, Entry(bytes(2000), "", ""))
        assert tier.bytes_used == 3000 + 2000 + 2 * (ENTRY_OVERHEAD + 2)
        assert len(tier) == 2
        assert await tier.purge("a") == 1
        assert tier.bytes_used == 2000 + ENTRY_OVERHEAD + 2
        await tier.close()
        assert (tier.bytes_used, len(tier)) == (0, 0)

    aio(scenario())


def test_eviction_and_overwrite_keep_the_purge_index_exact(aio: Run) -> None:
    async def scenario() -> None:
        tier = MemoryTier(8 * (1000 + ENTRY_OVERHEAD + 10))
        for i in range(40):
            await tier.put(CacheKey(f"s{i % 4}", f"v{i}"), Entry(bytes(1000), "", ""))
        survivors = len(tier)
        assert 0 < survivors <= 8
        assert sum([await tier.purge(f"s{i}") for i in range(4)]) == survivors
        assert (tier.bytes_used, len(tier)) == (0, 0)

    aio(scenario())


def test_a_caller_mutating_meta_after_put_does_not_change_the_cached_entry(aio: Run) -> None:
    async def scenario() -> None:
        tier = MemoryTier(100_000)
        entry = Entry(b"x", "image/png", "", None, {"w": "80"})
        await tier.put(CacheKey("a"), entry)
        entry.meta["w"] = "changed"
        cached = await tier.get(CacheKey("a"))
        assert cached is not None and cached.meta == {"w": "80"}

    aio(scenario())


def test_a_negative_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        MemoryTier(-1)

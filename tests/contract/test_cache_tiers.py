"""The contract every cache tier keeps (appliance/cache/tier.py), run against each tier and
against the memory + disk composition, under asyncio and under uvloop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appliance.cache.disk import DiskTier
from appliance.cache.memory import MemoryTier
from appliance.cache.tier import CacheKey, Entry, Tier
from appliance.cache.tiered import TieredCache

Run = Callable[[Awaitable[Any]], Any]
KiB = 1024
BOUND = 256 * KiB


class TieredAsTier:
    """TieredCache.get also says which tier answered; the contract only needs the entry."""

    def __init__(self, cache: TieredCache) -> None:
        self.cache = cache
        self.name = cache.name

    async def get(self, key: CacheKey) -> Entry | None:
        found = await self.cache.get(key)
        return None if found is None else found[0]

    async def put(self, key: CacheKey, entry: Entry) -> None:
        await self.cache.put(key, entry)

    async def purge(self, source: str) -> int:
        return await self.cache.purge(source)

    async def close(self) -> None:
        await self.cache.close()


@dataclass
class Subject:
    tier: Tier
    bounded: list[MemoryTier | DiskTier]  # whose bytes_used must stay within max_bytes


@pytest.fixture(params=["memory", "disk", "tiered"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def subject(kind: str, root: Path, max_bytes: int = BOUND) -> AsyncIterator[Subject]:
    bounded: list[MemoryTier | DiskTier] = []
    if kind in ("memory", "tiered"):
        bounded.append(MemoryTier(max_bytes))
    if kind in ("disk", "tiered"):
        disk = DiskTier(root / "cache", max_bytes)
        await disk.start()
        bounded.append(disk)
    tier: Tier = TieredAsTier(TieredCache(bounded)) if kind == "tiered" else bounded[0]
    try:
        yield Subject(tier, bounded)
    finally:
        await tier.close()


def entry(data: bytes = b"\xff\xd8 some jpeg \x00 bytes", **overrides: Any) -> Entry:
    fields: dict[str, Any] = {
        "data": data,
        "content_type": "image/jpeg",
        "etag": '"abc123"',
        "last_modified": 1_700_000_000.25,
        "meta": {"source_etag": '"s1"', "width": "800", "note": "ünïcode"},
    }
    fields.update(overrides)
    return Entry(**fields)


def test_get_returns_the_bytes_and_metadata_that_put_stored(
    aio: Run, kind: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with subject(kind, tmp_path) as s:
            stored = entry()
            await s.tier.put(CacheKey("photos/cat.jpg", "w=800|webp"), stored)
            assert await s.tier.get(CacheKey("photos/cat.jpg", "w=800|webp")) == stored

            bare = Entry(b"", "application/octet-stream", "", None)  # empty body, no date, no meta
            await s.tier.put(CacheKey("photos/cat.jpg"), bare)
            assert await s.tier.get(CacheKey("photos/cat.jpg")) == bare

    aio(scenario())


def test_get_misses_a_key_never_stored(aio: Run, kind: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with subject(kind, tmp_path) as s:
            assert await s.tier.get(CacheKey("nothing.jpg")) is None
            await s.tier.put(CacheKey("a.jpg", "v1"), entry())
            assert await s.tier.get(CacheKey("a.jpg", "v2")) is None
            assert await s.tier.get(CacheKey("a.jpg")) is None
            assert await s.tier.get(CacheKey("b.jpg", "v1")) is None

    aio(scenario())


def test_put_overwrites_the_previous_entry(aio: Run, kind: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with subject(kind, tmp_path) as s:
            key = CacheKey("a.jpg", "v1")
            await s.tier.put(key, entry(b"old", etag='"1"'))
            await s.tier.put(key, entry(b"new, longer", etag='"2"', last_modified=None))
            assert await s.tier.get(key) == entry(b"new, longer", etag='"2"', last_modified=None)

    aio(scenario())


def test_purge_removes_every_variant_of_one_source_and_counts_them(
    aio: Run, kind: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with subject(kind, tmp_path) as s:
            purged = [CacheKey("a.jpg"), CacheKey("a.jpg", "w=100"), CacheKey("a.jpg", "w=200")]
            kept = [CacheKey("b.jpg", "w=100"), CacheKey("a.jpg2", "w=100"), CacheKey("a", "")]
            for key in purged + kept:
                await s.tier.put(key, entry(key.source.encode() + key.variant.encode()))

            assert await s.tier.purge("a.jpg") == 3
            for key in purged:
                assert await s.tier.get(key) is None
            for key in kept:
                assert await s.tier.get(key) is not None
            assert await s.tier.purge("a.jpg") == 0
            assert await s.tier.purge("never-seen.jpg") == 0

            await s.tier.put(purged[1], entry(b"again"))  # a purged source can be cached again
            assert await s.tier.get(purged[1]) == entry(b"again")

    aio(scenario())


def test_eviction_keeps_the_total_under_the_bound_and_drops_least_recently_used_first(
    aio: Run, kind: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with subject(kind, tmp_path) as s:
            keys = [CacheKey(f"photo-{i}.jpg", "w=100") for i in range(64)]
            for i, key in enumerate(keys):  # 64 x 8,000 bytes is about twice the bound
                await s.tier.put(key, entry(bytes([i]) * 8000))
                assert await s.tier.get(keys[0]) is not None  # keeps keys[0] the most recent
                for tier in s.bounded:
                    assert tier.bytes_used <= tier.max_bytes

            assert await s.tier.get(keys[0]) == entry(bytes([0]) * 8000)
            for key in keys[1:17]:  # the oldest untouched entries went first
                assert await s.tier.get(key) is None
            for i, key in enumerate(keys[-8:], 56):  # the newest are all there
                assert await s.tier.get(key) == entry(bytes([i]) * 8000)
            for tier in s.bounded:
                assert 0 < tier.bytes_used <= tier.max_bytes

    aio(scenario())


def test_an_entry_too_large_for_the_tier_is_not_cached_and_evicts_nothing(
    aio: Run, kind: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with subject(kind, tmp_path) as s:
            small = [CacheKey(f"s{i}.jpg") for i in range(8)]
            for key in small:
                await s.tier.put(key, entry())
            huge = entry(b"h" * (BOUND // 4))  # over the per-entry limit (a fraction of the bound)

            await s.tier.put(CacheKey("huge.jpg"), huge)
            assert await s.tier.get(CacheKey("huge.jpg")) is None
            for key in small:
                assert await s.tier.get(key) == entry()

            await s.tier.put(small[0], huge)  # an overwrite too large drops the old value too
            assert await s.tier.get(small[0]) is None

    aio(scenario())


def test_a_large_entry_within_the_limit_round_trips(aio: Run, kind: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with subject(kind, tmp_path) as s:
            large = entry(bytes(range(256)) * (BOUND // 16 // 256))
            await s.tier.put(CacheKey("large.png", "w=4000"), large)
            assert await s.tier.get(CacheKey("large.png", "w=4000")) == large

    aio(scenario())


AWKWARD_KEYS = [
    CacheKey("фото/猫 🐈.jpg", "w=100|webp"),
    CacheKey("with space/and  two.png", "h=10 w=20"),
    CacheKey("a/b/../../etc/passwd", "../x"),
    CacheKey("100%25/%2F%00.jpg", "%"),
    CacheKey("a/b", "c"),  # must not collide with the next one
    CacheKey("a", "b/c"),
    CacheKey("nul\x00and\nnewline", "\x00"),
    CacheKey("lone \udcff surrogate", "\udc80"),
    CacheKey("x" * 10_000, "y" * 10_000),
    CacheKey("", ""),
]


def test_keys_with_unicode_spaces_slashes_percents_and_great_length_stay_distinct(
    aio: Run, kind: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with subject(kind, tmp_path) as s:
            for i, key in enumerate(AWKWARD_KEYS):
                await s.tier.put(key, entry(str(i).encode(), etag=f'"{i}"'))
            for i, key in enumerate(AWKWARD_KEYS):
                assert await s.tier.get(key) == entry(str(i).encode(), etag=f'"{i}"')
            assert await s.tier.purge(AWKWARD_KEYS[0].source) == 1
            assert await s.tier.purge("x" * 10_000) == 1
            assert await s.tier.get(AWKWARD_KEYS[1]) is not None

    aio(scenario())

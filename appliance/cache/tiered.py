"""Read-through over an ordered list of tiers (memory, then disk), with single-flight creation.

``get_or_create(key, create)``: every caller looks in the first tier (memory) itself, so a
memory hit costs no task. On a miss, concurrent callers for one key share one *flight*: a task
that looks in the later tiers and, on a miss there, awaits ``create()`` once. Waiters await the
flight through ``asyncio.shield``: a cancelled waiter leaves it running for the others, and a
flight whose waiters are all gone still finishes and fills the cache. If ``create()`` raises,
every waiter gets that exception and nothing is stored. The waiters are released as soon as the
first tier holds the entry; the flight then writes the later tiers (the disk) before it ends, so
a caller arriving meanwhile finds the entry in memory or joins the finished flight, and never
creates it again.

``purge(source)`` detaches that source's flights, which still answer their waiters but store
nothing; a ``get`` that raced a purge does not back-fill.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from appliance.cache.tier import CacheKey, Entry, Tier

log = logging.getLogger(__name__)

CREATED = "created"


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters since start, for the metrics module. ``hits``/``misses`` are per tier name.
    Each call looks in the first tier and counts there; a flight's lookups in the later tiers
    count once however many callers joined it (those count in ``coalesced``)."""

    hits: dict[str, int]
    misses: dict[str, int]
    created: int  # create() calls that returned an entry
    create_errors: int  # create() calls that raised
    coalesced: int  # get_or_create calls that joined a flight already in progress


@dataclass(slots=True)
class _Flight:
    future: asyncio.Future[tuple[Entry, str]]  # what the waiters await
    store: bool = True  # cleared by a purge of the key's source


class TieredCache:
    """Tiers in lookup order, fastest first. ``get`` returns the entry and the name of the tier
    that had it ("memory", "disk"); ``get_or_create`` also answers "created"."""

    name = "tiered"

    def __init__(self, tiers: Sequence[Tier]) -> None:
        names = [tier.name for tier in tiers]
        if len(set(names)) != len(names) or CREATED in names:
            raise ValueError(f"tier names must be unique and not {CREATED!r}: {names}")
        self.tiers = list(tiers)
        self._flights: dict[CacheKey, _Flight] = {}
        self._running: dict[asyncio.Task[None], _Flight] = {}  # with flights a purge detached
        self._hits = dict.fromkeys(names, 0)
        self._misses = dict.fromkeys(names, 0)
        self._created = self._create_errors = self._coalesced = 0
        self._purges = 0

    def stats(self) -> CacheStats:
        return CacheStats(
            dict(self._hits),
            dict(self._misses),
            self._created,
            self._create_errors,
            self._coalesced,
        )

    async def get(self, key: CacheKey) -> tuple[Entry, str] | None:
        """Tries each tier in order; a hit in a later tier is back-filled into the earlier ones."""
        purges = self._purges
        found = await self._lookup(key, 0)
        if found is None:
            return None
        index, entry = found
        if self._purges == purges:
            for tier in self.tiers[:index]:
                await self._put(tier, key, entry)
        return entry, self.tiers[index].name

    async def put(self, key: CacheKey, entry: Entry) -> None:
        for tier in self.tiers:
            await self._put(tier, key, entry)

    async def get_or_create(
        self, key: CacheKey, create: Callable[[], Awaitable[Entry]]
    ) -> tuple[Entry, str]:
        found = await self._lookup(key, 0, 1)
        if found is not None:
            return found[1], self.tiers[0].name
        flight = self._flights.get(key)
        if flight is None:
            flight = self._start(key, create)
        else:
            self._coalesced += 1
        return await asyncio.shield(flight.future)

    async def purge(self, source: str) -> int:
        """Purges every tier; returns the largest count any tier reported (they overlap)."""
        self._purges += 1
        for key in [key for key in self._flights if key.source == source]:
            self._flights.pop(key).store = False
        counts = [await tier.purge(source) for tier in self.tiers]
        return max(counts, default=0)

    async def drain(self) -> None:
        """Waits for the flights in progress, creations and their writes to the later tiers."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def close(self) -> None:
        """Cancels the creations still running, lets finished ones end their writes, then
        closes the tiers, last first."""
        for task, flight in self._running.items():
            if not flight.future.done():
                task.cancel()
        await self.drain()
        for tier in reversed(self.tiers):
            await tier.close()

    def _start(self, key: CacheKey, create: Callable[[], Awaitable[Entry]]) -> _Flight:
        future: asyncio.Future[tuple[Entry, str]] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_consume)
        flight = self._flights[key] = _Flight(future)
        task = asyncio.create_task(self._fly(key, create, flight))
        self._running[task] = flight
        task.add_done_callback(self._running.pop)
        return flight

    async def _fly(
        self, key: CacheKey, create: Callable[[], Awaitable[Entry]], flight: _Flight
    ) -> None:
        future = flight.future
        try:
            found = await self._lookup(key, 1)
            if found is None:
                try:
                    entry = await create()
                except Exception as e:
                    self._create_errors += 1
                    log.debug(
                        "cache.create_failed source=%r variant=%r error=%r",
                        key.source,
                        key.variant,
                        e,
                    )
                    future.set_exception(e)
                    return
                self._created += 1
                targets, label = self.tiers, CREATED
            else:
                index, entry = found
                targets, label = self.tiers[:index], self.tiers[index].name
            for tier in targets:
                if flight.store:
                    await self._put(tier, key, entry)
                if not future.done():  # released once the first (fastest) tier has it
                    future.set_result((entry, label))
            if not future.done():
                future.set_result((entry, label))
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as e:  # a tier that broke its contract and raised on get
            if not future.done():
                future.set_exception(e)
        finally:
            if not future.done():  # KeyboardInterrupt, SystemExit: no waiter may hang
                future.cancel()
            if self._flights.get(key) is flight:
                del self._flights[key]

    async def _lookup(
        self, key: CacheKey, start: int, stop: int | None = None
    ) -> tuple[int, Entry] | None:
        for index, tier in enumerate(self.tiers[start:stop], start):
            entry = await tier.get(key)
            if entry is not None:
                self._hits[tier.name] += 1
                return index, entry
            self._misses[tier.name] += 1
        return None

    @staticmethod
    async def _put(tier: Tier, key: CacheKey, entry: Entry) -> None:
        """A failed write costs a future miss, never the request."""
        try:
            await tier.put(key, entry)
        except Exception:
            log.exception(
                "cache.put_error tier=%s source=%r variant=%r", tier.name, key.source, key.variant
            )


def _consume(future: asyncio.Future[tuple[Entry, str]]) -> None:
    """Marks the exception retrieved, so a flight whose waiters were all cancelled logs no
    'exception was never retrieved'."""
    if not future.cancelled():
        future.exception()

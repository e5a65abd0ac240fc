"""The protocol every cache tier implements. Each tier passes the same contract suite
(tests/contract/test_cache_tiers.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CacheKey:
    """``source`` is the original's key: purging it removes every variant of it. ``variant``
    identifies one rendering (canonical transform + output format + source identity); the
    original itself is cached under ``variant == ""``."""

    source: str
    variant: str = ""


@dataclass(frozen=True, slots=True)
class Entry:
    data: bytes
    content_type: str
    etag: str  # the ETag we serve for these bytes
    last_modified: float | None = None
    meta: Mapping[str, str] = field(default_factory=dict)  # small extras (source etag, dims)


class Tier(Protocol):
    """``get`` and ``put`` are best effort: a storage fault is a miss (logged), never an
    exception. ``purge`` does raise: a purge must not fail silently."""

    name: str  # "memory", "disk": for metrics

    async def get(self, key: CacheKey) -> Entry | None: ...

    async def put(self, key: CacheKey, entry: Entry) -> None: ...

    async def purge(self, source: str) -> int:
        """Removes the original and every variant of ``source``; returns how many entries this
        call removed."""
        ...

    async def close(self) -> None: ...

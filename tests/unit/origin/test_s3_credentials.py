"""The credential cache of the S3 origin: off the loop, cached until close to expiry, and
looked up again (at most every retry interval) while the chain has nothing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials

from appliance.origin import credentials as module
from appliance.origin.credentials import CredentialCache

T = TypeVar("T")
Run = Callable[[Awaitable[T]], T]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Chain:
    """Stands in for botocore's chain: returns ``found`` (None: nothing yet), counts calls."""

    def __init__(self, found: Any = None) -> None:
        self.found = found
        self.calls = 0
        self.threads: set[int] = set()

    def __call__(self) -> Any:
        self.calls += 1
        self.threads.add(threading.get_ident())
        if isinstance(self.found, Exception):
            raise self.found
        return self.found


def _refreshable(expires_in: timedelta, refreshes: list[int]) -> RefreshableCredentials:
    def refresh() -> dict[str, str]:
        refreshes.append(threading.get_ident())
        return {
            "access_key": f"AKID{len(refreshes)}",
            "secret_key": "secret",
            "token": "token",
            "expiry_time": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        }

    return RefreshableCredentials.create_from_metadata(
        metadata={
            "access_key": "AKID0",
            "secret_key": "secret",
            "token": "token",
            "expiry_time": (datetime.now(UTC) + expires_in).isoformat(),
        },
        refresh_using=refresh,
        method="iam-role",
    )


def test_no_credentials_then_a_role_attached_later(aio: Run[Any]) -> None:
    clock, chain = Clock(), Chain()
    cache = CredentialCache(chain, retry_seconds=30.0, clock=clock)
    assert aio(cache.get()) is None
    clock.now += 10
    assert aio(cache.get()) is None
    assert chain.calls == 1  # not asked again within the retry interval
    chain.found = Credentials("AKID", "secret")
    clock.now += 21
    assert aio(cache.get()) == ReadOnlyCredentials("AKID", "secret", None)
    assert chain.calls == 2


def test_lookups_and_freezing_run_off_the_event_loop(aio: Run[Any]) -> None:
    refreshes: list[int] = []
    chain = Chain(_refreshable(timedelta(minutes=5), refreshes))  # inside botocore's window
    frozen = aio(CredentialCache(chain).get())
    assert frozen.access_key == "AKID1"  # refreshed, in a thread
    assert refreshes and threading.get_ident() not in refreshes
    assert threading.get_ident() not in chain.threads


def _count_freezes(credentials: Credentials) -> list[int]:
    """Records the thread of every get_frozen_credentials() call."""
    freezes: list[int] = []
    real_freeze = credentials.get_frozen_credentials

    def counting_freeze() -> ReadOnlyCredentials:
        freezes.append(threading.get_ident())
        return real_freeze()

    credentials.get_frozen_credentials = counting_freeze
    return freezes


def test_static_credentials_are_frozen_once_per_recheck_interval(aio: Run[Any]) -> None:
    clock = Clock()
    static = Credentials("AKID", "secret")
    freezes = _count_freezes(static)
    cache = CredentialCache(Chain(static), clock=clock)

    async def many() -> None:
        for _ in range(10):
            await cache.get()

    aio(many())
    assert len(freezes) == 1
    assert threading.get_ident() not in freezes
    clock.now += module.RECHECK_SECONDS
    aio(cache.get())
    assert len(freezes) == 2


@pytest.mark.parametrize(
    ("expires_in", "fresh_for"),
    [
        (timedelta(hours=6), module.RECHECK_SECONDS),
        (timedelta(minutes=16), 60.0),  # until botocore's 15-minute refresh window
        (timedelta(minutes=15, seconds=3), module.MIN_RECHECK_SECONDS),
    ],
)
def test_temporary_credentials_are_cached_until_close_to_expiry(
    aio: Run[Any], expires_in: timedelta, fresh_for: float
) -> None:
    clock, refreshes = Clock(), list[int]()
    temporary = _refreshable(expires_in, refreshes)
    freezes = _count_freezes(temporary)
    cache = CredentialCache(Chain(temporary), clock=clock)
    aio(cache.get())
    clock.now += fresh_for - 1.5
    aio(cache.get())
    assert len(freezes) == 1
    clock.now += 1.5
    aio(cache.get())
    assert len(freezes) == 2  # frozen again; botocore decides whether that refreshes
    assert refreshes == []  # none of these was inside botocore's refresh window


def test_invalidate_asks_the_chain_again(aio: Run[Any]) -> None:
    clock, chain = Clock(), Chain(Credentials("AKID", "secret"))
    cache = CredentialCache(chain, retry_seconds=30.0, clock=clock)
    aio(cache.get())
    cache.invalidate()
    assert aio(cache.get()) is None  # the last lookup was less than 30 s ago
    clock.now += 30
    assert aio(cache.get()) is not None
    assert chain.calls == 2


def test_a_failing_chain_is_retried_later(aio: Run[Any]) -> None:
    clock, chain = Clock(), Chain(OSError("broken config file"))
    cache = CredentialCache(chain, retry_seconds=30.0, clock=clock)
    assert aio(cache.get()) is None
    chain.found = Credentials("AKID", "secret")
    clock.now += 30
    assert aio(cache.get()) is not None


def test_the_default_chain_reads_the_environment(
    aio: Run[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert aio(CredentialCache().get()).access_key == "AKIDFROMENV"


def test_concurrent_callers_share_one_lookup(aio: Run[Any]) -> None:
    release = threading.Event()

    class SlowChain(Chain):
        def __call__(self) -> Any:
            release.wait(5)
            return super().__call__()

    chain = SlowChain(Credentials("AKID", "secret"))
    cache = CredentialCache(chain)

    async def many() -> list[Any]:
        waiting = [asyncio.ensure_future(cache.get()) for _ in range(5)]
        await asyncio.sleep(0.01)
        release.set()
        return list(await asyncio.gather(*waiting))

    assert [frozen.access_key for frozen in aio(many())] == ["AKID"] * 5
    assert chain.calls == 1


def test_a_cancelled_caller_does_not_lose_the_lookup(aio: Run[Any]) -> None:
    release = threading.Event()

    class SlowChain(Chain):
        def __call__(self) -> Any:
            release.wait(5)
            return super().__call__()

    chain = SlowChain(Credentials("AKID", "secret"))
    cache = CredentialCache(chain, retry_seconds=3600.0)

    async def cancel_then_ask() -> Any:
        first = asyncio.ensure_future(cache.get())
        await asyncio.sleep(0.01)
        first.cancel()
        release.set()
        return await cache.get()

    assert aio(cancel_then_ask()).access_key == "AKID"
    assert chain.calls == 1

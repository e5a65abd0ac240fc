"""Shared pytest configuration for every test suite."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running test (deselect with -m 'not slow')")


@pytest.fixture(params=["asyncio", "uvloop"])
def aio(request: pytest.FixtureRequest) -> Iterator[Callable[[Awaitable[T]], T]]:
    """Runs a coroutine to completion on a fresh event loop, once under plain asyncio and once
    under uvloop (the server's loop): ``def test_x(aio): assert aio(thing()) == 1``."""
    if request.param == "uvloop":
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    else:
        runner = asyncio.Runner()
    with runner:

        def run(coro: Awaitable[Any]) -> Any:
            return runner.run(coro)  # type: ignore[arg-type]

        yield run

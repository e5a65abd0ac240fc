"""AWS credentials for the S3 origin, from botocore's standard chain (environment, shared
config and credentials files, container role, instance role through IMDSv2), kept off the
event loop.

botocore's lookups and the refresh of temporary credentials block (files, IMDS calls), so they
run in a thread and their frozen result is cached until shortly before it expires. When the
chain finds nothing (an instance started before its role was attached) it is asked again, at
most every ``retry_seconds``, so the role is picked up without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import botocore.session
from botocore.credentials import Credentials, ReadOnlyCredentials

log = logging.getLogger(__name__)

CredentialsProvider = Callable[[], Credentials | None]

REFRESH_MARGIN = 15 * 60.0  # botocore refreshes temporary credentials 15 min before expiry
RECHECK_SECONDS = 5 * 60.0  # re-freeze at least this often, whatever the expiry
MIN_RECHECK_SECONDS = 5.0  # ...and at most this often, even when a refresh keeps failing


def default_credentials() -> Credentials | None:
    """The standard chain, from a new botocore session each time (so a role attached since the
    last call is found). Blocking: call it in a thread."""
    credentials: Credentials | None = botocore.session.get_session().get_credentials()
    return credentials


class CredentialCache:
    """Frozen credentials for signing, refreshed in a thread when close to expiry."""

    def __init__(
        self,
        provider: CredentialsProvider | None = None,
        *,
        retry_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provider = provider if provider is not None else default_credentials
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._source: Credentials | None = None
        self._frozen: ReadOnlyCredentials | None = None
        self._fresh_until = -math.inf
        self._next_lookup = -math.inf
        self._refreshing: asyncio.Task[ReadOnlyCredentials | None] | None = None

    async def get(self) -> ReadOnlyCredentials | None:
        """The credentials to sign with, or None when the chain has none (yet). Concurrent
        callers share one lookup, which completes even if they are cancelled."""
        if self._frozen is not None and self._clock() < self._fresh_until:
            return self._frozen
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())
        return await asyncio.shield(self._refreshing)

    async def _refresh(self) -> ReadOnlyCredentials | None:
        now = self._clock()
        if self._source is None:
            self._source = await self._look_up(now)
            if self._source is None:
                return None
        try:
            frozen = await asyncio.to_thread(self._source.get_frozen_credentials)
        except Exception as exc:  # botocore raises many kinds when a refresh fails
            log.warning("origin.credentials_refresh_failed origin=s3 error=%r", exc)
            self._source, self._frozen = None, None
            return None
        self._frozen = frozen
        self._fresh_until = now + _seconds_until_recheck(self._source)
        return frozen

    def invalidate(self) -> None:
        """Forgets the credentials (S3 said they are expired or unknown): the next get() asks
        the chain again, no sooner than ``retry_seconds`` after the last time it did."""
        log.info("origin.credentials_invalidated origin=s3")
        self._source, self._frozen, self._fresh_until = None, None, -math.inf

    async def _look_up(self, now: float) -> Credentials | None:
        if now < self._next_lookup:
            return None
        self._next_lookup = now + self._retry_seconds
        try:
            source = await asyncio.to_thread(self._provider)
        except Exception as exc:  # a broken config file must not take the origin down for good
            log.warning("origin.credentials_lookup_failed origin=s3 error=%r", exc)
            return None
        if source is None:
            log.warning("origin.credentials_missing origin=s3 retry_in=%.0fs", self._retry_seconds)
            return None
        log.info("origin.credentials_found origin=s3 method=%s", getattr(source, "method", "?"))
        return source


def _seconds_until_recheck(source: Any) -> float:
    """Until REFRESH_MARGIN before expiry (when botocore starts refreshing), within
    [MIN_RECHECK_SECONDS, RECHECK_SECONDS]. Static credentials have no expiry."""
    expiry = getattr(source, "_expiry_time", None)  # RefreshableCredentials' expiry, a datetime
    if not isinstance(expiry, datetime):
        return RECHECK_SECONDS
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=UTC)
    remaining = (expiry - datetime.now(UTC)).total_seconds() - REFRESH_MARGIN
    return min(RECHECK_SECONDS, max(MIN_RECHECK_SECONDS, remaining))

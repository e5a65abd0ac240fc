"""A blocking EC2 instance metadata client (IMDSv2 only) for the boot units.

The token flow: ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds``, then
every ``GET`` carries ``X-aws-ec2-metadata-token``. Connection errors, timeouts, 429 and 5xx
are retried with exponential backoff; a request gives up after ``attempts`` tries, so the time
it can take is bounded by ``attempts * timeout + sum(backoff)`` (about 9.4 s with the
defaults). A 401 (the token expired or IMDS restarted) fetches a new token once and retries.

Outcomes:
- ``get(path)`` returns the body, ``None`` for 404, and raises ``ImdsUnavailable`` when IMDS
  cannot be reached or refuses us (not on EC2, IMDS turned off, hop limit too low).
- ``instance_type()``, ``instance_id()``, ``region()`` never raise: ``None`` when unknown.
- ``user_data()`` returns the bytes, ``None`` when the instance has no user-data (404), and
  raises ``ImdsUnavailable`` when IMDS cannot be reached, so that a caller can keep its last
  good configuration instead of treating the instance as unconfigured.

Once one request has found IMDS unreachable (or refusing tokens), later requests of the same
client fail at once rather than spend the retries again (a laptop or CI machine is not on EC2).

The base URL is ``http://169.254.169.254`` unless given, or set by the environment variable
``APPLIANCE_IMDS_URL`` (tests and the local image point it at the fake IMDS). Standard library
only, and no proxy is ever used (http.client ignores ``http_proxy``).
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import time
from collections.abc import Callable
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DEFAULT_URL = "http://169.254.169.254"
ENV_URL = "APPLIANCE_IMDS_URL"
TOKEN_TTL_SECONDS = 21600  # the longest IMDS allows
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d+")


class ImdsUnavailable(Exception):
    """IMDS could not be reached, or it refused us, after the retries."""


class _Retryable(Exception):
    """One attempt failed in a way that another attempt may not."""


class Imds:
    """The IMDSv2 client. Not thread-safe; a boot unit uses one client from one thread."""

    def __init__(
        self,
        base_url: str | None = None,
        timeout: float = 2.0,
        attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        *,
        backoff: float = 0.2,
        max_backoff: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        url = base_url or os.environ.get(ENV_URL) or DEFAULT_URL
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"IMDS URL must be http://host[:port], not {url!r}")
        self.base_url = url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._sleep = sleep
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._clock = clock
        self._token: str | None = None
        self._token_until = 0.0
        self._unreachable: str | None = None  # why, once a request has given up

    # -- the helpers ---------------------------------------------------------------------

    def instance_type(self) -> str | None:
        return self._text("meta-data/instance-type")

    def instance_id(self) -> str | None:
        return self._text("meta-data/instance-id")

    def region(self) -> str | None:
        """From ``placement/region``, else the availability zone without its letter."""
        region = self._text("meta-data/placement/region")
        if region:
            return region
        zone = self._text("meta-data/placement/availability-zone")
        if not zone:
            return None
        match = _REGION.match(zone)
        return match.group(0) if match else zone[:-1] or None

    def user_data(self) -> bytes | None:
        """The user-data; ``None`` when there is none. Raises ``ImdsUnavailable``."""
        return self.get("user-data")

    # -- the primitive -------------------------------------------------------------------

    def get(self, path: str) -> bytes | None:
        """``GET /latest/<path>``: the body, or ``None`` for 404. Raises ``ImdsUnavailable``."""
        path = "/latest/" + path.removeprefix("/").removeprefix("latest/")
        retried_token = False
        while True:
            token = self._get_token()
            status, body = self._request("GET", path, {TOKEN_HEADER: token})
            if status == 200:
                return body
            if status == 404:
                return None
            if status == 401 and not retried_token:
                retried_token = True
                self._token = None
                continue
            raise self._give_up(f"GET {path}: HTTP {status}", remember=False)

    def _text(self, path: str) -> str | None:
        try:
            body = self.get(path)
        except ImdsUnavailable:
            return None
        if body is None:
            return None
        text = body.decode("utf-8", "replace").strip()
        return text or None

    def _get_token(self) -> str:
        if self._token is not None and self._clock() < self._token_until:
            return self._token
        started = self._clock()
        status, body = self._request(
            "PUT", "/latest/api/token", {TTL_HEADER: str(TOKEN_TTL_SECONDS)}
        )
        if status != 200 or not body:  # 403: IMDS turned off for this instance
            raise self._give_up(f"PUT /latest/api/token: HTTP {status}", remember=True)
        self._token = body.decode("ascii", "replace").strip()
        self._token_until = started + TOKEN_TTL_SECONDS - 60  # renew a minute early
        return self._token

    def _request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        """One request with the retries; the final status and body. Raises ImdsUnavailable
        when every attempt failed to connect or got a retryable status."""
        if self._unreachable is not None:
            raise ImdsUnavailable(self._unreachable)
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                return self._attempt(method, path, headers)
            except _Retryable as e:
                reason = str(e)
            if attempt == self._attempts:
                break
            log.info(
                "imds.retry method=%s path=%s attempt=%d reason=%r delay=%.2f",
                method,
                path,
                attempt,
                reason,
                delay,
            )
            self._sleep(delay)
            delay = min(delay * 2, self._max_backoff)
        raise self._give_up(f"{method} {path}: {reason} ({self._attempts} attempts)", remember=True)

    def _give_up(self, reason: str, remember: bool) -> ImdsUnavailable:
        """Logs and returns the error; ``remember``: later requests fail at once."""
        if remember:
            self._unreachable = reason
        log.warning("imds.unavailable url=%s reason=%r", self.base_url, reason)
        return ImdsUnavailable(reason)

    def _attempt(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            connection.request(method, self._prefix + path, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as e:
            raise _Retryable(f"{type(e).__name__}: {e}".rstrip(": ")) from None
        finally:
            connection.close()
        if response.status in _RETRY_STATUSES:
            raise _Retryable(f"HTTP {response.status}")
        return response.status, body

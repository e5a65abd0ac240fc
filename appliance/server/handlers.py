"""HTTP handlers: the only place where errors become HTTP responses."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime

from aiohttp import web

from appliance.cache.tier import CacheKey, Entry
from appliance.cache.tiered import TieredCache
from appliance.config import Config
from appliance.errors import ApplianceError
from appliance.origin.base import Origin, Original, OriginError
from appliance.pipeline.pool import Overloaded, TranscodePool
from appliance.pipeline.render import render, variant_etag
from appliance.request.negotiate import accepted
from appliance.request.parse import ParsedRequest, Parser
from appliance.request.signature import verify
from appliance.server.metrics import Metrics
from appliance.server.peers import Peers
from appliance.server.welcome import render_welcome, sample_names

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
METRICS = web.AppKey("metrics", Metrics)


@dataclass(slots=True)
class Components:
    """Everything a request needs, built once per worker by server/app.py."""

    config: Config
    origin: Origin
    originals: TieredCache
    variants: TieredCache
    pool: TranscodePool
    metrics: Metrics
    parse: Parser
    peers: Peers | None = None  # the sibling workers, for purges
    draining: bool = False


def error_response(components: Components, error: ApplianceError) -> web.Response:
    """A one-line reason, with a TTL by status: short for 4xx, none for 5xx."""
    http = components.config.http
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if error.status == 404:
        headers["Cache-Control"] = f"public, max-age={http.ttl_not_found}"
    elif 400 <= error.status < 500:
        headers["Cache-Control"] = f"public, max-age={http.ttl_client_error}"
    else:
        headers["Cache-Control"] = "no-store"
    if isinstance(error, Overloaded):
        headers["Retry-After"] = str(error.retry_after)
    return web.Response(status=error.status, text=error.public_message + "\n", headers=headers)


def _not_modified(request: web.Request, etag: str, last_modified: float | None) -> bool:
    inm = request.headers.get("If-None-Match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or etag in tags
    ims = request.headers.get("If-Modified-Since")
    if ims and last_modified is not None:
        try:
            return int(last_modified) <= parsedate_to_datetime(ims).timestamp()
        except (TypeError, ValueError):
            return False
    return False


class ImageRequest:
    """One GET/HEAD of an image: parse → verify → variant cache → original → transcode."""

    def __init__(self, components: Components, request: web.Request) -> None:
        self.c = components
        self.request = request
        self.spans: dict[str, float] = {}  # Server-Timing, seconds

    async def respond(self) -> web.StreamResponse:
        path, _, query = self.request.raw_path.partition("?")
        signing = self.c.config.signing
        if signing.enabled:
            verify(path, query, signing.keys, now=time.time())
        parsed = self.c.parse(path, query)
        t = parsed.transform
        if t.format == "original" or (
            t.is_identity and self.c.config.images.pass_through_originals
        ):
            entry, source = await self.original(parsed.key)
            self.c.metrics.cache[("original", source)] += 1
            return self.send(entry, vary=False, source=source)
        return await self.variant(parsed)

    async def original(self, key: str) -> tuple[Entry, str]:
        async def fetch() -> Entry:
            start = time.perf_counter()
            original = await self.c.origin.fetch(key)
            self.spans["fetch"] = time.perf_counter() - start
            self.c.metrics.latency["fetch"].observe(self.spans["fetch"])
            self.c.metrics.bytes_in += len(original.data)
            return Entry(
                original.data,
                original.content_type or "application/octet-stream",
                original.etag,
                original.last_modified,
            )

        return await self.c.originals.get_or_create(CacheKey(key), fetch)

    def output_format(self, parsed: ParsedRequest) -> tuple[str | None, bool]:
        """The format to encode (None: the source's family) and whether it depends on Accept.
        Decided before the original is fetched, so it can be part of the cache key."""
        requested = parsed.transform.format
        if requested != "auto":
            return requested, False
        q: dict[str, float] = {
            f: v for f, v in accepted(self.request.headers.get("Accept")).items()
        }
        preference = self.c.config.images.auto_formats
        taken = [f for f in preference if q.get(f, 0.0) > 0]
        if taken:  # the client's q first, then our preference
            return max(taken, key=lambda f: (q[f], -preference.index(f))), True
        # None: the source's fallback (JPEG, or PNG with alpha), decided once it is probed.
        return parsed.fallback_format, True

    async def variant(self, parsed: ParsedRequest) -> web.StreamResponse:
        fmt, vary = self.output_format(parsed)
        variant = f"{parsed.transform.canonical()}|{fmt or ('fallback' if vary else 'same')}"
        key = CacheKey(parsed.key, variant)
        hit = await self.c.variants.get(key)
        if hit is not None:
            self.c.metrics.cache[("variant", hit[1])] += 1
            return self.send(hit[0], vary=vary, source=hit[1])
        stored, _ = await self.original(parsed.key)
        original = Original(
            parsed.key, stored.data, stored.etag, stored.last_modified, stored.content_type
        )
        etag = variant_etag(original, variant)
        if _not_modified(self.request, etag, original.last_modified):
            # The ETag is known without transcoding: answer 304 straight away.
            return self.send(
                Entry(b"", "", etag, original.last_modified), vary=vary, source="revalidated"
            )
        images = self.c.config.images

        loop = asyncio.get_running_loop()
        queue_wait = self.c.metrics.latency["queue"]

        async def create() -> Entry:
            start = time.perf_counter()
            rendered = await self.c.pool.run(
                lambda: render(original, parsed.transform, fmt, variant, images, negotiated=vary),
                # measured on the transcode thread, recorded on the loop's
                on_start=lambda waited: loop.call_soon_threadsafe(queue_wait.observe, waited),
            )
            self.c.metrics.latency["transcode"].observe(time.perf_counter() - start)
            self.spans.update(rendered.timings)
            return rendered.entry

        # get_or_create looks in memory once more: another request may have made this variant
        # while we fetched the original (one dict lookup), and joins its flight if still running.
        entry, source = await self.c.variants.get_or_create(key, create)
        self.c.metrics.cache[("variant", source)] += 1
        return self.send(entry, vary=vary, source=source)

    def send(self, entry: Entry, *, vary: bool, source: str) -> web.Response:
        timing = [f"{name};dur={s * 1000:.1f}" for name, s in self.spans.items()]
        headers = {
            "ETag": entry.etag,
            "Cache-Control": f"public, max-age={self.c.config.http.ttl_ok}",
            "Server-Timing": ", ".join([*timing, f'cache;desc="{source}"']),
        }
        if entry.last_modified is not None:
            headers["Last-Modified"] = formatdate(entry.last_modified, usegmt=True)
        if vary:
            headers["Vary"] = "Accept"
        if _not_modified(self.request, entry.etag, entry.last_modified):
            return web.Response(status=304, headers=headers)
        self.c.metrics.bytes_out += len(entry.data)
        return web.Response(body=entry.data, content_type=entry.content_type, headers=headers)


def image_handler(components: Components) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await ImageRequest(components, request).respond()
        except ApplianceError as error:
            if error.status >= 500:
                log.warning(
                    "request.failed path=%s status=%d error=%s",
                    request.path,
                    error.status,
                    error.public_message,
                )
            return error_response(components, error)

    return handle


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    metrics.in_flight += 1
    try:
        response = await handler(request)
    except web.HTTPException as e:
        metrics.requests[str(e.status)] += 1
        raise
    finally:
        metrics.in_flight -= 1
    metrics.requests[str(response.status)] += 1
    return response


def welcome_handler(components: Components) -> Handler:
    page = render_welcome(components.config, sample_names(components.config))

    async def welcome(_: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html", charset="utf-8")

    return welcome


def boot_problems(path: str | None) -> list[str]:
    """The lines of the boot-time problems file (``{"user-data": [lines], ...}``), each
    prefixed with its source; none when there is no file. A file that cannot be read is itself
    a problem worth reporting."""
    if not path:
        return []
    try:
        with open(path, "rb") as f:
            document = json.load(f)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        return [f"{path}: unreadable ({e})"]
    if not isinstance(document, dict):
        return [f"{path}: not a JSON object"]
    return [
        f"{source}: {line}"
        for source, lines in sorted(document.items())
        for line in (lines if isinstance(lines, list) else [lines])
    ]


async def health(_: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def ready_handler(components: Components) -> Handler:
    async def ready(_: web.Request) -> web.Response:
        problems = boot_problems(components.config.server.problems_file)
        if components.draining:
            problems.append("draining: shutting down")
        if components.pool.saturated:
            problems.append("saturated: the transcode queue is full")
        try:
            await components.origin.check()
        except OriginError as e:
            problems.append(f"origin: {e.public_message}")
        if problems:
            return web.Response(status=503, text="\n".join(problems) + "\n")
        return web.Response(text="ready\n")

    return ready


def metrics_handler(components: Components) -> Handler:
    async def metrics(_: web.Request) -> web.Response:
        gauges = {
            "transcode_in_flight": float(components.pool.in_flight),
            "transcode_queued": float(components.pool.queued),
        }
        text = components.metrics.render(gauges)
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    return metrics


def purge_handler(components: Components) -> Handler:
    async def purge(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        removed = await components.variants.purge(key) + await components.originals.purge(key)
        workers = components.peers.tell_others(key) if components.peers else 0
        log.info("cache.purge key=%s entries=%d workers_told=%d", key, removed, workers)
        return web.json_response({"key": key, "purged": removed, "workers_told": workers})

    return purge


async def purge_memory(components: Components, key: str) -> int:
    """A sibling's purge: drop this worker's memory copies (the disk tier is shared)."""
    removed = 0
    for cache in (components.variants, components.originals):
        for tier in cache.tiers:
            if tier.name == "memory":
                removed += await tier.purge(key)
    log.info("cache.purge_from_peer key=%s entries=%d", key, removed)
    return removed

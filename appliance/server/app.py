"""The composition root: builds every component from the Config, in order, and tears them
down in reverse. Nothing else in the package constructs origins, caches or pools."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

from aiohttp import web

from appliance.cache.disk import DiskTier
from appliance.cache.memory import MemoryTier
from appliance.cache.tier import Tier
from appliance.cache.tiered import TieredCache
from appliance.config import Config, OriginConfig
from appliance.origin.base import Origin
from appliance.pipeline.pool import TranscodePool
from appliance.request.parse import ParseOptions, Parser
from appliance.server import handlers
from appliance.server.handlers import Components
from appliance.server.logs import access_logger_class
from appliance.server.metrics import Metrics
from appliance.server.peers import Peers

log = logging.getLogger(__name__)


def build_origin(config: OriginConfig) -> Origin:
    if config.kind == "s3":
        from appliance.origin.s3 import S3Origin

        return S3Origin(
            config.s3,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            max_source_bytes=config.max_source_bytes,
        )
    if config.kind == "http":
        from appliance.origin.http import HttpOrigin

        return HttpOrigin(
            config.http,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            max_source_bytes=config.max_source_bytes,
        )
    from appliance.origin.directory import DirectoryOrigin

    return DirectoryOrigin(config.directory, max_source_bytes=config.max_source_bytes)


def build_components(config: Config) -> Components:
    cache = config.cache
    originals: list[Tier] = [MemoryTier(cache.original_memory_bytes)]
    variants: list[Tier] = [MemoryTier(cache.memory_bytes)]
    if cache.disk_path:
        root = Path(cache.disk_path)
        originals.append(DiskTier(root / "originals", cache.original_disk_bytes))
        variants.append(DiskTier(root / "variants", cache.disk_bytes))
    images = config.images
    return Components(
        config=config,
        origin=build_origin(config.origin),
        originals=TieredCache(originals),
        variants=TieredCache(variants),
        pool=TranscodePool(
            config.server.threads or len(os.sched_getaffinity(0)), config.server.queue_depth
        ),
        metrics=Metrics(),
        parse=Parser(ParseOptions(strict=images.strict_params, max_dimension=images.max_dimension)),
    )


def build_app(components: Components) -> web.Application:
    app = web.Application(client_max_size=1024, middlewares=[handlers.count_requests])
    app[handlers.METRICS] = components.metrics
    app.router.add_get("/health", handlers.health)
    app.router.add_get("/ready", handlers.ready_handler(components))
    app.router.add_get("/metrics", handlers.metrics_handler(components))
    if components.config.server.welcome_page:
        app.router.add_get("/", handlers.welcome_handler(components))
    app.router.add_get("/{key:.+}", handlers.image_handler(components))

    async def close(_: web.Application) -> None:  # reverse order of construction
        components.pool.close()
        await components.variants.close()
        await components.originals.close()
        await components.origin.close()

    app.on_cleanup.append(close)
    return app


def build_admin_app(components: Components) -> web.Application:
    app = web.Application(client_max_size=1024)
    app.router.add_delete("/{key:.+}", handlers.purge_handler(components))
    app.router.add_get("/health", handlers.health)
    return app


async def serve_sockets(
    config: Config,
    sock: socket.socket,
    admin_sock: socket.socket | None,
    peers_dir: Path | None = None,
) -> None:
    """Runs one worker on already-bound sockets until SIGTERM/SIGINT, then drains."""
    components = build_components(config)
    if peers_dir is not None:
        components.peers = Peers(peers_dir)
        await components.peers.listen(lambda key: handlers.purge_memory(components, key))
    logger = access_logger_class(config.server.access_log)
    logging_options: dict[str, Any] = {"access_log": None}
    if logger is not None:
        logging_options = {
            "access_log_class": logger,
            "access_log": logging.getLogger("appliance.access"),
        }
    runner = web.AppRunner(
        build_app(components),
        shutdown_timeout=config.server.drain_seconds,
        handle_signals=False,
        **logging_options,
    )
    await runner.setup()
    await web.SockSite(runner, sock).start()
    admin_runner = None
    if admin_sock is not None:
        admin_runner = web.AppRunner(
            build_admin_app(components), access_log=None, handle_signals=False
        )
        await admin_runner.setup()
        await web.SockSite(admin_runner, admin_sock).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("server.started sockname=%s", sock.getsockname())
    await stop.wait()
    components.draining = True
    log.info("server.draining in_flight=%d", components.metrics.in_flight)
    if admin_runner is not None:
        await admin_runner.cleanup()
    await runner.cleanup()  # stops accepting, lets in-flight requests finish
    if components.peers is not None:
        components.peers.close()
    log.info("server.stopped")


def run_worker(
    config: Config,
    sock: socket.socket,
    admin_sock: socket.socket | None,
    peers_dir: Path | None = None,
) -> int:
    """One worker process; ``peers_dir`` (several workers) is where purges are passed on."""
    serve = serve_sockets(config, sock, admin_sock, peers_dir)
    if config.server.event_loop == "uvloop":
        import uvloop

        uvloop.run(serve)
    else:
        asyncio.run(serve)
    return 0

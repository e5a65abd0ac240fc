"""Purges reach every worker: each worker listens on a UNIX datagram socket in a directory the
supervisor made for this server, and the worker that receives ``DELETE /<key>`` on the admin port
tells its siblings. The memory tiers are per worker; the disk tier is shared, so the siblings only
drop their memory copies."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "purge-"


class PurgeListener(asyncio.DatagramProtocol):
    def __init__(self, on_purge: Callable[[str], Awaitable[object]]) -> None:
        self.on_purge = on_purge
        self.tasks: set[asyncio.Task[object]] = set()

    def datagram_received(self, data: bytes, addr: object) -> None:
        key = data.decode("utf-8", "surrogateescape")
        task: asyncio.Task[object] = asyncio.ensure_future(self.on_purge(key))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


class Peers:
    """This worker's socket in ``directory``, and the way to reach the others."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / f"{PREFIX}{os.getpid()}.sock"
        self._transport: asyncio.BaseTransport | None = None

    async def listen(self, on_purge: Callable[[str], Awaitable[object]]) -> None:
        self.path.unlink(missing_ok=True)
        # Bound by hand: uvloop's create_datagram_endpoint takes no UNIX local_addr.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: PurgeListener(on_purge), sock=sock
        )

    def tell_others(self, key: str) -> int:
        """Sends the purge to every sibling; returns how many were reached."""
        payload = key.encode("utf-8", "surrogateescape")
        reached = 0
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            for peer in self.directory.glob(f"{PREFIX}*.sock"):
                if peer == self.path:
                    continue
                try:
                    s.sendto(payload, str(peer))
                    reached += 1
                except OSError:  # a worker that has gone: its socket is stale
                    peer.unlink(missing_ok=True)
        return reached

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self.path.unlink(missing_ok=True)

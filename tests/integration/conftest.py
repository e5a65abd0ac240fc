"""A real `appliance serve` process on port 0, configured per test, stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

READY = re.compile(r"serving on http://([^/]+)/ \(admin port (\d+)\)")


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    admin_url: str
    process: subprocess.Popen[str]
    log: list[str]

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


def _start(config: dict[str, Any], workdir: Path) -> Server:
    path = workdir / f"config-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("APPLIANCE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "appliance", "serve", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=workdir,
    )
    log: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        log.append(line)
        match = READY.search(line)
        if match:
            host = match.group(1).rsplit(":", 1)[0]
            # Keep draining the log so the server never blocks on a full pipe.
            import threading

            def drain() -> None:
                for rest in process.stdout:  # type: ignore[union-attr]
                    log.append(rest)

            threading.Thread(target=drain, daemon=True).start()
            return Server(
                f"http://{match.group(1)}", f"http://{host}:{match.group(2)}", process, log
            )
    process.kill()
    raise RuntimeError("server did not start:\n" + "".join(log))


@pytest.fixture(params=["uvloop", "asyncio"])
def event_loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def start_server(tmp_path: Path, event_loop_kind: str) -> Iterator[Callable[..., Server]]:
    """``start_server(origin={...}, **sections)``: a server with port 0 and admin port 0."""
    servers: list[Server] = []

    def start(**sections: Any) -> Server:
        config: dict[str, Any] = {
            "server": {
                "host": "127.0.0.1",
                "port": 0,
                "admin_port": 0,
                "event_loop": event_loop_kind,
                "access_log": "off",
            },
        }
        for name, value in sections.items():
            config[name] = {**config.get(name, {}), **value}
        server = _start(config, tmp_path)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()

"""Several worker processes on one socket, kept alive by the supervisor."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from test_server import get, photo


def worker_pids(server_pid: int) -> set[int]:
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children")
    return {int(p) for p in children.read_text().split()} if children.exists() else set()


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_workers_share_the_socket_and_a_dead_one_is_replaced(start_server, tmp_path: Path) -> None:
    photo(400, 300).save(tmp_path / "cat.jpg")
    server = start_server(
        origin={"kind": "directory", "directory": {"path": str(tmp_path)}},
        server={"workers": 2},
    )
    assert wait_for(lambda: len(worker_pids(server.process.pid)) == 2)
    for width in range(100, 110):
        assert get(server.url, f"/cat.jpg?w={width}")[0] == 200
    victim = min(worker_pids(server.process.pid))
    os.kill(victim, signal.SIGKILL)
    assert wait_for(
        lambda: (
            victim not in worker_pids(server.process.pid)
            and len(worker_pids(server.process.pid)) == 2
        )
    )
    assert get(server.url, "/cat.jpg?w=120")[0] == 200
    assert server.stop() == 0
    assert worker_pids(server.process.pid) == set()


def test_sighup_replaces_the_workers_without_closing_the_socket(
    start_server, tmp_path: Path
) -> None:
    photo(400, 300).save(tmp_path / "cat.jpg")
    server = start_server(
        origin={"kind": "directory", "directory": {"path": str(tmp_path)}},
        server={"workers": 2},
    )
    assert wait_for(lambda: len(worker_pids(server.process.pid)) == 2)
    before = worker_pids(server.process.pid)
    server.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: len(worker_pids(server.process.pid) - before) == 2)
    assert get(server.url, "/cat.jpg?w=130")[0] == 200
    assert server.stop() == 0


def test_a_purge_reaches_the_memory_cache_of_every_worker(start_server, tmp_path: Path) -> None:
    photo(400, 300).save(tmp_path / "cat.jpg")
    server = start_server(
        origin={"kind": "directory", "directory": {"path": str(tmp_path)}},
        server={"workers": 2},
    )
    assert wait_for(lambda: len(worker_pids(server.process.pid)) == 2)
    # Enough new connections that both workers render and keep the variant in memory.
    before = {get(server.url, "/cat.jpg?w=90")[1]["etag"] for _ in range(30)}
    assert len(before) == 1
    photo(400, 300, seed=5).save(tmp_path / "cat.jpg")
    status, _, body = get(server.admin_url, "/cat.jpg", method="DELETE")
    assert status == 200 and b'"workers_told": 1' in body
    time.sleep(0.2)  # the sibling's datagram is handled on its own loop
    after = {get(server.url, "/cat.jpg?w=90")[1]["etag"] for _ in range(30)}
    assert before.isdisjoint(after) and len(after) == 1
    assert server.stop() == 0


def test_sighup_with_one_worker_reloads_instead_of_exiting(start_server, tmp_path: Path) -> None:
    photo(400, 300).save(tmp_path / "cat.jpg")
    server = start_server(origin={"kind": "directory", "directory": {"path": str(tmp_path)}})
    assert wait_for(lambda: len(worker_pids(server.process.pid)) == 1)
    before = worker_pids(server.process.pid)
    server.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: worker_pids(server.process.pid) - before)
    assert server.process.poll() is None
    assert get(server.url, "/cat.jpg?w=140")[0] == 200
    assert server.stop() == 0

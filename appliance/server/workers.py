"""Processes: one listening socket, W worker processes that inherit it, and a parent that keeps
them running. The socket comes from systemd socket activation (LISTEN_FDS) when present, else
the parent binds it. SIGTERM drains: workers stop accepting, finish what is in flight (up to
``drain_seconds``), then exit. SIGHUP re-reads the configuration and replaces the workers one by
one, so the socket never stops accepting."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

SD_LISTEN_FDS_START = 3
RESTART_BACKOFF_MAX = 10.0  # seconds between restarts of a worker that keeps dying


def systemd_socket() -> socket.socket | None:
    """The socket systemd passed us (appliance.socket), if it is for this process."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    if int(os.environ.get("LISTEN_FDS", "0")) < 1:
        return None
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return sock


def bind_socket(host: str, port: int, backlog: int = 1024) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def notify_systemd(state: str) -> None:
    """sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET (Type=notify)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(state.encode(), address)
        except OSError as e:
            log.warning("systemd.notify_failed error=%s", e)


class Supervisor:
    """Forks ``count`` workers running ``run_worker(sock)`` and keeps them alive."""

    def __init__(
        self,
        sock: socket.socket,
        count: int,
        run_worker: Callable[[socket.socket], int],
        reload: Callable[[], int] | None = None,
    ) -> None:
        self.sock = sock
        self.count = count
        self.run_worker = run_worker
        self.reload = reload  # re-reads the config; returns the new worker count
        self.children: dict[int, float] = {}  # pid -> start time
        self.stopping = False
        self.reloading = False
        self.failures = 0

    def spawn(self) -> int:
        pid = os.fork()
        if pid == 0:  # the worker
            # Not the supervisor's handlers: a SIGTERM before the worker's loop installs its
            # own must simply end it, not make it act on its siblings.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            code = 1
            try:
                code = self.run_worker(self.sock)
            except BaseException:
                log.exception("worker.crashed pid=%d", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = time.monotonic()
        return pid

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        for _ in range(self.count):
            self.spawn()
        notify_systemd("READY=1")
        # Poll rather than block in waitpid: Python retries a blocking waitpid after a
        # signal handler runs (PEP 475), so a SIGHUP would wait for a child to exit.
        while self.children:
            if self.reloading and not self.stopping:
                self._replace_workers()
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.1)
                continue
            started = self.children.pop(pid, None)
            if started is None or self.stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            log.warning("worker.exit pid=%d code=%d", pid, code)
            self.failures = self.failures + 1 if time.monotonic() - started < 5 else 0
            time.sleep(min(RESTART_BACKOFF_MAX, 0.1 * 2**self.failures))
            if not self.stopping:
                self.spawn()
        return 0

    def _on_stop(self, signum: int, _frame: object) -> None:
        self.stopping = True
        notify_systemd("STOPPING=1")
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _on_reload(self, _signum: int, _frame: object) -> None:
        self.reloading = True

    def _replace_workers(self) -> None:
        """Starts a new worker before draining each old one: the socket keeps accepting."""
        self.reloading = False
        notify_systemd("RELOADING=1")
        if self.reload is not None:
            try:
                self.count = self.reload()
            except Exception as e:  # a bad new config keeps the old workers
                log.error("config.reload_failed error=%s", e)
                notify_systemd("READY=1")
                return
        old = list(self.children)
        for _ in range(self.count):
            self.spawn()
        for pid in old:
            self.children.pop(pid, None)
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        notify_systemd("READY=1")
        log.info("config.reloaded workers=%d", self.count)


def exit_on_parent_death() -> None:
    """Linux: a worker gets SIGTERM when the supervisor dies, so none is orphaned."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

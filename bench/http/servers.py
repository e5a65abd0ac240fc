"""The servers under load: ours, thumbor and nginx, each a pinned process group we can stop."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.corpus import REPO_ROOT

THUMBOR_VENV = Path(__file__).resolve().parent / ".venv-thumbor"
OURS_BIN = REPO_ROOT / ".venv" / "bin" / "appliance"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpus: list[int], argv: list[str]) -> list[str]:
    """argv under taskset: every process and thread it starts inherits the CPU list."""
    return ["taskset", "-c", ",".join(map(str, cpus)), *argv]


@dataclass
class Server:
    """One server: a process group started in a new session, so stop() reaches every child."""

    name: str
    argv: list[str]
    base_url: str
    ready_path: str
    log: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=self.env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): {self.tail()}")
            try:
                with urllib.request.urlopen(self.base_url + self.ready_path, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s: {self.tail()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                # the leader is gone; children of the group may linger a moment
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
            break
        self.proc = None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def ours(
    cpus: list[int],
    origin: Path,
    work: Path,
    workers: int,
    threads: int,
    memory_bytes: int = 256 * 1024 * 1024,
) -> Server:
    """`appliance serve` from this checkout's virtual environment."""
    port, admin = free_port(), free_port()
    config = {
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "admin_port": admin,
            "workers": workers,
            "threads": threads,
            "queue_depth": 16,
            "access_log": "off",
        },
        "origin": {"kind": "directory", "directory": {"path": str(origin)}},
        "cache": {"memory_bytes": memory_bytes, "original_memory_bytes": memory_bytes},
    }
    path = work / "appliance.json"
    path.write_text(json.dumps(config, indent=2))
    return Server(
        name="ours",
        argv=pinned(cpus, [str(OURS_BIN), "serve", "--config", str(path)]),
        base_url=f"http://127.0.0.1:{port}",
        ready_path="/health",
        log=work / "ours.log",
    )


def working_tree_state() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "appliance"],
        capture_output=True,
        text=True,
    )
    sha = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    dirty = done.stdout.strip()
    return f"working tree on {sha}" + (" with uncommitted changes in appliance/" if dirty else "")


def ensure_thumbor() -> tuple[Path | None, str]:
    """thumbor in its own venv (created here if missing): (its bin dir, version) or (None, why)."""
    bin_dir = THUMBOR_VENV / "bin"
    if not (bin_dir / "thumbor").exists():
        print(f"bench.http: installing thumbor into {THUMBOR_VENV.name}/ ...", file=sys.stderr)
        python = shutil.which("python3") or sys.executable
        steps = [
            [python, "-m", "venv", str(THUMBOR_VENV)],
            [str(bin_dir / "pip"), "install", "--quiet", "thumbor"],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                why = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
                return None, f"`{' '.join(step[-3:])}` failed: {why}"
    done = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            "import thumbor, PIL; print(thumbor.__version__, PIL.__version__)",
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return None, f"thumbor does not import: {done.stderr.strip().splitlines()[-1:]}"
    thumbor_v, pil_v = done.stdout.split()
    return bin_dir, f"thumbor {thumbor_v} (Pillow {pil_v})"


def thumbor(
    cpus: list[int], bin_dir: Path, origin: Path, work: Path, processes: int, result_storage: bool
) -> Server:
    port = free_port()
    tag = "hits" if result_storage else "cold"
    lines = [
        "LOADER = 'thumbor.loaders.file_loader'",
        f"FILE_LOADER_ROOT_PATH = {str(origin)!r}",
        "ALLOW_UNSAFE_URL = True",
        "QUALITY = 80",
        # originals come from local files: no second copy of them on disk
        "STORAGE = 'thumbor.storages.no_storage'",
    ]
    if result_storage:
        lines += [
            "RESULT_STORAGE = 'thumbor.result_storages.file_storage'",
            f"RESULT_STORAGE_FILE_STORAGE_ROOT_PATH = {str(work / 'thumbor-results')!r}",
            "RESULT_STORAGE_STORES_UNSAFE = True",
            "RESULT_STORAGE_EXPIRATION_SECONDS = 0",
        ]
    else:
        lines.append("RESULT_STORAGE = None")
    conf = work / f"thumbor-{tag}.conf"
    conf.write_text("\n".join(lines) + "\n")
    argv = [
        str(bin_dir / "thumbor"),
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--conf={conf}",
        f"--processes={processes}",
        "--log-level=error",
    ]
    return Server(
        name=f"thumbor ({tag})",
        argv=pinned(cpus, argv),
        base_url=f"http://127.0.0.1:{port}",
        ready_path="/healthcheck",
        log=work / f"thumbor-{tag}.log",
    )


NGINX_CONF = """\
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    types {{ image/jpeg jpg; }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    client_body_temp_path {prefix}/tmp-body;
    proxy_temp_path {prefix}/tmp-proxy;
    fastcgi_temp_path {prefix}/tmp-fastcgi;
    uwsgi_temp_path {prefix}/tmp-uwsgi;
    scgi_temp_path {prefix}/tmp-scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
        location = /health {{ return 200 "ok"; }}
    }}
}}
"""


def nginx(cpus: list[int], root: Path, work: Path, workers: int) -> Server:
    """Debian's nginx, not the system service: our own config, prefix and pid file in `work`."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    prefix = work / "nginx"
    prefix.mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workers=workers, prefix=prefix, port=port, root=root))
    return Server(
        name="nginx",
        argv=pinned(cpus, [binary, "-c", str(conf), "-p", str(prefix)]),
        base_url=f"http://127.0.0.1:{port}",
        ready_path="/health",
        log=work / "nginx.log",
    )


def version_of(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except OSError as e:
        return f"? ({e.strerror})"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if lines else "?"

"""systemd integration without systemd: sd_notify datagrams and socket activation."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from appliance.server.workers import notify_systemd, systemd_socket


def test_notify_sends_the_state_to_the_notify_socket(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        notify_systemd("READY=1")
        assert listener.recv(64) == b"READY=1"


def test_notify_reaches_an_abstract_socket(monkeypatch) -> None:
    name = f"appliance-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        notify_systemd("STOPPING=1")
        assert listener.recv(64) == b"STOPPING=1"


def test_notify_without_systemd_does_nothing(monkeypatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notify_systemd("READY=1")  # no socket, no error


def test_a_socket_meant_for_another_process_is_not_taken(monkeypatch) -> None:
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert systemd_socket() is None


def test_serves_on_the_socket_systemd_passes(tmp_path: Path) -> None:
    Image.new("RGB", (64, 48), "red").save(tmp_path / "red.jpg")
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "server": {"host": "127.0.0.1", "port": 1, "admin_port": 0, "access_log": "off"},
                "origin": {"kind": "directory", "directory": {"path": str(tmp_path)}},
            }
        )
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]

    # What systemd does: the socket as fd 3, LISTEN_FDS=1, LISTEN_PID = the service's pid
    # (the same process after exec).
    as_systemd = (
        "import os, sys; os.dup2(int(sys.argv[1]), 3); "
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1'); "
        "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            as_systemd,
            str(listener.fileno()),
            "-m",
            "appliance",
            "serve",
            "--config",
            str(config),
        ],
        pass_fds=(listener.fileno(),),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"serving on http://127.0.0.1:{port}/" in line, line  # not port 1 from the config
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/red.jpg?w=32") as r:
                    assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("no answer on the systemd socket")
                time.sleep(0.1)
    finally:
        process.terminate()
        assert process.wait(30) == 0
        listener.close()

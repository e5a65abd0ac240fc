#!/usr/bin/env python3
"""A fake EC2 instance metadata service (IMDSv2, token enforced). Standard library only.

Used in-process by the unit tests::

    imds = FakeImds({"instance_type": "c7g.large", "user_data": "{}"})
    url = imds.start()          # http://127.0.0.1:<port>
    ...
    imds.requests               # [Request(method, path, had_token), ...]
    imds.stop()

and as a process by the image test (the guest reaches it as 169.254.169.254)::

    python3 tests/image/fake_imds.py --host 127.0.0.1 --port 8169 --state state.json

With ``--port 0`` it picks a free port; it always prints the port on stdout once listening.

The state is JSON, re-read on every request when given as a file, so a test can change the
user-data or attach a role between boots without restarting the server::

    {"instance_type": "t3.micro", "instance_id": "i-...", "region": "eu-west-1",
     "availability_zone": "eu-west-1a", "public_key": "ssh-ed25519 AAAA... name",
     "user_data": "text" | "user_data_base64": "...",   (neither: 404, as EC2)
     "role": {"name": "...", "access_key_id": "...", "secret_access_key": "...",
              "token": "..."} | null}

Behaviour, as EC2's IMDSv2:
- ``PUT /latest/api/token`` needs ``X-aws-ec2-metadata-token-ttl-seconds`` in 1-21600 (else
  400) and refuses a request carrying ``X-Forwarded-For`` (403).
- ``GET`` without a valid token: 401. Unknown paths: 404. No user-data: 404.
- Directory listings under ``/latest/meta-data/`` and ``/latest/dynamic/``; any dated version
  (``/2021-01-03/...``) is served as ``latest``.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
VERSIONS = ("1.0", "2009-04-04", "2016-09-02", "2018-09-24", "2021-01-03", "latest")

DEFAULTS: dict[str, Any] = {
    "instance_type": "t3.micro",
    "instance_id": "i-0123456789abcdef0",
    "ami_id": "ami-0123456789abcdef0",
    "region": "us-east-1",
    "availability_zone": None,  # region + "a"
    "local_ipv4": "169.254.0.15",
    "hostname": None,  # from local_ipv4 and region, as EC2 names them
    "account_id": "123456789012",
    "architecture": "x86_64",
    "public_key": None,
    "user_data": None,
    "user_data_base64": None,
    "role": None,
}


class Request(NamedTuple):
    method: str
    path: str
    had_token: bool


class FakeImds:
    """The server, in a thread. ``state`` is a dict (read live: a test may mutate it) or the
    path of a JSON file (re-read on every request)."""

    def __init__(
        self, state: Mapping[str, Any] | Path | str | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.state: Mapping[str, Any] | Path = (
            Path(state) if isinstance(state, str) else state if state is not None else {}
        )
        self.host = host
        self.requests: list[Request] = []
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._failures: list[int] = []  # statuses to answer the next requests with
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.quiet = True

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        """Listens and serves in a daemon thread; returns the base URL."""
        self._server = self.bind(port)
        server = self._server
        # a short poll interval: stop() returns within it (the default is 0.5 s)
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self.base_url

    def bind(self, port: int = 0) -> ThreadingHTTPServer:
        owner = self

        class Handler(_Handler):
            imds = owner

        self._server = ThreadingHTTPServer((self.host, port), Handler)
        self._server.daemon_threads = True
        return self._server

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> FakeImds:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- test controls ------------------------------------------------------------------

    def revoke_tokens(self) -> None:
        """Forget every token issued, as if IMDS restarted: the next GET gets 401."""
        with self._lock:
            self._tokens.clear()

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next ``count`` requests (of any kind) with ``status``."""
        with self._lock:
            self._failures.extend([status] * count)

    # -- behaviour ----------------------------------------------------------------------

    def load_state(self) -> dict[str, Any]:
        if isinstance(self.state, Path):
            loaded = json.loads(self.state.read_text(encoding="utf-8"))
        else:
            loaded = dict(self.state)
        state = {**DEFAULTS, **{k: v for k, v in loaded.items() if v is not None}}
        if not state["availability_zone"]:
            state["availability_zone"] = (state["region"] or DEFAULTS["region"]) + "a"
        if not state["hostname"]:
            ip = state["local_ipv4"].replace(".", "-")
            region = state["region"] or DEFAULTS["region"]
            domain = "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"
            state["hostname"] = f"ip-{ip}.{domain}"
        return state

    def issue_token(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + ttl
        return token

    def token_valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and time.monotonic() < expiry

    def take_failure(self) -> int | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def tree(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """The whole ``/latest/`` tree for this state."""
        meta: dict[str, Any] = {
            "ami-id": state["ami_id"],
            "ami-launch-index": "0",
            "hostname": state["hostname"],
            "instance-id": state["instance_id"],
            "instance-type": state["instance_type"],
            "local-hostname": state["hostname"],
            "local-ipv4": state["local_ipv4"],
            "placement": {"availability-zone": state["availability_zone"]},
        }
        if state["region"]:  # "region": "" serves an older IMDS, without placement/region
            meta["placement"]["region"] = state["region"]
        if state["public_key"]:
            name = _key_name(state["public_key"])
            # cloud-init lists public-keys/ ("0=name") then reads public-keys/0/openssh-key
            meta["public-keys"] = {f"0={name}": None, "0": {"openssh-key": state["public_key"]}}
        role = state["role"]
        if role:
            meta["iam"] = _iam(state, role)
        identity = {
            "accountId": state["account_id"],
            "architecture": state["architecture"],
            "availabilityZone": state["availability_zone"],
            "imageId": state["ami_id"],
            "instanceId": state["instance_id"],
            "instanceType": state["instance_type"],
            "pendingTime": "2024-01-01T00:00:00Z",
            "privateIp": state["local_ipv4"],
            "region": state["region"] or state["availability_zone"][:-1],
            "version": "2017-09-30",
        }
        tree: dict[str, Any] = {
            "meta-data": meta,
            "dynamic": {"instance-identity": {"document": json.dumps(identity, indent=2)}},
        }
        user_data = _user_data(state)
        if user_data is not None:
            tree["user-data"] = user_data
        return tree


def _key_name(public_key: str) -> str:
    parts = public_key.split()
    return parts[2] if len(parts) > 2 else "key"


def _iam(state: Mapping[str, Any], role: Mapping[str, Any]) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    expires = (now + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    name = role["name"]
    credentials = {
        "Code": "Success",
        "LastUpdated": stamp,
        "Type": "AWS-HMAC",
        "AccessKeyId": role.get("access_key_id", "ASIAFAKEFAKEFAKEFAKE"),
        "SecretAccessKey": role.get("secret_access_key", "fake-secret-access-key"),
        "Token": role.get("token", "fake-session-token"),
        "Expiration": expires,
    }
    info = {
        "Code": "Success",
        "LastUpdated": stamp,
        "InstanceProfileArn": f"arn:aws:iam::{state['account_id']}:instance-profile/{name}",
        "InstanceProfileId": "AIPAFAKEFAKEFAKEFAKE0",
    }
    return {
        "info": json.dumps(info, indent=2),
        "security-credentials": {name: json.dumps(credentials, indent=2)},
    }


def _user_data(state: Mapping[str, Any]) -> bytes | None:
    if state["user_data_base64"] is not None:
        return base64.b64decode(state["user_data_base64"])
    if state["user_data"] is not None:
        return str(state["user_data"]).encode("utf-8")
    return None


def _listing(directory: Mapping[str, Any]) -> bytes:
    """Children, directories with a slash. A directory ``0`` listed as ``0=name`` (public-keys)
    is shown only by that entry, as EC2 does."""
    names = []
    for name, node in directory.items():
        if isinstance(node, dict):
            if any(other.startswith(name + "=") for other in directory):
                continue
            name += "/"
        names.append(name)
    return "\n".join(names).encode("utf-8")


def _leaf(node: Any) -> bytes:
    return node if isinstance(node, bytes) else str(node).encode("utf-8")


class _Handler(BaseHTTPRequestHandler):
    imds: FakeImds
    protocol_version = "HTTP/1.1"
    server_version = "EC2ws"
    sys_version = ""

    def do_PUT(self) -> None:
        had_token = bool(self.headers.get(TOKEN_HEADER))
        self.imds.requests.append(Request("PUT", self.path, had_token))
        self._drain()
        if (status := self.imds.take_failure()) is not None:
            return self._send(status, b"")
        if _normalise(self.path) != "/latest/api/token":
            return self._send(405 if _normalise(self.path) is not None else 404, b"")
        if "X-Forwarded-For" in self.headers:
            return self._send(403, b"")
        try:
            ttl = int(self.headers.get(TTL_HEADER, ""))
        except ValueError:
            return self._send(400, b"")
        if not 1 <= ttl <= 21600:
            return self._send(400, b"")
        token = self.imds.issue_token(ttl)
        self._send(200, token.encode("ascii"), {TTL_HEADER: str(ttl)})

    def do_GET(self) -> None:
        token = self.headers.get(TOKEN_HEADER)
        self.imds.requests.append(Request("GET", self.path, bool(token)))
        if (status := self.imds.take_failure()) is not None:
            return self._send(status, b"")
        if not self.imds.token_valid(token):
            return self._send(401, b"")
        path = self.path.split("?", 1)[0]
        if path in ("/", ""):
            return self._send(200, "\n".join(VERSIONS).encode())
        normal = _normalise(path)
        if normal is None:
            return self._send(404, b"")
        try:
            state = self.imds.load_state()
        except (OSError, ValueError) as e:
            return self._send(500, f"bad state: {e}".encode())
        node: Any = self.imds.tree(state)
        for part in [p for p in normal.removeprefix("/latest").split("/") if p]:
            if not isinstance(node, dict) or part not in node or node[part] is None:
                return self._send(404, b"")
            node = node[part]
        body = _listing(node) if isinstance(node, dict) else _leaf(node)
        self._send(200, body)

    def do_POST(self) -> None:
        self.imds.requests.append(Request("POST", self.path, False))
        self._drain()
        self._send(405, b"")

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.imds.quiet:
            super().log_message(format, *args)


def _normalise(path: str) -> str | None:
    """``/2021-01-03/meta-data/x`` -> ``/latest/meta-data/x``; None when not a version."""
    path = path.split("?", 1)[0]
    version, _, rest = path.lstrip("/").partition("/")
    if version not in VERSIONS and not _is_date(version):
        return None
    return "/latest/" + rest


def _is_date(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8169, help="0 picks a free port")
    parser.add_argument("--state", type=Path, help="JSON state file, re-read on every request")
    parser.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    args = parser.parse_args(argv)
    imds = FakeImds(args.state, host=args.host)
    imds.quiet = args.quiet
    server = imds.bind(args.port)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

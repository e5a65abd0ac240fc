"""Test helpers shared by the suites (origins, integration): a local aiohttp server in its own
thread (so a handler that sleeps never blocks the client's loop), and a resolver that answers
from a table."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.typedefs import Handler


class ServerThread:
    """An aiohttp application on 127.0.0.1, port 0, served by its own loop in a thread.
    ``requests`` records (method, raw path with query, headers) of every request."""

    def __init__(self, app: web.Application) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        app.middlewares.append(self._record)
        self._app = app
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(5), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append((request.method, request.raw_path, dict(request.headers)))
        return await handler(request)

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        runner = web.AppRunner(
            self._app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True
        )
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()


class TableResolver(AbstractResolver):
    """Resolves names from ``table`` (name → addresses); records every name asked."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(f"no such host {host}")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for address in self.table[host]
        ]

    async def close(self) -> None:
        return None


# --- moto's IAM: users whose keys sign real SigV4 requests ---------------------------------

ADMIN_S3_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


def moto_users(endpoint: str, policies: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Creates one IAM user per name with its inline policy on moto's server at ``endpoint``;
    returns each user's access key (AccessKeyId, SecretAccessKey, ...)."""
    import boto3

    boot = {"aws_access_key_id": "bootstrap", "aws_secret_access_key": "bootstrap"}
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", **boot)
    keys = {}
    for user, policy in policies.items():
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(policy))
        keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
    return keys


def s3_client(endpoint: str, key: dict[str, str]) -> Any:
    """A boto3 S3 client on moto's server signing with ``key`` (from moto_users)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )

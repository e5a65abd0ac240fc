"""Access logs: one JSON object per line on stdout, or Apache combined format so httperf and
other tools can replay them."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


class JsonAccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time_taken: float) -> None:
        record: dict[str, Any] = {
            "event": "http.request",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "method": request.method,
            "path": request.path_qs,
            "status": response.status,
            "bytes": response.body_length,
            "ms": round(time_taken * 1000, 2),
            "remote": request.remote,
            "user_agent": request.headers.get("User-Agent", ""),
        }
        self.logger.info(json.dumps(record, separators=(",", ":")))


class CombinedAccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time_taken: float) -> None:
        now = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
        referer = request.headers.get("Referer", "-")
        agent = request.headers.get("User-Agent", "-")
        self.logger.info(
            f'{request.remote or "-"} - - [{now}] "{request.method} {request.path_qs} '
            f'HTTP/{request.version.major}.{request.version.minor}" {response.status} '
            f'{response.body_length} "{referer}" "{agent}"'
        )


def access_logger_class(kind: str) -> type[AbstractAccessLogger] | None:
    return {"json": JsonAccessLogger, "combined": CombinedAccessLogger}.get(kind)

"""Originals from a local directory: the embedded default (the built-in sample images) and the
development origin.

No key can leave the root: keys are checked (appliance.origin.keys), the joined path is resolved
with every symlink followed and must still be under the resolved root, and the file is opened
with O_NOFOLLOW, so a symlink put in its place after that check is refused. File system calls
run off the event loop.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import mimetypes
import os
import stat

from appliance.config import DirectoryOriginConfig
from appliance.origin.base import (
    KeyRejected,
    Original,
    OriginDenied,
    OriginNotFound,
    OriginUnavailable,
    SourceTooLarge,
)
from appliance.origin.keys import check_key
from appliance.origin.revalidation import NotModified, etag_matches

log = logging.getLogger(__name__)

# O_NONBLOCK: opening a FIFO must not wait for a writer; it has no effect on regular files.
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
_NOT_FOUND_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.ENAMETOOLONG}


class DirectoryOrigin:
    """Serves ``<root>/<key>``. ETags are ``"<size hex>-<mtime_ns hex>"``: they change whenever a
    file is replaced or rewritten, without reading it."""

    name = "directory"

    def __init__(self, config: DirectoryOriginConfig, *, max_source_bytes: int) -> None:
        self._path = os.path.abspath(config.path)
        self._max_source_bytes = max_source_bytes

    async def fetch(self, key: str, *, if_none_match: str | None = None) -> Original:
        check_key(key)
        return await asyncio.to_thread(self._read, key, if_none_match)

    async def check(self) -> None:
        if not await asyncio.to_thread(_readable_directory, self._path):
            log.warning("origin.check_failed origin=directory root=%s", self._path)
            raise OriginUnavailable("origin directory is missing or unreadable")

    async def close(self) -> None:
        return None

    def _read(self, key: str, if_none_match: str | None) -> Original:
        if key.endswith("/"):  # names a directory; realpath would drop the slash
            raise OriginNotFound("no such original")
        # The root is resolved each time: a deployment may swap a symlink to a new directory.
        root = os.path.realpath(self._path)
        path = os.path.realpath(os.path.join(root, key))
        if not path.startswith(os.path.join(root, "")):  # the root with one trailing separator
            log.warning("origin.rejected origin=directory key=%r reason=outside_root", key)
            raise KeyRejected("key resolves outside the origin directory")
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError as exc:
            raise _error(key, exc) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OriginNotFound("no such original")
            etag = f'"{info.st_size:x}-{info.st_mtime_ns:x}"'
            if if_none_match is not None and etag_matches(if_none_match, etag):
                raise NotModified(key, etag, info.st_mtime)
            if info.st_size > self._max_source_bytes:
                raise _too_large(key, info.st_size, self._max_source_bytes)
            data = _read_at_most(fd, self._max_source_bytes + 1)
        except OSError as exc:
            raise _error(key, exc) from None
        finally:
            os.close(fd)
        if len(data) > self._max_source_bytes:  # the file grew after fstat
            raise _too_large(key, len(data), self._max_source_bytes)
        content_type, _ = mimetypes.guess_type(key, strict=False)
        return Original(
            key=key,
            data=data,
            etag=etag,
            last_modified=info.st_mtime,
            content_type=content_type,
        )


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _readable_directory(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.R_OK | os.X_OK)


def _too_large(key: str, size: int, limit: int) -> SourceTooLarge:
    log.info("origin.too_large origin=directory key=%r size=%d limit=%d", key, size, limit)
    return SourceTooLarge(f"original is larger than the {limit}-byte limit")


def _error(key: str, exc: OSError) -> Exception:
    if exc.errno in _NOT_FOUND_ERRNOS:
        return OriginNotFound("no such original")
    if exc.errno in (errno.EACCES, errno.EPERM):
        log.warning("origin.denied origin=directory key=%r error=%s", key, exc.strerror)
        return OriginDenied("origin refused access: the service cannot read this file")
    log.warning("origin.unavailable origin=directory key=%r error=%s", key, exc)
    return OriginUnavailable("origin directory read failed")

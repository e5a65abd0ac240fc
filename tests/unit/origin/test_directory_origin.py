"""The directory origin: no key leaves the root, and files are read with their limits."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from appliance.config import DirectoryOriginConfig
from appliance.origin.base import (
    KeyRejected,
    Original,
    OriginDenied,
    OriginNotFound,
    OriginUnavailable,
    SourceTooLarge,
)
from appliance.origin.directory import DirectoryOrigin
from appliance.origin.revalidation import NotModified

T = TypeVar("T")
Run = Callable[[Awaitable[T]], T]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/secret.txt outside the root; tmp/root/ with photos, links and odd files."""
    (tmp_path / "secret.txt").write_text("secret")
    root = tmp_path / "root"
    (root / "album").mkdir(parents=True)
    (root / "photo.jpg").write_bytes(b"\xff\xd8photo")
    (root / "album" / "inner.jpg").write_bytes(b"\xff\xd8inner")
    (root / "%2e%2e").mkdir()
    (root / "%2e%2e" / "x").write_bytes(b"literal")
    (root / "link-out.jpg").symlink_to(tmp_path / "secret.txt")
    (root / "dir-out").symlink_to(tmp_path)
    (root / "link-in.jpg").symlink_to(root / "album" / "inner.jpg")
    (root / "loop").symlink_to(root / "loop")
    return root


def _origin(root: Path, limit: int = 1024) -> DirectoryOrigin:
    return DirectoryOrigin(DirectoryOriginConfig(path=str(root)), max_source_bytes=limit)


@pytest.mark.parametrize(
    "key",
    [
        "../secret.txt",
        "album/../../secret.txt",
        "/etc/passwd",
        "photo.jpg\x00.png",
        "..\\secret.txt",
        "link-out.jpg",  # a symlink to a file outside the root
        "dir-out/secret.txt",  # through a symlinked directory outside the root
    ],
)
def test_keys_that_escape_the_root_are_rejected(aio: Run[Any], tree: Path, key: str) -> None:
    with pytest.raises(KeyRejected):
        aio(_origin(tree).fetch(key))


def test_percent_encoded_dots_are_a_literal_name_not_a_traversal(
    aio: Run[Original], tree: Path
) -> None:
    assert aio(_origin(tree).fetch("%2e%2e/x")).data == b"literal"
    with pytest.raises(OriginNotFound):
        aio(_origin(tree).fetch("%2e%2e/secret.txt"))


def test_symlink_inside_the_root_is_followed(aio: Run[Original], tree: Path) -> None:
    assert aio(_origin(tree).fetch("link-in.jpg")).data == b"\xff\xd8inner"


@pytest.mark.parametrize("key", ["album", "album/", "photo.jpg/", "missing.jpg", "loop", "x" * 300])
def test_directories_missing_files_and_loops_are_not_found(
    aio: Run[Any], tree: Path, key: str
) -> None:
    with pytest.raises(OriginNotFound):
        aio(_origin(tree).fetch(key))


def test_fifo_is_not_found_and_does_not_block(aio: Run[Any], tree: Path) -> None:
    os.mkfifo(tree / "pipe.jpg")
    with pytest.raises(OriginNotFound):
        aio(_origin(tree).fetch("pipe.jpg"))


def test_size_is_checked_before_reading(
    aio: Run[Any], tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tree / "big.jpg").write_bytes(b"x" * 1025)
    reads: list[int] = []
    real_read = os.read

    def recording_read(fd: int, n: int) -> bytes:
        reads.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", recording_read)
    with pytest.raises(SourceTooLarge):
        aio(_origin(tree, limit=1024).fetch("big.jpg"))
    assert reads == []


def test_file_at_the_limit_is_read(aio: Run[Original], tree: Path) -> None:
    (tree / "limit.jpg").write_bytes(b"x" * 1024)
    assert len(aio(_origin(tree, limit=1024).fetch("limit.jpg")).data) == 1024


def test_etag_is_size_and_mtime_and_content_type_is_guessed(aio: Run[Original], tree: Path) -> None:
    os.utime(tree / "photo.jpg", ns=(0, 1_700_000_000_123_456_789))
    original = aio(_origin(tree).fetch("photo.jpg"))
    assert original.etag == f'"{7:x}-{1_700_000_000_123_456_789:x}"'
    assert original.last_modified == pytest.approx(1_700_000_000.123456789)
    assert original.content_type == "image/jpeg"


def test_matching_etag_raises_not_modified_without_reading(
    aio: Run[Any], tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etag = aio(_origin(tree).fetch("photo.jpg")).etag
    monkeypatch.setattr(os, "read", lambda fd, n: pytest.fail("read the file"))
    with pytest.raises(NotModified):
        aio(_origin(tree).fetch("photo.jpg", if_none_match=etag))


def test_reads_run_off_the_event_loop(
    aio: Run[Any], tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real_open = os.open

    def recording_open(path: str, flags: int) -> int:
        threads.append(threading.get_ident())
        return real_open(path, flags)

    monkeypatch.setattr(os, "open", recording_open)
    aio(_origin(tree).fetch("photo.jpg"))
    assert threads and threading.get_ident() not in threads


def test_unreadable_file_is_denied(
    aio: Run[Any], tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(path: str, flags: int) -> int:  # chmod 0 does not stop root, who runs CI
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(OriginDenied):
        aio(_origin(tree).fetch("photo.jpg"))


def test_check_passes_on_a_readable_directory(aio: Run[None], tree: Path) -> None:
    aio(_origin(tree).check())


@pytest.mark.parametrize("root", ["missing", "photo.jpg"])
def test_check_fails_when_the_root_is_missing_or_a_file(
    aio: Run[None], tree: Path, root: str
) -> None:
    with pytest.raises(OriginUnavailable):
        aio(_origin(tree / root).check())


def test_a_symlinked_root_is_followed_and_may_be_swapped(
    aio: Run[Original], tmp_path: Path
) -> None:
    for release in ("v1", "v2"):
        (tmp_path / release).mkdir()
        (tmp_path / release / "photo.jpg").write_bytes(release.encode())
    current = tmp_path / "current"
    current.symlink_to(tmp_path / "v1")
    origin = _origin(current)
    assert aio(origin.fetch("photo.jpg")).data == b"v1"
    current.unlink()
    current.symlink_to(tmp_path / "v2")
    assert aio(origin.fetch("photo.jpg")).data == b"v2"

"""DiskTier: damaged files are misses, never errors; several instances (processes) share a root;
the byte count survives restarts; all file I/O runs off the event loop."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.cache import record
from appliance.cache.disk import DiskTier, footprint
from appliance.cache.tier import CacheKey, Entry

Run = Callable[[Awaitable[Any]], Any]
KEY = CacheKey("photos/cat.jpg", "w=800|webp")
ENTRY = Entry(b"\xff\xd8" + bytes(range(256)) * 20, "image/webp", '"e1"', 1.5e9, {"w": "800"})
MiB = 1024 * 1024


def path_of(root: Path, key: CacheKey) -> Path:
    """The documented layout: root/<2 hex>/<sha256(source)>/<sha256(variant)>."""
    source = hashlib.sha256(key.source.encode()).hexdigest()
    return root / source[:2] / source / hashlib.sha256(key.variant.encode()).hexdigest()


def on_disk(root: Path) -> int:
    """Footprint of every entry file under root, counted independently of the tier."""
    return sum(
        footprint(os.path.getsize(os.path.join(d, name)))
        for d, _, names in os.walk(root)
        for name in names
        if len(name) == 64
    )


def test_writes_the_documented_layout_with_the_key_in_the_header(aio: Run, tmp_path: Path) -> None:
    async def scenario() -> None:
        tier = DiskTier(tmp_path, MiB)
        await tier.put(KEY, ENTRY)
        assert path_of(tmp_path, KEY).is_file()
        assert await tier.keys() == [KEY]
        assert (
            tier.bytes_used == on_disk(tmp_path) == footprint(path_of(tmp_path, KEY).stat().st_size)
        )
        await tier.close()

    aio(scenario())


def _truncate_half(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _truncate_to_prefix(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:10])


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _flip_body_byte(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[-100] ^= 0x01
    p.write_bytes(data)


def _flip_header_byte(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[30] ^= 0x20
    p.write_bytes(data)


def _wrong_magic(p: Path) -> None:
    p.write_bytes(b"JFIF" + p.read_bytes()[4:])


def _future_version(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[4] = 99
    p.write_bytes(data)


def _trailing_garbage(p: Path) -> None:
    p.write_bytes(p.read_bytes() + b"garbage")


def _not_a_cache_file(p: Path) -> None:
    p.write_bytes(b"\xff\xd8\xff\xe0 a jpeg someone copied here")


DAMAGE = [
    _truncate_half,
    _truncate_to_prefix,
    _empty,
    _flip_body_byte,
    _flip_header_byte,
    _wrong_magic,
    _future_version,
    _trailing_garbage,
    _not_a_cache_file,
]


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__.strip("_"))
def test_a_damaged_file_is_a_miss_is_deleted_and_the_next_put_works(
    aio: Run, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Callable[[Path], None]
) -> None:
    async def scenario() -> None:
        tier = DiskTier(tmp_path, MiB)
        await tier.put(KEY, ENTRY)
        damage(path_of(tmp_path, KEY))

        with caplog.at_level(logging.WARNING, "appliance.cache.disk"):
            assert await tier.get(KEY) is None
        assert "cache.corrupt" in caplog.text
        assert not path_of(tmp_path, KEY).exists()

        await tier.put(KEY, ENTRY)
        assert await tier.get(KEY) == ENTRY
        await tier.close()
        restarted = DiskTier(tmp_path, MiB)
        await restarted.start()  # a scan makes the estimate exact again
        assert restarted.bytes_used == on_disk(tmp_path)
        await restarted.close()

    aio(scenario())


def test_a_whole_file_for_another_key_is_a_miss(aio: Run, tmp_path: Path) -> None:
    async def scenario() -> None:
        tier = DiskTier(tmp_path, MiB)
        other = CacheKey("photos/dog.jpg", KEY.variant)
        await tier.put(other, ENTRY)
        path_of(tmp_path, KEY).parent.mkdir(parents=True)
        os.link(path_of(tmp_path, other), path_of(tmp_path, KEY))  # valid file, wrong place
        assert await tier.get(KEY) is None
        assert await tier.get(other) == ENTRY
        await tier.close()

    aio(scenario())


def test_a_half_written_temp_file_is_ignored_and_removed_once_stale(
    aio: Run, tmp_path: Path
) -> None:
    async def scenario() -> None:
        first = DiskTier(tmp_path, MiB)
        await first.put(KEY, ENTRY)
        directory = path_of(tmp_path, KEY).parent
        stale = directory / ".tmp-99999-0123456789ab"
        fresh = directory / ".tmp-99998-0123456789ab"  # another process writing right now
        for temp in (stale, fresh):
            temp.write_bytes(path_of(tmp_path, KEY).read_bytes()[:100])
        os.utime(stale, (1e9, 1e9))

        assert await first.get(KEY) == ENTRY
        assert await first.get(CacheKey(KEY.source, "other")) is None
        await first.put(CacheKey(KEY.source, "other"), ENTRY)
        assert await first.get(CacheKey(KEY.source, "other")) == ENTRY
        await first.close()

        second = DiskTier(tmp_path, MiB)  # a restart
        await second.start()
        assert not stale.exists()
        assert fresh.exists()
        assert second.bytes_used == on_disk(tmp_path)  # temp files are not counted
        await second.close()

    aio(scenario())


def test_a_second_instance_sees_the_first_ones_entries_and_purges(aio: Run, tmp_path: Path) -> None:
    async def scenario() -> None:
        a, b = DiskTier(tmp_path, MiB), DiskTier(tmp_path, MiB)
        await a.put(KEY, ENTRY)
        await a.put(CacheKey(KEY.source), ENTRY)
        assert await b.get(KEY) == ENTRY

        assert await b.purge(KEY.source) == 2
        assert await a.get(KEY) is None
        assert await a.get(CacheKey(KEY.source)) is None
        assert not path_of(tmp_path, KEY).parent.exists()

        await b.put(CacheKey("other.jpg"), ENTRY)
        await a.put(KEY, ENTRY)  # the shared count includes both instances' writes
        assert (
            a.bytes_used
            == on_disk(tmp_path)
            == 2 * footprint(path_of(tmp_path, KEY).stat().st_size)
        )
        await a.close()
        await b.close()

    aio(scenario())


def test_a_restart_rebuilds_the_byte_count_from_the_directory(aio: Run, tmp_path: Path) -> None:
    async def scenario() -> None:
        tier = DiskTier(tmp_path, MiB)
        keys = [CacheKey(f"p{i}.jpg", f"w={i}") for i in range(20)]
        for i, key in enumerate(keys):
            await tier.put(key, Entry(bytes(1000 * i), "image/jpeg", f'"{i}"'))
        counted = tier.bytes_used
        assert counted == on_disk(tmp_path)
        await tier.close()

        (tmp_path / ".usage").write_bytes((12345).to_bytes(8, "little"))  # a crash left it wrong
        restarted = DiskTier(tmp_path, MiB)
        await restarted.start()
        assert restarted.bytes_used == counted
        assert await restarted.get(keys[7]) == Entry(bytes(7000), "image/jpeg", '"7"')
        await restarted.close()

        (tmp_path / ".usage").unlink()
        again = DiskTier(tmp_path, MiB)
        await again.start()
        assert again.bytes_used == counted
        await again.close()

    aio(scenario())


def test_a_restart_over_the_bound_evicts_at_once(aio: Run, tmp_path: Path) -> None:
    async def scenario() -> None:
        tier = DiskTier(tmp_path, MiB)
        for i in range(40):
            await tier.put(CacheKey(f"p{i}.jpg"), Entry(bytes(20_000), "image/jpeg", ""))
        await tier.close()

        smaller = DiskTier(tmp_path, 256 * 1024)  # reconfigured with less disk
        await smaller.start()
        assert on_disk(tmp_path) == smaller.bytes_used <= 256 * 1024
        assert await smaller.get(CacheKey("p39.jpg")) is not None
        assert await smaller.get(CacheKey("p0.jpg")) is None
        await smaller.close()

    aio(scenario())


def test_two_instances_evicting_one_root_tolerate_files_vanishing(
    aio: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound = 128 * 1024

    async def scenario() -> None:
        a, b = DiskTier(tmp_path, bound), DiskTier(tmp_path, bound)
        original_entries = DiskTier._entries
        scans = 0

        def entries_then_another_process_deletes_half(self: DiskTier) -> list[Any]:
            nonlocal scans
            scans += 1
            found = original_entries(self)
            for _, _, path in found[::2]:
                path.unlink(missing_ok=True)
            return found

        monkeypatch.setattr(a, "_entries", entries_then_another_process_deletes_half.__get__(a))

        async def writer(tier: DiskTier, name: str) -> None:
            for i in range(40):
                key = CacheKey(f"{i % 10}.jpg", f"{name}{i}")
                await tier.put(key, Entry(bytes(5000), "image/jpeg", ""))
                await tier.get(CacheKey(f"{(i + 3) % 10}.jpg", f"a{i}"))
                if i % 7 == 0:
                    await tier.purge(f"{(i + 5) % 10}.jpg")

        await asyncio.gather(writer(a, "a"), writer(b, "b"), writer(a, "c"), writer(b, "d"))
        monkeypatch.undo()
        assert scans > 1  # a evicted while files vanished under it
        fresh = DiskTier(tmp_path, bound)
        await fresh.start()
        assert on_disk(tmp_path) <= bound
        assert fresh.bytes_used == on_disk(tmp_path)
        for tier in (a, b, fresh):
            await tier.close()

    aio(scenario())


def test_a_put_waits_for_the_first_scan_so_its_file_counts_once(
    aio: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan = DiskTier._entries

    def slow_scan(self: DiskTier) -> list[Any]:
        time.sleep(0.02)  # long enough for a racing write to land before the listing
        return scan(self)

    monkeypatch.setattr(DiskTier, "_entries", slow_scan)

    async def scenario() -> None:
        tier = DiskTier(tmp_path, MiB)
        assert await tier.get(KEY) is None  # starts the first scan, does not wait for it
        await tier.put(KEY, ENTRY)
        await tier.start()
        assert tier.bytes_used == on_disk(tmp_path)
        await tier.close()

    aio(scenario())


def _worker_process(root: str, n: int, barrier: Any) -> None:
    """One worker process: random puts, gets and purges on the shared root."""

    async def work() -> None:
        tier = DiskTier(Path(root), 512 * 1024)
        rnd = random.Random(n)
        for _ in range(150):
            key = CacheKey(f"s{rnd.randrange(20)}.jpg", f"v{rnd.randrange(5)}")
            roll = rnd.random()
            if roll < 0.6:
                await tier.put(key, Entry(bytes(rnd.randrange(1000, 40_000)), "image/jpeg", ""))
            elif roll < 0.95:
                await tier.get(key)
            else:
                await tier.purge(key.source)
        await asyncio.to_thread(barrier.wait)
        await tier.put(CacheKey(f"done-{n}"), Entry(str(n).encode(), "text/plain", ""))
        await tier.close()

    asyncio.run(work())


def test_worker_processes_share_one_root_within_its_bound(aio: Run, tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(3)
    workers = [
        context.Process(target=_worker_process, args=(str(tmp_path), n, barrier)) for n in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]

    async def scenario() -> None:
        tier = DiskTier(tmp_path, 512 * 1024)
        for n in range(3):  # each process reads what the others wrote
            assert await tier.get(CacheKey(f"done-{n}")) == Entry(str(n).encode(), "text/plain", "")
        await tier.start()
        assert tier.bytes_used == on_disk(tmp_path) <= 512 * 1024
        assert list(tmp_path.glob("*/*/.tmp-*")) == []
        await tier.close()

    aio(scenario())


def test_an_overwrite_counts_the_file_once(aio: Run, tmp_path: Path) -> None:
    async def scenario() -> None:
        tier = DiskTier(tmp_path, MiB)
        await tier.put(KEY, Entry(bytes(50_000), "image/jpeg", ""))
        await tier.put(KEY, Entry(bytes(10_000), "image/jpeg", ""))
        assert (
            tier.bytes_used == on_disk(tmp_path) == footprint(path_of(tmp_path, KEY).stat().st_size)
        )
        await tier.close()

    aio(scenario())


def test_a_failing_disk_gives_misses_and_logs_never_raises(
    aio: Run, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        tier = DiskTier(tmp_path, MiB)
        path_of(tmp_path, KEY).mkdir(parents=True)  # a directory where the file should be
        with caplog.at_level(logging.WARNING, "appliance.cache.disk"):
            assert await tier.get(KEY) is None
            await tier.put(KEY, ENTRY)
        assert "cache.read_error" in caplog.text
        assert "cache.write_error" in caplog.text
        assert tier.bytes_used == 0
        assert list(path_of(tmp_path, KEY).parent.glob(".tmp-*")) == []  # no temp left behind
        await tier.close()

    aio(scenario())


def test_file_io_runs_on_the_tiers_threads_not_the_event_loop(
    aio: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: set[str] = set()

    def recording(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any) -> Any:
            threads.add(threading.current_thread().name)
            return fn(*args)

        return wrapper

    monkeypatch.setattr("appliance.cache.disk.encode", recording(record.encode))
    monkeypatch.setattr("appliance.cache.disk.decode", recording(record.decode))

    async def scenario() -> None:
        tier = DiskTier(tmp_path, MiB)
        await tier.put(KEY, ENTRY)
        assert await tier.get(KEY) == ENTRY
        await tier.close()

    aio(scenario())
    assert threads and all(name.startswith("cache-disk") for name in threads)


def test_closing_twice_is_harmless_and_a_closed_tier_answers_misses(
    aio: Run, tmp_path: Path
) -> None:
    async def scenario() -> None:
        tier = DiskTier(tmp_path, MiB)
        await tier.put(KEY, ENTRY)
        await tier.close()
        await tier.close()
        assert await tier.get(KEY) is None
        await tier.put(KEY, ENTRY)
        assert await tier.purge(KEY.source) == 0

    aio(scenario())

"""The disk tier's file format: a 24-byte prefix, a JSON header, then the body::

    magic "APCE" | version u8 | 3 pad | header_len u32 | body_len u64 | crc32 u32   (little-endian)
    header: {"source", "variant", "content_type", "etag", "last_modified", "meta"} as JSON
    body

The crc32 (zlib's: 3 GB/s here, against 0.7 GB/s for blake2b) covers the prefix's first 20
bytes, the header and the body; it is there to catch torn writes and bit rot, not tampering.
The header names the key, so a scan can say what a file holds and a read can check that the
file is the one its path promises.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import BinaryIO

from appliance.cache.tier import CacheKey, Entry

MAGIC = b"APCE"
VERSION = 1
PREFIX = struct.Struct("<4sB3xIQI")  # magic, version, header_len, body_len, crc32
_CRC_AT = PREFIX.size - 4
MAX_HEADER = 1 << 20


class Corrupt(Exception):
    """Not a whole, valid entry file; the message says why (``truncated``, ``checksum``...)."""


def encode(key: CacheKey, entry: Entry) -> list[bytes]:
    """The file's parts: prefix, header, body (written with one writev, never concatenated)."""
    header = json.dumps(
        {
            "source": key.source,
            "variant": key.variant,
            "content_type": entry.content_type,
            "etag": entry.etag,
            "last_modified": entry.last_modified,
            "meta": entry.meta,
        },
        separators=(",", ":"),
    ).encode()  # ensure_ascii (the default) also carries lone surrogates through
    head = PREFIX.pack(MAGIC, VERSION, len(header), len(entry.data), 0)[:_CRC_AT]
    crc = zlib.crc32(entry.data, zlib.crc32(header, zlib.crc32(head)))
    return [head + struct.pack("<I", crc), header, entry.data]


def decode(f: BinaryIO, size: int) -> tuple[CacheKey, Entry]:
    """Reads one file of ``size`` bytes; raises Corrupt for anything but a whole, valid file."""
    prefix = f.read(PREFIX.size)
    if len(prefix) < PREFIX.size:
        raise Corrupt("truncated")
    magic, version, header_len, body_len, crc = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise Corrupt("magic")
    if version != VERSION:
        raise Corrupt("version")
    if header_len > MAX_HEADER or PREFIX.size + header_len + body_len != size:
        raise Corrupt("length")
    header = f.read(header_len)
    body = f.read(body_len)
    if len(header) != header_len or len(body) != body_len:
        raise Corrupt("truncated")
    if zlib.crc32(body, zlib.crc32(header, zlib.crc32(prefix[:_CRC_AT]))) != crc:
        raise Corrupt("checksum")
    try:
        h = json.loads(header)
        key = CacheKey(_str(h["source"]), _str(h["variant"]))
        last_modified = h["last_modified"]
        if last_modified is not None:
            last_modified = float(last_modified)
        meta = {_str(k): _str(v) for k, v in h["meta"].items()}
        entry = Entry(body, _str(h["content_type"]), _str(h["etag"]), last_modified, meta)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise Corrupt("header") from e
    return key, entry


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value

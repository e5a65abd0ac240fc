"""Byte-level file surgery for the native tests: JPEG markers, PNG chunks, WebP/GIF headers,
hand-built ICC profiles, and the random damage of the fuzz loop.

These write the bytes no encoder will (16-bit and interlaced PNG, YCCK flags, 60000x60000
headers, multi-segment ICC) and read back the structure the tests assert on.
"""

from __future__ import annotations

import random
import re
import struct
import zlib

import numpy as np
from PIL import Image

# --------------------------------------------------------------------------------------
# JPEG marker surgery

SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
STANDALONE = {0x01, *range(0xD0, 0xD8)}


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """Header segments up to and including SOS: (marker, offset of 0xFF, total length)."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    out = []
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in STANDALONE:
            out.append((marker, i, 2))
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        out.append((marker, i, 2 + length))
        if marker == 0xDA:
            break
        i += 2 + length
    return out


def jpeg_markers(data: bytes) -> list[int]:
    return [m for m, _, _ in jpeg_segments(data)]


def jpeg_app_payloads(data: bytes, marker: int) -> list[bytes]:
    return [data[off + 4 : off + n] for m, off, n in jpeg_segments(data) if m == marker]


def insert_jpeg_segment(data: bytes, marker: int, payload: bytes) -> bytes:
    """Insert a marker segment after SOI and any APP0 (JFIF) segment."""
    segs = jpeg_segments(data)
    pos = 2
    for m, off, n in segs:
        if m == 0xE0:
            pos = off + n
        else:
            break
    seg = bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
    return data[:pos] + seg + data[pos:]


def exif_bytes(orientation: int | None = None, extra: dict[int, object] | None = None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    for k, v in (extra or {}).items():
        exif[k] = v
    return exif.tobytes()  # starts with b"Exif\0\0"


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    return insert_jpeg_segment(jpeg, 0xE1, exif_bytes(orientation))


def patch_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the SOF frame size (a hand-made decompression bomb when the size is huge)."""
    for m, off, _n in jpeg_segments(data):
        if m in SOF_MARKERS:
            b = bytearray(data)
            b[off + 5 : off + 9] = struct.pack(">HH", height, width)
            return bytes(b)
    raise ValueError("no SOF marker")


def patch_adobe_transform(data: bytes, transform: int) -> bytes:
    for m, off, _n in jpeg_segments(data):
        if m == 0xEE and data[off + 4 : off + 9] == b"Adobe":
            b = bytearray(data)
            b[off + 4 + 11] = transform
            return bytes(b)
    raise ValueError("no Adobe marker")


# --------------------------------------------------------------------------------------
# PNG by hand (16-bit, sub-byte palettes, interlacing, bombs)


def png_chunk(tag: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(tag + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", crc)


def _pack_rows(arr: np.ndarray, bit_depth: int) -> list[bytes]:
    h = arr.shape[0]
    if bit_depth == 16:
        a = arr.astype(">u2")
        return [a[r].tobytes() for r in range(h)]
    if bit_depth == 8:
        a = arr.astype(np.uint8)
        return [a[r].tobytes() for r in range(h)]
    rows = []
    for r in range(h):
        vals = arr[r].astype(np.uint8).reshape(-1)
        bits = np.unpackbits(vals[:, None], axis=1)[:, 8 - bit_depth :].reshape(-1)
        rows.append(np.packbits(bits).tobytes())
    return rows


ADAM7 = [
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
]


def png_bytes(
    arr: np.ndarray,
    color_type: int,
    bit_depth: int = 8,
    *,
    palette: list[tuple[int, int, int]] | None = None,
    trns: bytes | None = None,
    interlace: bool = False,
    icc: bytes | None = None,
    extra_chunks: list[tuple[bytes, bytes]] | None = None,
) -> bytes:
    """Write a PNG from an (h, w) or (h, w, c) array exactly as given (filter 0)."""
    if arr.ndim == 2:
        arr = arr[..., None]
    h, w = arr.shape[:2]
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 1 if interlace else 0)
    out = [b"\x89PNG\r\n\x1a\n", png_chunk(b"IHDR", ihdr)]
    if icc is not None:
        out.append(png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc)))
    for tag, payload in extra_chunks or []:
        out.append(png_chunk(tag, payload))
    if palette is not None:
        out.append(png_chunk(b"PLTE", b"".join(bytes(c) for c in palette)))
    if trns is not None:
        out.append(png_chunk(b"tRNS", trns))
    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        sub = arr[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in _pack_rows(sub.reshape(sub.shape[0], -1), bit_depth):
            raw += b"\x00" + row
    out.append(png_chunk(b"IDAT", zlib.compress(bytes(raw), 6)))
    out.append(png_chunk(b"IEND", b""))
    return b"".join(out)


def patch_png_size(data: bytes, width: int, height: int) -> bytes:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    return data[:8] + png_chunk(b"IHDR", bytes(ihdr)) + data[33:]


# --------------------------------------------------------------------------------------
# WebP / GIF header surgery


def riff_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(fourcc, payload offset, payload size) of the chunks inside a RIFF/WEBP file."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    out = []
    i = 12
    while i + 8 <= len(data):
        tag = data[i : i + 4]
        size = struct.unpack("<I", data[i + 4 : i + 8])[0]
        out.append((tag, i + 8, size))
        i += 8 + size + (size & 1)
    return out


def patch_webp_size(data: bytes, width: int, height: int, canvas_only: bool = False) -> bytes:
    """Rewrite the frame size in the VP8/VP8L bitstream and the VP8X canvas, if any."""
    b = bytearray(data)
    for tag, off, _size in riff_chunks(data):
        if canvas_only and tag != b"VP8X":
            continue
        if tag == b"VP8X":
            b[off + 4 : off + 7] = (width - 1).to_bytes(3, "little")
            b[off + 7 : off + 10] = (height - 1).to_bytes(3, "little")
        elif tag == b"VP8L":
            assert width <= 16384 and height <= 16384
            bits = struct.unpack("<I", b[off + 1 : off + 5])[0]
            bits = (bits & ~0x0FFFFFFF) | (width - 1) | ((height - 1) << 14)
            b[off + 1 : off + 5] = struct.pack("<I", bits)
        elif tag == b"VP8 ":
            assert width <= 16383 and height <= 16383
            assert b[off + 3 : off + 6] == b"\x9d\x01\x2a"
            b[off + 6 : off + 10] = struct.pack("<HH", width, height)
    return bytes(b)


def webp_size(data: bytes) -> tuple[int, int]:
    """The size a WebP header announces: the VP8X canvas if present, else the frame's."""
    for tag, off, _size in riff_chunks(data):
        if tag == b"VP8X":
            return (
                int.from_bytes(data[off + 4 : off + 7], "little") + 1,
                int.from_bytes(data[off + 7 : off + 10], "little") + 1,
            )
        if tag == b"VP8L":
            bits = struct.unpack("<I", data[off + 1 : off + 5])[0]
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if tag == b"VP8 ":
            w, h = struct.unpack("<HH", data[off + 6 : off + 10])
            return w & 0x3FFF, h & 0x3FFF
    raise ValueError("no image chunk")


def gif_image_descriptors(data: bytes) -> list[int]:
    """Offsets of the 0x2C image descriptors of a GIF."""
    assert data[:3] == b"GIF"
    flags = data[10]
    i = 13 + (3 * (2 ** ((flags & 7) + 1)) if flags & 0x80 else 0)
    out = []
    while i < len(data):
        block = data[i]
        if block == 0x3B:
            break
        if block == 0x21:
            i += 2
            while data[i]:
                i += 1 + data[i]
            i += 1
        elif block == 0x2C:
            out.append(i)
            lflags = data[i + 9]
            i += 10 + (3 * (2 ** ((lflags & 7) + 1)) if lflags & 0x80 else 0)
            i += 1  # LZW minimum code size
            while data[i]:
                i += 1 + data[i]
            i += 1
        else:
            raise ValueError(f"bad GIF block {block:#x} at {i}")
    return out


def patch_gif_size(data: bytes, width: int, height: int) -> bytes:
    b = bytearray(data)
    b[6:10] = struct.pack("<HH", width, height)
    for off in gif_image_descriptors(data):
        b[off + 5 : off + 9] = struct.pack("<HH", width, height)
    return bytes(b)


# --------------------------------------------------------------------------------------
# ICC profiles by hand

D50 = (0.9642, 1.0, 0.8249)
# Adobe RGB (1998) primaries, Bradford-adapted to D50 (as in Adobe's own profile)
ADOBE_RGB_D50 = (
    (0.60974, 0.31111, 0.01947),
    (0.20528, 0.62567, 0.06087),
    (0.14919, 0.06322, 0.74457),
)


def _s15f16(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz_tag(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15f16(v) for v in xyz)


def _desc_tag(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(ascii_))
        + ascii_
        + struct.pack(">II", 0, 0)
        + struct.pack(">HB", 0, 0)
        + b"\0" * 67
    )


def matrix_trc_profile(
    description: str, primaries=ADOBE_RGB_D50, gamma: float = 563 / 256, padding: int = 0
) -> bytes:
    """An ICC v2 RGB display profile (matrix/TRC). Default: Adobe RGB (1998) (gamma 563/256).

    `padding` adds a private tag of that many bytes (to test profiles that need several
    JPEG APP2 segments).
    """
    curv = b"curv\0\0\0\0" + struct.pack(">I", 1) + struct.pack(">H", round(gamma * 256)) + b"\0\0"
    tags: list[tuple[bytes, bytes]] = [
        (b"desc", _desc_tag(description)),
        (b"cprt", b"text\0\0\0\0" + b"No copyright, test profile\0"),
        (b"wtpt", _xyz_tag(D50)),
        (b"rXYZ", _xyz_tag(primaries[0])),
        (b"gXYZ", _xyz_tag(primaries[1])),
        (b"bXYZ", _xyz_tag(primaries[2])),
        (b"rTRC", curv),
        (b"gTRC", curv),
        (b"bTRC", curv),
    ]
    if padding:
        rng = random.Random(padding)
        tags.append(
            (
                b"zpad",
                b"data\0\0\0\0" + b"\0\0\0\0" + bytes(rng.getrandbits(8) for _ in range(padding)),
            )
        )
    table_len = 4 + 12 * len(tags)
    offset = 128 + table_len
    table = [struct.pack(">I", len(tags))]
    body = b""
    for sig, payload in tags:
        while (offset + len(body)) % 4:
            body += b"\0"
        table.append(sig + struct.pack(">II", offset + len(body), len(payload)))
        body += payload
    while len(body) % 4:
        body += b"\0"
    size = 128 + table_len + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"APPL"
        + b"\0" * 4
        + b"\0" * 8
        + b"\0" * 8
        + struct.pack(">I", 0)
        + b"".join(_s15f16(v) for v in D50)
        + b"test"
        + b"\0" * 44
    )
    assert len(header) == 128, len(header)
    return header + b"".join(table) + body


def srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# --------------------------------------------------------------------------------------
# Damage for the fuzz loop


def _structural_offsets(data: bytes) -> list[int]:
    """Offsets of headers/markers/chunk lengths, where damage hurts parsers the most."""
    offs: list[int] = []
    if data[:2] == b"\xff\xd8":
        try:
            for _m, off, n in jpeg_segments(data):
                offs += [off + 1, off + 2, off + 3, *range(off + 4, min(off + n, off + 14))]
        except (AssertionError, struct.error):
            pass
        for k, mt in enumerate(re.finditer(rb"\xff[\xc0-\xfe]", data)):
            if k >= 200:
                break
            offs.append(mt.start() + 1)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        i = 8
        while i + 8 <= len(data):
            n = struct.unpack(">I", data[i : i + 4])[0]
            offs += list(range(i, i + 8)) + list(range(i + 8, min(i + 8 + n, i + 21)))
            i += 12 + n
    else:
        offs = list(range(min(len(data), 64)))
    return [o for o in offs if 0 <= o < len(data)] or [0]


def damage(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Apply 1-3 random kinds of damage; returns the bytes and a description."""
    b = bytearray(data)
    done = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if not b:
            break
        kind = rng.choice(["flip", "flip", "truncate", "insert", "delete", "marker", "marker"])
        if kind == "flip":
            n = rng.randint(1, 24)
            head = rng.random() < 0.5
            for _ in range(n):
                pos = rng.randrange(min(len(b), 4096)) if head else rng.randrange(len(b))
                b[pos] ^= 1 << rng.randrange(8)
            done.append(f"flip{n}{'h' if head else ''}")
        elif kind == "truncate":
            cut = rng.randrange(len(b))
            del b[cut:]
            done.append(f"cut@{cut}")
        elif kind == "insert":
            pos = rng.randrange(len(b) + 1)
            n = rng.randint(1, 64)
            b[pos:pos] = bytes(rng.getrandbits(8) for _ in range(n))
            done.append(f"ins{n}@{pos}")
        elif kind == "delete":
            pos = rng.randrange(len(b))
            n = rng.randint(1, 256)
            del b[pos : pos + n]
            done.append(f"del{n}@{pos}")
        else:
            offs = _structural_offsets(bytes(b))
            pos = rng.choice(offs)
            how = rng.choice(["byte", "zero", "ff", "marker", "dup"])
            if how == "byte":
                b[pos] = rng.getrandbits(8)
            elif how == "zero":
                b[pos] = 0
            elif how == "ff":
                b[pos] = 0xFF
            elif how == "marker":
                b[pos:pos] = bytes(
                    [0xFF, rng.choice([0xC0, 0xC2, 0xC4, 0xD8, 0xD9, 0xDA, 0xDB, 0xDD, 0xD0])]
                )
            else:
                n = rng.randint(2, 64)
                b[pos:pos] = b[pos : pos + n]
            done.append(f"marker-{how}@{pos}")
    return bytes(b), "+".join(done)

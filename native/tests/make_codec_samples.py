"""Writes the PNG/WebP/GIF samples that codecs_smoke.cc reads, and Pillow's
decode of each (the independent oracle) as raw RGBA.

usage: python make_codec_samples.py CORPUS_DIR OUT_DIR

For every sample NAME.EXT it writes NAME.EXT and NAME.rgba (width x height x 4
bytes, Pillow's first frame, converted to RGBA), and lists "NAME.EXT W H" in
OUT_DIR/manifest.txt. 16-bit and Adam7 PNGs, which Pillow cannot write, are
written here by hand; their .rgba holds the expected 8-bit values.
"""
from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

from PIL import Image, ImageCms


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _png(width: int, height: int, depth: int, color_type: int, raw: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b""))


def _png16(img: Image.Image, color_type: int) -> tuple[bytes, bytes]:
    """A 16-bit PNG whose low bytes are noise, and the 8-bit RGBA it must decode to."""
    rgba = img.convert("RGBA")
    w, h = rgba.size
    px = rgba.tobytes()
    channels = {0: 1, 4: 2, 2: 3, 6: 4}[color_type]
    rows = bytearray()
    expected = bytearray()
    for y in range(h):
        rows.append(0)
        for x in range(w):
            r, g, b, a = px[(y * w + x) * 4:(y * w + x) * 4 + 4]
            gray = (r * 299 + g * 587 + b * 114) // 1000
            values = {1: [gray], 2: [gray, a], 3: [r, g, b], 4: [r, g, b, a]}[channels]
            for i, v in enumerate(values):
                rows += struct.pack(">H", v * 256 + ((x * 7 + y * 13 + i) & 0xFF))
            if channels <= 2:
                expected += bytes([gray, gray, gray, a if channels == 2 else 255])
            else:
                expected += bytes([r, g, b, a if channels == 4 else 255])
    return _png(w, h, 16, color_type, bytes(rows)), bytes(expected)


def _png_gray_bits(img: Image.Image, depth: int) -> tuple[bytes, bytes]:
    """A 1/2/4-bit gray PNG and the 8-bit RGBA it must decode to."""
    gray = img.convert("L")
    w, h = gray.size
    px = gray.tobytes()
    levels = (1 << depth) - 1
    raw = bytearray()
    expected = bytearray()
    for y in range(h):
        raw.append(0)
        acc = 0
        bits = 0
        for x in range(w):
            v = px[y * w + x] * levels // 255
            g = v * 255 // levels
            expected += bytes([g, g, g, 255])
            acc = (acc << depth) | v
            bits += depth
            if bits == 8:
                raw.append(acc)
                acc = bits = 0
        if bits:
            raw.append(acc << (8 - bits))
    return _png(w, h, depth, 0, bytes(raw)), bytes(expected)


def _png_adam7(img: Image.Image, mode: str = "RGBA") -> bytes:
    conv = img.convert(mode)
    w, h = conv.size
    px = conv.tobytes()
    bpp = len(mode)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
              (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = bytearray()
    for x0, y0, dx, dy in passes:
        xs = range(x0, w, dx)
        if not xs:
            continue
        for y in range(y0, h, dy):
            raw.append(0)
            for x in xs:
                raw += px[(y * w + x) * bpp:(y * w + x) * bpp + bpp]
    ihdr = struct.pack(">IIBBBBB", w, h, 8, {"L": 0, "RGB": 2, "RGBA": 6}[mode], 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + _chunk(b"IEND", b""))


def _patch_gif_screen(data: bytes, screen: tuple[int, int], offset: tuple[int, int]) -> bytes:
    """Sets the logical screen size and the first frame's position."""
    out = bytearray(data)
    out[6:10] = struct.pack("<HH", *screen)
    pos = 13
    if out[10] & 0x80:
        pos += 3 * (2 << (out[10] & 7))
    while out[pos] == 0x21:  # extensions
        pos += 2
        while out[pos]:
            pos += out[pos] + 1
        pos += 1
    assert out[pos] == 0x2C
    out[pos + 1:pos + 5] = struct.pack("<HH", *offset)
    return bytes(out)


def main(corpus: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    astronaut = Image.open(corpus / "p_astronaut.png").convert("RGB")
    coffee = Image.open(corpus / "p_coffee.png").convert("RGB")
    gulp = Image.open(corpus / "p_gulp_alpha.png").convert("RGBA").resize((480, 300))
    odd = coffee.crop((11, 7, 11 + 333, 7 + 217))
    srgb_icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    (out / "srgb.icc").write_bytes(srgb_icc)
    manifest: list[str] = []

    def save(name: str, data: bytes, expected: bytes | None = None) -> None:
        (out / name).write_bytes(data)
        im = Image.open(io.BytesIO(data))
        im.seek(0)
        w, h = im.size
        if expected is None:
            expected = im.convert("RGBA").tobytes()
        (out / (name.rsplit(".", 1)[0] + ".rgba")).write_bytes(expected)
        manifest.append(f"{name} {w} {h}")

    def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        return buf.getvalue()

    # WebP
    save("w_lossy.webp", encode(astronaut, "WEBP", quality=80))
    save("w_lossy_odd.webp", encode(odd, "WEBP", quality=85))
    save("w_lossy_alpha.webp", encode(gulp, "WEBP", quality=80))
    save("w_lossless.webp", encode(coffee, "WEBP", lossless=True))
    save("w_lossless_alpha.webp", encode(gulp, "WEBP", lossless=True, exact=True))
    save("w_icc.webp", encode(odd, "WEBP", quality=80, icc_profile=srgb_icc))
    frames = [astronaut.resize((200, 150)), coffee.resize((200, 150)), odd.resize((200, 150))]
    save("w_anim.webp", encode(frames[0], "WEBP", save_all=True, append_images=frames[1:],
                               duration=100, loop=0, quality=80))
    # GIF
    pal = astronaut.quantize(256)
    save("g_simple.gif", encode(pal, "GIF", interlace=False))
    save("g_interlaced.gif", encode(pal, "GIF", interlace=True))
    trans = gulp.convert("RGB").quantize(255)
    mask = gulp.getchannel("A").point(lambda a: 255 if a < 128 else 0)
    trans.paste(255, mask=mask)
    save("g_transparent.gif", encode(trans, "GIF", transparency=255))
    anim = [f.quantize(256) for f in frames]
    save("g_anim.gif", encode(anim[0], "GIF", save_all=True, append_images=anim[1:],
                              duration=100, loop=0))
    small = astronaut.resize((40, 30)).quantize(64)
    small_bytes = encode(small, "GIF", transparency=0, interlace=False)
    # Screen 64x48 with the frame at (10, 5): the rest of the screen is transparent.
    offset = _patch_gif_screen(small_bytes, (64, 48), (10, 5))
    (out / "g_offset.gif").write_bytes(offset)
    small_rgba = small.convert("RGBA")
    alpha = bytes(0 if i == 0 else 255 for i in small.tobytes())  # index 0 is transparent
    small_rgba.putalpha(Image.frombytes("L", small.size, alpha))
    canvas = Image.new("RGBA", (64, 48), (0, 0, 0, 0))
    canvas.paste(small_rgba, (10, 5))
    (out / "g_offset.rgba").write_bytes(canvas.tobytes())
    manifest.append("g_offset.gif 64 48")
    # Frame hanging off the right and bottom edges of a 32x24 screen: clipped.
    clipped = _patch_gif_screen(small_bytes, (32, 24), (20, 15))
    (out / "g_clipped.gif").write_bytes(clipped)
    canvas = Image.new("RGBA", (32, 24), (0, 0, 0, 0))
    canvas.paste(small_rgba, (20, 15))
    (out / "g_clipped.rgba").write_bytes(canvas.tobytes())
    manifest.append("g_clipped.gif 32 24")
    # PNG
    gray = astronaut.convert("L")
    save("p_gray8.png", encode(gray, "PNG"))
    save("p_gray1.png", encode(gray.convert("1"), "PNG"))
    save("p_gray_trns.png", encode(gray, "PNG", transparency=0))
    save("p_la.png", encode(gulp.convert("LA"), "PNG"))
    save("p_pal.png", encode(pal, "PNG"))
    save("p_pal4.png", encode(astronaut.quantize(16), "PNG", bits=4))
    save("p_pal_trns.png", encode(trans, "PNG", transparency=255))
    save("p_rgb_trns.png", encode(odd, "PNG", transparency=(255, 255, 255)))
    save("p_icc.png", encode(odd, "PNG", icc_profile=srgb_icc))
    data, expected = _png16(gulp, 6)
    save("p_rgba16.png", data, expected)
    data, expected = _png16(odd, 2)
    save("p_rgb16.png", data, expected)
    data, expected = _png16(gulp, 4)
    save("p_la16.png", data, expected)
    data, expected = _png16(astronaut, 0)
    save("p_gray16.png", data, expected)
    for depth in (2, 4):
        data, expected = _png_gray_bits(odd, depth)
        save(f"p_gray{depth}.png", data, expected)
    save("p_adam7.png", _png_adam7(gulp.crop((0, 0, 333, 217))))
    save("p_adam7_gray.png", _png_adam7(odd, "L"))
    save("p_adam7_tiny.png", _png_adam7(odd.crop((0, 0, 3, 2)), "RGB"))
    (out / "manifest.txt").write_text("\n".join(manifest) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

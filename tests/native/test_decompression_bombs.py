"""Decompression bombs: a huge size in a tiny file's header is refused before allocating.

Each bomb runs in a fresh Python process (so ru_maxrss starts low, and a crash or an
out-of-memory kill cannot take pytest down), after one warm-up transcode, under an address
space limit of its current size + 1 GiB: a decoder that allocates the 10 GB frame fails
loudly instead of overcommitting quietly. We assert the error kind, < 1 s, and < 50 MB of
peak RSS growth.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import containers as C
import images as I
import pytest
from PIL import Image

RUNNER = r"""
import json, resource, sys, time
sys.path[:0] = json.loads(sys.argv[1])
import appliance

appliance.transcode(open(sys.argv[3], "rb").read(), width=16)  # warm up codecs and pools
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
limit = vm + (1 << 30)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
data = open(sys.argv[2], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
try:
    appliance.transcode(data, width=200)
    outcome = "no error"
except BaseException as e:
    outcome = type(e).__name__ + ": " + str(e)[:200]
seconds = time.perf_counter() - t0
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
growth_mb = (after - before) / 1024
print(json.dumps({"outcome": outcome, "seconds": seconds, "rss_growth_mb": growth_mb}))
"""


def _tiny(fmt: str, **kw) -> bytes:
    return I.encode(I.smooth_image(32, 24), fmt, **kw)


BOMBS = {
    "jpeg-baseline-60000x60000": lambda: C.patch_jpeg_size(_tiny("JPEG"), 60000, 60000),
    "jpeg-progressive-60000x60000": lambda: C.patch_jpeg_size(
        _tiny("JPEG", progressive=True), 60000, 60000
    ),
    "jpeg-just-over-50mp": lambda: C.patch_jpeg_size(_tiny("JPEG"), 8000, 6251),
    "png-60000x60000": lambda: C.patch_png_size(_tiny("PNG"), 60000, 60000),
    "webp-lossless-16384x16384": lambda: C.patch_webp_size(
        _tiny("WEBP", lossless=True), 16384, 16384
    ),
    "webp-lossy-16383x16383": lambda: C.patch_webp_size(_tiny("WEBP", quality=80), 16383, 16383),
    "gif-60000x60000": lambda: C.patch_gif_size(_tiny("GIF"), 60000, 60000),
}
# A VP8X canvas that disagrees with its frame may be refused as corrupt instead.
ALSO_ACCEPTED = {
    "webp-vp8x-canvas-60000x60000": ("CorruptImageError",),
}
BOMBS["webp-vp8x-canvas-60000x60000"] = lambda: C.patch_webp_size(
    I.encode(Image.new("RGBA", (32, 24), (10, 20, 30, 128)), "WEBP", quality=80),
    60000,
    60000,
    canvas_only=True,
)


def run_isolated(tmp_path: Path, data: bytes) -> dict:
    bomb, warm = tmp_path / "bomb.bin", tmp_path / "warm.jpg"
    bomb.write_bytes(data)
    warm.write_bytes(_tiny("JPEG"))
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(sys.path), str(bomb), str(warm)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"process died ({proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(BOMBS))
def test_huge_header_is_refused_before_allocating(name, tmp_path):
    result = run_isolated(tmp_path, BOMBS[name]())
    accepted = ("ImageTooLargeError", *ALSO_ACCEPTED.get(name, ()))
    assert result["outcome"].startswith(accepted), f"{name}: {result['outcome']}"
    assert result["seconds"] < 1.0, f"{name}: took {result['seconds']:.2f} s"
    assert result["rss_growth_mb"] < 50, (
        f"{name}: peak RSS grew by {result['rss_growth_mb']:.0f} MB"
    )


def test_bomb_headers_really_say_what_we_think():
    """The patched headers are read back by Pillow with the huge size (so the test is real)."""
    Image.MAX_IMAGE_PIXELS = None
    import io

    for name, make in BOMBS.items():
        data = make()
        size = C.webp_size(data) if name.startswith("webp") else Image.open(io.BytesIO(data)).size
        if name.startswith("jpeg-just-over"):
            assert size == (8000, 6251)
        elif "16384" in name:
            assert size == (16384, 16384)
        elif "16383" in name:
            assert size == (16383, 16383)
        else:
            assert size == (60000, 60000), name


def test_a_bomb_is_refused_in_process_too():
    """Same JPEG bomb in-process (no limits), for the error's status and message."""
    import appliance
    from appliance.errors import ImageTooLargeError

    with pytest.raises(ImageTooLargeError) as e:
        appliance.transcode(BOMBS["jpeg-baseline-60000x60000"]())
    assert e.value.status == 413 and e.value.public_message


def _many_scans(count: int) -> bytes:
    """A 2000x1500 progressive JPEG whose last scan is repeated until it has `count` scans: a
    few kilobytes that cost a pass over every block per scan (a CPU bomb, not a memory one)."""
    data = I.encode(I.smooth_image(2000, 1500), "JPEG", progressive=True, quality=50)
    last = data.rindex(b"\xff\xda")
    scan = data[last:-2]  # the last SOS and its data, up to EOI
    scans = data.count(b"\xff\xda")
    return data[:-2] + scan * (count - scans) + b"\xff\xd9"


@pytest.mark.parametrize("width", [500, 1000, 2000], ids=["one-quarter", "one-half", "whole"])
def test_a_jpeg_with_too_many_scans_is_refused_quickly(width):
    # Each decoder counts scans as libjpeg-turbo's does (at most 500): the scaled decoder at 1/4
    # and 1/2 scale, libjpeg-turbo at full size.
    import time

    import appliance
    from appliance.errors import CorruptImageError

    data = _many_scans(5000)
    assert data.count(b"\xff\xda") == 5000
    start = time.perf_counter()
    with pytest.raises(CorruptImageError):
        appliance.transcode(data, width=width)
    assert time.perf_counter() - start < 2.0
    # ... and a file with fewer scans than the bound is fine.
    appliance.transcode(_many_scans(400), width=width)


def test_the_one_eighth_path_skips_the_scans_it_does_not_need():
    # At 1/8 scale only the DC scans are decoded: the repeated AC scan is skipped, not run.
    import time

    import appliance

    start = time.perf_counter()
    out = appliance.transcode(_many_scans(5000), width=200)
    assert time.perf_counter() - start < 2.0
    assert appliance.probe(out).width == 200

"""Randomly damaged files never crash the process: they raise TranscodeError or decode.

Damage (images.damage): random bit flips (half of them in the first 4 KB), truncation,
inserted and deleted runs, and marker/chunk damage (lengths, marker bytes, duplicated
segments), one to three at a time, from a seeded RNG: a failure prints the seed and the
iteration, which replays it. Every call runs in-process, so a crash kills pytest: that
is the point. A damaged file that still decodes must give an image Pillow can open, of
the size the Result reports. Override the seed with APPLIANCE_FUZZ_SEED.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter

import containers as C
import images as I
import numpy as np
import oracle as O
import pytest

import appliance
from appliance.errors import TranscodeError

SEED = int(os.environ.get("APPLIANCE_FUZZ_SEED", "20250611"))
SLOW_CALL = 5.0  # seconds: a damaged file must not make the decoder spin


def run_fuzz(
    pool: list[tuple[str, bytes]],
    count: int,
    seed: int,
    formats: list[str | None],
    widths: list[int],
) -> Counter:
    rng = random.Random(seed)
    outcomes: Counter = Counter()
    failures: list[str] = []
    for i in range(count):
        name, data = rng.choice(pool)
        bad, how = C.damage(data, rng)
        opts = dict(width=rng.choice(widths), format=rng.choice(formats))
        if rng.random() < 0.2:
            opts.update(height=opts["width"], fit=rng.choice(["cover", "pad", "stretch"]))
        where = f"seed={seed} i={i} {name} [{how}] {opts}"
        t0 = time.perf_counter()
        try:
            res = appliance.transcode_image(bad, **opts)
        except TranscodeError as e:
            outcomes[type(e).__name__] += 1
            if not (isinstance(e.public_message, str) and e.public_message):
                failures.append(f"{where}: {type(e).__name__} without a public message")
        except Exception as e:
            failures.append(f"{where}: {type(e).__name__}: {e}")
        else:
            outcomes["decoded"] += 1
            try:
                im = O.open_image(res.data)
                if im.size != (res.width, res.height):
                    failures.append(
                        f"{where}: output is {im.size}, Result says {(res.width, res.height)}"
                    )
            except Exception as e:
                failures.append(f"{where}: output does not decode: {e}")
        dt = time.perf_counter() - t0
        if dt > SLOW_CALL:
            failures.append(f"{where}: took {dt:.1f} s")
    assert not failures, f"{len(failures)} of {count} damaged files misbehaved:\n" + "\n".join(
        failures[:30]
    )
    return outcomes


@pytest.fixture(scope="module")
def corpus_pool(corpus) -> list[tuple[str, bytes]]:
    files = I.corpus_files()
    assert files, "corpus is empty"
    return [(p.name, p.read_bytes()) for p in files]


@pytest.fixture(scope="module")
def generated_pool(layout_jpegs, base_photo, oriented_jpegs) -> list[tuple[str, bytes]]:
    small = base_photo.resize((160, 101))
    alpha = small.convert("RGBA")
    alpha.putalpha(128)
    pool = [(f"{lay}-{cod}.jpg", data) for (lay, cod), data in layout_jpegs.items()]
    pool += [
        ("orient6.jpg", oriented_jpegs["420", 6]),
        ("cmyk.jpg", I.cmyk_jpeg(small)),
        ("ycck.jpg", I.ycck_jpeg(small)),
        ("rgb.png", I.encode(small, "PNG")),
        ("rgba.png", I.encode(alpha, "PNG")),
        ("palette.png", I.encode(small.convert("P", palette=1), "PNG")),
        (
            "rgb16-interlaced.png",
            C.png_bytes(np.asarray(small).astype(np.uint16) * 257, 2, 16, interlace=True),
        ),
        ("lossy.webp", I.encode(small, "WEBP", quality=80)),
        ("lossless.webp", I.encode(small, "WEBP", lossless=True)),
        ("alpha.webp", I.encode(alpha, "WEBP", quality=80)),
        (
            "anim.gif",
            I.encode(
                small.convert("P", palette=1),
                "GIF",
                save_all=True,
                append_images=[small.rotate(180).convert("P", palette=1)],
            ),
        ),
    ]
    return pool


FAST_FORMATS = ["jpeg", "png", "webp", None]


def test_damaged_corpus_files_raise_only_transcode_error_100(corpus_pool):
    outcomes = run_fuzz(corpus_pool, 100, SEED, FAST_FORMATS, [48, 160, 320])
    print(f"\n100 damaged corpus files: {dict(outcomes)}")


@pytest.mark.slow
def test_damaged_corpus_files_raise_only_transcode_error_1000(corpus_pool):
    outcomes = run_fuzz(corpus_pool, 1000, SEED + 1, FAST_FORMATS, [48, 160, 320, 640])
    print(f"\n1000 damaged corpus files: {dict(outcomes)}")


def test_damaged_generated_files_of_every_kind_raise_only_transcode_error(generated_pool):
    """Small generated files of every layout and format, to every output (AVIF included)."""
    outcomes = run_fuzz(generated_pool, 400, SEED + 2, [*FAST_FORMATS, "avif"], [16, 64, 200])
    print(f"\n400 damaged generated files: {dict(outcomes)}")

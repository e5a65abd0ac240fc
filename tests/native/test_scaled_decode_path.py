"""Our own JPEG decoder at 1/4 and 1/2 scale, baseline and progressive (docs/decisions/0011).

It keeps each block's low-frequency corner and takes it through an n-point inverse DCT, where
libjpeg-turbo keeps all 64 coefficients and uses its own reduced IDCTs, and it leaves chroma at
its subsampled size where libjpeg scales it up through a larger IDCT (and at half the scale when
the output takes 4:2:0 chroma and the source has more). So the planes are compared with a plain
libjpeg-turbo decode (`decode_planes(..., shortcuts=False)`) by PSNR, chroma after halving
libjpeg's where it is larger. The coefficients themselves are checked exactly against
libjpeg-turbo's by `make asan` (native/tests/jpeg_coefficients.cc)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import images as I
import numpy as np
import pytest

import appliance
from appliance import native
from appliance.errors import TranscodeError

# PSNR of our planes against libjpeg-turbo's at the same scale, in dB. Two different reduced
# IDCTs of the same coefficients measured 40-50 dB on luma and 47-64 dB on chroma over the
# corpus; a wrong coefficient, block or row would fall far below.
LUMA_PSNR = 38.0
CHROMA_PSNR = 40.0

# A scan script that refines DC and AC by successive approximation in more steps than cjpeg's
# default, with the DC scans not interleaved.
REFINING_SCANS = """
0: 0 0 0 2;
1: 0 0 0 1;
2: 0 0 0 1;
0: 1 5 0 3;
2: 1 63 0 2;
1: 1 63 0 1;
0: 6 63 0 3;
0: 1 63 3 2;
2: 1 63 2 1;
0: 0 0 2 1;
0: 1 63 2 1;
0: 0 0 1 0;
1: 0 0 1 0;
2: 0 0 1 0;
2: 1 63 1 0;
1: 1 63 1 0;
0: 1 63 1 0;
"""


def planes(
    data: bytes, box: tuple[int, int], shortcuts: bool, half_chroma: bool = False
) -> list[np.ndarray]:
    decoded = native.decode_planes(data, *box, shortcuts=shortcuts, half_chroma=half_chroma)
    return [np.frombuffer(pixels, np.uint8).reshape(h, w) for w, h, pixels in decoded]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def halve(plane: np.ndarray, axis: int) -> np.ndarray:
    """Averages pairs along `axis` (a last odd row or column stands alone)."""
    if plane.shape[axis] % 2:
        edge = np.take(plane, [-1], axis=axis)
        plane = np.concatenate([plane, edge], axis=axis)
    a = np.take(plane, range(0, plane.shape[axis], 2), axis=axis).astype(np.float64)
    b = np.take(plane, range(1, plane.shape[axis], 2), axis=axis).astype(np.float64)
    return np.floor((a + b) / 2 + 0.5).astype(np.uint8)


def box_for(data: bytes, eighths: int) -> tuple[int, int]:
    """A width that makes `transcode` decode at eighths/8 scale."""
    info = appliance.probe(data)
    shown_width = info.height if info.orientation >= 5 else info.width  # 5-8 turn the image
    return (max(1, shown_width * eighths // 8 - 3), 0)


def assert_close_to_libjpeg(
    data: bytes, eighths: int, half_chroma: bool = False
) -> list[np.ndarray]:
    box = box_for(data, eighths)
    ours, theirs = planes(data, box, True, half_chroma), planes(data, box, False)
    assert len(ours) == len(theirs)
    assert ours[0].shape == theirs[0].shape
    assert psnr(ours[0], theirs[0]) >= LUMA_PSNR, f"luma at {eighths}/8"
    for i, (a, b) in enumerate(zip(ours[1:], theirs[1:], strict=True), 1):
        # libjpeg scales subsampled chroma up through a larger IDCT; ours stays subsampled.
        for axis in (0, 1):
            while b.shape[axis] > a.shape[axis]:
                b = halve(b, axis)
        assert a.shape == b.shape
        assert psnr(a, b) >= CHROMA_PSNR, f"plane {i} at {eighths}/8"
    return ours


@pytest.mark.parametrize("eighths", [2, 4])
def test_corpus_photos_decode_close_to_libjpeg(corpus: Path, eighths: int) -> None:
    for path in sorted(corpus.glob("*.jpg")):
        assert_close_to_libjpeg(path.read_bytes(), eighths)
        assert_close_to_libjpeg(path.read_bytes(), eighths, half_chroma=True)


@pytest.mark.parametrize("eighths", [2, 4])
@pytest.mark.parametrize("layout", list(I.LAYOUTS))
@pytest.mark.parametrize(
    "extra",
    [[], ["-restart", "1"], ["-progressive"], ["-progressive", "-restart", "1"], "refining"],
    ids=["baseline", "baseline-restart", "progressive", "progressive-restart", "refining-scans"],
)
def test_generated_layouts_decode_close_to_libjpeg(
    layout, extra, eighths, base_photo, cjpeg_available, tmp_path
):
    if extra == "refining":
        lines = REFINING_SCANS.strip().splitlines()
        if layout == "gray":
            lines = [line for line in lines if line.startswith("0:")]
        script = tmp_path / "scans.txt"
        script.write_text("\n".join(lines) + "\n")
        extra = ["-scans", str(script)]
    data = I.cjpeg(base_photo, layout, extra=extra)
    assert_close_to_libjpeg(data, eighths)
    assert_close_to_libjpeg(data, eighths, half_chroma=True)


@pytest.mark.parametrize("coding", [[], ["-progressive"]], ids=["baseline", "progressive"])
@pytest.mark.parametrize("eighths", [2, 4])
def test_chroma_keeps_its_subsampling_at_the_dct_scale(
    base_photo, cjpeg_available, eighths, coding
):
    # The sign that our decoder ran: 4:2:0 chroma comes out at half the luma size, where
    # libjpeg-turbo would have scaled it up to the luma size through a larger IDCT.
    data = I.cjpeg(base_photo, "420", extra=coding)
    w, h = I.BASE_SIZE
    y, cb, cr = planes(data, box_for(data, eighths), True)
    assert y.shape == (math.ceil(h * eighths / 8), math.ceil(w * eighths / 8))
    assert cb.shape == cr.shape == (math.ceil(h * eighths / 16), math.ceil(w * eighths / 16))


@pytest.mark.parametrize("coding", [[], ["-progressive"]], ids=["baseline", "progressive"])
def test_full_chroma_is_decoded_at_half_scale_for_a_4_2_0_output(
    base_photo, cjpeg_available, coding
):
    # A 4:4:4 source at 1/2 scale for a 4:2:0 output: chroma at 1/4 is all the encoder needs.
    data = I.cjpeg(base_photo, "444", extra=coding)
    w, h = I.BASE_SIZE
    box = box_for(data, 4)
    y, cb, cr = planes(data, box, True, half_chroma=True)
    assert y.shape == (math.ceil(h / 2), math.ceil(w / 2))
    assert cb.shape == cr.shape == (math.ceil(h / 4), math.ceil(w / 4))
    # ... and the full chroma of a full-chroma output.
    _, cb, _ = planes(data, box, True)
    assert cb.shape == y.shape


@pytest.mark.parametrize("coding", [[], ["-progressive"]], ids=["baseline", "progressive"])
def test_a_truncated_file_goes_to_libjpeg(base_photo, cjpeg_available, coding):
    # Our decoder declines a file that ends early; what comes out is libjpeg-turbo's answer,
    # pixels or error, exactly as without the shortcut.
    data = I.cjpeg(base_photo, "420", extra=coding)
    cut = data[: len(data) * 9 // 10]
    box = box_for(data, 4)
    try:
        theirs = planes(cut, box, False)
    except TranscodeError as e:
        with pytest.raises(type(e)):
            planes(cut, box, True)
    else:
        ours = planes(cut, box, True)
        assert [p.tobytes() for p in ours] == [p.tobytes() for p in theirs]


# Prints a digest of the planes of each file given, at 1/4 and 1/2 scale.
PLANES_DIGEST = """
import hashlib, sys
from pathlib import Path
from appliance import native
digest = hashlib.sha256()
for path in sys.argv[1:]:
    data = Path(path).read_bytes()
    info_width = native.probe(data).width
    for eighths in (2, 4):
        for w, h, pixels in native.decode_planes(data, info_width * eighths // 8 - 3, 0):
            digest.update(b"%d %d " % (w, h) + pixels)
print(digest.hexdigest())
"""


def planes_digest(corpus: Path, **env: str) -> str:
    """The digest of every corpus JPEG's planes at 1/4 and 1/2, decoded in a child process with
    `env` added to its environment (the switches below are read once per process)."""
    files = [str(p) for p in sorted(corpus.glob("*.jpg"))]
    return subprocess.run(
        [sys.executable, "-c", PLANES_DIGEST, *files],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.mark.parametrize("variant", ["portable", "popcnt", "bmi2"])
def test_every_scan_decoder_variant_gives_the_same_planes(variant: str, corpus: Path) -> None:
    # The scan decoder is built portable and, on x86-64, for popcount and BMI2
    # (docs/decisions/0011); APPLIANCE_SCAN_DECODER picks one where the CPU has it.
    default = planes_digest(corpus, APPLIANCE_SCAN_DECODER="")
    assert planes_digest(corpus, APPLIANCE_SCAN_DECODER=variant) == default


@pytest.mark.parametrize("helpers", ["0", "3"])
def test_helper_threads_give_the_same_planes(helpers: str, corpus: Path) -> None:
    # A progressive file's scans are decoded in lanes, on helper threads when the process has
    # CPUs to spare (docs/decisions/0012); APPLIANCE_DECODE_HELPERS sets how many.
    one_helper = planes_digest(corpus, APPLIANCE_DECODE_HELPERS="1")
    assert planes_digest(corpus, APPLIANCE_DECODE_HELPERS=helpers) == one_helper


def segments(data: bytes) -> list[tuple[int, bytes]]:
    """A JPEG cut into (marker, bytes): SOI, each marker segment, each scan's entropy-coded data
    (marker 0), fill bytes (0xFF) and EOI with what follows it."""
    out = [(0xD8, data[:2])]
    i = 2
    while i < len(data):
        marker = data[i + 1]
        if marker in (0xFF, 0xD9):
            out.append((marker, data[i : i + 1] if marker == 0xFF else data[i:]))
            i = i + 1 if marker == 0xFF else len(data)
            continue
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        out.append((marker, data[i:end]))
        i = end
        if marker == 0xDA:  # up to the next marker that is not RSTn
            j = data.index(b"\xff", i)
            while data[j + 1] == 0x00 or 0xD0 <= data[j + 1] <= 0xD7:
                j = data.index(b"\xff", j + 2)
            out.append((0, data[i:j]))
            i = j
    return out


@pytest.mark.parametrize("name", ["o_autumn_4mp.jpg", "o_cups_4mp.jpg"])
def test_a_table_redefined_while_scans_wait(name: str, corpus: Path) -> None:
    # Each scan waiting to be decoded keeps the Huffman tables it was given; past 64 tables the
    # waiting scans are decoded and the old tables dropped. Forty copies of each DHT segment (a
    # redefinition with the same codes, which T.81 allows between scans) go past that many times.
    # These files have tables of their own for each scan: a waiting scan given the wrong ones
    # would fail, and libjpeg-turbo's planes, which differ from ours, would come back instead.
    data = (corpus / name).read_bytes()
    parts = segments(data)
    assert b"".join(body for _, body in parts) == data
    repeated = b"".join(body * (40 if marker == 0xC4 else 1) for marker, body in parts)
    assert sum(marker == 0xC4 for marker, _ in parts) >= 2
    for eighths in (2, 3, 4):
        box = box_for(data, eighths)
        ours = planes(data, box, True)
        assert not np.array_equal(ours[0], planes(data, box, False)[0])  # ours, not libjpeg's
        for a, b in zip(planes(repeated, box, True), ours, strict=True):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("coding", [[], ["-progressive"]], ids=["baseline", "progressive"])
@pytest.mark.parametrize("layout", ["420", "444", "gray"])
def test_three_eighths_where_a_half_is_more_than_needed(
    base_photo, cjpeg_available, layout, coding
):
    # libjpeg-turbo's fast scales are 1/8, 1/4, 1/2 and 1: a box just over 1/4 of the width
    # takes a 1/2 decode there, and a 3/8 decode here (the exact pixels of the 3-point IDCT are
    # checked by `make asan`). Against libjpeg's 1/2 decode brought down to 3/8 by Pillow.
    from PIL import Image

    data = I.cjpeg(base_photo, layout, extra=coding)
    w, h = I.BASE_SIZE
    box = (math.ceil(w * 3 / 8), 0)
    ours = planes(data, box, True)
    theirs = planes(data, box, False)
    assert ours[0].shape == (math.ceil(h * 3 / 8), math.ceil(w * 3 / 8))
    assert theirs[0].shape == (math.ceil(h / 2), math.ceil(w / 2))
    for a, b in zip(ours, theirs, strict=True):
        size = (a.shape[1], a.shape[0])
        b = np.asarray(Image.fromarray(b).resize(size, Image.Resampling.LANCZOS))
        assert psnr(a, b) >= 30.0

"""The 1/8-scale shortcut for progressive JPEGs (docs/decisions/0002): only the DC scans (and, for
4:2:0, the chroma scans) are read, and the planes are byte for byte those of a plain libjpeg-turbo
decode of the whole file at the same scale (`decode_planes(..., shortcuts=False)`)."""

from __future__ import annotations

from pathlib import Path

import images as I
import pytest

import appliance
from appliance import native
from appliance.errors import CorruptImageError

# A scan script with the DC coefficients in separate, non-interleaved scans and a refinement
# pass, as some encoders write them; AC scans as cjpeg's default.
NON_INTERLEAVED_DC = """
0: 0 0 0 1;
1: 0 0 0 1;
2: 0 0 0 1;
0: 1 5 0 2;
2: 1 63 0 1;
1: 1 63 0 1;
0: 6 63 0 2;
0: 1 63 2 1;
0: 0 0 1 0;
1: 0 0 1 0;
2: 0 0 1 0;
2: 1 63 1 0;
1: 1 63 1 0;
0: 1 63 1 0;
"""


def assert_same_planes(data: bytes, box: tuple[int, int]) -> None:
    fast = native.decode_planes(data, *box, shortcuts=True)
    plain = native.decode_planes(data, *box, shortcuts=False)
    assert [p[:2] for p in fast] == [p[:2] for p in plain]
    for i, (a, b) in enumerate(zip(fast, plain, strict=True)):
        assert a[2] == b[2], f"plane {i} differs from libjpeg's 1/8 decode"


def test_progressive_corpus_photos_decode_like_libjpeg_at_one_eighth(corpus: Path) -> None:
    progressive = [
        p for p in sorted(corpus.glob("*.jpg")) if appliance.probe(p.read_bytes()).progressive
    ]
    assert progressive, "the corpus has progressive JPEGs"
    for path in progressive:
        assert_same_planes(path.read_bytes(), (200, 200))


@pytest.mark.parametrize("layout", list(I.LAYOUTS))
@pytest.mark.parametrize("coding", [["-progressive"], ["-progressive", "-restart", "1"]],
                         ids=["progressive", "progressive-restart"])  # fmt: skip
def test_generated_progressive_layouts_decode_like_libjpeg(
    layout, coding, base_photo, cjpeg_available
):
    data = I.cjpeg(base_photo, layout, extra=coding)
    assert appliance.probe(data).progressive
    assert_same_planes(data, (40, 30))


def test_non_interleaved_dc_scans_decode_like_libjpeg(base_photo, cjpeg_available, tmp_path):
    script = tmp_path / "scans.txt"
    script.write_text(NON_INTERLEAVED_DC)
    data = I.cjpeg(base_photo, "420", extra=["-scans", str(script)])
    assert appliance.probe(data).progressive
    assert_same_planes(data, (40, 30))
    data = I.cjpeg(base_photo, "444", extra=["-scans", str(script)])
    assert_same_planes(data, (40, 30))


def test_a_truncated_progressive_file_is_refused_not_served_from_its_dc_scans(
    base_photo, cjpeg_available
):
    data = I.cjpeg(base_photo, "444", extra=["-progressive"])
    with pytest.raises(CorruptImageError):
        appliance.transcode(data[: len(data) * 3 // 4], width=40)

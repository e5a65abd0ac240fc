"""The command line, called in-process through main(argv)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from appliance.cli import main


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "in.jpg"
    Image.radial_gradient("L").convert("RGB").resize((640, 480)).save(path, quality=90)
    return path


def test_transcode_writes_the_format_of_the_output_suffix(
    photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.webp"
    assert main(["transcode", str(photo), str(out), "--width", "320"]) == 0
    with Image.open(io.BytesIO(out.read_bytes())) as im:
        assert (im.format, im.size) == ("WEBP", (320, 240))
    assert "webp 320x240" in capsys.readouterr().out


def test_transcode_cover_gives_the_exact_box(photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "thumb.jpg"
    assert (
        main(["transcode", str(photo), str(out), "-w", "100", "-H", "100", "--fit", "cover"]) == 0
    )
    with Image.open(out) as im:
        assert im.size == (100, 100)


def test_transcode_of_a_damaged_file_fails_with_a_one_line_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert main(["transcode", str(bad), str(tmp_path / "out.jpg")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("appliance transcode: ") and err.count("\n") == 1


def test_transcode_of_a_missing_file_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["transcode", str(tmp_path / "nope.jpg"), str(tmp_path / "out.jpg")]) == 1
    assert "nope.jpg" in capsys.readouterr().err


def test_bad_option_values_exit_with_usage(photo: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["transcode", str(photo), str(tmp_path / "o.jpg"), "--rect", "1,2,3"])
    assert exit_.value.code == 2
    assert main(["transcode", str(photo), str(tmp_path / "o.jpg"), "--quality", "0"]) == 2


def test_probe_prints_the_header(photo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", str(photo)]) == 0
    assert "jpeg 640x480 orientation=1 subsampling=420" in capsys.readouterr().out

"""Session fixtures for the native transcoder tests: every input is generated once per run.

Generated files are written to pytest's tmp_path_factory, so a failing case's input can be
opened afterwards (under /tmp/pytest-of-$USER/, or wherever --basetemp points). Corpus
photos are read from ../shared/corpus (or $APPLIANCE_CORPUS) and never copied.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import containers as C
import images as I
import oracle as O
import pytest
from images import BASE_SIZE, ORIENT_SIZE
from PIL import Image


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`corpus_jpeg` / `corpus_png` parametrize over the shared corpus, one case per file."""
    for name, suffixes in (("corpus_jpeg", (".jpg", ".jpeg")), ("corpus_png", (".png",))):
        if name in metafunc.fixturenames:
            files = I.corpus_files(suffixes)
            if files:
                metafunc.parametrize(name, files, ids=[p.stem for p in files])
            else:
                metafunc.parametrize(
                    name,
                    [
                        pytest.param(
                            None,
                            marks=pytest.mark.skip(
                                reason=f"no corpus: {I.REPO_ROOT.parent / 'shared' / 'corpus'} "
                                "missing and APPLIANCE_CORPUS unset"
                            ),
                        )
                    ],
                    ids=["no-corpus"],
                )


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if O.RECORDED and (config.option.verbose > 0 or os.environ.get("APPLIANCE_METRICS")):
        terminalreporter.section("native: PSNR / SSIM against the Pillow oracle")
        for line in O.summary():
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def corpus() -> Path:
    d = I.corpus_dir()
    if d is None:
        pytest.skip("no corpus: ../shared/corpus missing and APPLIANCE_CORPUS unset")
    return d


@pytest.fixture(scope="session")
def corpus_bytes(corpus: Path) -> Callable[[str], bytes]:
    cache: dict[str, bytes] = {}

    def get(name: str) -> bytes:
        if name not in cache:
            path = corpus / name
            if not path.exists():
                pytest.skip(f"corpus file {name} missing")
            cache[name] = path.read_bytes()
        return cache[name]

    return get


@pytest.fixture(scope="session")
def fixtures_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("native-fixtures")


@pytest.fixture(scope="session")
def save(fixtures_dir: Path) -> Callable[[str, bytes], bytes]:
    """Write a generated file under the session's fixture directory and return its bytes."""

    def write(name: str, data: bytes) -> bytes:
        (fixtures_dir / name).write_bytes(data)
        return data

    return write


@pytest.fixture(scope="session")
def cjpeg_available() -> None:
    if not I.have_cjpeg():
        pytest.skip("cjpeg missing: apt-get install libjpeg-turbo-progs")


@pytest.fixture(scope="session")
def base_photo() -> Image.Image:
    """A 637x401 photo with detail: a corpus photo scaled down. The PSNR/SSIM tolerances are
    calibrated on it (a synthetic picture is harder than a photograph), so without the corpus
    the tests that use it skip, saying why."""
    d = I.corpus_dir()
    src = d / "o_autumn_4mp.jpg" if d else None
    if src is None or not src.exists():
        pytest.skip("needs ../shared/corpus/o_autumn_4mp.jpg (or APPLIANCE_CORPUS)")
    im = Image.open(src)
    im.draft("RGB", (1280, 800))
    return im.convert("RGB").resize(BASE_SIZE, Image.Resampling.LANCZOS)


@pytest.fixture(scope="session")
def layout_jpegs(base_photo: Image.Image, save, cjpeg_available) -> dict[tuple[str, str], bytes]:
    """(layout, coding) -> cjpeg output of the base photo, quality 95."""
    return {
        (lay, cod): save(f"layout_{lay}_{cod}.jpg", I.cjpeg(base_photo, lay, cod))
        for lay in I.LAYOUTS
        for cod in I.CODINGS
    }


@pytest.fixture(scope="session")
def oriented_jpegs(save, cjpeg_available) -> dict[tuple[str, int], bytes]:
    """(layout, orientation) -> an asymmetric 203x131 (stored) JPEG with that EXIF tag."""
    im = I.asymmetric_image(*ORIENT_SIZE)
    out = {}
    for lay in I.LAYOUTS:
        plain = I.cjpeg(im, lay, quality=95)
        for n in range(1, 9):
            out[lay, n] = save(f"orient_{lay}_{n}.jpg", C.with_exif_orientation(plain, n))
    return out


@pytest.fixture(scope="session")
def small_photo_jpeg(base_photo: Image.Image, save) -> bytes:
    """A 4:2:0 q90 Pillow JPEG of the base photo, for option tests that need any JPEG."""
    return save("small_photo.jpg", I.pillow_jpeg(base_photo, quality=90))


@pytest.fixture(scope="session")
def small_photo_png(base_photo: Image.Image, save) -> bytes:
    return save("small_photo.png", I.encode(base_photo, "PNG"))


@pytest.fixture(scope="session")
def rgba_png(save) -> bytes:
    """Left half opaque detail, right half fully transparent with hidden magenta RGB."""
    im = I.detail_image(240, 160).convert("RGBA")
    px = im.load()
    for y in range(160):
        for x in range(120, 240):
            px[x, y] = (255, 0, 255, 0)
    return save("rgba.png", I.encode(im, "PNG"))

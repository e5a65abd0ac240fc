"""The benchmark corpus: where it is, and what each JPEG in it is (from its header only)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = Path("..") / "shared" / "corpus"  # relative to the repository root
CORPUS_ENV = "APPLIANCE_CORPUS"
_JPEG_MAGIC = b"\xff\xd8\xff"
_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True, slots=True)
class Source:
    """One corpus JPEG. width/height are as stored, before EXIF orientation."""

    name: str
    path: Path
    width: int
    height: int
    orientation: int
    progressive: bool
    size_bytes: int

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def transposed(self) -> bool:
        """True when the EXIF orientation swaps width and height (5-8)."""
        return self.orientation in (5, 6, 7, 8)

    @property
    def display_size(self) -> tuple[int, int]:
        return (self.height, self.width) if self.transposed else (self.width, self.height)

    def to_json(self) -> dict[str, object]:
        dw, dh = self.display_size
        return {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "display_width": dw,
            "display_height": dh,
            "megapixels": round(self.pixels / 1e6, 2),
            "orientation": self.orientation,
            "progressive": self.progressive,
            "bytes": self.size_bytes,
        }


def resolve_corpus(flag: str | None) -> Path:
    """--corpus, else $APPLIANCE_CORPUS, else ../shared/corpus from the repository root."""
    chosen = flag or os.environ.get(CORPUS_ENV)
    if chosen:
        return Path(chosen).expanduser().resolve()
    return (REPO_ROOT / DEFAULT_CORPUS).resolve()


def display_path(path: Path) -> str:
    """The corpus path as written into reports: relative to the repository root, never absolute."""
    return os.path.relpath(path, REPO_ROOT)


def load_sources(directory: Path) -> list[Source]:
    """Every JPEG (by its magic bytes, whatever the name) in the directory, sorted by name."""
    if not directory.is_dir():
        raise FileNotFoundError(f"corpus directory not found: {display_path(directory)}")
    sources = []
    for path in sorted(directory.iterdir()):
        if path.is_file() and _is_jpeg(path):
            sources.append(_read_header(path))
    return sources


def _is_jpeg(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(3) == _JPEG_MAGIC


def _read_header(path: Path) -> Source:
    with Image.open(path) as im:  # lazy: reads the header, decodes nothing
        width, height = im.size
        progressive = bool(im.info.get("progressive") or im.info.get("progression"))
        orientation = int(im.getexif().get(_ORIENTATION_TAG, 1) or 1)
    return Source(
        name=path.name,
        path=path,
        width=width,
        height=height,
        orientation=orientation if 1 <= orientation <= 8 else 1,
        progressive=progressive,
        size_bytes=path.stat().st_size,
    )

# Type stubs for the C++ extension (native/bindings). Keep in step with it.
from enum import Enum

from typing_extensions import Buffer

libjpeg_turbo_version: str

class NativeError(Exception): ...

class Format(Enum):
    SAME = 0
    JPEG = 1
    PNG = 2
    WEBP = 3
    AVIF = 4
    GIF = 5

class Fit(Enum):
    INSIDE = 0
    COVER = 1
    PAD = 2
    STRETCH = 3

class Gravity(Enum):
    CENTER = 0
    TOP = 1
    BOTTOM = 2
    LEFT = 3
    RIGHT = 4

class IccMode(Enum):
    KEEP = 0
    SRGB = 1
    STRIP = 2

class Chroma(Enum):
    AUTO = 0
    C420 = 1
    C444 = 2

class TranscodeOptions:
    width: int
    height: int
    fit: Fit
    gravity: Gravity
    rect: tuple[int, int, int, int]
    upscale: bool
    autorotate: bool
    format: Format
    quality: int
    progressive: bool
    optimize: bool
    chroma: Chroma
    lossless: bool
    effort: int
    icc: IccMode
    background: tuple[int, int, int, int]
    max_source_pixels: int
    max_output_pixels: int
    def __init__(self) -> None: ...

def transcode(
    data: Buffer, options: TranscodeOptions
) -> tuple[bytes, str, int, int, tuple[float, float, float]]: ...
def probe(data: Buffer) -> dict[str, object]: ...
def decode_floor(data: Buffer, width: int, height: int) -> tuple[int, int]: ...
def decode_planes(
    data: Buffer, width: int, height: int, shortcuts: bool, half_chroma: bool = ...
) -> list[tuple[int, int, bytes]]: ...

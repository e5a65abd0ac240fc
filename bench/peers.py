"""The in-process peers (and ImageMagick, one process per conversion) the Python worker times.

Each factory imports its own library, so a worker process loads only the peer it measures.
sharp lives in bench/sharp_worker.mjs. EXIF orientation is applied by every peer that writes an
image (the decode floor writes none), since an image server has to.
"""

from __future__ import annotations

import io
import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.job import FileSpec
from bench.workloads import Workload

# A conversion returns the encoded image, or (w, h) for the decode floor, which encodes nothing.
Output = bytes | tuple[int, int]
Convert = Callable[[bytes, FileSpec], Output]

PYTHON_PEERS = ("ours", "floor", "pillow", "pyvips", "imagemagick")
NODE_PEERS = ("sharp",)
ALL_PEERS = PYTHON_PEERS + NODE_PEERS

IMAGEMAGICK = "/usr/bin/convert"  # explicit: a `convert` earlier on PATH may be a wrapper
GNU_TIME = "/usr/bin/time"
_VIPS_MAX_COORD = 10_000_000  # "no height limit" for libvips' thumbnail box


@dataclass(frozen=True, slots=True)
class ChildMemory:
    """Peak RSS of a per-conversion child process, in KiB, measured outside the timed runs."""

    baseline_kb: Callable[[], int | None]  # None: cannot be measured here (no GNU time)
    peak_kb: Callable[[bytes, FileSpec], int | None]


@dataclass(frozen=True, slots=True)
class Peer:
    name: str
    version: str
    convert: Convert
    child_memory: ChildMemory | None = None  # a process per conversion: measure that process


def load(name: str, workload: Workload, tiny_jpeg: str) -> Peer:
    factories: dict[str, Callable[[Workload, str], Peer]] = {
        "ours": _ours,
        "floor": _floor,
        "pillow": _pillow,
        "pyvips": _pyvips,
        "imagemagick": _imagemagick,
    }
    if name not in factories:
        raise ValueError(f"no Python peer named {name!r}")
    return factories[name](workload, tiny_jpeg)


def _ours(workload: Workload, _tiny: str) -> Peer:
    import appliance

    def convert(data: bytes, _f: FileSpec) -> Output:
        return appliance.transcode(
            data,
            width=workload.width,
            height=workload.height,
            fit="inside",
            format=workload.format,
            quality=workload.quality,
            icc="strip",  # like the peers' strip=True: bytes compared like for like
        )

    return Peer("ours", _appliance_version(), convert)


def _floor(workload: Workload, _tiny: str) -> Peer:
    import appliance.native

    def convert(data: bytes, _f: FileSpec) -> Output:
        w, h = appliance.native.decode_floor(data, workload.width, workload.height)
        return (int(w), int(h))

    return Peer("floor", _appliance_version(), convert)


def _appliance_version() -> str:
    import appliance
    import appliance.native

    parts = [f"appliance {getattr(appliance, '__version__', '?')}"]
    for attr in sorted(dir(appliance.native)):  # e.g. LIBJPEG_TURBO_VERSION = "2.1.5"
        value = getattr(appliance.native, attr)
        if attr.endswith("_VERSION") and isinstance(value, str):
            parts.append(f"{attr.removesuffix('_VERSION').lower().replace('_', '-')} {value}")
    return ", ".join(parts)


def _pillow(workload: Workload, _tiny: str) -> Peer:
    import PIL
    from PIL import Image, ImageOps

    save_args: dict[str, object] = {"quality": workload.quality}
    if workload.format == "jpeg":
        save_args["subsampling"] = "4:2:0"
    fmt = workload.format.upper()

    def convert(data: bytes, f: FileSpec) -> Output:
        with Image.open(io.BytesIO(data)) as im:
            # thumbnail() drafts first (libjpeg DCT scaling to >= reducing_gap x the box), then
            # resamples with Lanczos; the box is in stored orientation, rotation comes after.
            im.thumbnail(f.stored_target, Image.Resampling.LANCZOS, reducing_gap=2.0)
            upright = ImageOps.exif_transpose(im)
            out = io.BytesIO()
            upright.save(out, fmt, **save_args)
        return out.getvalue()

    return Peer("pillow", f"Pillow {PIL.__version__}", convert)


def _pyvips(workload: Workload, _tiny: str) -> Peer:
    import pyvips

    pyvips.cache_set_max(0)
    height = workload.height if workload.height is not None else _VIPS_MAX_COORD

    def convert(data: bytes, _f: FileSpec) -> Output:
        im = pyvips.Image.thumbnail_buffer(data, workload.width, height=height, size="down")
        if workload.format == "jpeg":
            return bytes(im.jpegsave_buffer(Q=workload.quality, strip=True, subsample_mode="on"))
        return bytes(im.webpsave_buffer(Q=workload.quality, strip=True))

    version = f"pyvips {pyvips.__version__}, libvips " + ".".join(
        str(pyvips.version(i)) for i in range(3)
    )
    return Peer("pyvips", version, convert)


def _imagemagick(workload: Workload, tiny_jpeg: str) -> Peer:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MAGICK_THREAD_LIMIT": "1"}
    geometry = f"{workload.width}x{workload.height or ''}>"  # '>' only shrinks
    encode = ["-quality", str(workload.quality)]
    if workload.format == "jpeg":
        encode += ["-sampling-factor", "4:2:0"]
    encode.append(f"{workload.format}:-")

    def command(f: FileSpec) -> list[str]:
        hint_w, hint_h = f.stored_target  # libjpeg shrink-on-load hint, stored orientation
        return [
            IMAGEMAGICK,
            "-define",
            f"jpeg:size={hint_w}x{hint_h}",
            "jpeg:-",
            "-auto-orient",
            "-thumbnail",
            geometry,
            *encode,
        ]

    def convert(data: bytes, f: FileSpec) -> Output:
        return _run(command(f), data, env)

    def peak_kb(data: bytes, f: FileSpec) -> int | None:
        return _peak_rss_kb(command(f), data, env)

    def baseline_kb() -> int | None:
        """A tiny conversion: what a convert process costs before any pixels."""
        with open(tiny_jpeg, "rb") as fh:
            tiny = fh.read()
        return _peak_rss_kb([IMAGEMAGICK, "jpeg:-", "-thumbnail", "4x4", *encode], tiny, env)

    version = subprocess.run([IMAGEMAGICK, "-version"], capture_output=True, text=True, check=True)
    first = version.stdout.splitlines()[0].removeprefix("Version: ").split(" https")[0]
    return Peer("imagemagick", first, convert, ChildMemory(baseline_kb, peak_kb))


def _run(argv: list[str], data: bytes, env: dict[str, str]) -> bytes:
    done = subprocess.run(argv, input=data, capture_output=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode(errors="replace").strip()[-300:])
    return done.stdout


def _peak_rss_kb(argv: list[str], data: bytes, env: dict[str, str]) -> int | None:
    """The child's own peak RSS, through GNU time: a child forked from this worker would count
    the worker's RSS too (Linux keeps the pre-exec high-water mark), GNU time is small."""
    if not os.access(GNU_TIME, os.X_OK):
        return None
    with tempfile.NamedTemporaryFile(prefix="rss-", suffix=".txt") as out:
        _run([GNU_TIME, "-f", "%M", "-o", out.name, *argv], data, env)
        return int(Path(out.name).read_text(encoding="ascii").split()[-1])

"""One variant: resolve the Transform against the config, transcode, describe the result."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from appliance import native
from appliance.cache.tier import Entry
from appliance.config import ImagesConfig
from appliance.origin.base import Original
from appliance.request.negotiate import fallback_format
from appliance.request.transform import Transform

MIME_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "avif": "image/avif"}


@dataclass(frozen=True, slots=True)
class Rendered:
    entry: Entry
    timings: dict[str, float]  # seconds: decode, resize, encode


def quality_for(fmt: str | None, transform: Transform, images: ImagesConfig) -> int | None:
    if transform.quality is not None:
        return transform.quality
    return {
        "jpeg": images.jpeg_quality,
        "webp": images.webp_quality,
        "avif": images.avif_quality,
    }.get(fmt or "")


def variant_etag(original: Original, variant: str) -> str:
    """Deterministic: the same source bytes and the same variant give the same ETag."""
    digest = hashlib.sha256(f"{original.key}\n{original.etag}\n{variant}".encode()).hexdigest()
    return f'"{digest[:32]}"'


def render(
    original: Original,
    transform: Transform,
    fmt: str | None,
    variant: str,
    images: ImagesConfig,
    *,
    negotiated: bool = False,
) -> Rendered:
    """Runs on a transcode thread (the native call releases the GIL). ``fmt`` None keeps the
    source's family, or with ``negotiated`` (format=auto, nothing better accepted) takes the
    source's fallback: a WebP/AVIF original becomes JPEG, or PNG when it has alpha."""
    if fmt is None and negotiated:
        info = native.probe(original.data)
        fmt = fallback_format(info.format, has_alpha=info.has_alpha)
    result = native.transcode_image(
        original.data,
        width=transform.width,
        height=transform.height,
        fit=transform.fit,
        gravity=transform.gravity,
        rect=transform.rect,
        upscale=transform.upscale,
        format=fmt,  # type: ignore[arg-type]
        quality=quality_for(fmt, transform, images),
        progressive=transform.progressive,
        chroma=transform.chroma,
        lossless=transform.lossless,
        icc=transform.icc,
        autorotate=transform.autorotate,
        background=transform.background,
        max_source_pixels=images.max_source_pixels,
        max_output_pixels=images.max_output_pixels,
    )
    entry = Entry(
        data=result.data,
        content_type=result.mime_type,
        etag=variant_etag(original, variant),
        last_modified=original.last_modified or time.time(),
        meta={"width": str(result.width), "height": str(result.height)},
    )
    return Rendered(entry, result.timings)

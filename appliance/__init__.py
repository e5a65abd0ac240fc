"""appliance: an image-processing engine that turns a bucket of photos into an image CDN origin.

The library API (also used by the server and the CLI)::

    import appliance
    thumb = appliance.transcode(data, width=400, format="webp")

See ``docs/api.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ImageInfo",
    "Result",
    "__version__",
    "probe",
    "transcode",
    "transcode_image",
]

if TYPE_CHECKING:
    from appliance.native import ImageInfo, Result, probe, transcode, transcode_image


def __getattr__(name: str) -> Any:
    # The native module loads on first use, so `appliance autotune` and friends
    # never need the compiled extension.
    if name in {"ImageInfo", "Result", "probe", "transcode", "transcode_image"}:
        from appliance import native

        return getattr(native, name)
    raise AttributeError(f"module 'appliance' has no attribute {name!r}")

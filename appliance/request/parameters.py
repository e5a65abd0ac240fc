"""The parameter tables: every name a URL may use, and what we cannot do yet.

Imagizer's names are canonical, imgix's are aliases (url-api.md 10.1). These tables are the
single list the parser reads and the docs are written from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# Every name we act on, as a client may write it → its canonical name.
PARAMETERS: Final[Mapping[str, str]] = {
    "width": "width",
    "w": "width",
    "height": "height",
    "h": "height",
    "dpr": "dpr",
    "crop": "crop",
    "fit": "fit",
    "fill": "fill",
    "rect": "rect",
    "upscale": "upscale",
    "quality": "quality",
    "q": "quality",
    "format": "format",
    "fm": "format",
    "auto": "auto",
    "progressive": "progressive",
    "jpg-progressive": "progressive",
    "chromasub": "chromasub",
    "lossless": "lossless",
    "pad_color": "pad_color",
    "bg": "pad_color",
    "fill-color": "pad_color",
    "autorotate": "autorotate",
    "icc": "icc",
    "cs": "icc",
    "v": "v",
    "cb": "v",
    "sig": "sig",
    "s": "sig",
    "expires": "expires",
}

# Checked by signature.verify on the raw query; never part of the Transform.
SIGNING: Final = frozenset({"sig", "expires"})

# Parameters of url-api.md we cannot do yet: name as written → the feature it asks for.
NOT_SUPPORTED_YET: Final[Mapping[str, str]] = {
    "scale": "scale",
    "focus": "focus",
    "fp-x": "focus",
    "fp-y": "focus",
    "fp-z": "focus",
    "ar": "ar",
    "compress": "compress",
    "max_bytes": "max_bytes",
    "orient": "orient",
    "rotate": "rotate",
    "rot": "rotate",
    "flip": "flip",
    "trim": "trim",
    "trim-tol": "trim",
    "blur": "blur",
    "sharpen": "sharpen",
    "sharp": "sharpen",
    "brightness": "brightness",
    "bri": "brightness",
    "contrast": "contrast",
    "con": "contrast",
    "saturation": "saturation",
    "sat": "saturation",
    "grayscale": "grayscale",
    "mono": "grayscale",
    "auto_fix": "auto_fix",
    "auto_level": "auto_level",
    "redeye": "redeye",
    "watermark": "watermark",
    "mark": "watermark",
    "watermark_pos": "watermark",
    "mark-align": "watermark",
    "watermark_scale": "watermark",
    "mark-scale": "watermark",
    "watermark_alpha": "watermark",
    "mark-alpha": "watermark",
    "strip": "strip",
    "iptc": "strip",
    "frame": "frame",
    "page": "page",
    "animated": "animated",
    "dl": "dl",
    "preset": "preset",
    "ch": "ch",
    "bucket": "origin",
    "origin": "origin",
}

# Values of supported parameters that we cannot do yet (canonical name → values).
NOT_SUPPORTED_YET_VALUES: Final[Mapping[str, frozenset[str]]] = {
    "format": frozenset({"gif", "png8", "json", "jp2", "jxr", "mp4", "webm", "blurhash"}),
    "fit": frozenset({"facearea", "clamp"}),
    "fill": frozenset({"blur", "gen"}),
    "auto": frozenset({"compress", "enhance", "redeye"}),
    "icc": frozenset({"adobergb1998"}),
}

# The names signature.verify reads from the raw query.
SIGNATURE_NAMES: Final = frozenset(name for name, c in PARAMETERS.items() if c == "sig")
EXPIRES_NAMES: Final = frozenset(name for name, c in PARAMETERS.items() if c == "expires")

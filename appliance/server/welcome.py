"""The page at ``/`` of an instance nobody has configured yet (Marketplace one-click, no
user-data): it says what the instance serves and how to point it at a bucket. Shown only while
``server.welcome_page`` is on; the user-data step turns it off once a valid document is given."""

from __future__ import annotations

import html
import os
from pathlib import Path

from appliance import __version__
from appliance.config import Config

SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif")
MAX_SAMPLES = 6

EXAMPLE_USER_DATA = """{
  "origin": {"kind": "s3", "s3": {"bucket": "my-photos", "region": "eu-west-1"}},
  "signing": {"enabled": true, "keys": ["a-secret-of-at-least-16-characters"]}
}"""


def sample_names(config: Config) -> list[str]:
    """A few image names from a directory origin, sorted; none for other origins."""
    if config.origin.kind != "directory":
        return []
    try:
        names = sorted(
            entry.name
            for entry in os.scandir(Path(config.origin.directory.path))
            if entry.is_file() and entry.name.lower().endswith(SAMPLE_SUFFIXES)
        )
    except OSError:
        return []
    return names[:MAX_SAMPLES]


def render_welcome(config: Config, samples: list[str]) -> str:
    examples = "\n".join(
        f'<li><a href="/{html.escape(n)}?width=400&amp;format=auto">'
        f"/{html.escape(n)}?width=400&amp;format=auto</a></li>"
        for n in samples
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>appliance {__version__}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46em;margin:2em auto;padding:0 1em}}
pre{{background:#f4f4f4;padding:1em;overflow:auto}}</style></head>
<body>
<h1>appliance {__version__} is running</h1>
<p>This instance has no configuration yet, so it serves its built-in sample images:</p>
<ul>
{examples or "<li>(no sample images found)</li>"}
</ul>
<h2>Serve your own images</h2>
<p>Stop the instance, set its <strong>user data</strong> to a JSON document like this one (YAML,
<code>#cloud-config</code> with an <code>appliance:</code> key, gzip and base64 work too), attach an
IAM role that may <code>s3:GetObject</code> on the bucket, and start it again:</p>
<pre>{html.escape(EXAMPLE_USER_DATA)}</pre>
<p>Then request <code>/&lt;key&gt;?width=400&amp;format=auto</code>. If the document has a
mistake, the instance keeps serving and <a href="/ready">/ready</a> names the key that is wrong.
This page disappears once the instance is configured.</p>
</body></html>
"""

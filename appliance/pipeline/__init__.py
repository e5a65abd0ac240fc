"""From an original and a Transform to encoded bytes: small steps, run on a transcode thread."""

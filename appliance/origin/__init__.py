"""Where originals come from: S3, HTTP(S) behind an allowlist, or a local directory."""

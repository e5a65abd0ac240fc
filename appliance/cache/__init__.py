"""Tiered caches for originals and variants: memory per worker, disk shared by all workers."""

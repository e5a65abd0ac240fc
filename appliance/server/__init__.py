"""The HTTP server: aiohttp on uvloop, worker processes sharing one socket."""

"""The HTTP benchmark: `appliance serve` against thumbor and an nginx ceiling, loaded by wrk."""

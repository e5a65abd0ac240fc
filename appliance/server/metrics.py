"""Prometheus text-format metrics without a dependency: counters and histograms, per worker
process. The names follow imgproxy's where they mean the same."""

from __future__ import annotations

import bisect
from collections import defaultdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Histogram:
    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[str, int] = defaultdict(int)  # by status code
        self.cache: dict[tuple[str, str], int] = defaultdict(int)  # (tier, hit|miss)
        self.bytes_in = 0  # original bytes fetched from the origin
        self.bytes_out = 0  # response body bytes
        self.in_flight = 0
        self.latency: dict[str, Histogram] = defaultdict(Histogram)  # queue, fetch, transcode

    def render(self, gauges: dict[str, float]) -> str:
        lines = [
            "# HELP appliance_requests_total Responses by HTTP status.",
            "# TYPE appliance_requests_total counter",
        ]
        lines += [
            f'appliance_requests_total{{status="{s}"}} {n}'
            for s, n in sorted(self.requests.items())
        ]
        lines += [
            "# HELP appliance_cache_requests_total Cache lookups by tier and result.",
            "# TYPE appliance_cache_requests_total counter",
        ]
        lines += [
            f'appliance_cache_requests_total{{tier="{t}",result="{r}"}} {n}'
            for (t, r), n in sorted(self.cache.items())
        ]
        lines += [
            "# TYPE appliance_origin_bytes_total counter",
            f"appliance_origin_bytes_total {self.bytes_in}",
            "# TYPE appliance_response_bytes_total counter",
            f"appliance_response_bytes_total {self.bytes_out}",
            "# TYPE appliance_requests_in_flight gauge",
            f"appliance_requests_in_flight {self.in_flight}",
        ]
        for name, value in sorted(gauges.items()):
            lines += [f"# TYPE appliance_{name} gauge", f"appliance_{name} {value}"]
        lines.append("# TYPE appliance_duration_seconds histogram")
        for span, h in sorted(self.latency.items()):
            cumulative = 0
            for bound, n in zip(h.buckets, h.counts, strict=False):
                cumulative += n
                lines.append(
                    f'appliance_duration_seconds_bucket{{span="{span}",le="{bound}"}} {cumulative}'
                )
            lines.append(f'appliance_duration_seconds_bucket{{span="{span}",le="+Inf"}} {h.count}')
            lines.append(f'appliance_duration_seconds_sum{{span="{span}"}} {h.total}')
            lines.append(f'appliance_duration_seconds_count{{span="{span}"}} {h.count}')
        return "\n".join(lines) + "\n"

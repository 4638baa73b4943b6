"""A tiny Prometheus registry: counters and one histogram family, text format 0.0.4.

Hand-written (about 80 lines) rather than prometheus_client: the hot path only increments
dict entries, and with `serve --workers N` each process keeps its own registry (a scrape
reaches one process; `pid` in every sample tells them apart).
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections import defaultdict

# Seconds. Segments from page cache take ~0.1-1 ms; S3 and cold disks tens of ms.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


class Metrics:
    def __init__(self) -> None:
        self.pid = str(os.getpid())
        self.requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self.bytes: defaultdict[str, int] = defaultdict(int)
        # route -> [bucket counts..., +Inf count], sum
        self.latency: dict[str, list[int]] = {}
        self.latency_sum: defaultdict[str, float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float, nbytes: int) -> None:
        self.requests[(method, route, status)] += 1
        if nbytes:
            self.bytes[route] += nbytes
        counts = self.latency.get(route)
        if counts is None:
            counts = self.latency[route] = [0] * (len(BUCKETS) + 1)
        counts[bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum[route] += seconds

    def render(self, gauges: dict[str, tuple[str, float | None]] | None = None) -> str:
        pid = ("pid", self.pid)
        out = [
            "# HELP streamflix_http_requests_total HTTP requests by method, route template and status.",
            "# TYPE streamflix_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            labels = _labels((("method", method), ("route", route), ("status", str(status)), pid))
            out.append(f"streamflix_http_requests_total{labels} {n}")
        out += [
            "# HELP streamflix_http_request_duration_seconds Time to answer, body included, by route template.",
            "# TYPE streamflix_http_request_duration_seconds histogram",
        ]
        for route, counts in sorted(self.latency.items()):
            cumulative = 0
            for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                cumulative += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(
                    f"streamflix_http_request_duration_seconds_bucket{_labels((('route', route), ('le', le), pid))} "
                    f"{cumulative}"
                )
            out.append(
                f"streamflix_http_request_duration_seconds_sum{_labels((('route', route), pid))} "
                f"{self.latency_sum[route]:.6f}"
            )
            out.append(f"streamflix_http_request_duration_seconds_count{_labels((('route', route), pid))} {cumulative}")
        out += [
            "# HELP streamflix_http_response_bytes_total Response body bytes sent, by route template.",
            "# TYPE streamflix_http_response_bytes_total counter",
        ]
        for route, n in sorted(self.bytes.items()):
            out.append(f"streamflix_http_response_bytes_total{_labels((('route', route), pid))} {n}")
        for name, (help_text, value) in (gauges or {}).items():
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            if value is not None:
                out.append(f"{name} {value:g}")
        return "\n".join(out) + "\n"

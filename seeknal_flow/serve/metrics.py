"""Prometheus text-format metrics of one ``seeknal serve`` worker.

Counters live in the worker's memory (no client library: a dict and a few lists); with
``--workers N`` each worker reports its own, labelled with its ``pid`` so a scraper can sum them.
"""

from __future__ import annotations

import bisect
import os
from datetime import UTC, datetime

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Request counts, latency histograms, keys served and unknown keys.

    >>> m = Metrics(); m.observe("/features", 200, 0.002); m.requests[("/features", 200)]
    1
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.requests: dict[tuple[str, int], int] = {}
        self.histograms: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}
        self.keys_served: dict[str, int] = {}
        self.unknown_keys: dict[str, int] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.histograms.get(route)
        if hist is None:
            hist = self.histograms[route] = [0] * (len(BUCKETS) + 1)
            self.sums[route] = 0.0
        hist[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sums[route] += seconds

    def keys(self, entity: str, served: int, unknown: int) -> None:
        self.keys_served[entity] = self.keys_served.get(entity, 0) + served
        if unknown:
            self.unknown_keys[entity] = self.unknown_keys.get(entity, 0) + unknown

    def render(self, stores: dict[str, tuple[object, str]]) -> bytes:
        """The exposition text; ``stores`` maps entity -> (version, published_at ISO) of the loaded snapshots."""
        pid = self.pid
        out = ["# HELP seeknal_requests_total HTTP requests by route and status.",
               "# TYPE seeknal_requests_total counter"]
        for (route, status), n in sorted(self.requests.items()):
            out.append(f'seeknal_requests_total{{route="{route}",status="{status}",pid="{pid}"}} {n}')
        out += ["# HELP seeknal_request_duration_seconds Time to answer a request, by route.",
                "# TYPE seeknal_request_duration_seconds histogram"]
        for route, hist in sorted(self.histograms.items()):
            total = 0
            for bound, n in zip((*BUCKETS, "+Inf"), hist, strict=True):
                total += n
                labels = f'route="{route}",le="{bound}",pid="{pid}"'
                out.append(f"seeknal_request_duration_seconds_bucket{{{labels}}} {total}")
            out.append(f'seeknal_request_duration_seconds_sum{{route="{route}",pid="{pid}"}} {self.sums[route]:.6f}')
            out.append(f'seeknal_request_duration_seconds_count{{route="{route}",pid="{pid}"}} {total}')
        for name, helptext, values in (
            ("seeknal_keys_served_total", "Keys looked up, by entity.", self.keys_served),
            ("seeknal_unknown_keys_total", "Keys the store does not hold, by entity.", self.unknown_keys),
        ):
            out += [f"# HELP {name} {helptext}", f"# TYPE {name} counter"]
            out += [f'{name}{{entity="{e}",pid="{pid}"}} {n}' for e, n in sorted(values.items())]
        out += ["# HELP seeknal_store_version Version (publication time, ns) of the loaded snapshot.",
                "# TYPE seeknal_store_version gauge"]
        ages = []
        now = datetime.now(UTC)
        for entity, (version, published_at) in sorted(stores.items()):
            out.append(f'seeknal_store_version{{entity="{entity}",pid="{pid}"}} {_number(version)}')
            try:
                age = (now - datetime.fromisoformat(published_at)).total_seconds()
            except (TypeError, ValueError):
                continue
            ages.append(f'seeknal_store_age_seconds{{entity="{entity}",pid="{pid}"}} {age:.0f}')
        out += ["# HELP seeknal_store_age_seconds Seconds since the loaded snapshot was published.",
                "# TYPE seeknal_store_age_seconds gauge", *ages]
        return ("\n".join(out) + "\n").encode()


def _number(version: object) -> str:
    if isinstance(version, str) and version.isdigit():
        return version
    if isinstance(version, tuple) and version and isinstance(version[0], int):
        return str(version[0])  # the embedded store's pointer mtime (ns)
    return "0"

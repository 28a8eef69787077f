"""Pure: fold probe results into hourly and daily rollups, and read percentiles back.

The dashboard must stay fast on a year of data, so it reads these, never the raw probes.
Latency is kept as a histogram over fixed log-spaced buckets (a mergeable sketch): rollups
add up exactly across hours and days, and p50/p95 come back within one bucket (~6%).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from monitor.domain.evidence import Outcome

HOUR = "h"
DAY = "d"
PERIODS = {HOUR: timedelta(hours=1), DAY: timedelta(days=1)}

# Latency buckets: bucket i holds latencies in [BASE * RATIO**(i-1), BASE * RATIO**i) ms,
# bucket 0 everything below BASE. 1 ms .. ~5.8 min in 220 buckets of +6%; anything slower
# lands in the last bucket (no probe timeout is that long).
BASE_MS = 1.0
RATIO = 1.06
BUCKETS = 220


def bucket_of(ms: float) -> int:
    if ms < BASE_MS:
        return 0
    return min(BUCKETS - 1, 1 + int(math.log(ms / BASE_MS, RATIO)))


def bucket_upper(index: int) -> float:
    """The upper bound (ms) of a bucket: what a percentile falling in it reports."""
    return BASE_MS * RATIO**index


def period_start(at: datetime, period: str) -> datetime:
    at = at.astimezone(UTC)
    if period == HOUR:
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class Rollup:
    """Counts and a latency sketch for one target over one hour or day."""

    probes: int = 0
    ok: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    latency: dict[int, int] = field(default_factory=dict)  # bucket index -> probes
    latency_sum: float = 0.0
    latency_max: float = 0.0
    quiet: int = 0  # probes in a maintenance window or silence: in none of the above

    def add(self, outcome: str, latency_ms: float | None) -> None:
        self.probes += 1
        self.ok += outcome == Outcome.OK
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if latency_ms is not None:
            b = bucket_of(latency_ms)
            self.latency[b] = self.latency.get(b, 0) + 1
            self.latency_sum += latency_ms
            self.latency_max = max(self.latency_max, latency_ms)

    def merge(self, other: Rollup) -> Rollup:
        self.probes += other.probes
        self.ok += other.ok
        for k, v in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        for b, v in other.latency.items():
            self.latency[b] = self.latency.get(b, 0) + v
        self.latency_sum += other.latency_sum
        self.latency_max = max(self.latency_max, other.latency_max)
        self.quiet += other.quiet
        return self

    @property
    def uptime(self) -> float | None:
        """ok probes / probes with data; None when there is no data."""
        return self.ok / self.probes if self.probes else None

    def percentile(self, q: float) -> float | None:
        return percentile(self.latency, q)


def percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0..1) of a bucket histogram, as its bucket's upper bound in ms."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for b in sorted(histogram):
        seen += histogram[b]
        if seen >= rank:
            return bucket_upper(b)
    return bucket_upper(max(histogram))


def fold(
    rows: Iterable[tuple[int, datetime, str, float | None]],
    quiet: Iterable[tuple[int, datetime]] = (),
) -> dict[tuple[int, str, datetime], Rollup]:
    """(target_id, checked_at, outcome, latency_ms) rows -> rollups by (target, period, start);
    `quiet` (target_id, checked_at) probes, inside maintenance, are only counted."""
    out: dict[tuple[int, str, datetime], Rollup] = {}
    for target_id, at, outcome, latency in rows:
        for period in PERIODS:
            key = (target_id, period, period_start(at, period))
            out.setdefault(key, Rollup()).add(outcome, latency)
    for target_id, at in quiet:
        for period in PERIODS:
            out.setdefault((target_id, period, period_start(at, period)), Rollup()).quiet += 1
    return out


def encode_latency(latency: Mapping[int, int]) -> dict[str, int]:
    """JSON objects have string keys."""
    return {str(b): n for b, n in latency.items()}


def decode_latency(stored: Mapping[str, int] | None) -> dict[int, int]:
    return {int(b): n for b, n in (stored or {}).items()}

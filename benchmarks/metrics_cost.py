"""What /metrics costs the probe path, and what a scrape costs, at N targets.

`Metrics.probed` runs on the event loop once per probe and `lagged` once per start; both are
timed here over many rounds of every target (label children already made, as in a running
monitor), next to the baseline that caching avoids: resolving the label children per probe.
The scrape (`generate_latest`) runs in the listener's thread; its size is the series count.

    .venv/bin/python benchmarks/metrics_cost.py --targets 1000 --rounds 20
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import generate_latest

from monitor.agent.metrics import Metrics
from monitor.domain.evidence import Outcome, ProbeResult, Timings
from monitor.domain.states import TargetState


@dataclass(frozen=True)
class Named:
    name: str
    kind: str


def results(n: int) -> list[ProbeResult]:
    """One result per target: most ok, every tenth failing (two outcome series for those)."""
    now = datetime.now(UTC)
    return [
        ProbeResult(
            target=f"t{i:05d}",
            kind="openai-chat",
            url="https://example.com/",
            checked_at=now,
            outcome=Outcome.SERVER_ERROR if i % 10 == 0 else Outcome.OK,
            http_status=200,
            timings=Timings(connect_ms=3.0, tls_ms=8.0, ttfb_ms=120.0, total_ms=130.0 + i % 50),
            detail="",
            hint="",
            warning="",
            request_id=None,
            provider=None,
            headers={},
            body_excerpt="",
        )
        for i in range(n)
    ]


def per_call_us(fn: object, items: list[ProbeResult], rounds: int) -> list[float]:
    """Microseconds per call, one figure per round."""
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        for item in items:
            fn(item)  # type: ignore[operator]
        out.append((time.perf_counter() - start) / len(items) * 1e6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    batch = results(args.targets)
    states = {r.target: TargetState(accepted=r.outcome) for r in batch}
    metrics = Metrics([Named(r.target, r.kind) for r in batch], lambda: states)
    for r in batch:  # the first probe of each target makes its children
        metrics.probed(r)
        metrics.probed(r if r.outcome is Outcome.OK else batch[1])

    probed = per_call_us(metrics.probed, batch, args.rounds)
    lagged = per_call_us(lambda _: metrics.lagged(0.0004), batch, args.rounds)

    def uncached(r: ProbeResult) -> None:  # the baseline: labels() resolved per probe
        metrics.success.labels(r.target, r.kind).set(1.0)
        metrics.duration.labels(r.target, r.kind).observe((r.timings.total_ms or 0) / 1000)
        for phase, ms in zip(("connect", "tls", "ttfb"), (3.0, 8.0, 120.0), strict=True):
            metrics.phase.labels(r.target, phase).set(ms / 1000)
        metrics.probes.labels(r.target, r.outcome).inc()

    baseline = per_call_us(uncached, batch, args.rounds)
    start = time.perf_counter()
    text = generate_latest(metrics.registry)
    scrape_ms = (time.perf_counter() - start) * 1000
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))

    def show(name: str, figures: list[float]) -> None:
        print(
            f"{name:<34} median {statistics.median(figures):6.2f} µs"
            f"  (min {min(figures):.2f}, max {max(figures):.2f})"
        )

    print(f"{args.targets} targets, {args.rounds} rounds")
    show("probed (cached children)", probed)
    show("lagged", lagged)
    show("baseline: labels() per probe", baseline)
    print(f"scrape: {series} series, {len(text) / 1024:.0f} KiB, {scrape_ms:.1f} ms")


if __name__ == "__main__":
    main()

"""The monitor's Prometheus metrics, on a registry of its own (never the process-global one).

The loop records into it through a few calls (`probed`, `lagged`, `alerted`); the listener
(monitor/agent/listener.py) serves it at /metrics. The probe path is hot (a probe costs about
0.5 ms of CPU), so each target's label children are made once and kept: a probe then costs a
few dictionary lookups and lock-guarded additions, no label resolution and no allocation.

Cardinality, sized for 1,000 targets: the duration histogram is of the probe's total only
(9 buckets, so 12 series per target); the phases (connect, TLS, time to first byte) are plain
gauges of the latest probe, 3 series per target. A histogram per phase would be 36 more
series per target — 36,000 at 1,000 targets — for percentiles nobody alerts on.

`inferwatch_target_state` is read at scrape time from the writer's committed states (a
collector, not a recorder), so it is never out of step with the database and costs the
writer nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.domain.evidence import Outcome, ProbeResult
from monitor.domain.states import TargetState

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)  # seconds
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)  # seconds
PHASES = ("connect", "tls", "ttfb")


class Named(Protocol):
    """What the metrics need of a configured target."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...


class _Series:
    """One target's label children, made once."""

    __slots__ = ("duration", "phases", "probes", "success", "ttft")

    def __init__(self, metrics: Metrics, name: str, kind: str):
        self.success = metrics.success.labels(name, kind)
        self.duration = metrics.duration.labels(name, kind)
        self.phases = [metrics.phase.labels(name, phase) for phase in PHASES]
        self.probes: dict[str, Counter] = {}  # outcome -> child, made at its first probe
        self.ttft: Gauge | None = None  # phase "ttft": only targets that stream get one


class Metrics:
    """The metric families and the recorder API the monitor calls."""

    def __init__(
        self,
        targets: Iterable[Named],
        states: Callable[[], Mapping[str, TargetState]] = dict,
    ):
        # No `_created` series: they would double the counters' and histograms' series for a
        # timestamp Prometheus does not need (process-wide; inferwatch has no other metrics).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        r = self.registry
        self.success = Gauge(
            "inferwatch_probe_success",
            "1 when the target's latest probe was ok, else 0",
            ["target", "kind"],
            registry=r,
        )
        self.duration = Histogram(
            "inferwatch_probe_duration_seconds",
            "Total duration of each probe",
            ["target", "kind"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.phase = Gauge(
            "inferwatch_probe_phase_seconds",
            "Phases of the target's latest probe (NaN when the phase did not happen)",
            ["target", "phase"],
            registry=r,
        )
        self.probes = Counter(
            "inferwatch_probes",
            "Probes by outcome",
            ["target", "outcome"],
            registry=r,
        )
        self.alerts = Counter(
            "inferwatch_alerts",
            "Alert delivery attempts by channel and how they ended "
            "(sent, partial, retry, failed: monitor/alerts/outbox.py)",
            ["channel", "status"],
            registry=r,
        )
        self.lag = Histogram(
            "inferwatch_scheduler_lag_seconds",
            "How late each probe started after its slot",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self._kinds: dict[str, str] = {}
        self._series: dict[str, _Series] = {}
        r.register(_StateCollector(states, lambda: self._kinds))
        self.configure(targets)

    # ------------------------------------------------------------ the recorder API

    def probed(self, result: ProbeResult) -> None:
        """One probe's result (on the event loop; the hot path)."""
        series = self._series.get(result.target)
        if series is None:
            kind = self._kinds.get(result.target)
            if kind is None:
                return  # removed by a reload while the probe was in flight
            series = self._series[result.target] = _Series(self, result.target, kind)
        outcome = result.outcome
        series.success.set(1.0 if outcome is Outcome.OK else 0.0)
        timings = result.timings
        if timings.total_ms is not None:
            series.duration.observe(timings.total_ms / 1000)
        connect, tls, ttfb = series.phases
        connect.set(_seconds(timings.connect_ms))
        tls.set(_seconds(timings.tls_ms))
        ttfb.set(_seconds(timings.ttfb_ms))
        if timings.ttft_ms is not None:
            if series.ttft is None:
                series.ttft = self.phase.labels(result.target, "ttft")
            series.ttft.set(timings.ttft_ms / 1000)
        counter = series.probes.get(outcome)
        if counter is None:
            counter = series.probes[outcome] = self.probes.labels(result.target, outcome)
        counter.inc()

    def lagged(self, seconds: float) -> None:
        """How late a probe started after its slot (the scheduler's hot path)."""
        self.lag.observe(seconds)

    def alerted(self, channel: str, status: str) -> None:
        """One delivery attempt (from the sender's thread)."""
        self.alerts.labels(channel, status).inc()

    def configure(self, targets: Iterable[Named]) -> None:
        """Adopt the configured targets: removed ones (or ones whose kind changed) lose
        every series; new ones get theirs at their first probe."""
        kinds = {t.name: t.kind for t in targets}
        for name in [n for n in self._kinds if kinds.get(n) != self._kinds[n]]:
            self._forget(name, self._kinds[name])
        self._kinds = kinds  # replaced whole: a scrape's thread sees the old or the new

    def _forget(self, name: str, kind: str) -> None:
        series = self._series.pop(name, None)
        if series is None:
            return
        self.success.remove(name, kind)
        self.duration.remove(name, kind)
        for phase in PHASES:
            self.phase.remove(name, phase)
        if series.ttft is not None:
            self.phase.remove(name, "ttft")
        for outcome in series.probes:
            self.probes.remove(name, outcome)


class _StateCollector(Collector):
    """inferwatch_target_state: 1 for each configured target's confirmed state, at scrape."""

    def __init__(
        self,
        states: Callable[[], Mapping[str, TargetState]],
        kinds: Callable[[], Mapping[str, str]],
    ):
        self._states = states
        self._kinds = kinds  # the configured targets, as of the latest reload

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "inferwatch_target_state",
            "1 for the target's current confirmed state (only that outcome has a series)",
            labels=["target", "outcome"],
        )
        states = dict(self._states())  # one copy: the writer's thread may update it meanwhile
        for name in self._kinds():
            state = states.get(name)
            if state is not None and state.accepted is not None:
                family.add_metric([name, str(state.accepted)], 1.0)
        yield family


def _seconds(ms: float | None) -> float:
    return math.nan if ms is None else ms / 1000

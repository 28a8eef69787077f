"""Rollups (pure) and their upkeep by the writer: exact counts, mergeable latency sketch."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.domain.evidence import Outcome
from monitor.domain.rollups import (
    DAY,
    HOUR,
    RATIO,
    Rollup,
    bucket_of,
    bucket_upper,
    fold,
    percentile,
    period_start,
)
from monitor.store import open_database
from monitor.store.models import ProbeRecord, RollupRecord
from monitor.store.writes import stored_rollup
from tests.test_loop_writer import T0, config, result


@pytest.mark.parametrize("ms", [0.2, 1.0, 1.5, 40.0, 812.0, 9_999.0, 119_000.0, 300_000.0])
def test_a_latency_falls_in_a_bucket_whose_upper_bound_is_at_most_6_percent_above(
    ms: float,
) -> None:
    upper = bucket_upper(bucket_of(ms))
    assert upper >= ms or ms < 1.0
    assert upper <= max(ms, 1.0) * RATIO + 1e-9


def test_latencies_beyond_the_last_bucket_are_clamped() -> None:
    assert bucket_of(3_600_000.0) == bucket_of(10**9) == 219


def test_percentiles_are_within_one_bucket_of_the_exact_value() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(4.0, 0.6) for _ in range(5000)]
    roll = Rollup()
    for v in values:
        roll.add("ok", v)
    exact = sorted(values)
    for q in (0.5, 0.95, 0.99):
        true = exact[int(q * len(exact)) - 1]
        assert true <= roll.percentile(q) <= true * RATIO**2


def test_rollups_merge_exactly() -> None:
    a, b, both = Rollup(), Rollup(), Rollup()
    for i in range(100):
        outcome = "ok" if i % 7 else "server_error"
        (a if i < 40 else b).add(outcome, float(i + 1))
        both.add(outcome, float(i + 1))
    merged = a.merge(b)
    assert (merged.probes, merged.ok, merged.counts) == (both.probes, both.ok, both.counts)
    assert merged.latency == both.latency
    assert merged.latency_max == 100.0
    assert merged.uptime == both.uptime == 85 / 100


def test_no_data_has_no_uptime_and_no_percentile() -> None:
    assert Rollup().uptime is None
    assert percentile({}, 0.5) is None


def test_fold_buckets_by_hour_and_day_in_utc() -> None:
    at = datetime(2026, 3, 1, 23, 59, tzinfo=UTC)
    rolled = fold([(1, at, "ok", 10.0), (1, at + timedelta(minutes=2), "timeout", None)])
    assert set(rolled) == {
        (1, HOUR, datetime(2026, 3, 1, 23, tzinfo=UTC)),
        (1, DAY, datetime(2026, 3, 1, tzinfo=UTC)),
        (1, HOUR, datetime(2026, 3, 2, 0, tzinfo=UTC)),
        (1, DAY, datetime(2026, 3, 2, tzinfo=UTC)),
    }
    assert rolled[(1, DAY, datetime(2026, 3, 2, tzinfo=UTC))].counts == {"timeout": 1}
    assert period_start(at, DAY) == datetime(2026, 3, 1, tzinfo=UTC)


def test_the_writer_keeps_rollups_equal_to_the_raw_probes(db_url: str) -> None:
    from monitor.agent.writer import Writer

    w = Writer(open_database(db_url), config(), clock=lambda: T0)
    w.start_run()
    outcomes = [Outcome.OK] * 50 + [Outcome.SERVER_ERROR] * 7 + [Outcome.OK] * 30
    for i in range(0, len(outcomes), 9):  # batches that straddle hour boundaries
        w.write_batch(
            [
                result("gpt2-legacy", o, T0 + timedelta(minutes=7 * (i + j)))
                for j, o in enumerate(outcomes[i : i + 9])
            ]
        )

    with Session(w.engine) as s:
        raw = s.scalar(select(func.count(ProbeRecord.id)))
        raw_ok = s.scalar(select(func.count(ProbeRecord.id)).where(ProbeRecord.outcome == "ok"))
        for period in (HOUR, DAY):
            rows = list(s.scalars(select(RollupRecord).where(RollupRecord.period == period)))
            total = Rollup()
            for row in rows:
                total.merge(stored_rollup(row))
            assert (total.probes, total.ok) == (raw, raw_ok)
            assert total.counts == {"ok": 80, "server_error": 7}
            assert sum(total.latency.values()) == raw  # every probe had an answer here
        assert len(list(s.scalars(select(RollupRecord).where(RollupRecord.period == HOUR)))) == 11


def test_a_restarted_writer_continues_the_stored_buckets(db_url: str) -> None:
    """The writer keeps the buckets it fills in memory; a new one must read them first."""
    from monitor.agent.writer import Writer

    engine = open_database(db_url)
    for run in range(3):  # three runs of the monitor within one hour
        w = Writer(engine, config(), clock=lambda: T0)
        w.start_run()
        w.write_batch(
            [
                result("gpt2-legacy", Outcome.OK, T0 + timedelta(minutes=run * 10 + i))
                for i in range(4)
            ]
        )
    with Session(engine) as s:
        rollups = list(s.scalars(select(RollupRecord)))
    assert sorted((r.period, r.probes, r.ok) for r in rollups) == [("d", 12, 12), ("h", 12, 12)]

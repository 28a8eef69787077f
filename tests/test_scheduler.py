"""Scheduling: every target on its own slot from the first round on, with a real APScheduler."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from monitor.agent import eventloop
from monitor.agent.scheduler import (
    ANCHOR,
    FIRST_ROUND_SPREAD,
    Slots,
    SlotTrigger,
    first_round_spread,
    first_run_delay,
    make_scheduler,
    next_slot,
    slot_offset,
)


def phase(when: datetime, interval: float) -> float:
    """Where in its interval a time falls, counted from the anchor."""
    return (when - ANCHOR).total_seconds() % interval


def distance(a: float, b: float, interval: float) -> float:
    """How far apart two phases are on the circle of one interval."""
    gap = abs(a - b) % interval
    return min(gap, interval - gap)


def test_a_run_off_its_slot_is_followed_by_the_next_slot() -> None:
    interval = 60.0
    start = ANCHOR + timedelta(seconds=slot_offset("gpt", interval))
    trigger = SlotTrigger(seconds=interval, start_date=start, timezone=UTC)
    off_slot = datetime(2026, 11, 30, 12, 0, 0, 123000, tzinfo=UTC)  # the immediate first run
    following = trigger.get_next_fire_time(off_slot, off_slot)
    assert following is not None
    assert off_slot < following <= off_slot + timedelta(seconds=interval)
    assert distance(phase(following, interval), slot_offset("gpt", interval), interval) < 1e-3
    # and then every interval on that slot, not from the off-slot time
    after = trigger.get_next_fire_time(following, following)
    assert after is not None
    assert abs((after - following).total_seconds() - interval) < 1e-3


def test_a_slot_is_never_returned_twice() -> None:
    interval = 10.0
    start = ANCHOR + timedelta(seconds=slot_offset("t", interval))
    trigger = SlotTrigger(seconds=interval, start_date=start, timezone=UTC)
    on_slot = start + timedelta(seconds=interval * 1000)
    following = trigger.get_next_fire_time(on_slot, on_slot)
    assert following == on_slot + timedelta(seconds=interval)


def watch(seconds: float, setup: Callable[[Slots], Awaitable[None] | None]) -> Slots:
    """Run a real AsyncIOScheduler with Slots for `seconds`, after `setup(slots)`."""

    async def run() -> Slots:
        scheduler = make_scheduler()
        slots = Slots(scheduler, job)
        scheduler.start()
        try:
            maybe = setup(slots)
            slots.start()
            if maybe is not None:
                await maybe
            await asyncio.sleep(seconds)
        finally:
            slots.stop()
            scheduler.shutdown(wait=False)
        return slots

    return eventloop.run(run())


RUNS: dict[str, list[datetime]] = {}
HOLD: dict[str, float] = {}  # seconds a target's probe takes


async def job(name: str) -> None:
    RUNS.setdefault(name, []).append(datetime.now(UTC))
    await asyncio.sleep(HOLD.get(name, 0))


@pytest.fixture(autouse=True)
def fresh_runs() -> None:
    RUNS.clear()
    HOLD.clear()


def test_targets_run_on_their_own_slots_from_the_second_round() -> None:
    """Started together, targets must not keep firing together (a burst every interval that
    the probes would then time as latency): after the first round each is on its slot."""
    interval = 0.5
    names = [f"target-{i}" for i in range(8)]
    started = datetime.now(UTC)
    slots = watch(2.2, lambda slots: [slots.plan(n, interval) for n in names] and None)

    firsts = sorted(times[0] for times in RUNS.values())
    assert sorted(RUNS) == sorted(names)
    assert firsts[-1] - started < timedelta(seconds=FIRST_ROUND_SPREAD + 0.3)
    assert len({round(phase(t, interval), 2) for t in firsts}) > 1, "first round in one burst"
    for name, times in RUNS.items():
        assert len(times) >= 3, f"{name} ran {len(times)} times in 2.2 s at 0.5 s"
        for when in times[1:]:
            off = distance(phase(when, interval), slot_offset(name, interval), interval)
            assert off < 0.06, f"{name} ran {off * 1000:.0f} ms off its slot"
    assert len(slots.lags) == sum(len(t) - 1 for t in RUNS.values()) + len(names)
    assert sorted(slots.lags)[len(slots.lags) // 2] < 0.02, "median slot-to-start delay"


def test_removed_targets_stop_and_retimed_targets_follow_their_new_interval() -> None:
    async def change(slots: Slots) -> None:
        slots.plan("stays", 0.3)
        slots.plan("goes", 0.3)
        slots.plan("retimed", 5.0)
        await asyncio.sleep(1.0)
        slots.remove("goes")
        slots.plan("retimed", 0.3)

    watch(1.5, change)

    assert max(RUNS["goes"]) < min(RUNS["stays"]) + timedelta(seconds=1.1)
    late_goes = [t for t in RUNS["goes"] if t > RUNS["stays"][0] + timedelta(seconds=1.1)]
    assert late_goes == []
    assert len(RUNS["retimed"]) >= 4, "one run at 5 s, then every 0.3 s after the change"
    assert len(RUNS["stays"]) >= 7


def test_a_target_still_probing_skips_its_slot(caplog: pytest.LogCaptureFixture) -> None:
    HOLD["slow"] = 0.75  # longer than its interval
    watch(1.6, lambda slots: slots.plan("slow", 0.25))

    assert 2 <= len(RUNS["slow"]) <= 3
    gaps = [(b - a).total_seconds() for a, b in zip(RUNS["slow"], RUNS["slow"][1:], strict=False)]
    assert all(gap >= 0.74 for gap in gaps), gaps
    assert "skipped a probe of slow: the previous one is still running" in caplog.text


def test_next_slot_is_strictly_after_and_on_the_grid() -> None:
    at = datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp()
    following = next_slot("t", 60.0, at)
    assert at < following <= at + 60
    assert next_slot("t", 60.0, following) == pytest.approx(following + 60)
    assert distance(following - ANCHOR.timestamp(), slot_offset("t", 60.0), 60.0) < 1e-6


def test_next_slot_always_moves_forward_despite_float_rounding() -> None:
    """Slot times are floats near 1.8e9 s: a slot fed back in must never come back out (an
    earlier version looped forever on 0.3 s)."""
    for interval in (0.1, 0.3, 0.7, 1.1, 5.0, 60.0, 3600.0):
        for name in ("a", "retimed", "gpt-4o", "t-9999"):
            slot = next_slot(name, interval, datetime(2026, 11, 30, tzinfo=UTC).timestamp())
            for _ in range(2000):
                following = next_slot(name, interval, slot)
                assert following - slot == pytest.approx(interval, rel=1e-4)
                slot = following


def test_the_first_round_is_spread_wider_when_sockets_are_few_for_the_targets() -> None:
    assert first_round_spread(20, 20) == FIRST_ROUND_SPREAD
    assert first_round_spread(10_000, 20) == pytest.approx(10.0)
    assert first_round_spread(10_000, 100) == pytest.approx(2.0)
    # and never beyond a target's own interval
    assert first_run_delay("t", 5.0, spread=10.0) < 5.0
    assert first_run_delay("t", 60.0, spread=10.0) == pytest.approx(slot_offset("t", 10.0))


def test_no_probe_starts_before_its_slot() -> None:
    watch(1.6, lambda slots: [slots.plan(f"t{i}", 0.2) for i in range(5)] and None)
    for name, times in RUNS.items():
        for when in times[1:]:  # the first is off-slot by design
            lag = (phase(when, 0.2) - slot_offset(name, 0.2)) % 0.2
            assert lag < 0.1, f"{name} started {(0.2 - lag) * 1000:.2f} ms before its slot"


def test_a_first_probe_never_lands_just_before_the_targets_own_slot() -> None:
    """The first round is spread over `spread` seconds; a target whose own slot comes within
    that time is first probed on it, not also just before it (that extra probe would still wait
    for a socket in the round's burst when the slot came, and the slot would be skipped)."""

    async def probe(name: str) -> None:
        pass

    slots = Slots(make_scheduler(), probe)
    interval, spread = 5.0, 3.0
    names = [f"target-{i}" for i in range(300)]
    for name in names:
        slots.plan(name, interval, spread)
    first = {name: when for when, _, name in slots._due}
    gaps = [next_slot(name, interval, first[name]) - first[name] for name in names]
    assert min(gaps) >= spread
    # (How many are first probed on their slot depends on the moment's phase in the interval:
    # the first-round offset and the slot come from the same hash.)
    assert all(first[name] - time.time() < interval for name in names)  # all within one

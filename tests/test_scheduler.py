"""Scheduling: every target on its own slot, from the first round on, with a real APScheduler."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from monitor.agent import eventloop
from monitor.agent.scheduler import (
    ANCHOR,
    FIRST_ROUND_SPREAD,
    SlotTrigger,
    make_scheduler,
    schedule,
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


def test_targets_run_on_their_own_slots_from_the_second_round() -> None:
    """Started together, targets must not keep firing together (a burst every interval that
    the probes would then time as latency): after the first round each is on its slot."""
    interval = 0.5
    names = [f"target-{i}" for i in range(8)]
    runs: dict[str, list[datetime]] = {name: [] for name in names}

    async def job(name: str) -> None:
        runs[name].append(datetime.now(UTC))

    async def watch() -> None:
        scheduler = make_scheduler()
        scheduler.start()
        try:
            for name in names:
                schedule(scheduler, name, interval, job)
            await asyncio.sleep(2.2)
        finally:
            scheduler.shutdown(wait=False)

    started = datetime.now(UTC)
    eventloop.run(watch())

    firsts = sorted(times[0] for times in runs.values())
    assert firsts[-1] - started < timedelta(seconds=FIRST_ROUND_SPREAD + 0.3)
    assert len({round(phase(t, interval), 2) for t in firsts}) > 1, "first round in one burst"
    for name, times in runs.items():
        assert len(times) >= 3, f"{name} ran {len(times)} times in 2.2 s at 0.5 s"
        for when in times[1:]:
            off = distance(phase(when, interval), slot_offset(name, interval), interval)
            assert off < 0.06, f"{name} ran {off * 1000:.0f} ms off its slot"

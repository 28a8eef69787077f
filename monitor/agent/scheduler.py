"""APScheduler wiring only: one job per target, spread over its interval at a fixed offset.

APScheduler's own `jitter` adds to the previous (jittered) time and drifts; instead each
target gets a stable offset from a hash of its name, so its probes land on the same slots of
its interval every time, and targets never all fire at the same instant. The first probes
run right away, spread over the first second; the bounded prober keeps even that burst to
`concurrency` sockets.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)

ANCHOR = datetime(2024, 1, 1, tzinfo=UTC)  # slots are counted from here, so they survive restarts
FIRST_ROUND_SPREAD = 1.0  # seconds over which the first probes of all targets are spread


def slot_offset(name: str, interval: float) -> float:
    """A stable offset in [0, interval) for a target, from a hash of its name."""
    return (zlib.crc32(name.encode()) / 2**32) * interval


def first_run_delay(name: str, interval: float) -> float:
    """When the first probe of a newly scheduled target runs: within the first second.

    Right away, as a user starting the monitor expects, but spread by the same hash as
    the slots, so a thousand targets do not open their first sockets in one instant.
    """
    return slot_offset(name, min(interval, FIRST_ROUND_SPREAD))


def misfire_grace(interval: float) -> int:
    """How late a run may start and still count: half an interval, at least 1 s."""
    return max(1, int(interval / 2))


class SlotTrigger(IntervalTrigger):  # type: ignore[misc]  # APScheduler 3 is untyped
    """An IntervalTrigger whose runs stay on the target's slots.

    IntervalTrigger times each run from the previous one, so the immediate first probe,
    off-slot, would shift every later run with it: all targets started together would
    fire together forever, a burst each interval that the probes then time as latency.
    This trigger always answers with the next slot after the previous run.
    """

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if previous_fire_time is not None:
            now = max(now, previous_fire_time + timedelta(microseconds=1))
        next_fire: datetime | None = super().get_next_fire_time(None, now)
        return next_fire


def make_scheduler() -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=UTC)

    def report(event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning(
                "missed the probe of %s due at %s (the monitor was busy or asleep)",
                event.job_id,
                event.scheduled_run_time,
            )
        else:
            log.warning("skipped a probe of %s: the previous one is still running", event.job_id)

    scheduler.add_listener(report, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    return scheduler


# APScheduler logs the same missed/skipped runs in its own words; ours name the target.
logging.getLogger("apscheduler.scheduler").addFilter(
    lambda record: (
        "skipped: maximum number" not in record.getMessage()
        and "was missed by" not in record.getMessage()
    )
)


def schedule(
    scheduler: AsyncIOScheduler,
    name: str,
    interval: float,
    job: Callable[[str], Awaitable[None]],
    first_run: datetime | None = None,
) -> None:
    """Add (or replace) the job probing `name` every `interval` seconds."""
    start = ANCHOR + timedelta(seconds=slot_offset(name, interval))
    scheduler.add_job(
        job,
        SlotTrigger(seconds=interval, start_date=start, timezone=UTC),
        args=[name],
        id=name,
        name=f"probe {name}",
        replace_existing=True,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=misfire_grace(interval),
        next_run_time=first_run
        or datetime.now(UTC) + timedelta(seconds=first_run_delay(name, interval)),
    )

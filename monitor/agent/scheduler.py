"""When each target is probed: its slots, and APScheduler driving them.

Each target gets a stable offset from a hash of its name, so its probes land on the same
slots of its interval every time (also across restarts), and targets never all fire at the
same instant (APScheduler's own `jitter` adds to the previous jittered time and drifts).
The first probes run right away, spread over the first second (or as long as the sockets
need), unless a target's own slot comes within that time: then it is probed on its slot; the
bounded prober keeps even that burst to `concurrency` sockets.

APScheduler runs one job, the tick, every TICK seconds; each tick places the probes whose
slots fall before the next tick on the event loop at their exact times (`loop.call_later`).
One APScheduler job per target cost its per-run work (trigger maths, job store, events)
once per probe: 17% of the monitor's CPU at 200 probes/s; now it is paid once a tick.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
import zlib
from collections import deque
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)

ANCHOR = datetime(2024, 1, 1, tzinfo=UTC)  # slots are counted from here, so they survive restarts
FIRST_ROUND_SPREAD = 1.0  # seconds over which the first probes of all targets are spread
TICK = 1.0  # seconds between two placements of the coming probes
TICK_JOB = "tick"
LAG_SAMPLES = 10_000  # recent slot-to-start delays kept for figures


def slot_offset(name: str, interval: float) -> float:
    """A stable offset in [0, interval) for a target, from a hash of its name."""
    return (zlib.crc32(name.encode()) / 2**32) * interval


def first_run_delay(name: str, interval: float, spread: float = FIRST_ROUND_SPREAD) -> float:
    """When the first probe of a newly scheduled target runs: within `spread` seconds.

    Right away, as a user starting the monitor expects, but spread by the same hash as
    the slots, so a thousand targets do not open their first sockets in one instant.
    """
    return slot_offset(name, min(interval, spread))


def first_round_spread(targets: int, concurrency: int) -> float:
    """Seconds over which to start the first probes of `targets` at once: one second, or as
    long as `concurrency` sockets need for them at a quick 20 ms each. Faster, and the first
    probes would queue for a socket past their own next slot."""
    return max(FIRST_ROUND_SPREAD, targets * 0.02 / concurrency)


def next_slot(name: str, interval: float, after: float) -> float:
    """The target's first slot strictly after `after` (seconds since 1970)."""
    start = ANCHOR.timestamp() + slot_offset(name, interval)
    slot = start + (math.floor((after - start) / interval) + 1) * interval
    if slot - after < min(interval / 2, 0.001):  # `after` was itself a slot, rounded
        slot += interval
    return slot


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
        log.warning("the %s job missed its run at %s", event.job_id, event.scheduled_run_time)

    scheduler.add_listener(report, EVENT_JOB_MISSED)
    return scheduler


# APScheduler logs the same missed runs in its own words; ours name the job.
logging.getLogger("apscheduler.scheduler").addFilter(
    lambda record: "was missed by" not in record.getMessage()
)


class Slots:
    """Starts every target's probe on its slots, driven by APScheduler's tick job.

    `probe(name)` is started as a task at each slot; a target whose previous probe is still
    running skips that slot (one probe per target at a time). All of it runs on the event
    loop of `scheduler`; `plan` and `remove` take effect from the next slot.
    """

    def __init__(
        self, scheduler: AsyncIOScheduler, probe: Callable[[str], Coroutine[Any, Any, None]]
    ):
        self._scheduler = scheduler
        self._probe = probe
        self._intervals: dict[str, float] = {}
        self._generation: dict[str, int] = {}  # bumped by plan/remove: older entries are stale
        self._due: list[tuple[float, int, str]] = []  # heap of (slot, generation, name)
        self._horizon = 0.0  # slots before this were placed on the loop by a tick
        self._running: dict[str, asyncio.Task[None]] = {}
        self._stopped = False
        self._counter = 0
        self.lags: deque[float] = deque(maxlen=LAG_SAMPLES)  # seconds from slot to start
        self.observe_lag: Callable[[float], None] = lambda seconds: None  # /metrics' histogram

    def start(self) -> None:
        """Add the tick job; call with the scheduler started, inside the running loop."""
        self._scheduler.add_job(
            self._tick,
            SlotTrigger(seconds=TICK, start_date=ANCHOR, timezone=UTC),
            id=TICK_JOB,
            name="place the coming probes",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,  # a late tick still places what is due
            next_run_time=datetime.now(UTC),
        )

    def stop(self) -> None:
        """Start no more probes (those placed on the loop already are dropped)."""
        self._stopped = True

    def plan(self, name: str, interval: float, spread: float = FIRST_ROUND_SPREAD) -> None:
        """Probe `name` every `interval` seconds: first within `spread`, then on its slots."""
        self._counter += 1
        self._generation[name] = self._counter
        self._intervals[name] = interval
        now = time.time()
        first = now + first_run_delay(name, interval, spread)
        regular = next_slot(name, interval, now)
        if regular - first < spread:
            # Its own slot comes within the first round anyway: an extra probe just before it
            # would still be waiting for a socket in the round's burst, and the slot skipped.
            first = regular
        self._queue(first, name)

    def remove(self, name: str) -> None:
        self._generation.pop(name, None)
        self._intervals.pop(name, None)

    def in_flight(self) -> set[asyncio.Task[None]]:
        """The probes started and not yet finished."""
        return set(self._running.values())

    def _queue(self, when: float, name: str) -> None:
        generation = self._generation[name]
        if when < self._horizon:  # the tick covering it has run: place it at once
            self._place(asyncio.get_running_loop(), when, generation, name, time.time())
            when = next_slot(name, self._intervals[name], when)
        heapq.heappush(self._due, (when, generation, name))

    async def _tick(self) -> None:
        """Place every probe due before the next tick (and any a late tick left behind)."""
        loop = asyncio.get_running_loop()
        now = time.time()
        self._horizon = now + TICK
        while self._due and self._due[0][0] < self._horizon:
            when, generation, name = heapq.heappop(self._due)
            if self._generation.get(name) != generation:
                continue  # removed or re-timed since
            self._place(loop, when, generation, name, now)
            interval = self._intervals[name]
            heapq.heappush(self._due, (next_slot(name, interval, when), generation, name))

    def _place(
        self, loop: asyncio.AbstractEventLoop, when: float, generation: int, name: str, now: float
    ) -> None:
        late = now - when
        if late > misfire_grace(self._intervals[name]):
            log.warning(
                "missed the probe of %s due at %s (the monitor was busy or asleep)",
                name,
                datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds"),
            )
            return
        loop.call_later(max(0.0, -late), self._start, when, generation, name)

    def _start(self, when: float, generation: int, name: str) -> None:
        if self._stopped or self._generation.get(name) != generation:
            return
        now = time.time()
        early = when - now
        if early > 0:
            # uvloop's timers count whole milliseconds from a cached clock, so they can fire
            # up to a millisecond early; and a delay under half a millisecond rounds to none,
            # so waiting `early` again would spin. Wait at least one more millisecond.
            loop = asyncio.get_running_loop()
            loop.call_later(early + 0.001, self._start, when, generation, name)
            return
        if name in self._running:
            log.warning("skipped a probe of %s: the previous one is still running", name)
            return
        self.lags.append(now - when)
        self.observe_lag(now - when)
        task = asyncio.get_running_loop().create_task(self._probe(name), name=f"probe {name}")
        self._running[name] = task
        task.add_done_callback(lambda done: self._finished(name, done))

    def _finished(self, name: str, task: asyncio.Task[None]) -> None:
        if self._running.get(name) is task:
            del self._running[name]

"""What the writer could not write yet: results held in memory, in order, within a bound.

A database outage (PostgreSQL restarted or failed over, a SQLite file locked past its busy
timeout) must neither stop probing nor lose what was probed. A batch that fails to commit is
held here, every later batch queues behind it (a target's results must reach `decide` in
order), and the held results are written oldest first once the database answers again.
Nothing leaves the backlog before the transaction holding it has committed, so whatever was
reported as written stays written. The bound keeps memory finite in a long outage: beyond it
the oldest results go, counted in the log.

An error that is not the database being unreachable (a bug, a row the database refuses) is
not an outage: the batch at the head gets a few tries and is then dropped, as before, so one
bad batch cannot hold every later result back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from monitor.domain.evidence import ProbeResult
from monitor.store.db import unreachable

log = logging.getLogger(__name__)

MAX_HELD = 100_000  # results; up to ~3 KB each with full evidence (measured): ~300 MB at worst
PAUSES = (0.5, 1.0, 2.0)  # between tries while the database is away; the last repeats
BAD_BATCH_TRIES = 5  # an error that is not an outage: tries before the head batch is dropped


class Backlog:
    """Writes batches through `write` (blocking; returns how many alerts it queued), holding
    what fails. `alerted` is called after a commit that queued alerts."""

    def __init__(
        self,
        write: Callable[[Sequence[ProbeResult]], int],
        alerted: Callable[[], None],
        *,
        bound: int = MAX_HELD,
        chunk: int = 200,
    ):
        self._write = write
        self._alerted = alerted
        self.bound = bound
        self.chunk = chunk
        self._held: deque[ProbeResult] = deque()
        self._failures = 0  # consecutive failed tries
        self._next_try = 0.0  # time.monotonic() before which no try is made
        self._since: float | None = None  # when the current outage began (monotonic)
        self._written_late = 0  # held results written since the outage began
        self.dropped = 0  # held results dropped for the bound, since the outage began

    def __len__(self) -> int:
        return len(self._held)

    def wait(self) -> float | None:
        """Seconds until the next try at the held results; None when nothing is held."""
        if not self._held:
            return None
        return max(self._next_try - time.monotonic(), 0.0)

    async def write(self, batch: list[ProbeResult]) -> None:
        """Write `batch`, or hold it behind the results already held."""
        if not self._held and await self._try(batch):
            return
        self._hold(batch)
        await self.flush()

    async def flush(self) -> bool:
        """Write the held results, oldest first, while the database takes them (and a try is
        due); True when none is left."""
        while self._held:
            if time.monotonic() < self._next_try:
                return False
            chunk = [self._held[i] for i in range(min(self.chunk, len(self._held)))]
            if not await self._try(chunk):
                return False
            for _ in chunk:
                self._held.popleft()
            self._written_late += len(chunk)
        if self._since is not None:
            log.warning(
                "the database is back after %.1f s: wrote the %d results held meanwhile%s",
                time.monotonic() - self._since,
                self._written_late,
                f"; {self.dropped} older ones were dropped (over {self.bound} held)"
                if self.dropped
                else "",
            )
        self._since, self._written_late, self.dropped = None, 0, 0
        return True

    def abandon(self) -> int:
        """At a stop the database never came back for: log what is lost and forget it."""
        lost = len(self._held)
        if lost:
            log.error(
                "stopping with %d probe results never written: the database was unreachable%s",
                lost,
                f" ({self.dropped} older ones were dropped before, over {self.bound} held)"
                if self.dropped
                else "",
            )
        self._held.clear()
        return lost + self.dropped

    async def _try(self, batch: list[ProbeResult]) -> bool:
        """One try at a batch (off the event loop); on failure, when to try again."""
        try:
            alerts = await asyncio.to_thread(self._write, batch)
        except Exception as exc:
            self._failures += 1
            pause = PAUSES[min(self._failures, len(PAUSES)) - 1]
            self._next_try = time.monotonic() + pause
            if unreachable(exc):
                if self._since is None:
                    self._since = time.monotonic()
                    log.warning(
                        "the database is unreachable (%s); holding results in memory "
                        "(up to %d) and retrying",
                        _first_line(exc),
                        self.bound,
                    )
                return False
            if self._failures < BAD_BATCH_TRIES:
                log.warning(
                    "writing %d results failed (try %d); retrying", len(batch), self._failures
                )
                return False
            # Not an outage and not getting better: states were not advanced, so the changes
            # in this batch are detected again by the next probes; only these results are lost.
            log.exception("could not write %d probe results; dropping them", len(batch))
            self._drop_head(batch)
            return False
        self._failures, self._next_try = 0, 0.0
        if alerts:
            self._alerted()
        return True

    def _hold(self, batch: list[ProbeResult]) -> None:
        self._held.extend(batch)
        over = len(self._held) - self.bound
        if over > 0:
            if not self.dropped:
                log.warning(
                    "%d results held while the database is away: dropping the oldest", self.bound
                )
            for _ in range(over):
                self._held.popleft()
            self.dropped += over

    def _drop_head(self, batch: list[ProbeResult]) -> None:
        """Forget a batch given up on: the head of the backlog if held, else nothing held."""
        self._failures, self._next_try = 0, 0.0
        if self._held and self._held[0] is batch[0]:
            for _ in batch:
                self._held.popleft()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__

"""What the writer could not write yet: results held in memory, in order, within a bound.

A database outage (PostgreSQL restarted or failed over, a SQLite file locked past its busy
timeout) must neither stop probing nor lose what was probed. A batch that fails to commit is
held here, every later batch queues behind it (a target's results must reach `decide` in
order), and the held results are written oldest first once the database answers again.
Nothing leaves the backlog before the transaction holding it has committed, so whatever was
reported as written stays written. The bound keeps memory finite in a long outage: beyond it
the oldest results go, counted in the log.

An error that is not the database being unreachable (a bug, a value the database refuses) is
not an outage, and waiting will not cure it: the batch is written again at once one result per
transaction, so only the refused result is lost and nothing waits behind it.
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
        done = await self._try(batch) if not self._held else 0
        if done < len(batch):
            self._hold(batch[done:])
            await self.flush()

    async def flush(self) -> bool:
        """Write the held results, oldest first, while the database takes them (and a try is
        due); True when none is left."""
        while self._held:
            if time.monotonic() < self._next_try:
                return False
            chunk = [self._held[i] for i in range(min(self.chunk, len(self._held)))]
            done = await self._try(chunk)
            for _ in range(done):
                self._held.popleft()
            self._written_late += done
            if done < len(chunk):
                return False
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

    async def _try(self, batch: list[ProbeResult]) -> int:
        """One try at a batch (off the event loop): how many of its first results are done
        (committed, or refused and given up on); on an outage none, and when to try again."""
        try:
            alerts = await asyncio.to_thread(self._write, batch)
        except Exception as exc:
            if unreachable(exc):
                self._away(exc)
                return 0
            # Refused, not away (a bug, a value the database rejects): waiting will not help,
            # so the results go one by one at once and only the refused ones are lost.
            return await self._one_by_one(batch)
        self._failures, self._next_try = 0, 0.0
        if alerts:
            self._alerted()
        return len(batch)

    async def _one_by_one(self, batch: list[ProbeResult]) -> int:
        """Write each result in its own transaction, in order; drop those refused (their
        state is not advanced, so a change they carried is seen again by the next probes)."""
        alerts = 0
        for done, result in enumerate(batch):
            try:
                alerts += await asyncio.to_thread(self._write, [result])
            except Exception as exc:
                if unreachable(exc):
                    self._away(exc)
                    return done
                log.exception("could not write the probe of %s; dropping it", result.target)
        self._failures, self._next_try = 0, 0.0
        if alerts:
            self._alerted()
        return len(batch)

    def _away(self, exc: BaseException) -> None:
        """The database is unreachable: when to try again; say so once per outage."""
        self._failures += 1
        self._next_try = time.monotonic() + PAUSES[min(self._failures, len(PAUSES)) - 1]
        if self._since is None:
            self._since = time.monotonic()
            log.warning(
                "the database is unreachable (%s); holding results in memory (up to %d) and "
                "retrying",
                _first_line(exc),
                self.bound,
            )

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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__

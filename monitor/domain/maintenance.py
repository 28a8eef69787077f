"""Pure: maintenance windows and silences -> is a target quiet at a time, and why.

A window comes from the config (`maintenance:`), once or every week/day at a local time in a
named time zone; a silence is added at run time (`inferwatch silence add`) and stored. While a
target is quiet its probes still run and are recorded, its transitions are recorded unannounced
with the reason, and no alert is sent (monitor/domain/decide.py). Recurring windows start at
their wall-clock time in their zone, whatever its offset that day (zoneinfo), and last their
duration in real time, so a 2 h window across a DST change is still 2 h long.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAINTENANCE = "maintenance"  # a time block of the status band held by maintenance
MAINTENANCE_COLOUR = "#0969da"  # blue: planned, neither working nor failing


@cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass(frozen=True)
class Every:
    """A recurrence: every `weekday` (0 = Monday; None = every day) at `at` in zone `tz`."""

    at: time
    tz: str = "UTC"
    weekday: int | None = None

    def describe(self) -> str:
        day = "day" if self.weekday is None else WEEKDAYS[self.weekday]
        return f"every {day} at {self.at:%H:%M} {self.tz}"


@dataclass(frozen=True)
class Window:
    """A configured maintenance window: once at `start`, or `every` recurrence."""

    name: str
    duration: timedelta
    targets: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()  # neither targets nor tags: every target
    start: datetime | None = None  # aware
    every: Every | None = None

    def covers(self, target: str, tags: Iterable[str]) -> bool:
        if not self.targets and not self.tags:
            return True
        return target in self.targets or not self.tags.isdisjoint(tags)

    def occurrences(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The (start, end) of every occurrence overlapping [start, end), in UTC, in order."""
        if self.every is None:
            if self.start is not None and self.start < end and self.start + self.duration > start:
                yield self.start.astimezone(UTC), (self.start + self.duration).astimezone(UTC)
            return
        tz = zone(self.every.tz)
        # An occurrence that began up to `duration` before `start` still overlaps it.
        day = (start - self.duration).astimezone(tz).date() - timedelta(days=1)
        last = end.astimezone(tz).date()
        while day <= last:
            if self.every.weekday is None or day.weekday() == self.every.weekday:
                begins = datetime.combine(day, self.every.at, tzinfo=tz).astimezone(UTC)
                ends = begins + self.duration
                if begins < end and ends > start:
                    yield begins, ends
            day += timedelta(days=1)

    def occurrence_at(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The occurrence in force at `at`, if any (the latest one, should two overlap)."""
        found = None
        for begins, ends in self.occurrences(at, at + timedelta(microseconds=1)):
            found = (begins, ends)
        return found

    def describe(self) -> str:
        if self.every is not None:
            return self.every.describe()
        return f"once at {self.start:%Y-%m-%d %H:%M %Z}" if self.start else ""


@dataclass(frozen=True)
class Silence:
    """A silence added at run time, as stored: one target, or every target with a tag."""

    id: int
    target: str | None
    tag: str | None
    starts_at: datetime
    ends_at: datetime  # `silence end` moves it to the moment it was ended
    reason: str

    def covers(self, target: str, tags: Iterable[str]) -> bool:
        return target == self.target or (self.tag is not None and self.tag in tags)

    def active_at(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


@dataclass(frozen=True)
class Quiet:
    """Why a target is quiet: `name` for the end-of-window alert ("after maintenance X"),
    `reason` for the record (transitions, the CLI, the dashboard)."""

    name: str  # "maintenance weekly-deploy" | "silence #3"
    reason: str  # "maintenance weekly-deploy" | "silenced by #3: deploying v2"
    until: datetime


def quiet_at(
    target: str,
    tags: Iterable[str],
    at: datetime,
    windows: Sequence[Window],
    silences: Sequence[Silence],
) -> Quiet | None:
    """Why `target` is quiet at `at`: the first window in force (config order), else the
    oldest silence; None when it is not."""
    tags = tuple(tags)
    for window in windows:
        if window.covers(target, tags):
            occurrence = window.occurrence_at(at)
            if occurrence is not None:
                name = f"maintenance {window.name}"
                return Quiet(name, name, occurrence[1])
    for silence in sorted(silences, key=lambda s: s.id):
        if silence.active_at(at) and silence.covers(target, tags):
            reason = f"silenced by #{silence.id}" + (
                f": {silence.reason}" if silence.reason else ""
            )
            return Quiet(f"silence #{silence.id}", reason, silence.ends_at)
    return None


@dataclass(frozen=True)
class Period:
    """One window occurrence or silence, as the dashboard and the CLI list them."""

    kind: str  # "maintenance" | "silence"
    name: str  # the window's name, or "#3"
    scope: str  # "llama-chat", "tag prod", "every target"
    starts_at: datetime
    ends_at: datetime
    reason: str = ""

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


def periods(
    windows: Sequence[Window],
    silences: Sequence[Silence],
    now: datetime,
    horizon: timedelta = timedelta(days=7),
) -> list[Period]:
    """The windows and silences in force at `now` or starting within `horizon`, by start."""
    found = [
        Period("maintenance", w.name, _scope(w.targets, w.tags), begins, ends, w.describe())
        for w in windows
        for begins, ends in w.occurrences(now, now + horizon)
    ]
    found += [
        Period(
            "silence",
            f"#{s.id}",
            _scope(frozenset({s.target} if s.target else ()), frozenset({s.tag} if s.tag else ())),
            s.starts_at,
            s.ends_at,
            s.reason,
        )
        for s in silences
        if s.ends_at > now and s.starts_at < now + horizon
    ]
    return sorted(found, key=lambda p: (p.starts_at, p.kind, p.name))


def _scope(targets: frozenset[str], tags: frozenset[str]) -> str:
    parts = sorted(targets) + [f"tag {t}" for t in sorted(tags)]
    return ", ".join(parts) or "every target"


__all__ = [
    "MAINTENANCE",
    "MAINTENANCE_COLOUR",
    "WEEKDAYS",
    "Every",
    "Period",
    "Quiet",
    "Silence",
    "Window",
    "periods",
    "quiet_at",
]

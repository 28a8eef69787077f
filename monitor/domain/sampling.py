"""Which probes keep their full evidence on disk, and which only a lean row.

A healthy target answers the same way thousands of times a day; storing its headers and body
each time is most of a database's size and says nothing new. So an ok probe that repeats the
previous outcome (and warning) is stored as time, outcome, status and timings only. Every
probe that can matter keeps everything: each non-ok probe (the evidence an alert and a
post-mortem quote), each probe whose outcome or warning differs from the previous one, the
first after a start, and the first ok probe of each clock hour, so the probe log always has
a recent real answer to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from monitor.domain.evidence import Outcome, ProbeResult


@dataclass(frozen=True)
class LastStored:
    """What the previous stored probe of a target said, and when evidence was last kept."""

    outcome: str
    warning: str
    evidence_at: datetime


def keeps_evidence(result: ProbeResult, last: LastStored | None) -> bool:
    """Whether this probe is stored with its evidence (else as a lean row)."""
    if last is None or result.outcome is not Outcome.OK:
        return True
    if str(result.outcome) != last.outcome or result.warning != last.warning:
        return True
    return _hour(result.checked_at) != _hour(last.evidence_at)


def after(result: ProbeResult, last: LastStored | None, kept: bool) -> LastStored:
    """The record of a target once `result` is stored."""
    evidence_at = result.checked_at if kept or last is None else last.evidence_at
    return LastStored(str(result.outcome), result.warning, evidence_at)


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)

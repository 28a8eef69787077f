"""Which probes keep their full evidence on disk, and which only a lean row.

A healthy target answers the same way thousands of times a day; storing its headers and body
each time is most of a database's size and says nothing new. So an ok probe that repeats the
previous outcome (and warning) is stored as time, outcome, status and timings only. Every
probe that can matter keeps everything: each non-ok probe (the evidence an alert and a
post-mortem quote), each probe whose outcome or warning differs from the previous one, the
first after a start, and the first ok probe of each clock hour, so the probe log always has
a recent real answer to show.

A change in a model's live providers (an `hf-model` probe's fact `live_providers`) is marked
here too, by `provider_change`, against the set this record remembers: the writer calls it
before sampling, so the probe with the changed set carries a warning ("providers changed:
+novita, -together") and therefore keeps its evidence, even while the outcome stays ok. The
record lives in the writer's memory; after a start the set is read back from the target's
newest stored facts, so a change while the monitor was down is marked too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from monitor.domain.evidence import Outcome, ProbeResult

PROVIDER_CHANGE = "providers changed: "  # how a provider-change warning begins


@dataclass(frozen=True)
class LastStored:
    """What the previous stored probe of a target said, and when evidence was last kept."""

    outcome: str
    warning: str
    evidence_at: datetime
    live_providers: tuple[str, ...] | None = None  # the last known set (hf-model), if any


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
    live = _live(result)
    if live is None and last is not None:
        live = last.live_providers  # a probe that learnt nothing (a timeout) forgets nothing
    return LastStored(str(result.outcome), result.warning, evidence_at, live)


def provider_change(result: ProbeResult, before: Sequence[str] | None) -> ProbeResult:
    """`result` with the providers added and dropped since the last known set `before`, as a
    warning and as the facts providers_added / providers_dropped; as it was when nothing
    changed or no earlier set is known."""
    now = _live(result)
    if now is None or before is None or set(now) == set(before):
        return result
    added = sorted(set(now) - set(before))
    dropped = sorted(set(before) - set(now))
    signed = [f"+{p}" for p in added] + [f"-{p}" for p in dropped]
    change = PROVIDER_CHANGE + ", ".join(signed)
    warning = f"{change}; {result.warning}" if result.warning else change
    facts: dict[str, Any] = {"providers_added": added, "providers_dropped": dropped}
    return replace(result, warning=warning, facts=result.facts | facts)


def _live(result: ProbeResult) -> tuple[str, ...] | None:
    live = result.facts.get("live_providers")
    return tuple(str(p) for p in live) if isinstance(live, list | tuple) else None


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)

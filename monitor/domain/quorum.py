"""Pure: several regions' views of one target -> its state, confirmed by a quorum of regions.

One region cannot tell "the provider is down" from "our network to it is down". With agents
in several regions, every region probes the target and keeps its own state machine
(monitor/domain/states.py, the usual thresholds); the target's state follows those regional
states, not the raw probes:

* The regions that *report* are those whose latest result is within `REPORT_WINDOW`
  intervals of the result being folded (a region whose agents died stops counting).
* `needed(quorum, reporting)`: `majority` (quorum None) is more than half of the reporting
  regions; a number N is N regions, or all the reporting ones when fewer report, so a
  deployment whose other regions are gone still alerts.
* The target's state becomes failing when at least `needed` reporting regions have a
  confirmed failing state; its outcome is the most common of theirs (a tie keeps the current
  one, else the latest region's, else the first by name). It becomes `ok` when `needed` regions
  are confirmed ok. Otherwise it stays as it was.
* A region whose confirmed state disagrees with the target's (failing while the target
  works, or the reverse) at its next probe, so the quorum did not follow within an interval,
  is a *regional observation* (`RegionalChange`): recorded, shown, and alerted only when the
  team asks for it; so is its own change back into agreement. (Waiting one probe keeps the
  first region to confirm an outage everyone sees from being reported alone, seconds before
  the others confirm it.)
* The target flaps while at least `needed` reporting regions flap.

With one region reporting, `needed` is 1 and the target's state follows that region's exactly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from monitor.domain.evidence import Outcome
from monitor.domain.states import (
    Change,
    Notice,
    Rules,
    TargetState,
    flap_percent,
    settle,
    step,
)

REPORT_WINDOW = 2  # intervals: a region whose latest result is older does not count


@dataclass(frozen=True)
class RegionState:
    """One region's own state machine for a target, and when it last reported."""

    state: TargetState
    last_at: datetime | None = None
    # Its state disagrees with the target's (working vs failing) and was recorded as a
    # regional observation: when it agrees again, that is recorded too ("eu-west: ok").
    observed: bool = False

    def to_dict(self) -> dict[str, object]:
        return {**self.state.to_dict(), "last_at": _iso(self.last_at), "observed": self.observed}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RegionState:
        last = data.get("last_at")
        return cls(
            TargetState.from_dict(data),
            datetime.fromisoformat(last) if isinstance(last, str) else None,
            bool(data.get("observed", False)),
        )


@dataclass(frozen=True)
class RegionalChange:
    """A regional observation: a region disagrees with the target's state (its own failure,
    or it works while the target fails), or agrees again (`ends`)."""

    region: str
    change: Change  # from the target's state to the region's (or, ending, the region's own)
    ends: bool = False


@dataclass(frozen=True)
class QuorumStep:
    """What folding one region's result did: the target's new state and change (as
    `states.step` says them), the regions' new states, which regions confirm the target's
    state, and a regional observation, if any."""

    state: TargetState
    change: Change | None
    notice: Notice | None
    regions: dict[str, RegionState]
    confirming: tuple[str, ...]
    regional: RegionalChange | None


def needed(quorum: int | None, reporting: int) -> int:
    """How many reporting regions must agree: a majority (None) or `quorum`, at most all."""
    if reporting <= 0:
        return 1
    if quorum is None:
        return reporting // 2 + 1
    return max(1, min(quorum, reporting))


def reporting_regions(
    regions: Mapping[str, RegionState], at: datetime, interval_s: float
) -> dict[str, RegionState]:
    """The regions whose latest result is recent enough, at `at`, to count."""
    oldest = at - timedelta(seconds=REPORT_WINDOW * interval_s)
    return {
        name: region
        for name, region in regions.items()
        if region.last_at is not None and region.last_at >= oldest
    }


def step_region(
    target: TargetState,
    regions: Mapping[str, RegionState],
    region: str,
    outcome: Outcome,
    at: datetime,
    rules: Rules,
    quorum: int | None,
    interval_s: float,
) -> QuorumStep:
    """Fold one result of `region` into its regional state, then the target's state."""
    outcome = Outcome(outcome)
    before = regions.get(region, RegionState(TargetState()))
    own, own_change, _ = step(before.state, outcome, at, rules)
    last_at = max(at, before.last_at or at)
    regions = {**regions, region: RegionState(own, last_at)}
    reporting = reporting_regions(regions, at, interval_s)
    need = needed(quorum, len(reporting))

    failing: dict[str, Outcome] = {}
    working: list[str] = []
    for name, r in reporting.items():
        if r.state.accepted is Outcome.OK:
            working.append(name)
        elif r.state.accepted is not None:
            failing[name] = r.state.accepted
    verdict: Outcome | None = None
    confirming: tuple[str, ...] = ()
    if len(failing) >= need:
        verdict = _most_common(failing, target.accepted, region)
        confirming = tuple(sorted(failing))  # failing, whatever their outcome
    elif len(working) >= need:
        verdict = Outcome.OK
        confirming = tuple(sorted(working))

    recent = (*target.recent, outcome is Outcome.OK)[-rules.flap_window :]
    flapping = sum(1 for r in reporting.values() if r.state.flapping) >= need
    began = [reporting[n].state.accepted_since for n in confirming]
    started = min((b for b in began if b is not None), default=at)
    accepted, accepted_since, last_announced, change, notice = settle(
        target,
        verdict if verdict != target.accepted else None,
        at,
        started,
        flapping,
        flap_percent(recent, rules.flap_window),
    )

    regional = None
    disagrees = _disagree(own.accepted, accepted)
    if before.observed and not disagrees and own_change is not None:
        regional = RegionalChange(region, own_change, ends=True)  # it agrees again
    elif (
        not before.observed
        and disagrees
        and own_change is None  # confirmed at an earlier probe, and still disagrees:
        and own.accepted is not None  # the quorum did not follow within an interval
        and own.accepted_since is not None
    ):
        seen = Change(
            from_outcome=accepted,
            to_outcome=own.accepted,
            at=at,
            started_at=own.accepted_since,
            since=None,
            announce=not own.flapping,
        )
        regional = RegionalChange(region, seen, ends=False)
    # An open regional observation: it disagrees, and that was recorded.
    observed = disagrees and (before.observed or regional is not None)
    regions[region] = RegionState(own, last_at, observed)
    for name, r in regions.items():  # the target moved to agree with them: nothing open
        if name != region and r.observed and not _disagree(r.state.accepted, accepted):
            regions[name] = replace(r, observed=False)
    state = replace(
        target,
        accepted=accepted,
        accepted_since=accepted_since,
        candidate=outcome,
        streak=own.streak,  # the latest region's run, for displays
        streak_since=own.streak_since,
        recent=recent,
        flapping=flapping,
        last_announced=last_announced,
        quiet=None,  # as after states.step: decide() keeps what a window says
    )
    return QuorumStep(state, change, notice, regions, confirming, regional)


def _most_common(failing: Mapping[str, Outcome], current: Outcome | None, latest: str) -> Outcome:
    counts = Counter(failing.values())
    top = max(counts.values())
    tied = {o for o, c in counts.items() if c == top}
    if current is not None and current in tied:
        return current
    if failing.get(latest) in tied:
        return failing[latest]
    return min(tied, key=str)


def _disagree(region: Outcome | None, target: Outcome | None) -> bool:
    """One is working and the other failing (two failing outcomes are one story)."""
    if region is None or target is None:
        return False
    return (region is Outcome.OK) != (target is Outcome.OK)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


__all__ = [
    "REPORT_WINDOW",
    "QuorumStep",
    "RegionState",
    "RegionalChange",
    "needed",
    "reporting_regions",
    "step_region",
]

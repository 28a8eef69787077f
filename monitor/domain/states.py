"""Pure: a target's probe outcomes -> accepted state, transitions and flapping notices.

One probe is not enough to wake someone: a model that is loading answers 503 once and then
works. So a new outcome becomes the target's *accepted* state only once it is confirmed by a run
of probes, and how long that run must be depends on whether retrying could fix it (see
../shared/provider-errors.md, "Which changes are worth waking someone for").

The rules, precisely (thresholds come from `Rules`):

* The run ("streak") is the number of consecutive probes, ending with the latest, that belong to
  the latest outcome's group:
  - `ok` probes form one group;
  - a contract break (not ok, not transient) only groups with the same outcome, so
    `not_found, deprecated` is two runs of one;
  - transient failures group together (`server_error, server_error, timeout` is a run of three
    and, once confirmed, the accepted state is the latest outcome, `timeout`). While the accepted
    state is itself transient they group only with the same outcome, so an outage that alternates
    between 5xx and timeouts stays one state instead of flipping on every probe; turning into a
    different transient failure needs `failure_threshold` identical probes in a row.
* The latest outcome is accepted when it differs from the accepted state and its run reaches
  its threshold: `contract_threshold` (2, i.e. one confirming probe) for contract breaks,
  `failure_threshold` (3) for transient failures, `success_threshold` (2) for `ok`. A change
  between two failing outcomes (server_error -> token_scope) follows the new outcome's rule.
* A new target (no accepted state) accepts `ok` on its first probe, quietly (announce=False):
  silence already means "working". A failing first state is confirmed like any other and *is*
  announced, so a target added broken does not go unnoticed.
* Flapping uses Nagios' percent state change over the last `flap_window` raw probes (ok vs
  failing), each change weighted linearly from 0.8 (oldest) to 1.2 (newest) and divided by
  `flap_window - 1`, so a short history counts as steady. Flapping starts above `flap_high` and
  stops below `flap_low`. While flapping, transitions are still accepted and recorded, but with
  announce=False; one notice marks the start and one the end, and the end notice carries the
  current state so the alert layer can say where the target settled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from monitor.domain.evidence import Outcome, OutcomeClass, outcome_class

OLDEST_CHANGE_WEIGHT = 0.8
NEWEST_CHANGE_WEIGHT = 1.2

# States in which the endpoint answered correctly, so the token evidently had its permissions.
WORKING_OUTCOMES = frozenset({Outcome.OK, Outcome.SLOW})


@dataclass(frozen=True)
class Rules:
    """How many probes confirm a change, and when alternating results count as flapping."""

    failure_threshold: int = 3
    success_threshold: int = 2
    contract_threshold: int = 2
    flap_window: int = 21
    flap_high: float = 0.5
    flap_low: float = 0.25

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "success_threshold", "contract_threshold"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.flap_window < 3:
            raise ValueError("flap_window must be at least 3 probes")
        if not 0.0 <= self.flap_low <= self.flap_high <= 1.0:
            raise ValueError("need 0 <= flap_low <= flap_high <= 1")

    def threshold(self, outcome: Outcome) -> int:
        """Probes in a row needed before `outcome` replaces an existing accepted state."""
        match outcome_class(outcome):
            case OutcomeClass.OK:
                return self.success_threshold
            case OutcomeClass.TRANSIENT:
                return self.failure_threshold
            case _:
                return self.contract_threshold


DEFAULT_RULES = Rules()


@dataclass(frozen=True)
class TargetState:
    """Everything `step` needs to continue after a restart; stored as JSON via `to_dict`."""

    accepted: Outcome | None = None
    accepted_since: datetime | None = None  # first probe of the run that confirmed it
    candidate: Outcome | None = None  # the latest outcome
    streak: int = 0  # probes in the latest outcome's run, see the module docstring
    streak_since: datetime | None = None  # first probe of that run
    recent: tuple[bool, ...] = ()  # last flap_window probes, True = ok, oldest first
    flapping: bool = False
    last_announced: Outcome | None = None  # the state people were last told about
    # The maintenance window or silence the target is in ("maintenance weekly-deploy"),
    # kept until the first probe after it, which tells what changed meanwhile (decide.py).
    quiet: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": _outcome_str(self.accepted),
            "accepted_since": _time_str(self.accepted_since),
            "candidate": _outcome_str(self.candidate),
            "streak": self.streak,
            "streak_since": _time_str(self.streak_since),
            "recent": list(self.recent),
            "flapping": self.flapping,
            "last_announced": _outcome_str(self.last_announced),
            "quiet": self.quiet,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetState:
        """Missing keys take their defaults, so older stored states still load."""
        return cls(
            accepted=_outcome(data.get("accepted")),
            accepted_since=_time(data.get("accepted_since")),
            candidate=_outcome(data.get("candidate")),
            streak=int(data.get("streak", 0)),
            streak_since=_time(data.get("streak_since")),
            recent=tuple(bool(flag) for flag in data.get("recent", ())),
            flapping=bool(data.get("flapping", False)),
            last_announced=_outcome(data.get("last_announced")),
            quiet=data.get("quiet"),
        )


@dataclass(frozen=True)
class Change:
    """An accepted transition; every one is recorded, only those with `announce` are sent."""

    from_outcome: Outcome | None  # None: the target's first state
    to_outcome: Outcome
    at: datetime  # the probe that confirmed it
    started_at: datetime  # the first probe of the confirming run: when it really began
    since: datetime | None  # when the previous state began, for "recovered after 2h 14m"
    announce: bool

    @property
    def previous_lasted_seconds(self) -> float | None:
        if self.since is None:
            return None
        return max(0.0, (self.started_at - self.since).total_seconds())


class FlapEvent(StrEnum):
    STARTED = "flapping_started"
    STOPPED = "flapping_stopped"


@dataclass(frozen=True)
class Notice:
    """Flapping started or stopped: sent once each, instead of one alert per flip."""

    event: FlapEvent
    at: datetime
    change_percent: float  # weighted share of flips in the window, 0..1
    state: Outcome | None  # the accepted state at this probe
    previously_announced: Outcome | None  # what people were told before this notice

    @property
    def announces_state(self) -> bool:
        """True when the stop notice must also tell of a state reached while quiet."""
        return (
            self.event is FlapEvent.STOPPED
            and self.state is not None
            and self.state != self.previously_announced
        )


def step(
    state: TargetState, outcome: Outcome, at: datetime, rules: Rules = DEFAULT_RULES
) -> tuple[TargetState, Change | None, Notice | None]:
    """Fold one probe outcome into the state; returns the new state and what happened."""
    outcome = Outcome(outcome)
    if _continues_run(state.candidate, outcome, state.accepted):
        streak, streak_since = state.streak + 1, state.streak_since or at
    else:
        streak, streak_since = 1, at

    recent = (*state.recent, outcome is Outcome.OK)[-rules.flap_window :]
    percent = flap_percent(recent, rules.flap_window)
    flapping = state.flapping
    if not flapping and percent > rules.flap_high:
        flapping = True
    elif flapping and percent < rules.flap_low:
        flapping = False

    first = state.accepted is None
    needed = 1 if first and outcome is Outcome.OK else rules.threshold(outcome)
    confirmed = outcome if outcome != state.accepted and streak >= needed else None
    accepted, accepted_since, last_announced, change, notice = settle(
        state, confirmed, at, streak_since, flapping, percent
    )

    new_state = TargetState(
        accepted=accepted,
        accepted_since=accepted_since,
        candidate=outcome,
        streak=streak,
        streak_since=streak_since,
        recent=recent,
        flapping=flapping,
        last_announced=last_announced,
    )
    return new_state, change, notice


def settle(
    state: TargetState,
    confirmed: Outcome | None,
    at: datetime,
    started_at: datetime,
    flapping: bool,
    percent: float,
) -> tuple[Outcome | None, datetime | None, Outcome | None, Change | None, Notice | None]:
    """Accept `confirmed` (an outcome whose run has reached its threshold and differs from
    the accepted state; None: nothing to accept) with flapping now `flapping`: the accepted
    state, since when, what people were last told, the change and the flapping notice. Shared
    by `step` and the quorum of regions (monitor/domain/quorum.py)."""
    accepted, accepted_since, last_announced = (
        state.accepted,
        state.accepted_since,
        state.last_announced,
    )
    change = None
    if confirmed is not None:
        quiet_start = state.accepted is None and confirmed is Outcome.OK
        change = Change(
            from_outcome=state.accepted,
            to_outcome=confirmed,
            at=at,
            started_at=started_at,
            since=state.accepted_since,
            announce=not flapping and not quiet_start,
        )
        accepted, accepted_since = confirmed, started_at
        if change.announce or quiet_start:
            last_announced = confirmed
    notice = None
    if flapping != state.flapping:
        notice = Notice(
            event=FlapEvent.STARTED if flapping else FlapEvent.STOPPED,
            at=at,
            change_percent=percent,
            state=accepted,
            previously_announced=last_announced,
        )
        if not flapping and accepted is not None:
            last_announced = accepted
    return accepted, accepted_since, last_announced, change, notice


def replay(
    outcomes: Iterable[tuple[Outcome, datetime]],
    rules: Rules = DEFAULT_RULES,
    state: TargetState | None = None,
) -> tuple[TargetState, list[Change]]:
    """Rebuild a state from stored probes (oldest first), optionally continuing `state`."""
    current = state if state is not None else TargetState()
    changes: list[Change] = []
    for outcome, at in outcomes:
        current, change, _ = step(current, outcome, at, rules)
        if change is not None:
            changes.append(change)
    return current, changes


def flap_percent(recent: Sequence[bool], window: int) -> float:
    """Nagios' weighted percent state change, as a fraction; newer flips weigh more.

    A history shorter than the window is treated as steady before its start, so a new target
    cannot flap after three probes.
    """
    recent = list(recent)[-window:]
    possible_changes = window - 1
    offset = window - len(recent)  # positions missing at the old end
    total = 0.0
    for index in range(1, len(recent)):
        if recent[index] != recent[index - 1]:
            position = index - 1 + offset  # 0 = oldest possible change
            share = position / (possible_changes - 1)
            total += OLDEST_CHANGE_WEIGHT + share * (NEWEST_CHANGE_WEIGHT - OLDEST_CHANGE_WEIGHT)
    return total / possible_changes


def label(change: Change, http_status: int | None = None, detail: str | None = None) -> str:
    """A one-line human summary, e.g. "ok → deprecated (410)" or "recovered after 2h 14m"."""
    status = f" ({http_status})" if http_status is not None else ""
    before, after = change.from_outcome, change.to_outcome
    if before is None:
        text = f"first probe: {after}{status}"
    elif after is Outcome.OK:
        lasted = change.previous_lasted_seconds
        text = "recovered" if lasted is None else f"recovered after {format_span(lasted)}"
    elif after is Outcome.TOKEN_SCOPE and before in WORKING_OUTCOMES:
        text = f"token scope regression{status}"
    else:
        text = f"{before} → {after}{status}"
    return f"{text}: {detail}" if detail else text


def format_span(seconds: float) -> str:
    """The largest unit plus the next when non-zero: "2h 14m", "3d 1h", "2h", "45s"."""
    remaining = max(0, int(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, remaining = divmod(remaining, size)
        if amount and len(parts) < 2:
            parts.append(f"{amount}{unit}")
        elif parts:
            break  # "2h", not "2h 0m 5s"
    return " ".join(parts) or "0s"


def _continues_run(previous: Outcome | None, outcome: Outcome, accepted: Outcome | None) -> bool:
    if previous is None:
        return False
    transient = OutcomeClass.TRANSIENT
    if outcome_class(outcome) is transient and outcome_class(previous) is transient:
        accepted_transient = accepted is not None and outcome_class(accepted) is transient
        return not accepted_transient or previous == outcome
    return previous == outcome


def _outcome(value: Any) -> Outcome | None:
    return None if value is None else Outcome(value)


def _outcome_str(value: Outcome | None) -> str | None:
    return None if value is None else str(value)


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _time_str(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


__all__ = [
    "DEFAULT_RULES",
    "Change",
    "FlapEvent",
    "Notice",
    "Rules",
    "TargetState",
    "flap_percent",
    "format_span",
    "label",
    "replay",
    "settle",
    "step",
]

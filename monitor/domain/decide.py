"""Pure: one probe result, and what is known of its target, -> what to record and what to send.

The writer (monitor/agent/writer.py) calls `decide` for each result with the target's state,
its open incident and its alert settings, all plain data, and writes what comes back: the new
state, the transition when the accepted state changed, the incident change and the alerts.
`remind` does the same for an incident that stays open. Nothing here reads a database or
knows a channel, so every case is a row of a table in tests/test_decide.py.

Two things only the store knows are left for the writer to fill in: the last few probes an
alert lists (`AlertEvent.recent`), and the id of an incident the decision opens (its
transition and alerts are about it; see `Decision.opens_incident`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from monitor.domain.alert_event import AlertEvent
from monitor.domain.evidence import Outcome, ProbeResult
from monitor.domain.maintenance import Quiet
from monitor.domain.states import Change, FlapEvent, Notice, Rules, TargetState, label, step


@dataclass(frozen=True)
class Route:
    """Where a target's alerts go: a channel (a module of monitor/alerts/channels/) and to whom."""

    channel: str
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class Alerting:
    """The alert settings one target's decisions need."""

    routes: tuple[Route, ...] = ()  # none: changes are recorded, nobody is told
    dashboard_url: str | None = None


@dataclass(frozen=True)
class OpenIncident:
    """A target's failure period that has not recovered yet, as stored."""

    id: int
    target_id: int
    opened_at: datetime
    last_outcome: str
    outcomes: tuple[str, ...]  # every state it went through, oldest first
    last_alert_at: datetime | None = None  # for reminders


@dataclass(frozen=True)
class ProbeView:
    """What an alert repeats of the probe behind it (stored, so already redacted)."""

    checked_at: datetime
    outcome: str
    url: str
    http_status: int | None
    latency_ms: float | None
    detail: str
    hint: str
    warning: str
    request_id: str | None
    provider: str | None
    facts: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def of(cls, result: ProbeResult) -> ProbeView:
        return cls(
            checked_at=result.checked_at,
            outcome=str(result.outcome),
            url=result.url,
            http_status=result.http_status,
            latency_ms=result.latency_ms,
            detail=result.detail,
            hint=result.hint,
            warning=result.warning,
            request_id=result.request_id,
            provider=result.provider,
            facts=facts_of(result),
        )


class IncidentStep(StrEnum):
    OPEN = "open"
    UPDATE = "update"
    CLOSE = "close"


@dataclass(frozen=True)
class IncidentChange:
    """What a transition does to the target's incident."""

    step: IncidentStep
    at: datetime  # when the change began: a new incident's opened_at, a closed one's closed_at
    outcome: str  # the state the target changed to
    outcomes: tuple[str, ...]  # the incident's states once changed, oldest first


@dataclass(frozen=True)
class Transition:
    """An accepted change of state, as recorded (every one is; `announced` ones alert)."""

    at: datetime  # the confirming probe
    started_at: datetime  # the first probe of the confirming run
    from_outcome: str | None
    to_outcome: str
    label: str
    detail: str
    hint: str
    http_status: int | None
    announced: bool
    facts: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # The incident it opens (its id filled in by the writer), updates or closes.
    incident_id: int | None = None
    quiet: str | None = None  # why it was not announced: "maintenance weekly-deploy", ...
    # The regions whose confirmed states made this change (one agent's region alone, or the
    # quorum's; see monitor/domain/quorum.py).
    regions: tuple[str, ...] = ()
    # Set for a regional observation: that region's own change, which the target's state
    # did not follow. Such a row opens no incident and alerts only with `alerts.regional`.
    region: str | None = None


@dataclass(frozen=True)
class Alert:
    """One outbox row to write: an event for one channel's recipients."""

    event: AlertEvent
    channel: str
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    """What one result does. Most results change nothing but the state."""

    state: TargetState
    transition: Transition | None = None
    incident: IncidentChange | None = None
    notice: str | None = None  # flapping started or stopped, in words (for the log)
    alerts: tuple[Alert, ...] = ()  # in order: the transition's, then the notice's

    @property
    def opens_incident(self) -> bool:
        """The transition and every alert are then about the new incident, whose id only the
        store can give: the writer sets it on them."""
        return self.incident is not None and self.incident.step is IncidentStep.OPEN


def decide(
    result: ProbeResult,
    kind: str,
    state: TargetState,
    incident: OpenIncident | None,
    rules: Rules,
    alerting: Alerting,
    quiet: Quiet | None = None,
    stepped: tuple[TargetState, Change | None, Notice | None] | None = None,
    regions: tuple[str, ...] = (),
) -> Decision:
    """Step the target's state machine with one result and say what that changes.

    While the target is `quiet` (a maintenance window or silence) everything is recorded and
    nothing is sent, and what people were last told stays as it was; the first result after
    it tells them once if the confirmed state differs from that (reason "quiet_ended").

    With agents in several regions the state is stepped by the quorum of regions instead
    (`stepped`, from monitor/domain/quorum.py, with the `regions` that confirm it)."""
    if stepped is None:
        stepped = step(state, result.outcome, result.checked_at, rules)
    new_state, change, notice = stepped
    if quiet is None and state.quiet is not None and not _settled(state, result.outcome):
        # Just after a window, a probe that disagrees with the confirmed state (an ok while
        # it is failing, or the reverse) would make the one alert wrong a minute later: stay
        # quiet until a probe agrees or the change is confirmed.
        quiet = Quiet(state.quiet, f"after {state.quiet}, not settled yet", result.checked_at)
    if quiet is not None:
        told = new_state.last_announced
        if (change is not None and change.announce) or notice is not None:
            told = state.last_announced  # step took them as told; they are not
        new_state = replace(new_state, last_announced=told, quiet=quiet.name)
        alerting = replace(alerting, routes=())
    elif state.quiet is not None:
        new_state = replace(new_state, quiet=None)
    ending = quiet is None and state.quiet is not None and _untold(new_state)
    if change is None and notice is None and not ending:
        return Decision(new_state)
    probe = ProbeView.of(result)
    transition = step_taken = None
    alerts: list[Alert] = []
    # The incident an alert is about: (id, opened_at); a new one has no id yet.
    about: tuple[int | None, datetime] | None = None
    if incident is not None:
        about = (incident.id, incident.opened_at)
    if change is not None:
        step_taken = incident_change(change, incident)
        if step_taken is not None and step_taken.step is IncidentStep.OPEN:
            about = (None, step_taken.at)
        # A status in the label explains a failure ("(410)"); a 200 carrying a verdict
        # (whoami showing a missing scope, a wrong-shaped body) would only mislead.
        status = result.http_status if (result.http_status or 0) >= 300 else None
        transition = Transition(
            at=change.at,
            started_at=change.started_at,
            from_outcome=_str(change.from_outcome),
            to_outcome=str(change.to_outcome),
            label=label(change, status),
            detail=result.detail,
            hint=result.hint,
            http_status=result.http_status,
            announced=change.announce and quiet is None,
            facts=probe.facts,
            incident_id=about[0] if about else None,
            quiet=quiet.reason if quiet is not None else None,
            regions=regions,
        )
        if transition.announced:
            event = _event(
                "transition",
                result.target,
                kind,
                probe,
                transition.label,
                alerting,
                about,
                from_outcome=transition.from_outcome,
                to_outcome=transition.to_outcome,
                at=change.at,
                since=change.started_at,
            )
            alerts += _routed(replace(event, regions=regions), alerting)
        if step_taken is not None and step_taken.step is IncidentStep.CLOSE:
            about = None  # a notice after a recovery belongs to no incident
    text = None
    if notice is not None:
        started = notice.event is FlapEvent.STARTED
        text = (
            f"flapping ({notice.change_percent:.0%} state change over recent probes)"
            if started
            else f"stopped flapping: now {notice.state}"
        )
        event = _event(
            str(notice.event),
            result.target,
            kind,
            probe,
            text,
            alerting,
            about,
            to_outcome=str(notice.state or probe.outcome),
        )
        alerts += _routed(event, alerting)
    if ending:  # (a transition announced by this result would have told them already)
        assert state.quiet is not None and new_state.accepted is not None
        now = str(new_state.accepted)
        status = result.http_status if (result.http_status or 0) >= 300 else None
        said = f"{now} ({status})" if status and now != Outcome.OK else now
        if new_state.accepted == Outcome.OK:
            text = f"recovered during {state.quiet}: {said}"
        else:
            text = f"still failing after {state.quiet}: {said}"
        event = _event(
            "quiet_ended",
            result.target,
            kind,
            probe,
            text,
            alerting,
            about,
            from_outcome=_str(new_state.last_announced),
            to_outcome=now,
            since=new_state.accepted_since,
        )
        alerts += _routed(event, alerting)
        new_state = replace(new_state, last_announced=new_state.accepted)
    return Decision(new_state, transition, step_taken, text, tuple(alerts))


def regional(
    result: ProbeResult,
    kind: str,
    region: str,
    change: Change,
    ends: bool,
    alerting: Alerting,
    alert_regional: bool,
    quiet: Quiet | None = None,
) -> tuple[Transition, tuple[Alert, ...]]:
    """A regional observation (monitor/domain/quorum.py): one region disagreeing with the
    target's state ("eu-west: server_error (503) since 12:03 UTC"), or agreeing again, as a
    transition row of that region and, only when the team asked for regional alerts (and the
    region is not flapping, the target not quiet), its alerts. It belongs to no incident: the
    target's state is unchanged."""
    status = result.http_status if (result.http_status or 0) >= 300 else None
    now = str(change.to_outcome)
    said = f"{now} ({status})" if status and change.to_outcome != Outcome.OK else now
    if ends:
        text = f"{region}: {'recovered' if change.to_outcome == Outcome.OK else said}, agrees again"
    else:
        text = f"{region}: {said} since {change.started_at.astimezone(UTC):%H:%M} UTC"
    announced = alert_regional and change.announce and quiet is None
    transition = Transition(
        at=change.at,
        started_at=change.started_at,
        from_outcome=_str(change.from_outcome),
        to_outcome=str(change.to_outcome),
        label=text,
        detail=result.detail,
        hint=result.hint,
        http_status=result.http_status,
        announced=announced,
        facts=facts_of(result),
        quiet=quiet.reason if quiet is not None else None,
        regions=(region,),
        region=region,
    )
    if not announced:
        return transition, ()
    event = _event(
        "regional",
        result.target,
        kind,
        ProbeView.of(result),
        text,
        alerting,
        None,
        from_outcome=transition.from_outcome,
        to_outcome=transition.to_outcome,
        at=change.at,
        since=change.started_at,
    )
    return transition, _routed(replace(event, regions=(region,)), alerting)


def _settled(state: TargetState, outcome: Outcome) -> bool:
    """The latest probe agrees with the confirmed state on working or failing."""
    return state.accepted is None or (state.accepted == Outcome.OK) == (outcome == Outcome.OK)


def _untold(state: TargetState) -> bool:
    """The confirmed state is not what people were last told (flapping tells when it stops;
    a new target working is no news)."""
    if state.accepted is None or state.flapping:
        return False
    if state.last_announced is None:
        return state.accepted != Outcome.OK
    return state.accepted != state.last_announced


def incident_change(change: Change, incident: OpenIncident | None) -> IncidentChange | None:
    """A failing state opens an incident or adds to the open one; recovery closes it."""
    outcome = str(change.to_outcome)
    if change.to_outcome != Outcome.OK:
        if incident is None:
            return IncidentChange(IncidentStep.OPEN, change.started_at, outcome, (outcome,))
        outcomes = (*incident.outcomes, outcome)
        return IncidentChange(IncidentStep.UPDATE, change.started_at, outcome, outcomes)
    if incident is not None:
        return IncidentChange(IncidentStep.CLOSE, change.started_at, outcome, incident.outcomes)
    return None


def reminder_due(last_alert_at: datetime | None, now: datetime, every: float | None) -> bool:
    return (
        every is not None
        and last_alert_at is not None
        and ((now - last_alert_at).total_seconds() >= every)
    )


def remind(
    incident: OpenIncident, target: str, kind: str, latest: ProbeView, alerting: Alerting
) -> tuple[Alert, ...]:
    """The reminder for an incident still open (call it when `reminder_due`), with the
    evidence of the target's latest probe."""
    event = _event(
        "reminder",
        target,
        kind,
        latest,
        f"still {incident.last_outcome}",
        alerting,
        (incident.id, incident.opened_at),
        to_outcome=incident.last_outcome,
        since=incident.opened_at,
    )
    return _routed(event, alerting)


def facts_of(result: ProbeResult) -> dict[str, Any]:
    """The classifier's structured facts of a result (see FACT_KEYS in evidence.py)."""
    return dict(result.facts)


def _event(
    reason: str,
    target: str,
    kind: str,
    probe: ProbeView,
    text: str,
    alerting: Alerting,
    about: tuple[int | None, datetime] | None,
    *,
    from_outcome: str | None = None,
    to_outcome: str | None = None,
    at: datetime | None = None,
    since: datetime | None = None,
) -> AlertEvent:
    return AlertEvent(
        reason=reason,
        target=target,
        kind=kind,
        url=probe.url,
        from_outcome=from_outcome,
        to_outcome=to_outcome or probe.outcome,
        label=text,
        at=at or probe.checked_at,
        since=since,
        http_status=probe.http_status,
        detail=probe.detail,
        hint=probe.hint,
        warning=probe.warning,
        request_id=probe.request_id,
        provider=probe.provider,
        latency_ms=probe.latency_ms,
        recent=(),  # the store's to fill in (see the module docstring)
        dashboard_url=alerting.dashboard_url,
        incident_opened_at=about[1] if about else None,
        incident_id=about[0] if about else None,
        facts=probe.facts,
    )


def _routed(event: AlertEvent, alerting: Alerting) -> tuple[Alert, ...]:
    return tuple(Alert(event, route.channel, route.recipients) for route in alerting.routes)


def _str(outcome: Outcome | None) -> str | None:
    return None if outcome is None else str(outcome)


__all__ = [
    "Alert",
    "Alerting",
    "Decision",
    "IncidentChange",
    "IncidentStep",
    "OpenIncident",
    "ProbeView",
    "Route",
    "Transition",
    "decide",
    "facts_of",
    "incident_change",
    "regional",
    "remind",
    "reminder_due",
]

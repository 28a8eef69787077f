"""Pure: what one alert says, in no channel's terms, and how it is stored.

The writer decides an alert (monitor/domain/decide.py) and stores it as an `AlertEvent` in the
outbox row (`alerts.event`, JSON); each channel renders the event when it sends it
(monitor/alerts/channels/email.py), so a new channel never touches the writer. The subject is
part of the event's meaning, not of a channel: it is stored with the row for the delivery log
(the CLI's `alerts` command and the dashboard show it) and used as the email's Subject.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from monitor.domain.evidence import Outcome
from monitor.domain.states import TargetState, format_span
from monitor.domain.text import one_line

# quiet_ended: the first probe after a maintenance window or silence, when the target's state
# is not what people were last told ("still failing after maintenance weekly-deploy: ...").
# regional: one region's own change that the quorum of regions did not follow (sent only with
# `alerts.regional: true`; see monitor/domain/quorum.py).
REASONS = frozenset(
    {
        "transition",
        "reminder",
        "flapping_started",
        "flapping_stopped",
        "quiet_ended",
        "regional",
        "test",
    }
)
SUBJECT_PREFIX = "[inferwatch]"
MAX_SUBJECT = 200  # long provider messages in a label would make subjects unreadable
EVENT_VERSION = 1  # stored with each event, so a later shape can still read older rows


@dataclass(frozen=True)
class ProbeLine:
    """One row of "the last few probes", so a reader can see the change was not a one-off."""

    checked_at: datetime
    outcome: str
    http_status: int | None
    latency_ms: float | None
    detail: str


@dataclass(frozen=True)
class AlertEvent:
    """Everything one alert says, from stored (already redacted) probes; channels render it."""

    reason: str  # one of REASONS
    target: str
    kind: str
    url: str
    from_outcome: str | None
    to_outcome: str | None
    label: str  # monitor.domain.states.label(), e.g. "ok → deprecated (410)"
    at: datetime  # when it was confirmed (a reminder or notice: the latest probe)
    since: datetime | None  # when the new state began (first probe of the run)
    http_status: int | None
    detail: str
    hint: str
    warning: str
    request_id: str | None
    provider: str | None
    latency_ms: float | None
    recent: tuple[ProbeLine, ...]  # newest first, at most ~5
    dashboard_url: str | None  # base URL of the dashboard, when configured
    incident_opened_at: datetime | None = None  # the incident it belongs to, if any
    incident_id: int | None = None
    facts: Mapping[str, Any] = field(
        default_factory=dict, hash=False
    )  # structured, see evidence.py
    # The target's related status page (`status_page:`), when it reports an incident: the
    # provider's own word next to our measurement (see `provider_status`).
    provider_status: str = ""
    # The regions whose confirmed states made the change (several agents' regions); a
    # regional observation names its one region.
    regions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown alert reason {self.reason!r}; one of {sorted(REASONS)}")

    def to_json(self) -> dict[str, Any]:
        """A JSON object (times as ISO 8601 strings) for `alerts.event`."""
        return {
            "v": EVENT_VERSION,
            "reason": self.reason,
            "target": self.target,
            "kind": self.kind,
            "url": self.url,
            "from_outcome": self.from_outcome,
            "to_outcome": self.to_outcome,
            "label": self.label,
            "at": self.at.isoformat(),
            "since": _time_str(self.since),
            "http_status": self.http_status,
            "detail": self.detail,
            "hint": self.hint,
            "warning": self.warning,
            "request_id": self.request_id,
            "provider": self.provider,
            "latency_ms": self.latency_ms,
            "recent": [
                {
                    "checked_at": line.checked_at.isoformat(),
                    "outcome": line.outcome,
                    "http_status": line.http_status,
                    "latency_ms": line.latency_ms,
                    "detail": line.detail,
                }
                for line in self.recent
            ],
            "dashboard_url": self.dashboard_url,
            "incident_opened_at": _time_str(self.incident_opened_at),
            "incident_id": self.incident_id,
            "facts": jsonable(dict(self.facts)),
            "provider_status": self.provider_status,
            "regions": list(self.regions),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlertEvent:
        """The event `to_json` stored; keys added later may be missing from older rows."""
        return cls(
            reason=data["reason"],
            target=data["target"],
            kind=data["kind"],
            url=data["url"],
            from_outcome=data.get("from_outcome"),
            to_outcome=data.get("to_outcome"),
            label=data["label"],
            at=datetime.fromisoformat(data["at"]),
            since=_time(data.get("since")),
            http_status=data.get("http_status"),
            detail=data.get("detail", ""),
            hint=data.get("hint", ""),
            warning=data.get("warning", ""),
            request_id=data.get("request_id"),
            provider=data.get("provider"),
            latency_ms=data.get("latency_ms"),
            recent=tuple(
                ProbeLine(
                    checked_at=datetime.fromisoformat(line["checked_at"]),
                    outcome=line["outcome"],
                    http_status=line.get("http_status"),
                    latency_ms=line.get("latency_ms"),
                    detail=line.get("detail", ""),
                )
                for line in data.get("recent", ())
            ),
            dashboard_url=data.get("dashboard_url"),
            incident_opened_at=_time(data.get("incident_opened_at")),
            incident_id=data.get("incident_id"),
            facts=dict(data.get("facts") or {}),
            provider_status=data.get("provider_status") or "",
            regions=tuple(data.get("regions") or ()),
        )


# ---------------------------------------------------------------- the subject


def subject_for(event: AlertEvent) -> str:
    """The subject people scan in an inbox: target first, then what happened."""
    target = one_line(event.target, limit=None)
    now = event.to_outcome or "unknown"
    match event.reason:
        case "test":
            text = "test alert"
        case "reminder":
            open_for = open_span(event)
            text = f"reminder: {target} still {now}" + (
                f" (open for {open_for})" if open_for else ""
            )
        case "flapping_started":
            text = f"{target} is flapping"
        case "flapping_stopped":
            text = f"{target} stopped flapping" + (f": now {now}" if event.to_outcome else "")
        case "quiet_ended" | "regional":
            text = f"{target}: {one_line(event.label, limit=None)}"
        case _:
            text = f"{target}: {transition_summary(event)}"
    text = one_line(f"{SUBJECT_PREFIX} {text}", limit=None)
    return text if len(text) <= MAX_SUBJECT else text[: MAX_SUBJECT - 1].rstrip() + "…"


def transition_summary(event: AlertEvent) -> str:
    """The label, except that a recovery also names the state it recovered from."""
    label = one_line(event.label, limit=None)
    before, after = event.from_outcome, event.to_outcome or "unknown"
    if before is None:
        return label or f"first probe: {after}"
    if after == "ok" and not label.startswith(f"{before} →"):
        return f"{before} → ok ({label})" if label else f"{before} → ok"
    return label or f"{before} → {after}"


def span_between(start: datetime | None, end: datetime) -> str | None:
    """How long from start to end, e.g. "2h 14m" (naive times are UTC); None under a second."""
    if start is None:
        return None
    start_utc = start if start.tzinfo else start.replace(tzinfo=UTC)
    end_utc = end if end.tzinfo else end.replace(tzinfo=UTC)
    seconds = (end_utc - start_utc).total_seconds()
    return format_span(seconds) if seconds >= 1 else None


def open_span(event: AlertEvent) -> str | None:
    """How long the incident (a reminder) or the state has been open at the event."""
    return span_between(event.incident_opened_at or event.since, event.at)


def provider_status(page: str, state: TargetState | None, at: datetime) -> str:
    """What a status page target's latest probes say, for the alerts of a target naming it:
    "the provider reports an incident since 12:03 UTC (status page claude-status)", or ""
    when it reports none. Its latest outcome, not its confirmed one: the page is the
    provider's own word, already deliberate, and lags reality enough as it is."""
    if state is None or state.candidate is not Outcome.PROVIDER_INCIDENT:
        return ""
    since = state.streak_since
    when = ""
    if since is not None:
        since_utc = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
        at_utc = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        same_day = since_utc.date() == at_utc.date()
        when = (
            f" since {since_utc:%H:%M} UTC"
            if same_day
            else f" since {since_utc:%Y-%m-%d %H:%M} UTC"
        )
    return f"the provider reports an incident{when} (status page {page})"


# ---------------------------------------------------------------- JSON


def jsonable(value: Any) -> Any:
    """`value` with times as ISO strings, enums as their values and tuples as lists, so
    facts of any shape can go into a JSON column."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _time_str(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


__all__ = [
    "REASONS",
    "AlertEvent",
    "ProbeLine",
    "jsonable",
    "open_span",
    "provider_status",
    "span_between",
    "subject_for",
    "transition_summary",
]

"""Pure rendering of probe results for the terminal: a rich table, JSON, a summary line."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from monitor.domain.evidence import OutcomeClass, ProbeResult, outcome_class
from monitor.store.models import AlertRecord, TransitionRecord
from monitor.store.reads import IncidentRow

# One colour per outcome class, used everywhere (table, emails, dashboard).
CLASS_STYLE = {
    OutcomeClass.OK: "bold green",
    OutcomeClass.TRANSIENT: "bold yellow",
    OutcomeClass.CONTRACT: "bold red",
}


def outcome_text(outcome: str) -> Text:
    return Text(outcome, style=CLASS_STYLE[outcome_class(outcome)])


def results_table(results: Sequence[ProbeResult]) -> Table:
    """Three columns so it reads on an 80-column terminal: who, what state, what to do."""
    table = Table(show_lines=True, header_style="bold")
    table.add_column("Target", no_wrap=True)
    table.add_column("Outcome", no_wrap=True)
    table.add_column("What happened / what to do", ratio=1, overflow="fold")
    for r in results:
        who = Text(r.target)
        who.append(f"\n{r.kind}", style="dim")
        state = outcome_text(str(r.outcome))
        facts = [f"HTTP {r.http_status}" if r.http_status is not None else "no answer"]
        if r.latency_ms is not None:
            facts.append(f"{r.latency_ms:.0f} ms")
        if r.timings.ttft_ms is not None:  # a streamed probe: its first token and its pace
            facts.append(f"TTFT {r.timings.ttft_ms:.0f} ms")
        if r.tokens_per_s is not None:
            facts.append(f"{r.tokens_per_s:.0f} tok/s")
        state.append("\n" + " · ".join(facts), style="dim")
        what = Text(r.detail or "")
        if r.hint:
            what.append(f"\n→ {r.hint}", style="cyan")
        if r.warning:
            what.append(f"\n⚠ {r.warning}", style="yellow")
        trail = [f"provider {r.provider}" if r.provider else "", r.request_id or ""]
        if any(trail):
            what.append("\n" + " · ".join(x for x in trail if x), style="dim")
        table.add_row(who, state, what)
    return table


def results_json(results: Sequence[ProbeResult]) -> str:
    """A one-off probe's results: no agent ran them (`inferwatch run` rows carry one)."""
    rows = [{**r.as_dict(), "agent": None, "region": None} for r in results]
    return json.dumps(rows, indent=2, ensure_ascii=False)


def summary(results: Sequence[ProbeResult]) -> str:
    counts = Counter(str(r.outcome) for r in results)
    parts = ", ".join(
        f"{n} {outcome}" for outcome, n in sorted(counts.items(), key=lambda x: -x[1])
    )
    noun = "target" if len(results) == 1 else "targets"
    return f"{len(results)} {noun}: {parts}"


# ---------------------------------------- review: transitions, incidents, alerts


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "—"


def transition_dict(
    t: TransitionRecord, target: str, agent: tuple[str, str] | None = None
) -> dict[str, Any]:
    """`agent`: the (name, region) of the agent whose writer accepted it (None before agents),
    printed as `agent` and `region`. `regions`: the regions whose confirmed states made the
    change ([] before regions). `observed_region`: set only on a regional observation, one
    region's own change that the target's state did not follow (null otherwise)."""
    return {
        "target": target,
        "at": _iso(t.at),
        "started_at": _iso(t.started_at),
        "from_outcome": t.from_outcome,
        "to_outcome": t.to_outcome,
        "label": t.label,
        "detail": t.detail,
        "hint": t.hint,
        "http_status": t.http_status,
        "announced": t.announced,
        "reason": t.quiet_reason,  # why it was not announced, when quiet
        "incident_id": t.incident_id,
        "agent": agent[0] if agent else None,
        "region": agent[1] if agent else None,
        "regions": list(t.regions or []),
        "observed_region": t.region,
    }


def incident_dict(i: IncidentRow, target: str) -> dict[str, Any]:
    return {
        "id": i.id,
        "target": target,
        "opened_at": _iso(i.opened_at),
        "closed_at": _iso(i.closed_at),
        "open": i.closed_at is None,
        "duration_seconds": i.duration_seconds,
        "first_outcome": i.first_outcome,
        "last_outcome": i.last_outcome,
        "outcomes": list(i.outcomes),
    }


def alert_dict(a: AlertRecord, target: str | None) -> dict[str, Any]:
    return {
        "id": a.id,
        "target": target,
        "reason": a.reason,
        "channel": a.channel,
        "recipients": list(a.recipients),
        "subject": a.subject,
        "status": a.status,
        "attempts": a.attempts,
        "created_at": _iso(a.created_at),
        "sent_at": _iso(a.sent_at),
        "next_attempt_at": _iso(a.next_attempt_at) if a.status == "pending" else None,
        "last_error": a.last_error,
    }


def transitions_table(rows: Sequence[tuple[TransitionRecord, str]]) -> Table:
    """A regional observation (one region's own change, the target's state unchanged) says so
    under its label; a change several regions confirmed names them."""
    table = Table(header_style="bold", title="Transitions (newest first, UTC)")
    table.add_column("At", no_wrap=True)
    table.add_column("Target", no_wrap=True)
    table.add_column("Change")
    table.add_column("Detail / what to do", ratio=1, overflow="fold")
    for t, name in rows:
        change = Text(f"{t.from_outcome or '—'} → ")
        change.append_text(outcome_text(t.to_outcome))
        quiet = f" (not announced: {t.quiet_reason})" if t.quiet_reason else " (not announced)"
        change.append(f"\n{t.label}" + ("" if t.announced else quiet), style="dim")
        if t.region is not None:
            change.append(f"\nregional: {t.region} only, target unchanged", style="magenta")
        elif len(t.regions or []) > 1:
            change.append(f"\nconfirmed by {', '.join(t.regions or [])}", style="dim")
        what = Text(t.detail)
        if t.hint:
            what.append(f"\n→ {t.hint}", style="cyan")
        table.add_row(_when(t.at), name, change, what)
    return table


def incidents_table(rows: Sequence[tuple[IncidentRow, str]], now: datetime) -> Table:
    from monitor.domain.states import format_span

    table = Table(header_style="bold", title="Incidents (newest first, UTC)")
    table.add_column("Opened", no_wrap=True)
    table.add_column("Target", no_wrap=True)
    table.add_column("Went through")
    table.add_column("Closed", no_wrap=True)
    table.add_column("Duration", justify="right", no_wrap=True)
    for i, name in rows:
        path = Text(" → ").join(outcome_text(o) for o in i.outcomes)
        lasted = (i.closed_at or now) - i.opened_at
        duration = format_span(lasted.total_seconds()) + ("" if i.closed_at else " (open)")
        table.add_row(_when(i.opened_at), name, path, _when(i.closed_at), duration)
    return table


ALERT_STYLE = {"sent": "green", "pending": "yellow", "failed": "bold red"}


def alerts_table(rows: Sequence[tuple[AlertRecord, str | None]]) -> Table:
    table = Table(header_style="bold", title="Alerts (newest first, UTC)")
    table.add_column("Created", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Channel", no_wrap=True)
    table.add_column("Subject / recipients", ratio=1, overflow="fold")
    table.add_column("Tries", justify="right")
    table.add_column("Sent / last error", overflow="fold")
    for a, _name in rows:
        what = Text(a.subject)
        if a.recipients:  # URL channels have none: their URLs are secrets, the channel says it
            what.append("\n" + ", ".join(a.recipients), style="dim")
        result = _when(a.sent_at) if a.status == "sent" else a.last_error or "waiting"
        if a.status == "pending" and a.attempts:
            result += f"\nnext try {_when(a.next_attempt_at)}"
        table.add_row(
            _when(a.created_at),
            Text(a.status, style=ALERT_STYLE.get(a.status, "")),
            a.channel,
            what,
            str(a.attempts),
            result,
        )
    return table

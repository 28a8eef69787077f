"""What every channel shows alike (pure): times, latencies, outcome colours, the evidence rows
and the links to the dashboard, so an email, a Slack message and a webhook say the same."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from monitor.domain.alert_event import AlertEvent
from monitor.domain.evidence import CLASS_COLOUR, outcome_class

# CLASS_COLOUR (monitor.domain.evidence) is the hex version of report.CLASS_STYLE: email
# clients and Slack need hex colours, not terminal styles; the dashboard uses the same palette.
NEUTRAL_COLOUR = "#57606a"  # test alerts and unknown states: no verdict to colour


def utc_time(moment: datetime) -> str:
    """ISO-like and unambiguous for readers in any timezone: '2026-11-22 14:05:03 UTC'."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the store keeps naive UTC times
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def latency_text(ms: float | None) -> str:
    if ms is None:
        return "–"
    return f"{ms / 1000:.1f} s" if ms >= 10_000 else f"{ms:.0f} ms"


def outcome_colour(outcome: str | None) -> str:
    return NEUTRAL_COLOUR if not outcome else CLASS_COLOUR[outcome_class(outcome)]


def dashboard_link(ctx: AlertEvent) -> str | None:
    if not ctx.dashboard_url:
        return None
    base = ctx.dashboard_url.rstrip("/")
    if ctx.reason == "test" or not ctx.target:
        return base  # a test alert is about no real target
    return f"{base}/target?name={quote(ctx.target, safe='')}"


def incident_link(ctx: AlertEvent) -> str | None:
    """The incident's page (/incident?id=N), when the alert belongs to one and the dashboard's
    URL is configured."""
    if not ctx.dashboard_url or ctx.incident_id is None or ctx.reason == "test":
        return None
    return f"{ctx.dashboard_url.rstrip('/')}/incident?id={int(ctx.incident_id)}"


def regions_row(ctx: AlertEvent) -> tuple[str, str]:
    """Which regions saw it: the regions that confirmed a change (shown when several did), or
    the one region of a regional observation; nothing with one region."""
    if ctx.reason == "regional" and ctx.regions:
        return ("Seen from", ", ".join(ctx.regions) + " only")
    if len(ctx.regions) > 1:
        return ("Confirmed by", ", ".join(ctx.regions))
    return ("Confirmed by", "")


def evidence_rows(ctx: AlertEvent) -> list[tuple[str, str]]:
    """Only the facts that exist, in the order someone debugging wants them."""
    if ctx.reason == "test":
        return []
    rows = [
        ("HTTP status", str(ctx.http_status) if ctx.http_status is not None else ""),
        ("Provider said", ctx.detail),
        regions_row(ctx),
        ("Status page", ctx.provider_status),
        ("Request id", ctx.request_id or ""),
        ("Provider", ctx.provider or ""),
        ("Latency", latency_text(ctx.latency_ms) if ctx.latency_ms is not None else ""),
        ("URL", ctx.url),
    ]
    return [(name, value) for name, value in rows if value]

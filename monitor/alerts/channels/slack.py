"""The Slack channel: an alert event as a Block Kit message to an incoming webhook.

`render` (pure) says what the email says (monitor/alerts/channels/templates/), in the same
order: what changed and since when, what to do, the provider's words, the last probes and the
dashboard's links. The blocks sit in an attachment, the only way to give a message the
outcome's colour bar; `text` is the fallback notifications show. `send` POSTs it through the
outbox's guard (monitor/alerts/channels/http_post.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from monitor.alerts.channels.base import DeliveryError, Guard, Outgoing
from monitor.alerts.channels.common import (
    dashboard_link,
    evidence_rows,
    incident_link,
    latency_text,
    outcome_colour,
    utc_time,
)
from monitor.alerts.channels.http_post import post, refused
from monitor.config.model import Config, SlackSettings
from monitor.domain.alert_event import (
    AlertEvent,
    open_span,
    span_between,
    subject_for,
    transition_summary,
)
from monitor.domain.text import one_line

RECEIVER = "Slack"  # never the hook's URL: it is the token
# Block Kit's limits (https://api.slack.com/reference/block-kit/blocks).
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
FALLBACK_LIMIT = 3000
# What Slack's error words mean for whoever reads the delivery log.
ADVICE = {
    "invalid_token": "the incoming-webhook URL was revoked; create a new one",
    "no_service": "the incoming webhook no longer exists; create a new one",
    "channel_is_archived": "the Slack channel is archived; unarchive it or use another hook",
    "channel_not_found": "the Slack channel is gone; create a new incoming webhook",
    "invalid_payload": "Slack rejected the message's shape (a bug: please report it)",
}


# ---------------------------------------------------------------- mrkdwn


def escape(text: str) -> str:
    """Slack's three control characters in mrkdwn (and plain_text) must be entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")


def fit(text: str, limit: int) -> str:
    """`text` (already escaped) cut to `limit` characters with an ellipsis, never inside an
    entity."""
    if len(text) <= limit:
        return text
    return _PARTIAL_ENTITY.sub("", text[: limit - 1]) + "…"


def link(url: str, label: str) -> str:
    return f"<{escape(url)}|{escape(label)}>"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(text, SECTION_LIMIT)}}


def _fields(rows: list[tuple[str, str]]) -> dict[str, Any]:
    fields = [
        {"type": "mrkdwn", "text": fit(f"*{escape(name)}*\n{escape(value)}", FIELD_LIMIT)}
        for name, value in rows[:10]  # a section holds at most 10 fields
    ]
    return {"type": "section", "fields": fields}


# ---------------------------------------------------------------- the message


def render(event: AlertEvent) -> dict[str, Any]:
    """The incoming-webhook payload for one alert (pure)."""
    subject = subject_for(event)
    is_test = event.reason == "test"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": fit(_headline(event), HEADER_LIMIT)},
        },
        _section(_what_happened(event)),
    ]
    if not is_test:
        blocks.append(_fields(_times(event)))
        if event.hint:
            blocks.append(_section(f"*What to do:* {escape(event.hint)}"))
        if event.warning:
            blocks.append(_section(f"*Warning:* {escape(event.warning)}"))
        if evidence := evidence_rows(event):
            blocks.append(_section("*Evidence* (latest probe)"))
            blocks.append(_fields(evidence))
        if recent := _recent(event):
            blocks.append(_section(recent))
    links = [
        link(url, label)
        for url, label in (
            (dashboard_link(event), "Open in the dashboard"),
            (incident_link(event), "Open the incident"),
        )
        if url
    ]
    if links:
        blocks.append(_section("   ".join(links)))
    sent = f"Sent at {utc_time(event.at)} by inferwatch" if is_test else "Sent by inferwatch"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": sent}]})
    colour = outcome_colour(None if is_test else event.to_outcome)
    return {
        "text": fit(escape(subject), FALLBACK_LIMIT),
        "attachments": [{"color": colour, "fallback": subject, "blocks": blocks}],
    }


def _headline(event: AlertEvent) -> str:
    """The header block: plain text, which Slack shows as it is (no escaping, no links)."""
    target, now = event.target, event.to_outcome or "unknown"
    match event.reason:
        case "test":
            text = "Test alert from inferwatch"
        case "transition" if event.from_outcome is None:
            text = f"{target}: first probes say {now}"
        case "transition" if event.to_outcome == "ok":
            text = f"{target} works again"
        case "transition":
            text = f"{target}: {event.from_outcome} → {now}"
        case "reminder":
            text = f"Reminder: {target} is still {now}"
        case "flapping_started":
            text = f"{target} is flapping"
        case "flapping_stopped":
            text = f"{target} stopped flapping" + (f": now {now}" if event.to_outcome else "")
        case "quiet_ended" | "regional":
            text = f"{target}: {event.label}"
        case _:
            text = subject_for(event)
    return one_line(text, limit=None)


def _what_happened(event: AlertEvent) -> str:
    """The first paragraph of the email's text, in mrkdwn."""
    name = f"*{escape(event.target)}* ({escape(event.kind)})"
    before, now = escape(event.from_outcome or ""), escape(event.to_outcome or "unknown")
    match event.reason:
        case "test":
            text = (
                "If you are reading this, Slack alerts work: the incoming-webhook URL in the "
                "config is right. Nothing needs doing."
            )
            return text + (f"\n\n{escape(event.detail)}" if event.detail else "")
        case "transition" if event.from_outcome is None:
            text = f"{name} is new to inferwatch, and its first probes say *{now}*."
        case "transition" if event.to_outcome == "ok":
            text = f"{name} works again: {escape(transition_summary(event))}."
        case "transition":
            text = f"{name} changed from *{before}* to *{now}*."
        case "reminder":
            text = f"{name} is still *{now}*."
        case "flapping_started":
            text = (
                f"{name} keeps switching between working and failing. Until it settles, each "
                "change is recorded but not sent; one more alert will say when it has stopped "
                "flapping."
            )
        case "flapping_stopped":
            text = f"{name} has stopped flapping" + (
                f" and is now *{now}*." if event.to_outcome else "."
            )
        case "quiet_ended":
            text = (
                f"{name}: {escape(one_line(event.label, limit=None))}.\nChanges during the "
                "maintenance window or silence were recorded, not sent; this is where it stands "
                "now" + (f" (the last alert said *{before}*)." if before else ".")
            )
        case "regional":
            text = (
                f"{name}: {escape(one_line(event.label, limit=None))}.\n{REGIONAL_NOTE}"
                f"{_regions(event)}: the target's state, which a quorum of regions decides, did "
                "not change, and no incident was opened."
            )
        case _:
            text = f"{name}: {escape(one_line(event.label, limit=None))}"
    return text + (f"\n{escape(event.url)}" if event.url else "")


REGIONAL_NOTE = "This is one region's own view"


def _regions(event: AlertEvent) -> str:
    return f" ({escape(', '.join(event.regions))})" if event.regions else ""


def _times(event: AlertEvent) -> list[tuple[str, str]]:
    """Since when, and when it was confirmed (a reminder: how long the incident is open)."""
    rows = []
    opened = event.incident_opened_at or event.since
    if event.reason == "reminder" and opened:
        open_for = open_span(event)
        rows.append(("Open since", utc_time(opened) + (f" (for {open_for})" if open_for else "")))
    elif event.since:
        rows.append(("Since", utc_time(event.since)))
    confirmed = utc_time(event.at)
    if event.reason == "transition":
        after = span_between(event.since, event.at)
        rows.append(("Confirmed", confirmed + (f" ({after} after it began)" if after else "")))
    else:
        rows.append(("Latest probe", confirmed))
    return rows


def _recent(event: AlertEvent) -> str:
    """The last probes as a preformatted table, as many as fit a section (newest first)."""
    if not event.recent:
        return ""
    title = "*Last probes* (newest first)\n"
    lines: list[str] = []
    for probe in event.recent:
        status = str(probe.http_status) if probe.http_status is not None else "–"
        line = (
            f"{utc_time(probe.checked_at)[:-4]}  {probe.outcome:<17}  {status:<4}  "
            f"{latency_text(probe.latency_ms):>8}  {one_line(probe.detail, limit=70)}"
        )
        candidate = [*lines, escape(line.rstrip())]
        if len(title) + len("```\n\n```") + len("\n".join(candidate)) > SECTION_LIMIT:
            break
        lines = candidate
    return title + "```\n" + "\n".join(lines) + "\n```" if lines else ""


# ---------------------------------------------------------------- the channel


class SlackChannel:
    """Slack's incoming webhook as a channel of the outbox (see channels/base.py)."""

    def __init__(self, settings: SlackSettings, url: str):
        self.settings = settings
        self.url = url

    def render(self, alert: Outgoing) -> bytes:
        if alert.event is None:
            raise DeliveryError(
                "this alert was stored before alert events; only email can send it",
                permanent=True,
            )
        return json.dumps(render(alert.event), ensure_ascii=False).encode()

    def send(self, message: bytes, alert: Outgoing, guard: Guard) -> None:
        answer = post(
            self.url,
            message,
            {"Content-Type": "application/json; charset=utf-8"},
            timeout=self.settings.timeout,
            guard=guard,
            receiver=RECEIVER,
        )
        if not answer.accepted:
            raise refused(RECEIVER, answer, ADVICE.get(answer.text, ""))


def channel(config: Config, env: Mapping[str, str], timeout: float | None = None) -> SlackChannel:
    """The configured Slack hook; `timeout` caps one POST further (the shutdown's budget)."""
    settings = config.alerts.slack
    if settings is None:
        raise DeliveryError("no alerts.slack is configured", permanent=False)
    if timeout is not None:
        settings = settings.model_copy(update={"timeout": min(settings.timeout, timeout)})
    url = env.get(settings.webhook_url_env, "").strip()
    if not url:
        raise DeliveryError(
            f"environment variable {settings.webhook_url_env} (alerts.slack.webhook_url_env) "
            "is not set or empty; export the incoming-webhook URL where inferwatch runs",
            permanent=True,
        )
    return SlackChannel(settings, url)

"""The webhook channel: each alert event POSTed as JSON, signed when a secret is configured.

`payload` (pure) is the JSON a receiver gets, documented in the README; `WebhookChannel.send`
POSTs it through the outbox's guard (monitor/alerts/channels/http_post.py). Every retry of
one alert carries the same `X-Inferwatch-Delivery`, so a receiver can drop a copy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from monitor.alerts.channels.base import DeliveryError, Guard, Outgoing
from monitor.alerts.channels.common import dashboard_link, incident_link
from monitor.alerts.channels.http_post import post, refused
from monitor.config.model import Config, WebhookSettings
from monitor.domain.alert_event import AlertEvent, jsonable, subject_for

RECEIVER = "the webhook"  # never its URL: that is a secret
# The `event` a reason is announced as; reasons not named here (test, and any added later)
# pass through as they are, and `reason` always says exactly which.
EVENTS = {
    "transition": "transition",
    "reminder": "reminder",
    "flapping_started": "flapping",
    "flapping_stopped": "flapping",
}


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z: '2026-11-22T14:05:03Z' (the store keeps naive UTC times)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def payload(event: AlertEvent) -> dict[str, Any]:
    """The JSON object one alert is POSTed as (pure)."""
    return {
        "event": EVENTS.get(event.reason, event.reason),
        "reason": event.reason,
        "target": event.target,
        "kind": event.kind,
        "url": event.url,
        "from_outcome": event.from_outcome,
        "to_outcome": event.to_outcome,
        "label": event.label,
        "subject": subject_for(event),
        "detail": event.detail,
        "hint": event.hint,
        "warning": event.warning,
        "facts": jsonable(dict(event.facts)),
        "http_status": event.http_status,
        "request_id": event.request_id,
        "provider": event.provider,
        "latency_ms": event.latency_ms,
        "at": iso_utc(event.at),
        "since": iso_utc(event.since),
        "incident_id": event.incident_id,
        "incident_opened_at": iso_utc(event.incident_opened_at),
        # The regions that confirmed the change; a regional observation's one region.
        "regions": list(event.regions),
        "dashboard_url": dashboard_link(event),
        "incident_url": incident_link(event),
    }


def body_of(event: AlertEvent) -> bytes:
    """The exact bytes sent, and signed."""
    return json.dumps(payload(event), ensure_ascii=False, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    """`X-Inferwatch-Signature`: 'sha256=' and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_id(message_id: str) -> str:
    """The row's stable id without the angle brackets email wants."""
    return message_id.strip("<>")


class WebhookChannel:
    """The webhook as a channel of the outbox (see monitor/alerts/channels/base.py)."""

    def __init__(self, settings: WebhookSettings, secret: str | None):
        self.settings = settings
        self.secret = secret

    def render(self, alert: Outgoing) -> bytes:
        if alert.event is None:
            raise DeliveryError(
                "this alert was stored before alert events; only email can send it",
                permanent=True,
            )
        return body_of(alert.event)

    def send(self, message: bytes, alert: Outgoing, guard: Guard) -> None:
        headers = {
            "Content-Type": "application/json",
            "X-Inferwatch-Delivery": delivery_id(alert.message_id),
        }
        if self.secret is not None:
            headers["X-Inferwatch-Signature"] = signature(self.secret, message)
        answer = post(
            self.settings.url,
            message,
            headers,
            timeout=self.settings.timeout,
            guard=guard,
            receiver=RECEIVER,
            secrets=[self.secret] if self.secret else [],
        )
        if not answer.accepted:
            raise refused(RECEIVER, answer)


def channel(config: Config, env: Mapping[str, str], timeout: float | None = None) -> WebhookChannel:
    """The configured webhook; `timeout` caps one POST further (the shutdown's budget)."""
    settings = config.alerts.webhook
    if settings is None:
        raise DeliveryError("no alerts.webhook is configured", permanent=False)
    if timeout is not None:
        settings = settings.model_copy(update={"timeout": min(settings.timeout, timeout)})
    secret = None
    if settings.secret_env is not None:
        secret = env.get(settings.secret_env)
        if not secret:
            raise DeliveryError(
                f"environment variable {settings.secret_env} (alerts.webhook.secret_env) is "
                "not set or empty; export it where inferwatch runs, or remove secret_env",
                permanent=True,
            )
    return WebhookChannel(settings, secret)

"""`inferwatch test-alert`: a test message through the same outbox and sender as real alerts."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from monitor.config.model import Config
from monitor.domain.alert_event import AlertEvent
from monitor.store import writes


def test_event(config: Config, now: datetime) -> AlertEvent:
    """What a test alert says: about no target, with a link to the dashboard's home."""
    return AlertEvent(
        reason="test",
        target="inferwatch",
        kind="test",
        url="",
        from_outcome=None,
        to_outcome=None,
        label="test alert",
        at=now,
        since=None,
        http_status=None,
        detail="This is a test message from inferwatch: alert delivery works.",
        hint="",
        warning="",
        request_id=None,
        provider=None,
        latency_ms=None,
        recent=(),
        dashboard_url=config.alerts.dashboard_url,
    )


def queue_test_alert(engine: Engine, config: Config, channel: str) -> int:
    """Put a test alert for one configured channel in the outbox (reason 'test', no target);
    return its id."""
    now = datetime.now(UTC)
    email = config.alerts.email
    recipients = email.recipients if channel == "email" and email else []
    alert = writes.NewAlert(test_event(config, now), channel, tuple(recipients))
    with engine.begin() as conn:
        (alert_id,) = writes.enqueue_alerts(conn, [alert], now)
    return alert_id

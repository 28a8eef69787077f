"""`inferwatch test-alert`: a test message through the same outbox and sender as real alerts."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from monitor.alerts.channels.email import AlertContext, render
from monitor.alerts.outbox import pending_alert
from monitor.config.model import Config


def queue_test_alert(engine: Engine, config: Config) -> int:
    """Put a test alert in the outbox (reason 'test', no target); return its id."""
    assert config.alerts.email is not None
    now = datetime.now(UTC)
    email = render(
        AlertContext(
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
    )
    with Session(engine) as s, s.begin():
        alert = pending_alert(email, "test", config.alerts.email.recipients, now)
        s.add(alert)
        s.flush()
        return alert.id

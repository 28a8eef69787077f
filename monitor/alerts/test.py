"""`inferwatch test-alert`: a test message through the same outbox and sender as real alerts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from monitor.alerts.email import AlertContext, render
from monitor.config import Config
from monitor.store.models import AlertRecord


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
        alert = AlertRecord(
            reason="test",
            channel="email",
            recipients=list(config.alerts.email.recipients),
            subject=email.subject,
            body_text=email.text,
            body_html=email.html,
            message_id=f"<{uuid.uuid4()}@inferwatch>",
            status="pending",
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
        s.add(alert)
        s.flush()
        return alert.id

"""The outbox sender against a real SMTP server (aiosmtpd): never lost, never doubled."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.agent.writer import Writer
from monitor.alerts.channels.email import render
from monitor.alerts.outbox import Sender, retry_delay
from monitor.domain.alert_event import AlertEvent
from monitor.domain.evidence import Outcome
from monitor.store import open_database
from monitor.store.models import AlertAttemptRecord, AlertRecord
from tests.helpers import make_config
from tests.smtp import Inbox
from tests.test_loop_writer import T0, feed


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def setup(db_url: str, inbox: Inbox, clock: Clock, outages: int = 3) -> tuple[Writer, Sender]:
    config = make_config(
        [{"name": f"t{i}", "kind": "hf-legacy", "model": "gpt2"} for i in range(outages)],
        alerts={"email": inbox.settings()},
    )
    engine = open_database(db_url)
    writer = Writer(engine, config, clock=clock)
    writer.start_run()
    for i in range(outages):
        feed(writer, [Outcome.DEPRECATED, Outcome.DEPRECATED], name=f"t{i}")
    return writer, Sender(engine, config, env={}, clock=clock)


def alerts(sender: Sender) -> list[AlertRecord]:
    with Session(sender.engine) as s:
        return list(s.scalars(select(AlertRecord).order_by(AlertRecord.id)))


def deliver_due(sender: Sender) -> None:
    for alert_id in sender.due():
        sender.deliver(alert_id)


def test_smtp_down_then_up_delivers_every_alert_exactly_once(db_url: str, inbox: Inbox) -> None:
    clock = Clock()
    _, sender = setup(db_url, inbox, clock)
    inbox.down()

    for _ in range(8):  # ten minutes of outage, retrying as the backoff allows
        deliver_due(sender)
        clock.advance(75)
    assert [a.status for a in alerts(sender)] == ["pending"] * 3
    assert all(a.attempts >= 5 and "127.0.0.1" in a.last_error for a in alerts(sender))

    inbox.up()
    clock.advance(60)
    deliver_due(sender)
    deliver_due(sender)  # nothing left: a second pass sends nothing again

    assert [a.status for a in alerts(sender)] == ["sent"] * 3
    assert len(inbox.messages) == 3
    assert sorted(inbox.subjects) == [
        f"[inferwatch] t{i}: first probe: deprecated (410)" for i in range(3)
    ]
    ids = {str(m["message-id"]) for m in inbox.messages}
    assert ids == {a.message_id for a in alerts(sender)}


def test_every_attempt_is_recorded(db_url: str, inbox: Inbox) -> None:
    clock = Clock()
    _, sender = setup(db_url, inbox, clock, outages=1)
    inbox.down()
    deliver_due(sender)
    clock.advance(retry_delay(1))
    inbox.up()
    deliver_due(sender)

    with Session(sender.engine) as s:
        attempts = list(s.scalars(select(AlertAttemptRecord).order_by(AlertAttemptRecord.id)))
    assert [a.ok for a in attempts] == [False, True]
    assert attempts[0].error and attempts[1].error == ""


def test_a_retry_waits_for_its_backoff(db_url: str, inbox: Inbox) -> None:
    clock = Clock()
    _, sender = setup(db_url, inbox, clock, outages=1)
    inbox.reject_with = "451 4.3.0 try again later"

    deliver_due(sender)
    inbox.reject_with = ""
    clock.advance(retry_delay(1) - 1)
    assert sender.due() == []  # not yet
    clock.advance(1)
    deliver_due(sender)

    (alert,) = alerts(sender)
    assert alert.status == "sent" and alert.attempts == 2
    assert len(inbox.messages) == 1


def test_a_5xx_reply_marks_the_alert_failed_without_retrying(db_url: str, inbox: Inbox) -> None:
    clock = Clock()
    _, sender = setup(db_url, inbox, clock, outages=1)
    inbox.reject_with = "550 5.1.1 mailbox unavailable"

    deliver_due(sender)
    clock.advance(3600)

    (alert,) = alerts(sender)
    assert alert.status == "failed"
    assert "550" in alert.last_error
    assert sender.due() == []


def test_retries_give_up_after_a_day(db_url: str, inbox: Inbox) -> None:
    clock = Clock()
    _, sender = setup(db_url, inbox, clock, outages=1)
    inbox.down()
    deliver_due(sender)
    clock.advance(24 * 3600)
    deliver_due(sender)

    (alert,) = alerts(sender)
    assert alert.status == "failed"


def test_retry_delays_double_and_cap() -> None:
    assert [retry_delay(n) for n in range(1, 8)] == [5, 10, 20, 40, 60, 60, 60]


def test_the_sender_loop_delivers_when_woken(db_url: str, inbox: Inbox) -> None:
    _, sender = setup(db_url, inbox, Clock(), outages=2)
    sender.clock = lambda: T0 + timedelta(seconds=1)

    async def scenario() -> None:
        wake = asyncio.Event()
        task = asyncio.create_task(sender.run(wake))
        wake.set()
        for _ in range(100):
            if len(inbox.messages) == 2:
                break
            await asyncio.sleep(0.02)
        task.cancel()

    asyncio.run(scenario())
    assert len(inbox.messages) == 2


def test_a_partial_delivery_retries_only_the_refused_recipients(db_url: str) -> None:
    from aiosmtpd.controller import Controller

    from tests.smtp import Inbox

    class Greylist:
        """Accepts a@…, greylists b@… once (450), as real servers do."""

        def __init__(self) -> None:
            self.delivered: list[list[str]] = []
            self.greylisted = True

        async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
            if address.startswith("b@") and self.greylisted:
                return "450 4.2.0 greylisted, try again later"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            self.delivered.append(list(envelope.rcpt_tos))
            return "250 OK"

    box = Inbox()  # only for its free port and settings
    handler = Greylist()
    controller = Controller(handler, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        clock = Clock()
        config = make_config(
            [{"name": "t0", "kind": "hf-legacy", "model": "gpt2"}],
            alerts={"email": box.settings(recipients=("a@example.com", "b@example.com"))},
        )
        engine = open_database(db_url)
        writer = Writer(engine, config, clock=clock)
        writer.start_run()
        feed(writer, [Outcome.DEPRECATED, Outcome.DEPRECATED], name="t0")
        sender = Sender(engine, config, env={}, clock=clock)

        deliver_due(sender)
        handler.greylisted = False
        clock.advance(retry_delay(1))
        deliver_due(sender)
    finally:
        controller.stop()

    assert handler.delivered == [["a@example.com"], ["b@example.com"]]  # nobody got it twice
    (alert,) = alerts(sender)
    assert alert.status == "sent"


def test_two_senders_racing_for_one_alert_send_it_once(db_url: str, inbox: Inbox) -> None:
    """The claim: a conditional UPDATE in the transaction that records the 250."""
    import threading

    clock = Clock()
    _, sender = setup(db_url, inbox, clock, outages=1)
    other = Sender(sender.engine, sender.config, env={}, clock=clock)
    (alert_id,) = sender.due()
    start = threading.Barrier(4)
    outcomes: list[bool] = []

    def race(s: Sender) -> None:
        start.wait()
        outcomes.append(s.deliver(alert_id))

    threads = [threading.Thread(target=race, args=(s,)) for s in (sender, other) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert len(inbox.messages) == 1
    assert sorted(outcomes) == [False, False, False, True]
    (alert,) = alerts(sender)
    assert alert.status == "sent" and alert.attempts == 1


def test_a_refused_data_rolls_the_claim_back_and_is_retried(db_url: str, inbox: Inbox) -> None:
    clock = Clock()
    _, sender = setup(db_url, inbox, clock, outages=1)
    inbox.reject_with = "451 4.3.0 try again later"

    deliver_due(sender)

    (alert,) = alerts(sender)
    assert alert.status == "pending" and alert.attempts == 1 and alert.sent_at is None
    assert "451" in alert.last_error
    inbox.reject_with = ""
    clock.advance(retry_delay(1))
    deliver_due(sender)
    (alert,) = alerts(sender)
    assert alert.status == "sent" and alert.attempts == 2
    assert len(inbox.messages) == 1


# ---------------------------------------------------------------- channel-neutral rows


def plain_and_html(message) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    def part(kind: str) -> str:
        return message.get_body((kind,)).get_content().replace("\r\n", "\n")

    return part("plain"), part("html")


def test_the_email_is_rendered_from_the_stored_event_when_it_is_sent(
    db_url: str, inbox: Inbox
) -> None:
    _, sender = setup(db_url, inbox, Clock(), outages=1)
    (alert,) = alerts(sender)
    expected = render(AlertEvent.from_json(alert.event))

    deliver_due(sender)

    (message,) = inbox.messages
    assert message["subject"] == alert.subject == expected.subject
    assert plain_and_html(message) == (expected.text, expected.html)


def add_row(sender: Sender, **values: Any) -> int:
    row = AlertRecord(
        **{
            "reason": "transition",
            "channel": "email",
            "recipients": ["oncall@example.com"],
            "subject": "[inferwatch] from before events",
            "body_text": "stored text\n",
            "body_html": "<p>stored html</p>\n",
            "message_id": f"<{len(alerts(sender))}-old@inferwatch>",
            "status": "pending",
            "attempts": 0,
            "created_at": T0,
            "next_attempt_at": T0,
            **values,
        }
    )
    with Session(sender.engine) as s, s.begin():
        s.add(row)
        s.flush()
        return row.id


def test_a_row_from_before_events_sends_what_it_stored(db_url: str, inbox: Inbox) -> None:
    _, sender = setup(db_url, inbox, Clock(), outages=1)
    inbox.down()
    deliver_due(sender)  # the new-style alert stays pending, out of the way
    inbox.up()
    assert sender.deliver(add_row(sender))  # event is {} (migration 0004's default)

    (message,) = inbox.messages
    assert message["subject"] == "[inferwatch] from before events"
    assert plain_and_html(message) == ("stored text\n", "<p>stored html</p>\n")


def test_an_alert_that_cannot_be_rendered_holds_up_no_other(db_url: str, inbox: Inbox) -> None:
    clock = Clock()
    _, sender = setup(db_url, inbox, clock, outages=1)
    broken = add_row(sender, event={"reason": "transition"})  # keys missing: cannot be read
    unknown = add_row(sender, channel="pager")

    deliver_due(sender)

    assert len(inbox.messages) == 1  # the good one
    status = {a.id: (a.status, a.last_error) for a in alerts(sender)}
    assert status[broken][0] == "pending" and "could not render" in status[broken][1]
    assert status[unknown] == ("failed", "unknown alert channel 'pager'")


def test_a_database_that_is_away_is_one_warning_line_per_try_not_a_traceback(
    caplog: Any,
) -> None:
    """A PostgreSQL that is not there (nothing listens on the port): the sender keeps
    trying, and says so in one line each time; the writer logs the outage itself."""
    import logging
    import socket

    from sqlalchemy import create_engine

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = create_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{port}/none", connect_args={"connect_timeout": 2}
    )
    sender = Sender(engine, make_config([{"name": "t", "kind": "http", "url": "http://x/"}]), {})

    async def briefly() -> None:
        stopping = asyncio.Event()
        task = asyncio.create_task(sender.run(asyncio.Event(), stopping))
        await asyncio.sleep(0.5)
        stopping.set()
        sender.flush_seconds = 0.0
        await asyncio.wait_for(task, 10)

    with caplog.at_level(logging.WARNING, logger="monitor.alerts.outbox"):
        asyncio.run(briefly())
    away = [r for r in caplog.records if "cannot reach the database" in r.getMessage()]
    assert away and all(r.exc_info is None for r in away)
    assert "OperationalError" in away[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info]

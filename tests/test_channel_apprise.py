"""The Apprise channel against real receivers: Apprise's json:// URLs pointed at HTTP servers on
127.0.0.1, alerts written by the real writer into a migrated SQLite file and sent by the real
Sender. Never lost, never doubled, no URL in the database or the logs."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.agent.writer import Writer
from monitor.alerts.channels.apprise import render, url_label, url_parts
from monitor.alerts.outbox import Sender, retry_delay
from monitor.domain.alert_event import AlertEvent, subject_for
from monitor.domain.evidence import Outcome
from monitor.store import open_database
from monitor.store.models import AlertAttemptRecord, AlertRecord
from tests.helpers import make_config
from tests.test_loop_outbox import Clock
from tests.test_loop_writer import T0, feed

VAR = "INFERWATCH_APPRISE_URLS"
TOKEN = "s3cr3t-hook-token-4711"  # in each receiver's path, as real services put it


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps every POST and answers from a script of status
    codes (the last one repeats); `down()` and `up()` make an outage of refused connections."""

    def __init__(self, *statuses: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.statuses = list(statuses) or [200]
        self.posts: list[dict[str, Any]] = []  # every POST's JSON, accepted or not
        self.accepted: list[dict[str, Any]] = []  # the ones answered 2xx
        self.paths: list[str] = []
        self.agents: list[str] = []  # each POST's User-Agent
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hooks/{TOKEN}-{self.port}"

    def up(self) -> Receiver:
        box = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = box.statuses.pop(0) if len(box.statuses) > 1 else box.statuses[0]
                box.posts.append(body)
                box.paths.append(self.path)
                box.agents.append(self.headers["User-Agent"])
                if 200 <= status < 300:
                    box.accepted.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        r.down()


def receiver(made: list[Receiver], *statuses: int) -> Receiver:
    r = Receiver(*statuses).up()
    made.append(r)
    return r


def setup(db_url: str, urls: list[str], clock: Clock) -> Sender:
    """One target's confirmed outage, written by the real writer: one apprise alert queued."""
    env = {VAR: " ".join(urls)}
    config = make_config(
        [{"name": "llama-chat", "kind": "hf-legacy", "model": "gpt2"}],
        env=env,
        alerts={"apprise": {"urls_env": VAR}, "dashboard_url": "https://status.example.com"},
    )
    engine = open_database(db_url)
    writer = Writer(engine, config, clock=clock)
    writer.start_run()
    feed(writer, [Outcome.DEPRECATED, Outcome.DEPRECATED], name="llama-chat")
    return Sender(engine, config, env=env, clock=clock)


def deliver_due(sender: Sender) -> None:
    for alert_id in sender.due():
        sender.deliver(alert_id)


def the_alert(sender: Sender) -> AlertRecord:
    with Session(sender.engine) as s:
        (alert,) = s.scalars(select(AlertRecord))
        s.expunge(alert)
        return alert


def attempts(sender: Sender) -> list[AlertAttemptRecord]:
    with Session(sender.engine) as s:
        found = list(s.scalars(select(AlertAttemptRecord).order_by(AlertAttemptRecord.id)))
        s.expunge_all()
        return found


def everything_stored(sender: Sender) -> str:
    """Every column of every alert and attempt row, as text."""
    with sender.engine.connect() as conn:
        rows = [
            *conn.exec_driver_sql("SELECT * FROM alerts"),
            *conn.exec_driver_sql("SELECT * FROM alert_attempts"),
        ]
    return "\n".join(repr(tuple(row)) for row in rows)


# ---------------------------------------------------------------- what arrives


def test_a_json_url_receives_the_subject_and_the_markdown_body(
    db_url: str, receivers: list[Receiver]
) -> None:
    hook = receiver(receivers)
    sender = setup(db_url, [hook.url], Clock())
    deliver_due(sender)

    alert = the_alert(sender)
    assert alert.status == "sent" and alert.channel == "apprise" and alert.recipients == []
    (body,) = hook.accepted
    event = AlertEvent.from_json(alert.event)
    assert (
        body["title"]
        == subject_for(event)
        == "[inferwatch] llama-chat: first probe: deprecated (410)"
    )
    assert body["message"] == render(event, VAR).body
    assert body["type"] == "failure"  # a contract change: Apprise's red
    message = body["message"]
    assert (
        "llama\\-chat" not in message and "**llama-chat (hf-legacy) is new to inferwatch" in message
    )
    assert (
        "- Provider said: `HTTP 410: https://api-inference.huggingface.co is no longer" in message
    )
    assert "**What to do:** switch to https://router.huggingface.co" in message
    assert "[Dashboard](https://status.example.com/target?name=llama-chat)" in message
    assert hook.paths == [f"/hooks/{TOKEN}-{hook.port}"]
    assert hook.agents == ["inferwatch"]  # the sender's name where a service shows one
    assert [a.ok for a in attempts(sender)] == [True]


def test_the_body_keeps_a_providers_markup_inert() -> None:
    event = AlertEvent(
        reason="transition",
        target="chat_prod",
        kind="openai-chat",
        url="https://api.example.com/v1/chat/completions",
        from_outcome="ok",
        to_outcome="server_error",
        label="ok → server_error (500)",
        at=T0,
        since=T0,
        http_status=500,
        detail="HTTP 500: <img src=x onerror=alert(1)> `code` **bold**\nsecond line",
        hint="retry later",
        warning="",
        request_id="req_`1`",
        provider=None,
        latency_ms=120.0,
        recent=(),
        dashboard_url=None,
    )
    body = render(event).body
    # The provider's words sit in one code span (no backtick inside can close it early), on
    # one line; our own names have Markdown's specials escaped.
    assert (
        "- Provider said: `HTTP 500: <img src=x onerror=alert(1)> 'code' **bold** second line`"
        in body
    )
    assert "- Request id: `req_'1'`" in body
    assert "**chat\\_prod (openai-chat) changed from ok to server\\_error.**" in body
    assert "[Dashboard]" not in body  # no dashboard_url configured: no link
    assert "- URL: `https://api.example.com/v1/chat/completions`" in body
    after_window = replace(
        event, reason="quiet_ended", label="still failing after maintenance deploy: server_error"
    )
    assert render(after_window).body.startswith(
        "**chat\\_prod (openai-chat): still failing after maintenance deploy: server\\_error. "
        "Changes during the maintenance window or silence were recorded, not sent; this is "
        "where it stands now (the last alert said ok).**"
    )
    assert render(replace(event, to_outcome="ok", label="server_error → ok")).kind == "success"


def test_a_test_alert_says_which_variable_works() -> None:
    from monitor.alerts.test import test_event

    config = make_config(
        [{"name": "t", "kind": "hf-legacy", "model": "gpt2"}], alerts={"apprise": {"urls_env": VAR}}
    )
    note = render(test_event(config, T0), VAR)
    assert note.title == "[inferwatch] test alert" and note.kind == "info"
    assert f"the Apprise URLs in ${VAR} work" in note.body


def test_labels_name_a_url_by_place_and_scheme_only() -> None:
    assert url_label(2, "ntfy://ntfy.sh/very-secret-topic") == "apprise#2 (ntfy)"
    assert url_label(1, "Discord://id/token") == "apprise#1 (discord)"
    assert url_label(3, "user:pass@host") == "apprise#3 (no scheme)"
    assert {"very-secret-topic", "ntfy://ntfy.sh/very-secret-topic"} <= url_parts(
        "ntfy://ntfy.sh/very-secret-topic"
    )
    assert "pw" in url_parts("json://me:pw@hooks.example.com/x")  # a password, however short


# ---------------------------------------------------------------- outages and retries


def test_an_outage_then_recovery_delivers_exactly_once(
    db_url: str, receivers: list[Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # Apprise prints whole URLs at DEBUG: none may reach us
    hook = receiver(receivers, 500, 500, 200)
    clock = Clock()
    sender = setup(db_url, [hook.url], clock)

    deliver_due(sender)  # 500
    clock.advance(retry_delay(1))
    deliver_due(sender)  # 500
    hook.down()
    clock.advance(retry_delay(2))
    deliver_due(sender)  # refused
    refused = the_alert(sender)
    hook.up()
    deliver_due(sender)  # not yet due: the backoff holds
    assert hook.posts[2:] == []
    clock.advance(retry_delay(3))
    deliver_due(sender)  # 200
    deliver_due(sender)  # nothing left to send

    alert = the_alert(sender)
    assert alert.status == "sent" and alert.attempts == 4
    assert len(hook.accepted) == 1 and len(hook.posts) == 3
    log = attempts(sender)
    assert [a.ok for a in log] == [False, False, False, True]
    assert "apprise#1 (json): Failed to send JSON POST notification: Internal server error" in (
        log[0].error
    )
    # Apprise names the host it could not reach; the host is part of a secret URL: masked.
    assert (
        log[2].error
        == "apprise#1 (json): A Connection error occurred sending JSON notification to ***."
    )
    assert refused.status == "pending" and refused.last_error == log[2].error
    stored, logged = everything_stored(sender), caplog.text
    for secret in (TOKEN, hook.url, f"127.0.0.1:{hook.port}"):
        assert secret not in stored and secret not in logged
    assert "apprise" not in {r.name for r in caplog.records}  # its lines go to the error only


def test_two_urls_one_failing_the_retry_goes_only_to_the_failing_one(
    db_url: str, receivers: list[Receiver]
) -> None:
    good, flaky = receiver(receivers, 200), receiver(receivers, 503, 200)
    clock = Clock()
    sender = setup(db_url, [good.url, flaky.url], clock)

    deliver_due(sender)
    waiting = the_alert(sender)
    assert waiting.status == "pending" and waiting.recipients == ["apprise#2 (json)"]
    assert "apprise#2 (json): Failed to send JSON POST notification" in waiting.last_error

    clock.advance(retry_delay(waiting.attempts))
    deliver_due(sender)
    deliver_due(sender)

    sent = the_alert(sender)
    assert sent.status == "sent" and sent.attempts == 3  # one try per URL notified
    assert len(good.accepted) == 1 and len(good.posts) == 1  # never sent twice
    assert len(flaky.accepted) == 1 and len(flaky.posts) == 2
    assert good.accepted[0] == flaky.accepted[0]  # the same notification
    assert TOKEN not in everything_stored(sender)


def test_a_failure_before_a_success_is_remembered_by_the_success(
    db_url: str, receivers: list[Receiver]
) -> None:
    """The first URL fails, the second takes it: the second's commit already says the first
    is still due, so a crash before the failure is recorded would still not resend to #2."""
    flaky, good = receiver(receivers, 500, 200), receiver(receivers, 200)
    clock = Clock()
    sender = setup(db_url, [flaky.url, good.url], clock)

    deliver_due(sender)
    waiting = the_alert(sender)
    assert waiting.status == "pending" and waiting.recipients == ["apprise#1 (json)"]
    log = attempts(sender)
    assert log[0].error == "apprise#2 (json) has it; still to send to apprise#1 (json)"

    clock.advance(retry_delay(waiting.attempts))
    deliver_due(sender)
    assert the_alert(sender).status == "sent"
    assert (len(flaky.accepted), len(good.accepted)) == (1, 1)
    assert len(good.posts) == 1


def test_a_url_that_never_answers_is_cut_off_by_the_attempts_budget(
    db_url: str, receivers: list[Receiver]
) -> None:
    silent = socket.socket()  # accepts connections (the backlog) but never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        url = f"json://127.0.0.1:{silent.getsockname()[1]}/hooks/{TOKEN}"
        sender = setup(db_url, [url], Clock())
        (alert_id,) = sender.due()
        started = time.monotonic()
        assert sender.deliver(alert_id, timeout=2.0) is False
        took = time.monotonic() - started
    finally:
        silent.close()
    assert took < 3.0
    alert = the_alert(sender)
    assert alert.status == "pending" and alert.last_error.startswith("apprise#1 (json): ")
    assert TOKEN not in alert.last_error


def test_an_unset_variable_fails_for_good_naming_it(db_url: str, receivers: list[Receiver]) -> None:
    hook = receiver(receivers)
    sender = setup(db_url, [hook.url], Clock())
    sender.env = {}
    deliver_due(sender)
    alert = the_alert(sender)
    assert alert.status == "failed" and hook.posts == []
    assert f"environment variable {VAR} (alerts.apprise.urls_env) is not set" in alert.last_error


def test_a_url_apprise_does_not_know_is_retried_and_read_afresh(
    db_url: str, receivers: list[Receiver]
) -> None:
    """A typo in the variable: recorded and retried; once fixed (the variable is read at each
    try), the alert goes out."""
    hook = receiver(receivers)
    clock = Clock()
    sender = setup(db_url, [hook.url], clock)
    sender.env = {VAR: f"jsn://127.0.0.1:{hook.port}/hooks/{TOKEN}"}
    deliver_due(sender)
    alert = the_alert(sender)
    assert alert.status == "pending" and alert.recipients == []
    assert alert.last_error == (
        "apprise#1 (jsn): Apprise does not accept this URL (check its scheme and fields)"
    )
    sender.env = {VAR: hook.url}
    clock.advance(retry_delay(1))
    deliver_due(sender)
    assert the_alert(sender).status == "sent" and len(hook.accepted) == 1


def test_a_crash_between_two_urls_does_not_resend_to_the_first(
    db_url: str, receivers: list[Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies while the second URL is being notified (no server can make that
    happen, so the crash is raised in its place): the first URL's acceptance was committed
    before, and the next run sends only to the second."""
    import monitor.alerts.channels.apprise as channel

    first, second = receiver(receivers), receiver(receivers)
    clock = Clock()
    sender = setup(db_url, [first.url, second.url], clock)
    real_notify = channel.notify

    def dies_at_the_second(url: str, *args: Any) -> str | None:
        if url == second.url:
            raise SystemExit("killed")
        return real_notify(url, *args)

    monkeypatch.setattr(channel, "notify", dies_at_the_second)
    with pytest.raises(SystemExit):
        deliver_due(sender)
    monkeypatch.setattr(channel, "notify", real_notify)
    crashed = the_alert(sender)
    assert crashed.status == "pending" and crashed.recipients == ["apprise#2 (json)"]

    restarted = Sender(sender.engine, sender.config, env=sender.env, clock=clock)
    clock.advance(retry_delay(crashed.attempts))
    deliver_due(restarted)

    assert the_alert(sender).status == "sent"
    assert (len(first.posts), len(second.posts)) == (1, 1)

"""The webhook channel against a real HTTP receiver on 127.0.0.1: signed JSON, once per alert.

Alerts are decided by the real writer into a real SQLite outbox and sent by the real Sender;
the receiver checks the signature over the raw body, records every request and answers from
a script (or is down: connection refused).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import random
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import __version__
from monitor.agent.writer import Writer
from monitor.alerts.channels import http_post, webhook
from monitor.alerts.channels.base import DeliveryError, Outgoing
from monitor.alerts.outbox import Sender, retry_delay
from monitor.alerts.test import queue_test_alert
from monitor.config.model import Config
from monitor.demo.simulator import FakeProvider, Reply
from monitor.domain.alert_event import AlertEvent
from monitor.domain.evidence import Outcome
from monitor.store import open_database
from monitor.store.models import AlertAttemptRecord, AlertRecord
from tests import test_crash_safety as crash
from tests.helpers import make_config
from tests.test_launch import start_cli, wait_for
from tests.test_loop_outbox import Clock
from tests.test_loop_writer import T0, result

SIGNING_KEY = "whsec-9f8e7d6c5b4a-signing"
HOOK_PATH = "/hooks/T0-secret-path-4b1d9c"  # a token in the path, as real webhook URLs have


# ---------------------------------------------------------------- a real receiver


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Answer = tuple[int, bytes, dict[str, str]]  # status, body, headers


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST and answers from `script` (then
    `default`); `check` may answer instead (a validator); `down()`/`up()` for outages."""

    script: list[Answer] = field(default_factory=list)
    default: Answer = (200, b"ok", {})
    check: Callable[[Received], Answer | None] | None = None
    delay: float = 0.0  # seconds before answering (a hung receiver)
    received: list[Received] = field(default_factory=list)
    accepted: list[tuple[Received, float]] = field(default_factory=list)  # 2xx, and when

    def __post_init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{HOOK_PATH}"

    def answer(self, request: Received) -> Answer:
        self.received.append(request)
        if self.delay:
            time.sleep(self.delay)
        if self.check is not None and (verdict := self.check(request)) is not None:
            return verdict
        answer = self.script.pop(0) if self.script else self.default
        if 200 <= answer[0] < 300:
            self.accepted.append((request, time.time()))
        return answer

    def up(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if len(raw) < length:
                    return  # the sender died mid-body (kill -9): no request, as for any server
                request = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                status, body, headers = receiver.answer(request)
                with contextlib.suppress(OSError):  # a killed sender hears no answer
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test reads `received`

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box = Receiver().up()
    yield box
    box.down()


# ---------------------------------------------------------------- the pipeline under test


def webhook_config(url: str, *, signed: bool = True, **extra: Any) -> Config:
    settings: dict[str, Any] = {"url": url, "timeout": "2s"}
    if signed:
        settings["secret_env"] = "HOOK_KEY"
    return make_config(
        [{"name": "t0", "kind": "hf-legacy", "model": "gpt2", "base_url": "http://x"}],
        env=ENV,
        alerts={"webhook": settings, "dashboard_url": "http://dash:8501", **extra},
    )


ENV = {"HOOK_KEY": SIGNING_KEY}
REPLACEMENT = {"replacement_url": "https://router.huggingface.co"}


def outage_alert(
    db_url: str, config: Config, clock: Clock, env: dict[str, str] | None = None
) -> Sender:
    """ok, ok, then a confirmed 410: one transition alert per channel, in the outbox."""
    engine = open_database(db_url)
    writer = Writer(engine, config, clock=clock)
    writer.start_run()
    outcomes = [Outcome.OK, Outcome.OK, Outcome.DEPRECATED, Outcome.DEPRECATED]
    for i, outcome in enumerate(outcomes):
        probe = result("t0", outcome, T0 + timedelta(minutes=i))
        if outcome is Outcome.DEPRECATED:
            probe = dataclasses.replace(probe, facts=REPLACEMENT)
        writer.write_batch([probe])
    return Sender(engine, config, env=ENV if env is None else env, clock=clock)


def alerts(sender: Sender, channel: str | None = None) -> list[AlertRecord]:
    with Session(sender.engine) as s:
        rows = list(s.scalars(select(AlertRecord).order_by(AlertRecord.id)))
    return [a for a in rows if channel is None or a.channel == channel]


def attempts(sender: Sender, alert_id: int) -> list[AlertAttemptRecord]:
    with Session(sender.engine) as s:
        query = select(AlertAttemptRecord).where(AlertAttemptRecord.alert_id == alert_id)
        return list(s.scalars(query.order_by(AlertAttemptRecord.id)))


def deliver_due(sender: Sender) -> None:
    for alert_id in sender.due():
        sender.deliver(alert_id)


def verified(request: Received) -> bool:
    expected = hmac.new(SIGNING_KEY.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(
        request.headers.get("x-inferwatch-signature", ""), f"sha256={expected}"
    )


# ---------------------------------------------------------------- payload and signature


def test_a_confirmed_transition_arrives_signed_with_every_field(
    db_url: str, receiver: Receiver
) -> None:
    clock = Clock()
    sender = outage_alert(db_url, webhook_config(receiver.url), clock)
    (alert,) = alerts(sender)

    deliver_due(sender)

    (request,) = receiver.received
    assert request.path == HOOK_PATH
    assert verified(request)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith(f"inferwatch/{__version__} ")
    assert request.headers["x-inferwatch-delivery"] == alert.message_id.strip("<>")
    body = request.json()
    assert body["event"] == body["reason"] == "transition"
    assert body["target"] == "t0" and body["kind"] == "hf-legacy"
    assert (body["from_outcome"], body["to_outcome"]) == ("ok", "deprecated")
    assert body["label"] == "ok → deprecated (410)"
    assert body["subject"] == alert.subject
    assert body["http_status"] == 410 and "no longer supported" in body["detail"]
    assert body["hint"] == "switch to https://router.huggingface.co"
    assert body["facts"] == REPLACEMENT
    assert body["request_id"] == "Root=1-abc" and body["provider"] == "hf-inference"
    assert body["at"] == "2026-11-01T09:03:00Z" and body["since"] == "2026-11-01T09:02:00Z"
    assert isinstance(body["incident_id"], int)
    assert body["dashboard_url"] == "http://dash:8501/target?name=t0"
    assert body["incident_url"] == f"http://dash:8501/incident?id={body['incident_id']}"
    (only,) = alerts(sender)
    assert only.status == "sent" and only.attempts == 1


def test_a_signature_covers_the_exact_bytes() -> None:
    body = b'{"event":"test"}'
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert webhook.signature("k", body) == f"sha256={expected}"
    assert webhook.signature("k", body + b" ") != webhook.signature("k", body)


def test_without_a_secret_no_signature_is_sent(db_url: str, receiver: Receiver) -> None:
    sender = outage_alert(db_url, webhook_config(receiver.url, signed=False), Clock(), env={})
    deliver_due(sender)
    (request,) = receiver.received
    assert "x-inferwatch-signature" not in request.headers
    assert request.json()["event"] == "transition"


def test_flapping_is_one_event_and_the_reason_says_which() -> None:
    event = AlertEvent.from_json(
        {
            "reason": "flapping_started",
            "target": "t",
            "kind": "http",
            "url": "http://x",
            "label": "flapping",
            "at": "2026-11-01T09:00:00",
            "to_outcome": "server_error",
        }
    )
    stopped = dataclasses.replace(event, reason="flapping_stopped")
    assert webhook.payload(event)["event"] == webhook.payload(stopped)["event"] == "flapping"
    assert (webhook.payload(event)["reason"], webhook.payload(stopped)["reason"]) == (
        "flapping_started",
        "flapping_stopped",
    )
    assert webhook.payload(event)["at"] == "2026-11-01T09:00:00Z"  # naive times are UTC
    quiet = webhook.payload(dataclasses.replace(event, reason="quiet_ended"))
    assert quiet["event"] == quiet["reason"] == "quiet_ended"  # later reasons pass through


def test_a_test_alert_is_a_test_event(db_url: str, receiver: Receiver) -> None:
    config = webhook_config(receiver.url)
    sender = Sender(open_database(db_url), config, env=ENV)
    alert_id = queue_test_alert(sender.engine, config, "webhook")

    assert sender.deliver(alert_id)

    (request,) = receiver.received
    assert verified(request)
    body = request.json()
    assert body["event"] == "test" and body["dashboard_url"] == "http://dash:8501"
    assert body["incident_url"] is None


# ---------------------------------------------------------------- outages and answers


def test_an_outage_then_recovery_delivers_once_with_one_delivery_id(
    db_url: str, receiver: Receiver
) -> None:
    clock = Clock()
    sender = outage_alert(db_url, webhook_config(receiver.url), clock)
    (alert,) = alerts(sender)
    receiver.down()

    deliver_due(sender)  # connection refused
    receiver.up()
    receiver.script = [(503, b"upstream down", {}), (503, b"upstream down", {})]
    for attempt in range(1, 4):  # 503, 503, then the default 200
        clock.advance(retry_delay(attempt))
        deliver_due(sender)
    clock.advance(3600)
    deliver_due(sender)  # nothing left to send

    assert len(receiver.received) == 3  # the first attempt never reached it
    assert {r.headers["x-inferwatch-delivery"] for r in receiver.received} == {
        alert.message_id.strip("<>")
    }
    assert all(verified(r) for r in receiver.received)
    log = attempts(sender, alert.id)
    assert [a.ok for a in log] == [False, False, False, True]
    assert log[0].error.startswith("could not reach the webhook: ")
    assert "refused" in log[0].error.lower()
    assert [a.error for a in log[1:3]] == ["the webhook answered 503: upstream down"] * 2
    (sent,) = alerts(sender)
    assert sent.status == "sent" and sent.attempts == 4


def test_a_429_is_retried_no_sooner_than_its_retry_after(db_url: str, receiver: Receiver) -> None:
    clock = Clock()
    sender = outage_alert(db_url, webhook_config(receiver.url), clock)
    receiver.script = [(429, b"slow down", {"Retry-After": "7"})]

    deliver_due(sender)
    (alert,) = alerts(sender)
    assert alert.status == "pending"
    assert alert.last_error == "the webhook answered 429: slow down (Retry-After: 7)"

    clock.advance(retry_delay(1))  # our own backoff (5 s) would try now; the receiver said 7
    deliver_due(sender)
    assert len(receiver.received) == 1

    clock.advance(2)
    deliver_due(sender)
    (alert,) = alerts(sender)
    assert alert.status == "sent" and len(receiver.received) == 2


@pytest.mark.parametrize(
    ("status", "body", "recorded"),
    [
        (404, b"<html><body>\n<h1>No such hook</h1>\n</body></html>", "404: <html><body> <h1>No"),
        (400, b'{"error": "unknown field: event"}', '400: {"error": "unknown field: event"}'),
        (301, b"", "301; it redirects elsewhere"),
    ],
)
def test_a_refusal_fails_for_good_with_the_receivers_answer(
    db_url: str, receiver: Receiver, status: int, body: bytes, recorded: str
) -> None:
    clock = Clock()
    sender = outage_alert(db_url, webhook_config(receiver.url), clock)
    receiver.default = (status, body, {"Location": "http://elsewhere/"} if status == 301 else {})

    deliver_due(sender)
    clock.advance(3600)
    deliver_due(sender)

    assert len(receiver.received) == 1
    (alert,) = alerts(sender)
    assert alert.status == "failed"
    assert alert.last_error.startswith(f"the webhook answered {recorded}")
    assert [a.ok for a in attempts(sender, alert.id)] == [False]


def test_the_answers_that_are_worth_a_retry() -> None:
    temporary = [
        s
        for s in (200, 301, 400, 401, 403, 404, 408, 410, 422, 429, 500, 502, 503)
        if http_post.Answer(s, "").temporary
    ]
    assert temporary == [408, 429, 500, 502, 503]


def test_a_long_answer_is_kept_as_one_short_line(db_url: str, receiver: Receiver) -> None:
    sender = outage_alert(db_url, webhook_config(receiver.url), Clock())
    receiver.default = (422, b"bad\n\n" + b"x" * 100_000, {})
    deliver_due(sender)
    (alert,) = alerts(sender)
    assert alert.status == "failed"
    answer = alert.last_error.removeprefix("the webhook answered 422: ")
    assert answer.startswith("bad xxx") and len(answer) <= http_post.EXCERPT
    assert "\n" not in answer


def test_a_receiver_that_hangs_is_a_temporary_failure(db_url: str) -> None:
    hung = Receiver(delay=2.5).up()
    try:
        config = webhook_config(hung.url)
        sender = outage_alert(db_url, config, Clock())
        # The flush's budget (the factory's timeout cap) bounds the POST below its own 2 s.
        (alert,) = alerts(sender)
        started = time.monotonic()
        sender.deliver(alert.id, 1.0)
        took = time.monotonic() - started
    finally:
        hung.down()
    (alert,) = alerts(sender)
    assert alert.status == "pending"
    assert alert.last_error == "could not reach the webhook: no answer within 1 s"
    assert took < 2.0


def test_a_missing_signing_key_is_a_clear_error(db_url: str, receiver: Receiver) -> None:
    sender = outage_alert(db_url, webhook_config(receiver.url), Clock(), env={})
    deliver_due(sender)
    (alert,) = alerts(sender)
    assert alert.status == "failed" and receiver.received == []
    assert "HOOK_KEY (alerts.webhook.secret_env) is not set" in alert.last_error


def test_a_row_without_an_event_is_refused_for_good() -> None:
    row = Outgoing(recipients=(), message_id="<x@inferwatch>", event=None, subject="old")
    channel = webhook.channel(webhook_config("http://127.0.0.1:9/h"), ENV)
    with pytest.raises(DeliveryError, match="only email can send it") as raised:
        channel.render(row)
    assert raised.value.permanent


# ---------------------------------------------------------------- secrets


def test_no_secret_reaches_the_database_or_the_logs(
    db_url: str, receiver: Receiver, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A proxy's error page that echoes the URL, a refused connection and a success: the
    hook's URL and path and the signing key are in no row, no attempt and no log line."""
    clock = Clock()
    echo = f"502 Bad Gateway: could not forward to {receiver.url}?key={SIGNING_KEY}".encode()
    receiver.script = [(502, echo, {})]
    with caplog.at_level(logging.DEBUG):
        sender = outage_alert(db_url, webhook_config(receiver.url), clock)
        deliver_due(sender)  # 502 with the URL echoed
        receiver.down()
        clock.advance(retry_delay(1))
        deliver_due(sender)  # refused
        receiver.up()
        clock.advance(retry_delay(2))
        deliver_due(sender)  # 200

    (alert,) = alerts(sender)
    assert alert.status == "sent"
    errors = [a.error for a in attempts(sender, alert.id)]
    assert errors[0].startswith("the webhook answered 502: ") and "***" in errors[0]
    dump = "\n".join(sqlite3.connect(db_url.removeprefix("sqlite:///")).iterdump())
    assert "the webhook answered 502" in dump  # the dump does hold the delivery log
    for secret in (receiver.url, HOOK_PATH, SIGNING_KEY):
        assert secret not in dump
        assert secret not in caplog.text
    assert "not sent" in caplog.text  # the sender did log the failures


# ---------------------------------------------------------------- kill -9


def test_no_webhook_alert_is_lost_or_doubled_across_kill_9(
    tmp_path: Path, provider: FakeProvider, receiver: Receiver
) -> None:
    """`inferwatch run` killed with SIGKILL while it POSTs alerts, then one clean run: every
    alert arrives, and a copy is forgiven only with a kill right at its first arrival (the
    milliseconds between the receiver's 200 and our COMMIT; the copy has the same id)."""
    crash.stable["on"] = False
    flipping, kills = 6, 6
    for i in range(flipping):
        provider.route(f"/flip{i}", crash._alternating(i * 0.1))
    provider.route("/steady", Reply(200, "ok"))
    targets = [
        {"name": f"flip{i}", "kind": "http", "url": f"{provider.url}/flip{i}"}
        for i in range(flipping)
    ] + [{"name": f"steady{i}", "kind": "http", "url": f"{provider.url}/steady"} for i in range(20)]
    db = tmp_path / "crash.db"
    config = tmp_path / "inferwatch.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": f"sqlite:///{db}",
                "defaults": {
                    "interval": "200ms",
                    "timeout": "400ms",
                    "failure_threshold": 1,
                    "success_threshold": 1,
                },
                "alerts": {"webhook": {"url": receiver.url, "secret_env": "HOOK_KEY"}},
                "targets": targets,
            }
        )
    )

    def sent() -> int:
        try:
            return crash._query(db, "select count(*) from alerts where status = 'sent'")[0][0]
        except sqlite3.OperationalError:
            return 0

    pace = random.Random(11)
    killed_at: list[float] = []
    for kill in range(kills):
        log = tmp_path / f"run{kill}.log"
        proc = start_cli(["run", "-c", str(config)], log, env=ENV)
        try:
            before = sent()
            wait_for(lambda b=before: sent() > b, proc, log, timeout=30)
            time.sleep(pace.uniform(0.0, 0.4))
        finally:
            proc.send_signal(signal.SIGKILL)
            killed_at.append(time.time())
            proc.wait(timeout=10)

    crash.stable["on"] = True  # every target recovers: the last run drains the outbox
    log = tmp_path / "final.log"
    asked = len(provider.requests)
    proc = start_cli(["run", "-c", str(config)], log, env=ENV)
    try:
        wait_for(
            lambda: (
                # It probes, so it is running and takes SIGTERM as a clean stop.
                len(provider.requests) > asked
                and crash._query(db, "select count(*) from alerts where status != 'sent'")[0][0]
                == 0
                and crash._settled(db)
            ),
            proc,
            log,
            timeout=45,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()

    stored = {mid.strip("<>") for (mid,) in crash._query(db, "select message_id from alerts")}
    arrivals: dict[str, list[float]] = {}
    for request, at in receiver.accepted:
        assert verified(request)
        arrivals.setdefault(request.headers["x-inferwatch-delivery"], []).append(at)
    assert len(stored) >= kills, "too few alerts to say anything"
    assert set(arrivals) == stored, f"lost: {stored - set(arrivals)}"
    doubled = {mid: times for mid, times in arrivals.items() if len(times) > 1}
    unexplained = {
        mid: min((k - times[0] for k in killed_at), key=abs)
        for mid, times in doubled.items()
        if min(abs(k - times[0]) for k in killed_at) >= crash.UNAVOIDABLE
    }
    assert not unexplained, f"doubled with no kill near the first copy: {unexplained}"
    # A kill can land in that window at most once each (under load the window is wider).
    assert len(doubled) <= kills, f"{len(doubled)} of {len(stored)} alerts doubled"

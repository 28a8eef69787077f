"""The email channel: rendering as tables of events, delivery against a real local SMTP server."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword

from monitor.alerts.channels import open_channel
from monitor.alerts.channels.base import Outgoing
from monitor.alerts.channels.email import (
    DeliveryError,
    EmailChannel,
    ProbeLine,
    RenderedEmail,
    render,
    send,
    subject_for,
)
from monitor.config.model import EmailSettings
from monitor.domain.alert_event import AlertEvent
from tests.helpers import make_config

AT = datetime(2026, 11, 22, 14, 5, 3, tzinfo=UTC)
SINCE = AT - timedelta(minutes=2)
DETAIL_410 = "Model is deprecated. Please use https://router.huggingface.co instead."
HINT_410 = "switch to https://router.huggingface.co (named by the provider as the replacement)"

RECENT = (
    ProbeLine(AT, "deprecated", 410, 123.4, DETAIL_410),
    ProbeLine(SINCE, "deprecated", 410, 98.0, DETAIL_410),
    ProbeLine(SINCE - timedelta(minutes=1), "ok", 200, 87.0, ""),
)


def alert(**changes: Any) -> AlertEvent:
    """A deprecation confirmed at AT; tests change only what they are about."""
    base = AlertEvent(
        reason="transition",
        target="minilm-embeddings",
        kind="hf-inference",
        url="https://api-inference.huggingface.co/models/sentence-transformers/all-MiniLM-L6-v2",
        from_outcome="ok",
        to_outcome="deprecated",
        label="ok → deprecated (410)",
        at=AT,
        since=SINCE,
        http_status=410,
        detail=DETAIL_410,
        hint=HINT_410,
        warning="",
        request_id="req-7f3a",
        provider="hf-inference",
        latency_ms=123.4,
        recent=RECENT,
        dashboard_url="https://status.example.com/",
    )
    return dataclasses.replace(base, **changes)


RECOVERY = {
    "from_outcome": "deprecated",
    "to_outcome": "ok",
    "label": "recovered after 2h 14m",
    "http_status": 200,
    "detail": "",
    "hint": "",
}

# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize(
    ("changes", "subject"),
    [
        ({}, "[inferwatch] minilm-embeddings: ok → deprecated (410)"),
        (RECOVERY, "[inferwatch] minilm-embeddings: deprecated → ok (recovered after 2h 14m)"),
        (
            {
                "from_outcome": None,
                "to_outcome": "auth_missing",
                "label": "first probe: auth_missing (401)",
            },
            "[inferwatch] minilm-embeddings: first probe: auth_missing (401)",
        ),
        (
            {"reason": "reminder", "incident_opened_at": AT - timedelta(hours=3, minutes=10)},
            "[inferwatch] reminder: minilm-embeddings still deprecated (open for 3h 10m)",
        ),
        (
            {"reason": "reminder", "incident_opened_at": None, "since": None},
            "[inferwatch] reminder: minilm-embeddings still deprecated",
        ),
        ({"reason": "flapping_started"}, "[inferwatch] minilm-embeddings is flapping"),
        (
            {"reason": "flapping_stopped", "to_outcome": "ok"},
            "[inferwatch] minilm-embeddings stopped flapping: now ok",
        ),
        ({"reason": "test"}, "[inferwatch] test alert"),
        (
            {"label": "ok → not_found (404)\nBcc: someone@example.com"},
            "[inferwatch] minilm-embeddings: ok → not_found (404) Bcc: someone@example.com",
        ),
    ],
)
def test_subject_per_reason(changes: dict[str, Any], subject: str) -> None:
    ctx = alert(**changes)
    assert subject_for(ctx) == subject
    assert render(ctx).subject == subject


def test_long_subject_is_cut_to_one_readable_line() -> None:
    subject = subject_for(alert(label="ok → client_error (400): " + "x" * 500))
    assert len(subject) == 200
    assert subject.endswith("…")


def test_unknown_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown alert reason 'transitoin'"):
        alert(reason="transitoin")


@pytest.mark.parametrize("part", ["text", "html"])
def test_body_carries_evidence_hint_probes_and_link(part: str) -> None:
    body = getattr(render(alert(warning="Sunset: 2027-01-31")), part)
    for expected in [
        DETAIL_410,
        "What to do:",
        HINT_410,
        "Sunset: 2027-01-31",
        "req-7f3a",
        "hf-inference",
        "123 ms",  # latest probe, and the first row of the recent probes
        "98 ms",
        "2026-11-22 14:02:03",  # the oldest recent probe
        "https://status.example.com/target?name=minilm-embeddings",
    ]:
        assert expected in body, expected


def test_text_says_what_changed_and_when() -> None:
    text = render(alert()).text
    assert "changed from ok to deprecated" in text
    assert "Since:         2026-11-22 14:03:03 UTC" in text
    assert "Confirmed:     2026-11-22 14:05:03 UTC (2m after it began)" in text
    assert re.search(r"2026-11-22 14:05:03 UTC +deprecated +410 +123 ms +Model is", text)


def test_reminder_says_how_long_the_incident_is_open() -> None:
    opened = AT - timedelta(hours=3, minutes=10)
    email_ = render(alert(reason="reminder", incident_opened_at=opened))
    for body in (email_.text, email_.html):
        assert "still" in body
        assert "2026-11-22 10:55:03 UTC (for 3h 10m)" in body


def test_flapping_notices_explain_the_silence() -> None:
    started = render(alert(reason="flapping_started")).text
    assert "not emailed" in started
    stopped = render(alert(reason="flapping_stopped", to_outcome="rate_limited")).text
    assert "stopped flapping and is now rate_limited" in stopped


def test_test_alert_needs_no_target() -> None:
    ctx = alert(
        reason="test",
        target="",
        kind="",
        url="",
        from_outcome=None,
        to_outcome=None,
        label="",
        since=None,
        http_status=None,
        detail="",
        hint="",
        request_id=None,
        provider=None,
        latency_ms=None,
        recent=(),
    )
    rendered = render(ctx)
    assert "email alerts work" in rendered.text
    assert "email alerts work" in rendered.html
    assert "https://status.example.com\n" in rendered.text  # the base URL, no target query


def test_test_alert_shows_no_evidence_and_links_the_dashboard_home() -> None:
    ctx = alert(reason="test", target="inferwatch", detail="delivery works", recent=())
    rendered = render(ctx)
    assert "Provider said" not in rendered.text
    assert "delivery works" in rendered.text
    assert "Dashboard: https://status.example.com\n" in rendered.text
    assert 'href="https://status.example.com"' in rendered.html


def test_no_dashboard_link_when_not_configured() -> None:
    rendered = render(alert(dashboard_url=None))
    assert "Dashboard" not in rendered.text
    assert "dashboard" not in rendered.html.lower()


def test_dashboard_link_quotes_the_target_name() -> None:
    rendered = render(alert(target="org/model v2", dashboard_url="https://s.example.com"))
    assert "https://s.example.com/target?name=org%2Fmodel%20v2" in rendered.text


def test_an_alert_of_an_incident_links_its_page_next_to_the_target() -> None:
    rendered = render(alert(incident_id=42))
    assert "Dashboard: https://status.example.com/target?name=minilm-embeddings\n" in rendered.text
    assert "Incident: https://status.example.com/incident?id=42\n" in rendered.text
    assert 'href="https://status.example.com/incident?id=42"' in rendered.html
    assert "Open the incident" in rendered.html
    # Without an incident, or without the dashboard's URL, no incident link.
    assert "incident?id=" not in render(alert()).text + render(alert()).html
    bare = render(alert(incident_id=42, dashboard_url=None))
    assert "incident?id=" not in bare.text + bare.html


def test_html_escapes_provider_text() -> None:
    rendered = render(alert(detail="<script>alert('x')</script> & more", hint="use <b>v2</b>"))
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in rendered.html
    assert "use &lt;b&gt;v2&lt;/b&gt;" in rendered.html
    assert "<script>alert('x')</script> & more" in rendered.text  # plain text stays literal


@pytest.mark.parametrize("changes", [{}, RECOVERY, {"reason": "reminder"}, {"reason": "test"}])
def test_text_has_no_html_tags(changes: dict[str, Any]) -> None:
    assert not re.search(r"</?[a-zA-Z][^>]*>", render(alert(**changes)).text)


@pytest.mark.parametrize(
    ("to_outcome", "colour"),
    [("deprecated", "#cf222e"), ("rate_limited", "#b58100"), ("ok", "#1a7f37")],
)
def test_html_colour_follows_outcome_class(to_outcome: str, colour: str) -> None:
    html = render(alert(to_outcome=to_outcome)).html
    assert f"border-top:6px solid {colour}" in html


def test_times_are_shown_in_utc() -> None:
    berlin = timezone(timedelta(hours=1))
    text = render(alert(at=AT.astimezone(berlin), since=SINCE.replace(tzinfo=None))).text
    assert "Confirmed:     2026-11-22 14:05:03 UTC" in text
    assert "Since:         2026-11-22 14:03:03 UTC" in text


def test_facts_and_incident_change_no_word_of_the_email() -> None:
    """What the event adds for other channels leaves the email as it always was, but for the
    link to the incident's page."""
    plain = render(alert())
    richer = render(
        alert(
            facts={"replacement_url": "https://router.huggingface.co"},
            incident_id=3,
            incident_opened_at=SINCE - timedelta(hours=1),
        )
    )
    link = "https://status.example.com/incident?id=3"
    assert richer.subject == plain.subject
    assert richer.text.replace(f"Incident: {link}\n", "") == plain.text
    assert re.sub(
        r' <a href="[^"]*incident\?id=3"[^>]*>Open the incident</a>', "", richer.html
    ) == (plain.html)


# ---------------------------------------------------------------- the channel


def outgoing(event: AlertEvent | None, subject: str, text: str = "", html: str = "") -> Outgoing:
    return Outgoing(("ops@example.com",), "<a@b>", event, subject, text, html)


def test_the_channel_renders_the_event_when_it_sends() -> None:
    channel = EmailChannel(settings(25), {})
    assert channel.render(outgoing(alert(), subject="ignored")) == render(alert())


def test_a_row_from_before_events_sends_its_stored_rendering() -> None:
    channel = EmailChannel(settings(25), {})
    assert channel.render(
        outgoing(None, "[inferwatch] old", "old text\n", "<p>old</p>")
    ) == RenderedEmail("[inferwatch] old", "old text\n", "<p>old</p>")


def test_the_email_channel_needs_its_settings() -> None:
    targets = [{"name": "a", "kind": "http", "url": "http://a/"}]
    with pytest.raises(DeliveryError, match=r"no alerts\.email server") as caught:
        open_channel("email", make_config(targets), {})
    assert caught.value.permanent is False  # a reload may add them
    with pytest.raises(DeliveryError, match="unknown alert channel 'pager'") as caught:
        open_channel("pager", make_config(targets), {})
    assert caught.value.permanent is True
    email_config = make_config(targets, alerts={"email": settings(25).model_dump()})
    capped = open_channel("email", email_config, {}, timeout=1.5)
    assert isinstance(capped, EmailChannel) and capped.settings.timeout == 1.5


# ---------------------------------------------------------------- delivery


class Collector:
    """Accepts everything and keeps the envelopes."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


class RefuseData(Collector):
    def __init__(self, answer: str) -> None:
        super().__init__()
        self.answer = answer

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        return self.answer


class RefuseRecipients(Collector):
    """Refuses the addresses in `answers`, accepts the others."""

    def __init__(self, answers: dict[str, str]) -> None:
        super().__init__()
        self.answers = answers

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.answers:
            return self.answers[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"


@contextmanager
def smtp_server(handler: Any, port: int, **options: Any) -> Iterator[Controller]:
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def settings(port: int, **changes: Any) -> EmailSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "sender": "inferwatch@example.com",
        "recipients": ["ops@example.com"],
        "timeout": 3,
    }
    return EmailSettings(**(values | changes))


RENDERED = RenderedEmail(
    subject="[inferwatch] t: ok → deprecated (410)", text="hi\n", html="<p>hi</p>"
)
OPS = ["ops@example.com", "ml@example.com"]


def received(handler: Collector) -> EmailMessage:
    (envelope,) = handler.envelopes
    return email.message_from_bytes(envelope.original_content, policy=email.policy.default)


def test_delivers_multipart_message_with_the_given_id(free_port: int) -> None:
    handler = Collector()
    rendered = render(alert())
    with smtp_server(handler, free_port):
        send(settings(free_port), {}, OPS, rendered, "<alert-42@inferwatch>")

    (envelope,) = handler.envelopes
    assert envelope.mail_from == "inferwatch@example.com"
    assert envelope.rcpt_tos == OPS
    message = received(handler)
    assert message["Subject"] == "[inferwatch] minilm-embeddings: ok → deprecated (410)"
    assert message["From"].addresses[0].addr_spec == "inferwatch@example.com"
    assert [a.addr_spec for a in message["To"].addresses] == OPS
    assert message["Message-ID"] == "<alert-42@inferwatch>"
    assert message["Date"] is not None
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain.get_content().replace("\r\n", "\n") == rendered.text
    assert html.get_content().replace("\r\n", "\n") == rendered.html


def test_bare_message_id_gets_angle_brackets(free_port: int) -> None:
    handler = Collector()
    with smtp_server(handler, free_port):
        send(settings(free_port), {}, OPS, RENDERED, "alert-43@inferwatch")
    assert received(handler)["Message-ID"] == "<alert-43@inferwatch>"


@pytest.mark.parametrize(
    ("handler", "permanent", "answer"),
    [
        (RefuseData("451 4.3.0 try later"), False, "451 4.3.0 try later"),
        (RefuseData("554 5.6.0 message rejected"), True, "554 5.6.0 message rejected"),
        (RefuseRecipients({a: "450 4.2.1 mailbox busy" for a in OPS}), False, "450 4.2.1"),
        (RefuseRecipients({a: "550 5.1.1 no such user" for a in OPS}), True, "550 5.1.1"),
        (
            RefuseRecipients({OPS[0]: "451 4.3.0 later", OPS[1]: "550 5.1.1 no such user"}),
            True,
            "550 5.1.1",
        ),
    ],
)
def test_server_answers_decide_whether_to_retry(
    free_port: int, handler: Collector, permanent: bool, answer: str
) -> None:
    with smtp_server(handler, free_port), pytest.raises(DeliveryError) as caught:
        send(settings(free_port), {}, OPS, RENDERED, "<a@b>")
    assert caught.value.permanent is permanent
    assert f"127.0.0.1:{free_port}" in str(caught.value)
    assert answer in str(caught.value)


def test_partly_refused_recipients_are_reported(free_port: int) -> None:
    handler = RefuseRecipients({"ml@example.com": "550 5.1.1 no such user"})
    with smtp_server(handler, free_port), pytest.raises(DeliveryError) as caught:
        send(settings(free_port), {}, OPS, RENDERED, "<a@b>")
    assert caught.value.permanent is True
    assert "delivered to the other recipients" in str(caught.value)
    assert "ml@example.com: 550 5.1.1 no such user" in str(caught.value)
    assert received(handler)["To"] is not None  # ops@ still got it


def test_connection_refused_is_temporary(free_port: int) -> None:
    with pytest.raises(DeliveryError) as caught:
        send(settings(free_port), {}, OPS, RENDERED, "<a@b>")
    assert caught.value.permanent is False
    assert f"127.0.0.1:{free_port}" in str(caught.value)


def test_ssl_against_a_plain_server_is_temporary(free_port: int) -> None:
    with smtp_server(Collector(), free_port), pytest.raises(DeliveryError) as caught:
        send(settings(free_port, security="ssl"), {}, OPS, RENDERED, "<a@b>")
    assert caught.value.permanent is False
    assert "port 465 usually means security: ssl" in str(caught.value)


def test_starttls_refused_by_a_plain_server_is_permanent(free_port: int) -> None:
    with smtp_server(Collector(), free_port), pytest.raises(DeliveryError) as caught:
        send(settings(free_port, security="starttls"), {}, OPS, RENDERED, "<a@b>")
    assert caught.value.permanent is True
    assert "STARTTLS" in str(caught.value)


# ---------------------------------------------------------------- login


class Logins:
    """An aiosmtpd authenticator that accepts alice/s3cret and remembers every attempt."""

    def __init__(self) -> None:
        self.attempts: list[tuple[bytes, bytes]] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.attempts.append((data.login, data.password))
        accepted = (data.login, data.password) == (b"alice", b"s3cret")
        return AuthResult(success=accepted, handled=False)  # handled=False: aiosmtpd replies 535


LOGIN = {"username_env": "SMTP_USER", "password_env": "SMTP_PASSWORD"}


def auth_server(handler: Collector, port: int, logins: Logins) -> Any:
    return smtp_server(handler, port, authenticator=logins, auth_require_tls=False)


def test_login_reads_username_and_password_from_env(free_port: int) -> None:
    handler, logins = Collector(), Logins()
    env = {"SMTP_USER": "alice", "SMTP_PASSWORD": "s3cret"}
    with auth_server(handler, free_port, logins):
        send(settings(free_port, **LOGIN), env, OPS, RENDERED, "<a@b>")
    assert logins.attempts == [(b"alice", b"s3cret")]
    assert len(handler.envelopes) == 1


def test_no_login_without_login_variables(free_port: int) -> None:
    handler, logins = Collector(), Logins()
    with auth_server(handler, free_port, logins):
        send(settings(free_port), {"SMTP_PASSWORD": "unused"}, OPS, RENDERED, "<a@b>")
    assert logins.attempts == []
    assert len(handler.envelopes) == 1


def test_wrong_password_is_permanent_and_not_echoed(free_port: int) -> None:
    env = {"SMTP_USER": "alice", "SMTP_PASSWORD": "hunter2-wrong"}
    with auth_server(Collector(), free_port, Logins()), pytest.raises(DeliveryError) as caught:
        send(settings(free_port, **LOGIN), env, OPS, RENDERED, "<a@b>")
    assert caught.value.permanent is True
    message = str(caught.value)
    assert "535" in message
    assert "$SMTP_USER" in message
    assert "hunter2-wrong" not in message
    assert "alice" not in message


@pytest.mark.parametrize(
    ("env", "missing"),
    [({"SMTP_USER": "alice"}, "SMTP_PASSWORD"), ({"SMTP_PASSWORD": "s3cret"}, "SMTP_USER")],
)
def test_missing_login_variable_is_permanent_and_named(
    free_port: int, env: dict[str, str], missing: str
) -> None:
    # No server: the config problem is reported before any connection is tried.
    with pytest.raises(DeliveryError) as caught:
        send(settings(free_port, **LOGIN), env, OPS, RENDERED, "<a@b>")
    assert caught.value.permanent is True
    assert f"environment variable {missing}" in str(caught.value)
    for value in env.values():
        assert value not in str(caught.value)


@pytest.mark.parametrize("half", [{"username_env": "SMTP_USER"}, {"password_env": "SMTP_PASSWORD"}])
def test_half_a_login_is_a_config_error(free_port: int, half: dict[str, str]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="username_env and password_env go together"):
        settings(free_port, **half)


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) from a throwaway CA."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def test_starttls_delivers(free_port: int, tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_context, client_context = tls
    handler = Collector()
    options = {"tls_context": server_context, "require_starttls": True}
    with smtp_server(handler, free_port, **options):
        send(
            settings(free_port, security="starttls"),
            {},
            OPS,
            RENDERED,
            "<a@b>",
            ssl_context=client_context,
        )
    assert len(handler.envelopes) == 1


def test_implicit_ssl_delivers(free_port: int, tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_context, client_context = tls
    handler = Collector()
    with smtp_server(handler, free_port, ssl_context=server_context):
        send(
            settings(free_port, security="ssl"),
            {},
            OPS,
            RENDERED,
            "<a@b>",
            ssl_context=client_context,
        )
    assert len(handler.envelopes) == 1


def test_untrusted_certificate_is_refused(
    free_port: int, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_context, _ = tls
    with (
        smtp_server(Collector(), free_port, ssl_context=server_context),
        pytest.raises(DeliveryError) as caught,
    ):
        send(settings(free_port, security="ssl"), {}, OPS, RENDERED, "<a@b>")
    assert "certificate" in str(caught.value).lower()
    assert caught.value.permanent is False

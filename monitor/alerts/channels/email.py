"""The email channel: render an alert event (pure, Jinja2) and hand it to an SMTP server.

Rendering knows nothing about SMTP and sending knows nothing about alerts, so the wording can be
tested without a server and the delivery without templates. The outbox renders each event when
it sends it (`EmailChannel`, the interface of monitor/alerts/channels/base.py). `send` blocks
(smtplib); the caller runs it in a thread and decides, from `DeliveryError.permanent`, whether
to retry.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from monitor.alerts.channels.base import DeliveryError, Guard, Outgoing
from monitor.alerts.channels.common import (
    dashboard_link,
    evidence_rows,
    incident_link,
    latency_text,
    outcome_colour,
    utc_time,
)
from monitor.config.model import Config, EmailSettings
from monitor.domain.alert_event import (
    AlertEvent,
    ProbeLine,
    open_span,
    span_between,
    subject_for,
    transition_summary,
)
from monitor.domain.text import one_line


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


# How long a guarded DATA may take: the guard may hold a database lock meanwhile.
GUARDED_DATA_TIMEOUT = 10.0


# ---------------------------------------------------------------- rendering


def _is_html_template(name: str | None) -> bool:
    return name is not None and name.endswith(".html.j2")


_templates = Environment(
    loader=PackageLoader("monitor.alerts.channels", "templates"),
    autoescape=_is_html_template,
    undefined=StrictUndefined,  # a misspelt variable fails the tests instead of vanishing
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


_templates.filters.update(utc=utc_time, latency=latency_text, colour=outcome_colour)


def render(ctx: AlertEvent) -> RenderedEmail:
    """Subject, plain text and HTML for one alert; pure, so it is tested without a server."""
    subject = subject_for(ctx)
    values: dict[str, Any] = {
        "ctx": ctx,
        "subject": subject,
        "colour": outcome_colour(ctx.to_outcome if ctx.reason != "test" else None),
        "summary": transition_summary(ctx) if ctx.reason == "transition" else "",
        "confirmed_after": span_between(ctx.since, ctx.at),
        "open_for": open_span(ctx),
        "opened_at": ctx.incident_opened_at or ctx.since,
        "evidence": evidence_rows(ctx),
        "dashboard_link": dashboard_link(ctx),
        "incident_link": incident_link(ctx),
    }
    text = _templates.get_template("transition.txt.j2").render(values)
    html = _templates.get_template("transition.html.j2").render(values)
    return RenderedEmail(subject=subject, text=text, html=html)


# ---------------------------------------------------------------- sending


def build_message(
    sender: str, recipients: Sequence[str], email: RenderedEmail, message_id: str
) -> EmailMessage:
    """multipart/alternative: clients that cannot show HTML show the text part."""
    message = EmailMessage()
    message["From"] = formataddr(("inferwatch", sender))
    message["To"] = ", ".join(recipients)
    message["Subject"] = email.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    # The caller's dedupe key: a retried alert keeps its id, so clients can drop the copy.
    message["Message-ID"] = message_id if message_id.startswith("<") else f"<{message_id}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


def _required_env(env: Mapping[str, str], name: str | None, field: str) -> str:
    """Read one login value; errors name the variable, never its value."""
    if name is None:
        raise DeliveryError(
            f"alerts.email.{field} is not set, but a login needs it; "
            "name the environment variable that holds the value",
            permanent=True,
        )
    value = env.get(name)
    if not value:
        raise DeliveryError(
            f"environment variable {name} (alerts.email.{field}) is not set or empty; "
            "export it where inferwatch runs",
            permanent=True,
        )
    return value


def _credentials(settings: EmailSettings, env: Mapping[str, str]) -> tuple[str, str] | None:
    if settings.username_env is None:
        return None  # an open relay or an IP-allowlisted server: no login
    return (
        _required_env(env, settings.username_env, "username_env"),
        _required_env(env, settings.password_env, "password_env"),
    )


def _is_temporary(code: int) -> bool:
    return 400 <= code < 500


def _answer(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return f"{code} {one_line(text, limit=None)}".strip()


def send(
    settings: EmailSettings,
    env: Mapping[str, str],
    recipients: Sequence[str],
    email: RenderedEmail,
    message_id: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    guard: Guard | None = None,
) -> None:
    """Deliver one message to the configured server; raise DeliveryError saying what it answered.

    `ssl_context` defaults to the system's trusted CAs; tests pass one trusting their own CA.
    With a `guard`, DATA runs through it and the guard records the accepted outcome, a partial
    delivery included, so `send` returns normally after a 250 (see Guard in
    monitor/alerts/channels/base.py: the server's 250 to DATA is the moment of no return).
    """
    server = f"SMTP server {settings.host}:{settings.port}"
    if not recipients:
        raise DeliveryError("no recipients to send the alert to", permanent=True)
    login = _credentials(settings, env)
    message = build_message(settings.sender, recipients, email, message_id)
    context = ssl_context or ssl.create_default_context()

    step = "connect"  # the SMTP step in progress, for error messages
    smtp: _SMTP | None = None
    accepted = False
    try:
        if settings.security == "ssl":
            smtp = _SMTPSSL(settings.host, settings.port, timeout=settings.timeout, context=context)
        else:
            smtp = _SMTP(settings.host, settings.port, timeout=settings.timeout)
        smtp.guard, smtp.server = guard, server
        step = "EHLO"
        smtp.ehlo()
        if settings.security == "starttls":
            step = "STARTTLS"
            smtp.starttls(context=context)
            smtp.ehlo()
        if login is not None:
            step = f"AUTH (login from ${settings.username_env} and ${settings.password_env})"
            smtp.login(*login)
        step = "sending"
        refused = smtp.send_message(message, from_addr=settings.sender, to_addrs=recipients)
        accepted = True
    except smtplib.SMTPRecipientsRefused as exc:
        raise _refused(server, exc.recipients, delivered=False) from None
    except smtplib.SMTPConnectError as exc:
        # Greeted with an error instead of 220: busy or down for now.
        answer = _answer(exc.smtp_code, exc.smtp_error)
        raise DeliveryError(f"{server} refused the connection: {answer}", permanent=False) from None
    except smtplib.SMTPResponseException as exc:
        if isinstance(exc, smtplib.SMTPSenderRefused):
            step = f"MAIL FROM {settings.sender}"
        elif isinstance(exc, smtplib.SMTPDataError):
            step = "DATA"
        answer = _answer(exc.smtp_code, exc.smtp_error)
        raise DeliveryError(
            f"{server} answered {answer!r} at {step}",
            permanent=not _is_temporary(exc.smtp_code),
        ) from None
    except smtplib.SMTPServerDisconnected as exc:
        raise DeliveryError(
            f"{server} closed the connection at {step}: {exc}", permanent=False
        ) from None
    except smtplib.SMTPException as exc:
        # The rest are capability mismatches (no STARTTLS, no usable AUTH): config, not luck.
        reason = str(exc).rstrip(".")
        raise DeliveryError(
            f"{server}: {reason} (at {step}; check alerts.email security, port and login)",
            permanent=True,
        ) from None
    except OSError as exc:  # refused, timed out, unknown host, TLS handshake
        reason = exc.strerror or str(exc) or type(exc).__name__
        if "WRONG_VERSION_NUMBER" in reason:
            reason += f" (the server does not speak TLS here: {_PORT_ADVICE})"
        raise DeliveryError(f"{server} failed at {step}: {reason}", permanent=False) from None
    finally:
        if smtp is not None and not accepted:
            smtp.close()

    _quit_quietly(smtp)
    if refused and guard is None:
        raise _refused(server, refused, delivered=True)


class _SMTP(smtplib.SMTP):
    """smtplib with the DATA command run through a guard (see `send`)."""

    guard: Guard | None = None
    server = ""  # "SMTP server host:port", for the guard's partial-delivery error

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        code, answer = super().rcpt(recip, options)
        if code not in (250, 251):
            self.refused_at_rcpt[recip] = (code, answer)
        return code, answer

    def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        self.refused_at_rcpt: dict[str, tuple[int, bytes]] = {}
        return super().mail(sender, options)

    def data(self, msg: Any) -> tuple[int, bytes]:
        if self.guard is None:
            return super().data(msg)
        if self.sock is not None:
            self.sock.settimeout(min(self.timeout, GUARDED_DATA_TIMEOUT))
        refused = self.refused_at_rcpt
        partial = _refused(self.server, refused, delivered=True) if refused else None
        reply: list[tuple[int, bytes]] = []

        def transmit() -> bool:
            reply.append(super(_SMTP, self).data(msg))
            return reply[0][0] == 250

        self.guard(transmit, partial)
        return reply[0]


class _SMTPSSL(_SMTP, smtplib.SMTP_SSL):
    pass


_PORT_ADVICE = "port 465 usually means security: ssl, 587 and 25 security: starttls"


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    """The server already accepted the message: a failed goodbye must not cause a resend."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _refused(
    server: str, refused: Mapping[str, tuple[int, bytes]], delivered: bool
) -> DeliveryError:
    answers = "; ".join(f"{addr}: {_answer(code, text)}" for addr, (code, text) in refused.items())
    if delivered:
        retry = tuple(addr for addr, (code, _) in refused.items() if _is_temporary(code))
        prefix = "delivered to the other recipients, but "
        return DeliveryError(f"{prefix}{server} refused {answers}", not retry, retry_only=retry)
    temporary = all(_is_temporary(code) for code, _ in refused.values())
    return DeliveryError(f"{server} refused {answers}", permanent=not temporary)


# ---------------------------------------------------------------- the channel


class EmailChannel:
    """Email as a channel of the outbox (see monitor/alerts/channels/base.py)."""

    def __init__(self, settings: EmailSettings, env: Mapping[str, str]):
        self.settings = settings
        self.env = env

    def render(self, alert: Outgoing) -> RenderedEmail:
        if alert.event is None:
            return RenderedEmail(alert.subject, alert.body_text, alert.body_html)
        return render(alert.event)

    def send(self, message: RenderedEmail, alert: Outgoing, guard: Guard) -> None:
        send(self.settings, self.env, alert.recipients, message, alert.message_id, guard=guard)


def channel(config: Config, env: Mapping[str, str], timeout: float | None = None) -> EmailChannel:
    """The configured email channel; `timeout` caps one SMTP conversation further."""
    settings = config.alerts.email
    if settings is None:
        raise DeliveryError("no alerts.email server is configured", permanent=False)
    if timeout is not None:
        settings = settings.model_copy(update={"timeout": min(settings.timeout, timeout)})
    return EmailChannel(settings, env)


__all__ = [
    "DeliveryError",
    "EmailChannel",
    "ProbeLine",
    "RenderedEmail",
    "build_message",
    "channel",
    "render",
    "send",
    "subject_for",
]

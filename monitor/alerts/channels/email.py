"""The email channel: render an alert (pure, Jinja2) and hand it to an SMTP server (thin I/O).

Rendering knows nothing about SMTP and sending knows nothing about alerts, so the wording can be
tested without a server and the delivery without templates. `send` blocks (smtplib); the caller
runs it in a thread and decides, from `DeliveryError.permanent`, whether to retry.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined

from monitor.config.model import EmailSettings
from monitor.domain.evidence import CLASS_COLOUR, outcome_class
from monitor.domain.states import format_span
from monitor.domain.text import one_line

REASONS = frozenset({"transition", "reminder", "flapping_started", "flapping_stopped", "test"})

# CLASS_COLOUR (monitor.domain.evidence) is the hex version of report.CLASS_STYLE: email
# clients need inline colours, not terminal styles; the dashboard uses the same palette.
NEUTRAL_COLOUR = "#57606a"  # test alerts and unknown states: no verdict to colour

SUBJECT_PREFIX = "[inferwatch]"
MAX_SUBJECT = 200  # long provider messages in a label would make subjects unreadable


@dataclass(frozen=True)
class ProbeLine:
    """One row of "the last few probes", so a reader can see the change was not a one-off."""

    checked_at: datetime
    outcome: str
    http_status: int | None
    latency_ms: float | None
    detail: str


@dataclass(frozen=True)
class AlertContext:
    """Everything one alert says; built by the alert layer from stored, already redacted data."""

    reason: str  # "transition" | "reminder" | "flapping_started" | "flapping_stopped" | "test"
    target: str
    kind: str
    url: str
    from_outcome: str | None
    to_outcome: str | None
    label: str  # monitor.domain.states.label(), e.g. "ok → deprecated (410)"
    at: datetime  # when it was confirmed
    since: datetime | None  # when the new state began (first probe of the run)
    http_status: int | None
    detail: str
    hint: str
    warning: str
    request_id: str | None
    provider: str | None
    latency_ms: float | None
    recent: tuple[ProbeLine, ...]  # newest first, at most ~5
    dashboard_url: str | None  # base URL of the dashboard, when configured
    incident_opened_at: datetime | None = None  # reminders: "open for 3h 10m"

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown alert reason {self.reason!r}; one of {sorted(REASONS)}")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


# The moment of no return is the server's 250 answer to DATA. A caller that must record that
# moment atomically passes a guard: guard(transmit, partial) runs `transmit` (the DATA
# command; it returns the server's code and text) inside its own transaction and records
# the outcome there when the code is 250. `partial` is the error to record when some
# recipients were refused at RCPT (None when all were accepted).
Transmit = Callable[[], tuple[int, bytes]]
DataGuard = Callable[[Transmit, "DeliveryError | None"], tuple[int, bytes]]
# How long a guarded DATA may take: the guard may hold a database lock meanwhile.
GUARDED_DATA_TIMEOUT = 10.0


class DeliveryError(Exception):
    """Sending failed; `permanent` says whether retrying the same message could ever help."""

    def __init__(self, message: str, permanent: bool, retry_only: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        # After a partial delivery: the recipients a retry must go to (and only them), so the
        # ones that already have the message do not get it twice.
        self.retry_only = retry_only


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


def utc_time(moment: datetime) -> str:
    """ISO-like and unambiguous for readers in any timezone: '2026-11-22 14:05:03 UTC'."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the store keeps naive UTC times
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def latency_text(ms: float | None) -> str:
    if ms is None:
        return "–"
    return f"{ms / 1000:.1f} s" if ms >= 10_000 else f"{ms:.0f} ms"


def outcome_colour(outcome: str | None) -> str:
    return NEUTRAL_COLOUR if not outcome else CLASS_COLOUR[outcome_class(outcome)]


_templates.filters.update(utc=utc_time, latency=latency_text, colour=outcome_colour)


def dashboard_link(ctx: AlertContext) -> str | None:
    if not ctx.dashboard_url:
        return None
    base = ctx.dashboard_url.rstrip("/")
    if ctx.reason == "test" or not ctx.target:
        return base  # a test alert is about no real target
    return f"{base}/target?name={quote(ctx.target, safe='')}"


def _span_between(start: datetime | None, end: datetime) -> str | None:
    if start is None:
        return None
    start_utc = start if start.tzinfo else start.replace(tzinfo=UTC)
    end_utc = end if end.tzinfo else end.replace(tzinfo=UTC)
    seconds = (end_utc - start_utc).total_seconds()
    return format_span(seconds) if seconds >= 1 else None


def _open_for(ctx: AlertContext) -> str | None:
    return _span_between(ctx.incident_opened_at or ctx.since, ctx.at)


def subject_for(ctx: AlertContext) -> str:
    """The subject people scan in an inbox: target first, then what happened."""
    target = one_line(ctx.target, limit=None)
    now = ctx.to_outcome or "unknown"
    match ctx.reason:
        case "test":
            text = "test alert"
        case "reminder":
            open_for = _open_for(ctx)
            text = f"reminder: {target} still {now}" + (
                f" (open for {open_for})" if open_for else ""
            )
        case "flapping_started":
            text = f"{target} is flapping"
        case "flapping_stopped":
            text = f"{target} stopped flapping" + (f": now {now}" if ctx.to_outcome else "")
        case _:
            text = f"{target}: {_transition_summary(ctx)}"
    text = one_line(f"{SUBJECT_PREFIX} {text}", limit=None)
    return text if len(text) <= MAX_SUBJECT else text[: MAX_SUBJECT - 1].rstrip() + "…"


def _transition_summary(ctx: AlertContext) -> str:
    """The label, except that a recovery also names the state it recovered from."""
    label = one_line(ctx.label, limit=None)
    before, after = ctx.from_outcome, ctx.to_outcome or "unknown"
    if before is None:
        return label or f"first probe: {after}"
    if after == "ok" and not label.startswith(f"{before} →"):
        return f"{before} → ok ({label})" if label else f"{before} → ok"
    return label or f"{before} → {after}"


def _evidence_rows(ctx: AlertContext) -> list[tuple[str, str]]:
    """Only the facts that exist, in the order someone debugging wants them."""
    rows = [
        ("HTTP status", str(ctx.http_status) if ctx.http_status is not None else ""),
        ("Provider said", ctx.detail),
        ("Request id", ctx.request_id or ""),
        ("Provider", ctx.provider or ""),
        ("Latency", latency_text(ctx.latency_ms) if ctx.latency_ms is not None else ""),
        ("URL", ctx.url),
    ]
    return [(name, value) for name, value in rows if value]


def render(ctx: AlertContext) -> RenderedEmail:
    """Subject, plain text and HTML for one alert; pure, so it is tested without a server."""
    subject = subject_for(ctx)
    values: dict[str, Any] = {
        "ctx": ctx,
        "subject": subject,
        "colour": outcome_colour(ctx.to_outcome if ctx.reason != "test" else None),
        "summary": _transition_summary(ctx) if ctx.reason == "transition" else "",
        "confirmed_after": _span_between(ctx.since, ctx.at),
        "open_for": _open_for(ctx),
        "opened_at": ctx.incident_opened_at or ctx.since,
        "evidence": _evidence_rows(ctx) if ctx.reason != "test" else [],
        "dashboard_link": dashboard_link(ctx),
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
    guard: DataGuard | None = None,
) -> None:
    """Deliver one message to the configured server; raise DeliveryError saying what it answered.

    `ssl_context` defaults to the system's trusted CAs; tests pass one trusting their own CA.
    With a `guard`, DATA runs through it and the guard records the accepted outcome, a partial
    delivery included, so `send` returns normally after a 250 (see DataGuard above).
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
    """smtplib with the DATA command run through a guard (see DataGuard)."""

    guard: DataGuard | None = None
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
        return self.guard(lambda: super(_SMTP, self).data(msg), partial)


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


__all__ = [
    "AlertContext",
    "DeliveryError",
    "ProbeLine",
    "RenderedEmail",
    "build_message",
    "render",
    "send",
    "subject_for",
]

"""The Apprise channel: an alert as a short Markdown notification to every URL listed in one
environment variable (discord://, msteams://, ntfy://, pagerduty:// ...), sent by the apprise
library, so inferwatch carries no integration of its own.

Each URL is one irrevocable step of its own, run through the outbox's guard: a URL that took the
alert is committed before the next is tried, and a retry goes only to the URLs still due
(`DeliveryError.retry_only`). The delivery log names a URL by its place and scheme,
`apprise#2 (ntfy)`, never by itself: Apprise URLs carry tokens. Apprise tries each URL once
(its own retries are not used): the outbox retries with its backoff, and the guard, which holds
the database lock while a URL is notified, is held for one bounded try.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import apprise

from monitor.alerts.channels.base import DeliveryError, Guard, Outgoing
from monitor.alerts.channels.common import (
    dashboard_link,
    evidence_rows,
    incident_link,
    utc_time,
)
from monitor.config.model import AppriseSettings, Config
from monitor.domain.alert_event import (
    AlertEvent,
    open_span,
    span_between,
    subject_for,
    transition_summary,
)
from monitor.domain.evidence import OutcomeClass, outcome_class
from monitor.domain.redact import Redactor
from monitor.domain.text import one_line

# Seconds one URL may take at most (connect plus read): the guard holds the database lock
# meanwhile. The outbox's cap on a whole attempt (the shutdown's flush budget) may cut it.
URL_TIMEOUT = 10.0
# Apprise logs through these loggers; at DEBUG they print whole URLs, tokens included.
_LIBRARY_LOGGERS = ("apprise", "urllib3")
# How services that show a sender name it (Discord's username, the User-Agent of HTTP ones).
_ASSET = apprise.AppriseAsset(app_id="inferwatch", app_desc="inferwatch alerts")
# URL parts at least this long are masked in Apprise's words (a host, a webhook id, a topic);
# shorter ones are ordinary words ("hooks", "api").
_MIN_MASKED_PART = 8


@dataclass(frozen=True)
class Notification:
    title: str
    body: str  # Markdown
    kind: str  # Apprise's notification type: info, success, warning or failure


# ---------------------------------------------------------------- rendering (pure)


def render(ctx: AlertEvent, variable: str = "") -> Notification:
    """Title (the subject) and a concise Markdown body: what changed, what the provider said,
    what to do, and the links."""
    subject = subject_for(ctx)
    if ctx.reason == "test":
        where = f" in ${variable}" if variable else ""
        lines = [
            f"This is a test alert from inferwatch. If you are reading it, the Apprise URLs"
            f"{where} work; nothing needs doing.",
            f"Sent at {utc_time(ctx.at)}.",
        ]
        link = dashboard_link(ctx)
        if link:
            lines.append(f"[Dashboard]({link})")
        return Notification(subject, "\n\n".join(lines), apprise.NotifyType.INFO.value)

    lines = [f"**{_what_happened(ctx)}**", _when(ctx)]
    if ctx.hint:
        lines.append(f"**What to do:** {_text(ctx.hint)}")
    if ctx.warning:
        lines.append(f"**Warning:** {_text(ctx.warning)}")
    evidence = evidence_rows(ctx)
    if evidence:
        lines.append(
            "\n".join(f"- {name}: {_evidence_value(name, value)}" for name, value in evidence)
        )
    links = [
        f"[{name}]({link})"
        for name, link in (("Dashboard", dashboard_link(ctx)), ("Incident", incident_link(ctx)))
        if link
    ]
    if links:
        lines.append(" · ".join(links))
    return Notification(subject, "\n\n".join(lines), _notify_type(ctx))


def _what_happened(ctx: AlertEvent) -> str:
    """One sentence, as the email's first line says it."""
    who = f"{_text(ctx.target)} ({_text(ctx.kind)})"
    now = _text(ctx.to_outcome or "unknown")
    match ctx.reason:
        case "transition" if ctx.from_outcome is None:
            return f"{who} is new to inferwatch, and its first probes say {now}."
        case "transition" if ctx.to_outcome == "ok":
            return f"{who} works again: {_text(transition_summary(ctx))}."
        case "transition":
            return f"{who} changed from {_text(ctx.from_outcome or '')} to {now}."
        case "reminder":
            return f"{who} is still {now}."
        case "flapping_started":
            return f"{who} keeps switching between working and failing."
        case "flapping_stopped":
            return f"{who} has stopped flapping" + (
                f" and is now {now}." if ctx.to_outcome else "."
            )
        case "quiet_ended":
            told = f" (the last alert said {_text(ctx.from_outcome)})" if ctx.from_outcome else ""
            return (
                f"{who}: {_text(ctx.label)}. Changes during the maintenance window or silence "
                f"were recorded, not sent; this is where it stands now{told}."
            )
        case "regional":
            seen = f" ({_text(', '.join(ctx.regions))})" if ctx.regions else ""
            return (
                f"{who}: {_text(ctx.label)}. This is one region's own view{seen}: the target's "
                "state, which a quorum of regions decides, did not change, and no incident was "
                "opened."
            )
        case _:  # a reason added later: its label says what happened
            return f"{who}: {_text(ctx.label or now)}."


def _when(ctx: AlertEvent) -> str:
    if ctx.reason == "reminder" and (ctx.incident_opened_at or ctx.since):
        opened = ctx.incident_opened_at or ctx.since
        assert opened is not None
        span = open_span(ctx)
        return f"Open since {utc_time(opened)}" + (f" (for {span})." if span else ".")
    confirmed = f"Confirmed {utc_time(ctx.at)}"
    if ctx.since is None:
        return confirmed + "."
    after = span_between(ctx.since, ctx.at)
    # (not confirmed.lower(): that would print the zone as "utc")
    return f"Since {utc_time(ctx.since)}; confirmed {utc_time(ctx.at)}" + (
        f" ({after} after it began)." if after else "."
    )


def _notify_type(ctx: AlertEvent) -> str:
    """Apprise's colour and icon for the services that show one."""
    if ctx.reason == "flapping_started":
        return apprise.NotifyType.WARNING.value
    if not ctx.to_outcome:
        return apprise.NotifyType.INFO.value
    if ctx.reason == "regional":  # the target itself did not change: never a failure
        ok = outcome_class(ctx.to_outcome) is OutcomeClass.OK
        calm: str = (apprise.NotifyType.INFO if ok else apprise.NotifyType.WARNING).value
        return calm
    return {
        OutcomeClass.OK: apprise.NotifyType.SUCCESS,
        OutcomeClass.TRANSIENT: apprise.NotifyType.WARNING,
        OutcomeClass.CONTRACT: apprise.NotifyType.FAILURE,
    }[outcome_class(ctx.to_outcome)].value


# What the provider chose to say, and the URL: shown as code, so no Markdown or HTML in them
# takes effect wherever the notification is rendered.
_AS_CODE = frozenset({"Provider said", "Request id", "Provider", "URL"})
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#])")


def _evidence_value(name: str, value: str) -> str:
    return _code(value) if name in _AS_CODE else _text(value)


def _code(text: str) -> str:
    # A backtick inside would close the span early.
    return "`" + one_line(text).replace("`", "'") + "`"


def _text(text: str) -> str:
    """Our own words and names, with Markdown's special characters taken literally."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", one_line(text))


# ---------------------------------------------------------------- sending


def url_label(place: int, url: str) -> str:
    """How the delivery log names a URL: 'apprise#2 (ntfy)', its place in the variable and
    its scheme, nothing that could be a token."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,31}", scheme):
        scheme = "no scheme"
    return f"apprise#{place} ({scheme.lower()})"


def url_parts(url: str) -> set[str]:
    """The parts of a URL that Apprise may name in its log lines (a host, a token in the path,
    a query value), to mask them in the recorded error."""
    try:
        split = urlsplit(url)
        parts = {split.username or "", split.password or "", split.hostname or ""}
    except ValueError:  # e.g. a port that is not a number
        split, parts = urlsplit(""), set()
    parts.update(re.split(r"[/@:]", split.netloc))
    parts.update(split.path.split("/"))
    parts.update(value for _, value in parse_qsl(split.query))
    parts.add(split.fragment)
    credentials = {split.password or ""} if split.password else set()
    return {p for p in parts if len(p) >= _MIN_MASKED_PART} | credentials | {url}


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def _library_warnings() -> Iterator[list[str]]:
    """What Apprise (and urllib3 under it) warn about during one notification: kept for the
    delivery error, redacted, and not passed on to our log, where its DEBUG lines would print
    whole URLs."""
    handler = _Lines()
    loggers = [logging.getLogger(name) for name in _LIBRARY_LOGGERS]
    propagate = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield handler.lines
    finally:
        for logger, before in zip(loggers, propagate, strict=True):
            logger.removeHandler(handler)
            logger.propagate = before


def notify(url: str, message: Notification, timeout: float) -> str | None:
    """One try at one URL: None when it took the notification, else Apprise's reason
    (unredacted: the caller masks it)."""
    with _library_warnings() as warnings:
        try:
            service = apprise.Apprise.instantiate(url, asset=_ASSET)
            if service is None:
                return "Apprise does not accept this URL (check its scheme and fields)"
            # Apprise waits up to both, one after the other.
            service.socket_connect_timeout = min(service.socket_connect_timeout, timeout / 2)
            service.socket_read_timeout = min(service.socket_read_timeout, timeout / 2)
            accepted = service.notify(
                body=message.body,
                title=message.title,
                notify_type=apprise.NotifyType(message.kind),
                body_format=apprise.NotifyFormat.MARKDOWN,
            )
        except Exception as exc:  # a plugin's bug must not take the sender down
            return f"{type(exc).__name__}: {exc}"
    if accepted:
        return None
    return " ".join(one_line(w) for w in warnings) or "Apprise reported a failure without a reason"


class AppriseChannel:
    """Apprise as a channel of the outbox (see monitor/alerts/channels/base.py)."""

    def __init__(
        self,
        settings: AppriseSettings,
        env: Mapping[str, str],
        secrets: frozenset[str],
        budget: float | None = None,
    ):
        self.settings = settings
        self.env = env
        self.secrets = secrets  # the config's, with every Apprise URL among them
        self.budget = budget  # seconds for a whole attempt, every URL in it (None: no cap)

    def render(self, alert: Outgoing) -> Notification:
        if alert.event is None:
            return Notification(alert.subject, alert.body_text, apprise.NotifyType.INFO.value)
        return render(alert.event, self.settings.urls_env)

    def urls(self) -> dict[str, str]:
        """The URLs in the variable now, by their label in the delivery log."""
        name = self.settings.urls_env
        urls = self.env.get(name, "").split()
        if not urls:
            raise DeliveryError(
                f"environment variable {name} (alerts.apprise.urls_env) is not set or empty; "
                "export it, with space-separated Apprise URLs, where inferwatch runs",
                permanent=True,
            )
        return {url_label(place, url): url for place, url in enumerate(urls, start=1)}

    def send(self, message: Notification, alert: Outgoing, guard: Guard) -> None:
        urls = self.urls()
        due = list(alert.recipients or urls)  # a retry: only the URLs that did not take it
        gone = [label for label in due if label not in urls]
        if gone:
            raise DeliveryError(
                f"${self.settings.urls_env} no longer has {', '.join(gone)} (its URLs changed "
                "since the first try), so this alert cannot reach it",
                permanent=True,
            )
        deadline = time.monotonic() + (self.budget if self.budget is not None else float("inf"))
        failed: dict[str, str] = {}
        for label in list(due):
            left = min(URL_TIMEOUT, deadline - time.monotonic())
            if left < 1.0:
                failed[label] = "not tried: the time for this attempt ran out"
                continue
            others = tuple(other for other in due if other != label)
            # Recorded with the commit if this URL takes it: who still needs the alert.
            partial = (
                DeliveryError(
                    f"{label} has it; still to send to {', '.join(others)}",
                    permanent=False,
                    retry_only=others,
                )
                if others
                else None
            )
            why = self._try(guard, partial, urls[label], message, left)
            if why is None:
                due.remove(label)
            else:
                failed[label] = self._redacted(why, urls[label])
        if failed:
            delivered = len(due) < len(alert.recipients or urls)
            raise DeliveryError(
                "; ".join(f"{label}: {why}" for label, why in failed.items()),
                permanent=False,
                # Untouched, a first try's row keeps no list, so the next try reads the
                # variable afresh (a fixed URL in it is used).
                retry_only=tuple(failed) if delivered or alert.recipients else (),
            )

    @staticmethod
    def _try(
        guard: Guard, partial: DeliveryError | None, url: str, message: Notification, left: float
    ) -> str | None:
        """Notify one URL through the guard: None when it took the alert (and that is
        committed), else why not."""
        reason: list[str | None] = []

        def transmit() -> bool:
            reason.append(notify(url, message, left))
            return reason[0] is None

        guard(transmit, partial)
        return reason[0] if reason else "not sent"

    def _redacted(self, text: str, url: str) -> str:
        """Apprise's words with the config's secrets and every part of this URL masked."""
        return Redactor(self.secrets | url_parts(url))(text)


def channel(config: Config, env: Mapping[str, str], timeout: float | None = None) -> AppriseChannel:
    """The configured Apprise channel; `timeout` caps one attempt, every URL in it."""
    settings = config.alerts.apprise
    if settings is None:
        raise DeliveryError("no alerts.apprise section is configured", permanent=False)
    return AppriseChannel(settings, env, config.secrets, timeout)

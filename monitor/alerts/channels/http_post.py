"""One alert POSTed to an HTTP receiver (a webhook, Slack) as the outbox's guarded step, and
what the receiver's answer means for a retry.

The receiver's URL is a secret (Slack's carries its token in the path), so no error, log line
or stored answer names it: errors name the receiver ("the webhook", "Slack"), and the
receiver's own words are redacted before they are kept. The request goes through httpx's
transport rather than its Client because the Client logs every request's URL at INFO.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from monitor import __version__
from monitor.alerts.channels.base import DeliveryError, Guard
from monitor.domain.redact import Redactor
from monitor.domain.text import one_line

# How long a guarded POST may take: the guard may hold the database's write lock meanwhile.
GUARDED_POST_TIMEOUT = 10.0
USER_AGENT = f"inferwatch/{__version__} (+alerts)"
READ_CAP = 4096  # bytes of a receiver's answer read: enough to say why it refused
EXCERPT = 200  # characters of that answer kept in the delivery log


@dataclass(frozen=True)
class Answer:
    """What the receiver said: its status, a short one-line excerpt of its body, and its
    Retry-After (if any)."""

    status: int
    text: str
    retry_after: str | None = None

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def temporary(self) -> bool:
        """Worth retrying: it timed out, is busy, rate-limits or has a server error."""
        return self.status in (408, 429) or self.status >= 500


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    guard: Guard,
    receiver: str,
    secrets: Iterable[str] = (),
) -> Answer:
    """POST `body` to `url` inside `guard`, which commits the delivery when the answer is 2xx.

    Returns the receiver's answer, whatever it is (see `refused`); raises a temporary
    DeliveryError when there was none (refused connection, timeout, dropped connection).
    `receiver` names the far end in errors; `secrets` (besides the URL) are masked in what
    the receiver says.
    """
    redact = Redactor([*_url_secrets(url), *secrets])
    timeout = min(timeout, GUARDED_POST_TIMEOUT)
    try:
        request = httpx.Request(
            "POST",
            url,
            content=body,
            headers={"User-Agent": USER_AGENT, **headers},
            extensions={"timeout": httpx.Timeout(timeout).as_dict()},
        )
    except httpx.InvalidURL:
        raise DeliveryError(f"the URL of {receiver} is not a valid URL", permanent=True) from None
    answers: list[Answer] = []
    failures: list[str] = []

    def transmit() -> bool:
        try:
            answers.append(_exchange(request, redact))
        except httpx.HTTPError as exc:
            failures.append(_failure(exc, redact, timeout))
            return False
        return answers[0].accepted

    guard(transmit, None)
    if failures:
        raise DeliveryError(f"could not reach {receiver}: {failures[0]}", permanent=False)
    return answers[0]


def refused(receiver: str, answer: Answer, advice: str = "") -> DeliveryError:
    """The error for a non-2xx answer: its status and words; permanent unless retrying
    could help (408, 429, 5xx)."""
    text = f"{receiver} answered {answer.status}"
    if answer.text:
        text += f": {answer.text}"
    if answer.retry_after:
        text += f" (Retry-After: {answer.retry_after})"
    if 300 <= answer.status < 400:
        advice = advice or "it redirects elsewhere; configure the address it points to"
    if advice:
        text += f"; {advice}"
    return DeliveryError(
        text, permanent=not answer.temporary, retry_after=retry_seconds(answer.retry_after)
    )


def retry_seconds(value: str | None) -> float | None:
    """A Retry-After in seconds ("120"), or None: its HTTP-date form is rare from webhook
    receivers, and the outbox's own backoff applies then."""
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


def _url_secrets(url: str) -> list[str]:
    """The URL and the parts of it that may be echoed alone: its path (Slack's is the token),
    its query and a password."""
    parts = urlsplit(url)
    return [url, *(p for p in (parts.path, parts.query, parts.password) if p and len(p) > 1)]


def _exchange(request: httpx.Request, redact: Redactor) -> Answer:
    # A fresh connection per alert: alerts are rare, and nothing is left open between them.
    with httpx.HTTPTransport(retries=0) as transport:
        response = transport.handle_request(request)
        try:
            raw = b""
            for chunk in response.iter_raw():
                raw += chunk
                if len(raw) >= READ_CAP:
                    break
        finally:
            response.close()
    text = one_line(redact(raw[:READ_CAP].decode("utf-8", errors="replace")), limit=EXCERPT)
    retry_after = response.headers.get("retry-after")
    return Answer(
        response.status_code,
        text,
        one_line(redact(retry_after), limit=40) if retry_after else None,
    )


def _failure(exc: httpx.HTTPError, redact: Redactor, timeout: float) -> str:
    """Why there was no answer, in words that never include the URL."""
    if isinstance(exc, httpx.ConnectTimeout):
        return f"no connection within {timeout:g} s"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection closed without an answer"
    reason = str(exc) or type(exc).__name__
    return one_line(redact(reason), limit=EXCERPT)

"""What a channel is: it renders an alert event (pure) and sends it, raising DeliveryError.

The outbox (monitor/alerts/outbox.py) owns exactly-once: it hands `send` a guard, and the
channel runs its one irrevocable step (SMTP's DATA, a webhook's POST) through that guard, which
claims the alert in a database transaction and commits it as soon as the far end accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from monitor.domain.alert_event import AlertEvent


class DeliveryError(Exception):
    """Sending failed; `permanent` says whether retrying the same message could ever help."""

    def __init__(
        self,
        message: str,
        permanent: bool,
        retry_only: tuple[str, ...] = (),
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        # Seconds the far end asked us to wait (an HTTP Retry-After): the next try waits at
        # least that long, within the outbox's cap.
        self.retry_after = retry_after
        # After a partial delivery: the recipients a retry must go to (and only them), so the
        # ones that already have the message do not get it twice.
        self.retry_only = retry_only


# The irrevocable step of a send: True when the far end accepted the message.
Transmit = Callable[[], bool]
# guard(transmit, partial) runs `transmit` inside the outbox's claim transaction and commits
# the outcome when it returns True. `partial` is the error to record for recipients refused
# before that step (None when all were accepted). It raises when another sender already has
# the alert; the channel lets that propagate, having sent nothing.
Guard = Callable[[Transmit, "DeliveryError | None"], None]


@dataclass(frozen=True)
class Outgoing:
    """One outbox row, as a channel sees it."""

    recipients: tuple[str, ...]
    message_id: str  # stable across retries: the dedupe key at the far end
    event: AlertEvent | None  # None: a row written before events; send its stored rendering
    subject: str
    body_text: str = ""
    body_html: str = ""


class Channel(Protocol):
    """One way of telling people; a module in monitor/alerts/channels/ provides one."""

    def render(self, alert: Outgoing) -> Any:
        """What to send for this row (pure): from its event, or its stored rendering."""
        ...

    def send(self, message: Any, alert: Outgoing, guard: Guard) -> None:
        """Deliver `message`, running the irrevocable step through `guard`; raise
        DeliveryError saying what went wrong and whether a retry could help."""
        ...

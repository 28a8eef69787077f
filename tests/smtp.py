"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives; can go down and up."""

from __future__ import annotations

import email
import logging
import socket
import time
from email.message import EmailMessage
from email.policy import default

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

# aiosmtpd narrates every connection at INFO from its own thread; only problems matter here.
logging.getLogger("mail.log").setLevel(logging.WARNING)


class _Collect:
    def __init__(self, box: Inbox):
        self.box = box

    async def handle_DATA(self, server, session, envelope: Envelope) -> str:  # type: ignore[no-untyped-def]
        if self.box.reject_with:
            return self.box.reject_with
        # Keep the raw bytes and answer at once, as a queueing MTA does: parsing happens when
        # a test reads `messages`, not between receiving the message and saying 250.
        self.box.raw.append(envelope.content)  # type: ignore[arg-type]
        self.box.received_at.append(time.time())
        return "250 OK"


class Inbox:
    """Messages received by a local SMTP server; `down()`/`up()` simulate an outage."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.raw: list[bytes] = []
        self.received_at: list[float] = []  # time.time() of each message in `raw`
        self._parsed: list[EmailMessage] = []
        self.reject_with = ""  # e.g. "451 4.3.0 try later" or "550 5.1.1 no such user"
        self._controller: Controller | None = None

    def up(self) -> Inbox:
        self._controller = Controller(_Collect(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def down(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[EmailMessage]:
        """What arrived, parsed (in arrival order)."""
        for content in self.raw[len(self._parsed) :]:
            self._parsed.append(email.message_from_bytes(content, policy=default))  # type: ignore[arg-type]
        return self._parsed

    @property
    def subjects(self) -> list[str]:
        return [str(m["subject"]) for m in self.messages]

    def body(self, index: int) -> str:
        part = self.messages[index].get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    def settings(self, recipients: tuple[str, ...] = ("oncall@example.com",)) -> dict:  # type: ignore[type-arg]
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "security": "none",
            "sender": "inferwatch@example.com",
            "recipients": list(recipients),
            "timeout": "2s",
        }

"""Keep secrets out of everything we store, print, log or send."""

from __future__ import annotations

import logging
from collections.abc import Iterable

MASK = "***"


class Redactor:
    """Replaces every known secret with ***; longest first, so one secret inside another goes."""

    def __init__(self, secrets: Iterable[str]):
        forms = set()
        for secret in (s for s in secrets if s):
            # Error messages quote values escaped (b'Bearer hf_x\\n'), so mask those forms too.
            forms |= {secret, secret.strip(), repr(secret)[1:-1], repr(secret.encode())[2:-1]}
        self.secrets = sorted((f for f in forms if f), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def cut(self, text: str, max_bytes: int) -> str:
        """Redact first, then cut to `max_bytes` of UTF-8, so no secret leaks half-cut."""
        data = self(text).encode("utf-8")[:max_bytes]
        return data.decode("utf-8", errors="ignore")


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets from every record's final message."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redactor(message)
        if clean != message or record.exc_info:
            if record.exc_info:
                clean += "\n" + self.redactor(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
                record.exc_text = None
            record.msg, record.args = clean, None
        return True

"""Pure text and time helpers shared by every layer."""

from __future__ import annotations

from datetime import UTC, datetime

MAX_DETAIL = 300  # characters of a detail line: enough for a provider's message


def utcnow() -> datetime:
    return datetime.now(UTC)


def one_line(text: str, limit: int | None = MAX_DETAIL) -> str:
    """Whitespace runs (newlines included) become one space; cut to `limit` with an ellipsis."""
    text = " ".join(text.split())
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"

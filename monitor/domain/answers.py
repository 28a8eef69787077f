"""Pure: reading what a provider answered (its own words, its error codes, a JSON path).

The words come back whole, on one line: they are redacted before anything cuts them (see
pipeline.to_result in monitor/probing/pipeline.py), so a cut never leaves half a token.

Error shapes of the real providers (see ../shared/provider-errors.md): Hugging Face's string
`error`, OpenAI-style `error.{message,type,code}`, Anthropic's `error.type`, TGI's
`error_type`, Gemini's `error.status`, plain-text and HTML answers from proxies.
"""

from __future__ import annotations

import html
import re
from http import HTTPStatus
from typing import Any

from monitor.domain.evidence import Evidence
from monitor.domain.text import one_line


def json_lookup(data: Any, path: str) -> tuple[bool, Any]:
    """Follow a dotted path ('choices.0.message') through dicts and lists."""
    for part in path.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif (
            isinstance(data, list)
            and part.lstrip("-").isdigit()
            and -len(data) <= int(part) < len(data)
        ):
            data = data[int(part)]
        else:
            return False, None
    return True, data


def provider_message(ev: Evidence) -> str:
    """The provider's own words for what happened, on one line (not cut: see above)."""
    data = ev.json
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, str) and err:
            return _line(err)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return _line(err["message"])
        for key in ("message", "detail"):
            if isinstance(data.get(key), str):
                return _line(data[key])
    header = ev.headers.get("x-error-message")
    if header:
        return _line(header)
    text = ev.text.strip()
    if not text or data is not None:
        return ""
    if "<html" in text[:500].lower() or "<!doctype" in text[:100].lower():
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        return _line("HTML page: " + html.unescape(title.group(1))) if title else "HTML page"
    return _line(text.splitlines()[0])


def _line(text: str) -> str:
    return one_line(text, limit=None)


def error_detail(ev: Evidence) -> str:
    """The detail line of an error answer: its status and the provider's words."""
    status = ev.status or 0
    message = provider_message(ev)
    return f"HTTP {status}: {message}" if message else f"HTTP {status} {_reason(status)}"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def says_retired(message: str) -> bool:
    """Words every provider uses for a retired model or endpoint."""
    low = message.lower()
    return "deprecat" in low or "no longer supported" in low


def says_overloaded(message: str, codes: set[str]) -> bool:
    """The word in the provider's message (Anthropic's "Overloaded"), or TGI's error type."""
    return "overloaded" in message.lower() or "overloaded" in codes


def error_codes(ev: Evidence) -> set[str]:
    """Machine-readable error codes from the body and headers, lower-cased."""
    codes: set[str] = set()
    data = ev.json
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            codes |= {str(err[k]) for k in ("code", "type", "status") if err.get(k) is not None}
        if data.get("error_type"):
            codes.add(str(data["error_type"]))
    if ev.headers.get("x-error-code"):
        codes.add(ev.headers["x-error-code"])
    return {c.lower() for c in codes}

"""Pure formatting for the pages: times in the viewer's zone, percentages, spans, badges.

No Streamlit here, so what the user reads can be unit-tested. Every piece of HTML escapes its
text: provider messages are untrusted and end up in the page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.domain.evidence import CLASS_COLOUR, NO_DATA
from monitor.domain.history import state_class
from monitor.domain.states import format_span

DASH = "—"
# Alert delivery statuses in the outcome palette: delivered is fine, waiting may fix itself,
# failed needs someone.
STATUS_CLASS = {"sent": "ok", "pending": "transient", "failed": "contract"}


def zone(name: str | None) -> ZoneInfo:
    """The viewer's zone, UTC when the name is unknown (never an error on the page)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local(at: datetime, tz: ZoneInfo) -> datetime:
    """`at` in the viewer's zone; the store's times are UTC (naive ones are taken as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(tz)


def when(at: datetime | None, tz: ZoneInfo, seconds: bool = False) -> str:
    """'2026-11-22 14:05' in the viewer's zone; a dash for never."""
    if at is None:
        return DASH
    return local(at, tz).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def lasted(since: datetime | None, now: datetime) -> str:
    """'2h 14m': how long a state has lasted, the first thing an operator wants."""
    return DASH if since is None else format_span((now - since).total_seconds())


def ago(at: datetime | None, now: datetime) -> str:
    return DASH if at is None else f"{lasted(at, now)} ago"


def region_line(region: Mapping[str, Any], tz: ZoneInfo) -> str:
    """One region's own view of a target, as the target page lists it: "eu-west: server_error
    since 12:03", "us-east: ok", "ap-south: not reporting since 11:40" (its latest result)."""
    name, state = region["region"], region.get("state")
    if region.get("reporting") is False:
        text = f"{name}: not reporting since {when(region.get('last_at'), tz)}"
    elif state is None:
        text = f"{name}: no confirmed state yet"
    elif state == "ok":
        text = f"{name}: ok"
    else:
        text = f"{name}: {state} since {when(region.get('since'), tz)}"
    if region.get("observed"):
        text += " (differs from the target's state: a regional observation)"
    return text


def span(seconds: float | None) -> str:
    return DASH if seconds is None else format_span(seconds)


def percent(value: float | None) -> str:
    """'99.9%'; a dash when there were no probes (no data is not 0% and not 100%)."""
    return DASH if value is None else f"{value * 100:.1f}%"


def millis(value: float | None) -> str:
    return DASH if value is None else f"{value:.0f} ms"


_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~$])")


def plain(text: str) -> str:
    """Untrusted text for a Streamlit markdown/caption call: emphasis, links, HTML and LaTeX
    characters escaped, so a provider's message reads as it was sent."""
    return _MARKDOWN.sub(r"\\\1", text)


def evidence(state: str | None, http_status: int | None, detail: str, width: int = 140) -> str:
    """What a failing target answers now ("now: HTTP 410: ... no longer supported"): a state's
    words can change (404 -> 410) without a transition, so the last change alone misleads."""
    if state in (None, "ok"):
        return ""
    text = " ".join((detail or "").split())
    if http_status is not None and not text.startswith(f"HTTP {http_status}"):
        text = f"HTTP {http_status}: {text}" if text else f"HTTP {http_status}"
    if not text:
        return ""
    return f"now: {text if len(text) <= width else text[: width - 1].rstrip() + '…'}"


def colour(outcome: str | None) -> str:
    """The palette colour of an outcome (or of no data)."""
    return CLASS_COLOUR[state_class(outcome)]


def badge(text: str | None, cls: str | None = None) -> str:
    """A coloured pill: white text on the class colour. `cls` overrides the outcome's class."""
    label = text or "no data"
    fill = CLASS_COLOUR.get(cls or state_class(text), CLASS_COLOUR[NO_DATA])
    return (
        f'<span style="background:{fill};color:#fff;border-radius:999px;padding:0.15em 0.7em;'
        f'font-weight:600;white-space:nowrap;">{escape(label)}</span>'
    )


def _fact(facts: Mapping[str, Any] | None, key: str) -> str | None:
    """A text fact of a probe or transition (see FACT_KEYS in monitor/domain/evidence.py)."""
    value = facts.get(key) if isinstance(facts, Mapping) else None
    return value if isinstance(value, str) and value else None


# Rows stored before the facts existed (facts == {}) only have the prose: for them alone, the
# replacement URL and the missing permission are read back from the hint and the detail.
_SWITCH_TO = re.compile(r"switch to (https?://[^\s)]+)")
_PLEASE_USE = re.compile(r"\buse (https?://[^\s)]+?)[.,]?\s+instead", re.IGNORECASE)
_QUOTED = re.compile(r"'([^']+)'")


def replacement_url(detail: str, hint: str, facts: Mapping[str, Any] | None = None) -> str | None:
    """The URL the provider names as the replacement."""
    if isinstance(facts, Mapping) and facts:
        return _fact(facts, "replacement_url")
    for pattern, text in ((_SWITCH_TO, hint), (_PLEASE_USE, detail)):  # older rows
        if m := pattern.search(text or ""):
            return m.group(1).rstrip(".,")
    return None


def missing_permission(hint: str, facts: Mapping[str, Any] | None = None) -> str | None:
    """The token permission a token-scope failure lacks ('Make calls to Inference Providers')."""
    if isinstance(facts, Mapping) and facts:
        return _fact(facts, "missing_permission")
    m = _QUOTED.search(hint or "")  # older rows
    return m.group(1) if m else None


def flag_html(
    target: str,
    state: str,
    since: datetime | None,
    detail: str,
    hint: str,
    tz: ZoneInfo,
    facts: Mapping[str, Any] | None = None,
) -> str:
    """One flagged change: what happened, since when, and the one thing to do about it."""
    shown = []
    if state == "deprecated" and (url := replacement_url(detail, hint, facts)):
        shown.append(f"Replacement: <a href='{escape(url)}'>{escape(url)}</a>")
    if state == "token_scope" and (permission := missing_permission(hint, facts)):
        shown.append(f"Missing token permission: <b>{escape(permission)}</b>")
    lines = [
        f"<b style='font-size:1.15em'>{escape(target)}</b> {badge(state)} "
        f"<span style='opacity:0.75'>since {escape(when(since, tz))}</span>",
        *shown,
        f"<span style='opacity:0.85'>{escape(detail)}</span>" if detail else "",
        f"→ {escape(hint)}" if hint else "",
    ]
    body = "<br>".join(line for line in lines if line)
    return (
        f"<div style='border-left:6px solid {colour(state)};padding:0.5em 0.9em;"
        f"margin:0 0 0.6em 0;background:rgba(127,127,127,0.08);border-radius:4px;'>{body}</div>"
    )


# ---------------------------------------------------------------- the incident page


def incident_href(incident_id: int) -> str:
    """The incident page's URL relative to the app root (emails use the same /incident?id=)."""
    return f"incident?id={int(incident_id)}"


def iso_utc(at: datetime | None) -> str:
    """'2026-11-22T14:05:03Z': what a post-mortem document wants, whatever the viewer's zone."""
    if at is None:
        return DASH
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def state_path(incident: Mapping[str, Any]) -> list[str]:
    """The states an incident went through, from ok and back when it closed:
    ['ok', 'deprecated', 'ok']."""
    return ["ok", *incident["outcomes"], *(["ok"] if incident["closed_at"] else [])]


def _fence(text: str) -> str:
    """A Markdown code block that the text cannot close early (a longer fence than its own)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def _md_line(text: str | None) -> str:
    """Untrusted text on one Markdown line: whitespace folded, emphasis and HTML escaped."""
    return plain(" ".join((text or "").split()))


def headers_excerpt(headers: Mapping[str, Any] | None, limit: int = 12) -> str:
    """'name: value' lines, the first `limit` of them (the store keeps them redacted)."""
    items = list((headers or {}).items())
    lines = [f"{k}: {v}" for k, v in items[:limit]]
    if len(items) > limit:
        lines.append(f"… {len(items) - limit} more")
    return "\n".join(lines)


def _evidence_md(title: str, probe: Mapping[str, Any] | None) -> list[str]:
    out = [f"### {title}", ""]
    if probe is None:
        return [*out, "Not kept (pruned, or the incident has not ended).", ""]
    rows = [
        ("Time", iso_utc(probe["checked_at"])),
        ("Outcome", probe["outcome"]),
        ("HTTP status", DASH if probe["http_status"] is None else str(probe["http_status"])),
        ("Latency", millis(probe["latency_ms"])),
        ("Provider message", _md_line(probe["detail"])),
        ("Request id", _md_line(probe["request_id"])),
        ("Provider", _md_line(probe["provider"])),
        ("What to do", _md_line(probe["hint"] or probe["warning"])),
        ("URL", _md_line(probe["url"])),
    ]
    out += [f"- **{name}:** {value}" for name, value in rows if value]
    if headers := headers_excerpt(probe["headers"]):
        out += ["", "Headers:", "", _fence(headers)]
    if probe["body_excerpt"]:
        out += ["", "Body excerpt:", "", _fence(probe["body_excerpt"])]
    return [*out, ""]


def incident_markdown(detail: Mapping[str, Any], now: datetime) -> str:
    """Pure: a post-mortem summary of one incident (incident_detail as plain dicts) in
    Markdown: what, when (UTC), what happened, who was told, the evidence, what to do."""
    inc = detail["incident"]
    ongoing = inc["closed_at"] is None
    path = " → ".join(state_path(inc))
    ended = f"ongoing (as of {iso_utc(now)})" if ongoing else iso_utc(inc["closed_at"])
    lines = [
        f"# Incident #{inc['id']}: {_md_line(inc['target'])} ({' → '.join(inc['outcomes'])})",
        "",
        f"- **Target:** {_md_line(inc['target'])}",
        f"- **States:** {path}",
        f"- **Started:** {iso_utc(inc['opened_at'])}",
        f"- **Ended:** {ended}",
        f"- **Duration:** {span(inc['duration_s'])}{' so far' if ongoing else ''}",
        "",
        "## What happened",
        "",
    ]
    for t in detail["transitions"]:
        change = f"{t['from_outcome'] or 'new'} → {t['to_outcome']}"
        status = f" (HTTP {t['http_status']})" if t["http_status"] is not None else ""
        # The label when it says more than the change ("recovered after 2h 14m").
        label = "" if t["label"].startswith(change) else f", {_md_line(t['label'])}"
        said = f": {_md_line(t['detail'])}" if t["detail"] else ""
        began = t.get("started_at") or t["at"]  # the first probe of the run it confirmed
        confirmed = f" (confirmed {iso_utc(t['at'])})" if began != t["at"] else ""
        lines.append(f"- {iso_utc(began)} — {change}{status}{label}{said}{confirmed}")
    if not detail["transitions"]:
        lines.append("- No transitions recorded.")
    lines += ["", "## Alerts sent", ""]
    for a in detail["alerts"]:
        sent = f", sent {iso_utc(a['sent_at'])}" if a["sent_at"] else ""
        error = f", error: {_md_line(a['last_error'])}" if a["last_error"] else ""
        lines.append(
            f"- {iso_utc(a['created_at'])} — {a['channel']} ({a['reason']}): {a['status']}"
            f"{sent}, {a['attempts']} attempt{'s' if a['attempts'] != 1 else ''}{error}"
        )
    if not detail["alerts"]:
        lines.append("- None.")
    lines += ["", "## Evidence", ""]
    lines += _evidence_md("First failing probe", detail["first_failing"])
    lines += _evidence_md("Recovering probe", detail["recovering"])
    hints = dict.fromkeys(t["hint"] for t in detail["transitions"] if t["hint"])
    lines += ["## What to do", ""]
    lines += [f"- {_md_line(h)}" for h in hints] or ["- Nothing recorded."]
    return "\n".join(lines).rstrip() + "\n"


def evidence_html(probe: Mapping[str, Any], tz: ZoneInfo) -> str:
    """One probe's evidence as a small two-column table; every value escaped."""
    rows = [
        ("Time", when(probe["checked_at"], tz, seconds=True)),
        ("Outcome", probe["outcome"]),
        ("HTTP status", DASH if probe["http_status"] is None else str(probe["http_status"])),
        ("Latency", millis(probe["latency_ms"])),
        ("Provider message", probe["detail"]),
        ("Request id", probe["request_id"] or ""),
        ("Provider", probe["provider"] or ""),
        ("What to do", probe["hint"] or probe["warning"]),
        ("URL", probe["url"]),
    ]
    head = "text-align:left;padding:2px 12px 2px 0;white-space:nowrap;vertical-align:top"
    cells = "".join(
        f"<tr><th style='{head}'>{escape(name)}</th>"
        f"<td style='padding:2px 0'>{escape(value)}</td></tr>"
        for name, value in rows
        if value
    )
    return f"<table style='border-collapse:collapse;border:0'>{cells}</table>"

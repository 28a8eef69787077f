"""Pure table builders: the loaders' plain dicts in, what the viewer reads out.

Times become text in the viewer's zone (sortable: '2026-11-22 14:05'), durations become spans,
and outcome/status columns get their class colour, the same as the badges and charts.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from dashboard.format import DASH, STATUS_CLASS, colour, incident_href, local, span, when
from monitor.domain.evidence import CLASS_COLOUR
from monitor.domain.history import state_class

Rows = Sequence[Mapping[str, Any]]


def _http(value: Any) -> str:
    return DASH if value is None else str(value)


def _text_colour(value: Any, status: bool = False) -> str:
    if not isinstance(value, str) or value in ("", DASH):
        return ""
    if status:
        hue = CLASS_COLOUR.get(STATUS_CLASS.get(value, ""), "")
    else:
        hue = colour(value.split(" → ")[-1])
    return f"color: {hue}; font-weight: 600" if hue else ""


INCIDENT = "incident"  # the column linking each row to its incident page (incident?id=N)


def _incident_link(incident_id: Any) -> str | None:
    return None if incident_id is None or pd.isna(incident_id) else incident_href(incident_id)


def link_columns(frame: pd.DataFrame) -> dict[str, Any]:
    """st.dataframe column configs: the incident column as links showing the incident's
    number (relative URLs, like the overview's links to the target pages)."""
    if INCIDENT not in frame.columns:
        return {}
    return {
        INCIDENT: st.column_config.LinkColumn(
            "incident",
            display_text=r"incident\?id=(\d+)",
            help="Open the incident's page",
            width="small",
        )
    }


def styled(frame: pd.DataFrame, outcomes: Sequence[str] = (), statuses: Sequence[str] = ()) -> Any:
    """Colour outcome and delivery-status columns by class, like every badge and chart."""
    if frame.empty:
        return frame
    style: Styler = frame.style
    if outcomes:
        style = style.map(_text_colour, subset=list(outcomes))
    if statuses:
        style = style.map(lambda v: _text_colour(v, status=True), subset=list(statuses))
    return style


def probe_frame(rows: Rows, tz: ZoneInfo) -> pd.DataFrame:
    """The probe log with its evidence: what the provider said, and how to ask it about it."""
    return pd.DataFrame(
        [
            {
                "time": when(r["checked_at"], tz, seconds=True),
                "outcome": r["outcome"],
                "HTTP": _http(r["http_status"]),
                "latency ms": None if r["latency_ms"] is None else round(r["latency_ms"]),
                "provider message": r["detail"],
                "what to do": r["hint"] or r["warning"],
                "request id": r["request_id"] or "",
                "provider": r["provider"] or "",
            }
            for r in rows
        ],
        columns=[
            "time",
            "outcome",
            "HTTP",
            "latency ms",
            "provider message",
            "what to do",
            "request id",
            "provider",
        ],
    )


def _change(r: Mapping[str, Any]) -> str:
    """The label; a regional observation says the target's state did not follow it."""
    if r.get("region"):
        return f"{r['label']} (regional: target unchanged)"
    return str(r["label"])


def transition_frame(rows: Rows, tz: ZoneInfo, with_target: bool = True) -> pd.DataFrame:
    columns = ["at", "target", "change", "to", "HTTP", "provider message", "announced", INCIDENT]
    frame = pd.DataFrame(
        [
            {
                "at": when(r["at"], tz),
                "target": r["target"],
                "change": _change(r),
                "to": r["to_outcome"],
                "HTTP": _http(r["http_status"]),
                "provider message": r["detail"],
                "announced": "emailed" if r["announced"] else r.get("quiet_reason") or "quiet",
                INCIDENT: _incident_link(r.get("incident_id")),
            }
            for r in rows
        ],
        columns=columns,
    )
    return frame if with_target else frame.drop(columns=["target"])


def _alert_summary(alerts: Sequence[Mapping[str, Any]]) -> str:
    if not alerts:
        return "none"
    counts = Counter(a["status"] for a in alerts)
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def incident_frame(rows: Rows, tz: ZoneInfo, with_target: bool = True) -> pd.DataFrame:
    """One incident per row: when, how long, what it went through, which alerts went out."""
    frame = pd.DataFrame(
        [
            {
                "target": r["target"],
                "started": when(r["opened_at"], tz),
                "ended": when(r["closed_at"], tz) if r["closed_at"] else "ongoing",
                "duration": span(r["duration_s"]) + (" so far" if r["closed_at"] is None else ""),
                "went through": " → ".join(r["outcomes"]),
                "classes": " → ".join(dict.fromkeys(state_class(o) for o in r["outcomes"])),
                "alerts": _alert_summary(r["alerts"]),
                INCIDENT: incident_href(r["id"]),
            }
            for r in rows
        ],
        columns=[
            INCIDENT,
            "target",
            "started",
            "ended",
            "duration",
            "went through",
            "classes",
            "alerts",
        ],
    )
    return frame if with_target else frame.drop(columns=["target"])


def class_counts(rows: Rows) -> dict[str, int]:
    """Incidents per outcome class (contract, transient): each counted once per class."""
    counts = Counter(c for r in rows for c in {state_class(o) for o in r["outcomes"]})
    return dict(counts.most_common())


def incident_alert_frame(rows: Rows, tz: ZoneInfo) -> pd.DataFrame:
    """Every alert sent for the incidents shown, with its delivery status."""
    return pd.DataFrame(
        [
            {
                "incident started": when(r["opened_at"], tz),
                "target": r["target"],
                "alert queued": when(a["created_at"], tz),
                "subject": a["subject"],
                "status": a["status"],
                "attempts": a["attempts"],
                "error": a.get("last_error", ""),
                INCIDENT: incident_href(r["id"]),
            }
            for r in rows
            for a in r["alerts"]
        ],
        columns=[
            INCIDENT,
            "incident started",
            "target",
            "alert queued",
            "subject",
            "status",
            "attempts",
            "error",
        ],
    )


def incidents_csv(rows: Rows, tz: ZoneInfo) -> bytes:
    """The export: ISO times with their offset (unambiguous in a spreadsheet), seconds too."""
    frame = pd.DataFrame(
        [
            {
                "id": r["id"],
                "target": r["target"],
                "opened_at": local(r["opened_at"], tz).isoformat(),
                "closed_at": local(r["closed_at"], tz).isoformat() if r["closed_at"] else "",
                "duration_s": round(r["duration_s"]),
                "duration": span(r["duration_s"]),
                "outcomes": " > ".join(r["outcomes"]),
                "classes": " > ".join(dict.fromkeys(state_class(o) for o in r["outcomes"])),
                "alerts_sent": sum(a["status"] == "sent" for a in r["alerts"]),
                "alerts_pending": sum(a["status"] == "pending" for a in r["alerts"]),
                "alerts_failed": sum(a["status"] == "failed" for a in r["alerts"]),
            }
            for r in rows
        ],
        columns=[
            "id",
            "target",
            "opened_at",
            "closed_at",
            "duration_s",
            "duration",
            "outcomes",
            "classes",
            "alerts_sent",
            "alerts_pending",
            "alerts_failed",
        ],
    )
    out = io.StringIO()
    frame.to_csv(out, index=False)
    return out.getvalue().encode("utf-8")


# The delivery log's columns, narrow and decisive first: at 1440 px wide (a laptop, with the
# sidebar) the status and the server's answer must show without scrolling the table sideways.
ALERT_COLUMNS = [
    "queued",
    "status",
    "attempts",
    "channel",
    "target",
    INCIDENT,
    "subject",
    "error",
    "next try",
    "sent",
    "to",
]
# Widths in pixels for st.column_config (the long text columns; the rest fit their content).
ALERT_WIDTHS = {"subject": 250, "error": 340}


def alert_frame(rows: Rows, tz: ZoneInfo) -> pd.DataFrame:
    """The delivery log: what went to whom, by which channel, whether it arrived, and the
    far end's answer."""
    return pd.DataFrame(
        [
            {
                "queued": when(r["created_at"], tz),
                "target": r["target"] or "(test)",
                "subject": r["subject"],
                # Empty for URL channels (webhook, slack, apprise): the channel names them.
                "to": ", ".join(r["recipients"] or []),
                "channel": r["channel"],
                "status": r["status"],
                "attempts": r["attempts"],
                "next try": when(r["next_attempt_at"], tz) if r["status"] == "pending" else "",
                "sent": when(r["sent_at"], tz) if r["sent_at"] else "",
                "error": r["last_error"] or "",
                INCIDENT: _incident_link(r.get("incident_id")),
            }
            for r in rows
        ],
        columns=ALERT_COLUMNS,
    )

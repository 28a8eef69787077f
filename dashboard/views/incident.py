"""Incident: one incident for the post-mortem — its timeline at probe resolution, transitions,
alerts, the evidence of the first failing and the recovering probe, and a Markdown summary.

Reached as /incident?id=N: from the Incidents page, the target page's transitions and
incidents, the Alerts page and the alert emails. Not auto-refreshed: someone writing a
post-mortem should not have the page move (an open incident is as of the last load).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, data, tables, widgets
from dashboard import format as f
from dashboard.settings import database_url, settings

CHART_CONFIG = {"displayModeBar": False}

widgets.sidebar()


def wanted_id() -> int | None:
    """The incident named in the URL (?id=N), None when missing or not a number."""
    raw = str(st.query_params.get("id") or "").strip().lstrip("#")
    return int(raw) if raw.isdigit() else None


def transitions_frame(rows: list[dict[str, Any]], tz: Any) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "at": f.when(t["at"], tz, seconds=True),
                "change": f"{t['from_outcome'] or 'new'} → {t['to_outcome']}",
                "label": t["label"],
                "HTTP": f.DASH if t["http_status"] is None else str(t["http_status"]),
                "provider message": t["detail"],
                "what to do": t["hint"],
                "announced": "alerted" if t["announced"] else t.get("quiet_reason") or "quiet",
            }
            for t in rows
        ],
        columns=["at", "change", "label", "HTTP", "provider message", "what to do", "announced"],
    )


def alerts_frame(rows: list[dict[str, Any]], tz: Any) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "queued": f.when(a["created_at"], tz, seconds=True),
                "channel": a["channel"],
                "reason": a["reason"],
                "status": a["status"],
                "attempts": a["attempts"],
                "sent": f.when(a["sent_at"], tz, seconds=True) if a["sent_at"] else "",
                "error": a["last_error"],
                "subject": a["subject"],
            }
            for a in rows
        ],
        columns=["queued", "channel", "reason", "status", "attempts", "sent", "error", "subject"],
    )


def evidence(title: str, probe: dict[str, Any] | None, tz: Any, missing: str) -> None:
    st.markdown(f"**{title}**")
    if probe is None:
        st.caption(missing)
        return
    st.markdown(f.evidence_html(probe, tz), unsafe_allow_html=True)
    if headers := f.headers_excerpt(probe["headers"]):
        st.caption("Headers (redacted)")
        st.code(headers, language=None)
    if probe["body_excerpt"]:
        st.caption("Body excerpt")
        st.code(probe["body_excerpt"], language=None)


@widgets.guarded
def incident() -> None:
    incident_id = wanted_id()
    if incident_id is None:
        st.title("Incident")
        st.info(
            "No incident named in the link (it should end in ?id= and a number). "
            "Pick one on the Incidents page.",
            icon=":material/info:",
        )
        st.page_link("views/incidents.py", label="All incidents", icon=":material/history:")
        return
    url = database_url()
    tz, now = widgets.viewer_zone(), data.clock()
    detail = data.load_incident(url, incident_id, now)
    if detail is None:
        st.title("Incident")
        st.info(f"No incident #{incident_id} in the database.", icon=":material/info:")
        st.page_link("views/incidents.py", label="All incidents", icon=":material/history:")
        return
    inc = detail["incident"]
    ongoing = inc["closed_at"] is None
    st.title(f"Incident #{inc['id']}: {f.plain(inc['target'])}")  # a name is not Markdown
    st.page_link(
        "views/target.py",
        label=f"Target {f.plain(inc['target'])}",
        icon=":material/monitor_heart:",
        query_params={"name": inc["target"]},
    )
    st.markdown(
        " → ".join(f.badge(s) for s in f.state_path(inc))
        + (" &nbsp;<b>ongoing</b>" if ongoing else ""),
        unsafe_allow_html=True,
    )
    cols = st.columns(3)
    cols[0].metric("Opened", f.when(inc["opened_at"], tz))
    cols[1].metric("Closed", "ongoing" if ongoing else f.when(inc["closed_at"], tz))
    cols[2].metric("Duration", f.span(inc["duration_s"]) + (" so far" if ongoing else ""))
    if base := settings().dashboard_url:  # the same link the alert emails carry
        st.caption(f"Link to this page: {base.rstrip('/')}/{f.incident_href(inc['id'])}")

    st.subheader("Timeline")
    marks = [(t["at"], f"→ {t['to_outcome']}") for t in detail["transitions"]]
    figure = charts.incident_timeline(detail["points"], detail["window"], tz, marks)
    st.plotly_chart(figure, key="incident_timeline", config=CHART_CONFIG)
    per = "Each point is the worst probe of a short slice" if detail["bucketed"] else "Every probe"
    st.caption(
        f"{per} from {f.when(detail['window'][0], tz)} to {f.when(detail['window'][1], tz)}: "
        "the band is its outcome, the line its latency; dotted lines mark the transitions."
    )

    st.subheader("Transitions")
    if detail["transitions"]:
        frame = transitions_frame(detail["transitions"], tz)
        st.dataframe(tables.styled(frame, outcomes=["change"]), hide_index=True)
    else:
        st.caption("No transitions recorded for this incident.")

    st.subheader("Alerts")
    if detail["alerts"]:
        frame = alerts_frame(detail["alerts"], tz)
        st.dataframe(tables.styled(frame, statuses=["status"]), hide_index=True)
    else:
        st.caption("No alerts were queued for this incident.")

    st.subheader("Evidence")
    left, right = st.columns(2)
    with left:
        evidence("First failing probe", detail["first_failing"], tz, "Not kept (pruned).")
    with right:
        gone = "Still failing." if ongoing else "Not kept (pruned)."
        evidence("Recovering probe", detail["recovering"], tz, gone)

    st.subheader("Copy as Markdown")
    st.caption("A summary for the post-mortem document (times in UTC); copy it with the button.")
    st.code(f.incident_markdown(detail, data.wall_now()), language="markdown")


incident()

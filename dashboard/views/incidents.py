"""Incidents: the history review — what failed, for how long, through which states, who was told.

Not auto-refreshed: someone reviewing filters and exports should not have the table move.
"""

from __future__ import annotations

import streamlit as st

from dashboard import charts, data, tables, widgets
from dashboard import format as f
from dashboard.settings import database_url, settings
from monitor.domain.evidence import Outcome

time_range = widgets.sidebar(time_range=True)
st.title("Incidents")


@widgets.guarded
def incidents() -> None:
    url = database_url()
    tz, now = widgets.viewer_zone(), data.clock()
    start, end = time_range.bounds(now, tz)
    names = data.load_names(url, settings().targets)
    left, right = st.columns(2)
    targets = left.multiselect("Targets", names, placeholder="All targets", key="inc_targets")
    outcomes = right.multiselect(
        "Went through",
        [str(o) for o in Outcome if o != Outcome.OK],
        placeholder="Any outcome",
        key="inc_outcomes",
    )
    loaded = data.load_incidents(url, start, end, now, tuple(targets), tuple(outcomes))
    rows, stats = loaded["rows"], loaded["stats"]

    cols = st.columns(3)
    cols[0].metric("Incidents", stats["count"])
    cols[1].metric("Still open", stats["open"])
    cols[2].metric(
        "MTTR", f.span(stats["mttr_s"]), help="Mean time to recovery of the closed incidents."
    )
    if not rows:
        st.info(f"No incidents between {f.when(start, tz)} and {f.when(end, tz)}.")
        return

    table, per_class = st.columns([3, 1])
    with table:
        frame = tables.incident_frame(rows, tz)
        st.dataframe(
            tables.styled(frame, outcomes=["went through"]),
            hide_index=True,
            column_config=tables.link_columns(frame),
        )
        st.download_button(
            "Download CSV",
            tables.incidents_csv(rows, tz),
            file_name="inferwatch-incidents.csv",
            mime="text/csv",
            icon=":material/download:",
            on_click="ignore",
        )
    with per_class:
        st.markdown("**Incidents per outcome**")
        st.markdown(
            " ".join(f"{f.badge(cls)}&nbsp;{n}" for cls, n in tables.class_counts(rows).items()),
            unsafe_allow_html=True,
        )
        st.plotly_chart(
            charts.outcome_bars(stats["per_class"], unit="incidents"),
            key="per_class",
            config={"displayModeBar": False},
        )

    st.subheader("Alerts sent for them")
    alerts = tables.incident_alert_frame(rows, tz)
    if alerts.empty:
        st.caption("No alerts were queued for these incidents.")
    else:
        st.dataframe(
            tables.styled(alerts, statuses=["status"]),
            hide_index=True,
            column_config=tables.link_columns(alerts),
        )
    st.caption(
        "An incident runs from the first failing transition to the recovery; durations of open "
        "ones run to now. MTTR counts closed incidents only."
    )


incidents()

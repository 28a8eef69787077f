"""Alerts: the delivery log — what was sent on which channel, what is still waiting, what
failed and why."""

from __future__ import annotations

from collections import Counter

import streamlit as st

from dashboard import data, tables, widgets
from dashboard import format as f
from dashboard.settings import database_url

STATUSES = ("sent", "pending", "failed")

time_range = widgets.sidebar(time_range=True)
st.title("Alerts")


@widgets.live
def alerts() -> None:
    url = database_url()
    tz, now = widgets.viewer_zone(), data.clock()
    start, end = time_range.bounds(now, tz)
    wanted = st.multiselect("Status", STATUSES, placeholder="Any status", key="alert_statuses")
    rows = data.load_alerts(url, start, end, tuple(wanted))
    counts = Counter(r["status"] for r in rows)
    st.markdown(
        " &nbsp; ".join(
            f"{f.badge(s, f.STATUS_CLASS[s])}&nbsp;<b>{counts.get(s, 0)}</b>" for s in STATUSES
        ),
        unsafe_allow_html=True,
    )
    if not rows:
        st.info(f"No alerts between {f.when(start, tz)} and {f.when(end, tz)}.")
        return
    frame = tables.alert_frame(rows, tz)
    st.dataframe(
        tables.styled(frame, statuses=["status"]),
        hide_index=True,
        column_config={
            **{n: st.column_config.TextColumn(width=px) for n, px in tables.ALERT_WIDTHS.items()},
            **tables.link_columns(frame),
        },
    )
    st.caption(
        "One row per alert and channel (email, webhook, slack, apprise). Pending alerts are "
        "retried (5 s doubling to 60 s, for up to a day); an answer that a retry cannot mend "
        "(a mail server's 5xx, a webhook's 4xx) marks one failed. URL channels list no "
        "recipients: their URLs are secrets. Without a channel under alerts: in the config, "
        "changes are recorded but not sent."
    )


alerts()

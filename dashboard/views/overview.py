"""Overview: what needs action now, then every target's state, uptime and latency at a glance."""

from __future__ import annotations

from collections import Counter

import streamlit as st

from dashboard import data, widgets
from dashboard import format as f
from dashboard.settings import START_HINT, Unavailable, database_url, settings
from monitor.domain.history import UPTIME_WINDOWS

WIDTHS = [2.4, 3, 1, 1, 1, 1, 1.6, 2.8]
HEADINGS = ["Target", "State", "24 h", "7 d", "30 d", "90 d", "p50 / p95, 24 h", "Last change"]

widgets.sidebar()
st.title("Overview")


@widgets.live
def overview() -> None:
    url = database_url()
    tz, real_now = widgets.viewer_zone(), data.wall_now()
    loaded = data.load_overview(url, settings().targets, data.clock())
    rows = loaded["rows"]
    if not rows:
        raise Unavailable(f"No probes yet: {START_HINT}.")

    if loaded["flags"]:
        st.subheader("Needs action")
        for flag in loaded["flags"]:
            st.markdown(f.flag_html(**flag, tz=tz), unsafe_allow_html=True)

    states = Counter(r["state"] or "no data" for r in rows)
    st.subheader(f"{len(rows)} targets")
    st.markdown(
        " ".join(f"{f.badge(s)}&nbsp;{n}" for s, n in states.most_common()),
        unsafe_allow_html=True,
    )
    head = st.columns(WIDTHS)
    for col, text in zip(head, HEADINGS, strict=True):
        col.caption(f"**{text}**")
    for r in rows:
        with st.container(border=True, key=f"target-{r['name']}"):
            cols = st.columns(WIDTHS, vertical_alignment="center")
            cols[0].page_link(
                "views/target.py", label=f"**{r['name']}**", query_params={"name": r["name"]}
            )
            cols[0].caption(r["kind"] or "not in the database yet")
            cols[1].markdown(f.badge(r["state"]), unsafe_allow_html=True)
            if r["since"]:
                lasted = f.lasted(r["since"], real_now)
                cols[1].caption(f"for {lasted} · since {f.when(r['since'], tz)}")
            for col, window in zip(cols[2:6], UPTIME_WINDOWS, strict=True):
                col.markdown(f"**{f.percent(r['uptime'][window])}**")
            cols[6].markdown(f"{f.millis(r['p50_ms'])} / {f.millis(r['p95_ms'])}")
            cols[7].markdown(r["last_change"] or f.DASH)
            told = [f.when(r["last_change_at"], tz)] if r["last_change_at"] else []
            if now_says := f.evidence(r["state"], r["http_status"], r["detail"], width=60):
                told.append(f.plain(now_says))  # the 410 of today beside yesterday's "(404)"
            if told:
                cols[7].caption(" · ".join(told))
    st.caption(
        f"{widgets.UPTIME_NOTE} Latency from the last 24 h. "
        f"Updated {f.when(real_now, tz, seconds=True)}."
    )


overview()

"""Target: one target's story — status band, latency, outcome mix, probe log, its changes.

Emails link here as /target?name=NAME, so the query parameter picks the target, and picking
another target updates it (the URL can be shared).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import streamlit as st

from dashboard import charts, data, tables, widgets
from dashboard import format as f
from dashboard.settings import START_HINT, Unavailable, database_url, settings
from monitor.domain import cost
from monitor.domain.history import period_for
from monitor.domain.rollups import HOUR

PROBE_LIMIT = 200
CHART_CONFIG = {"displayModeBar": False}


def shown_name(names: list[str]) -> str | None:
    """The target this run shows, as pick() will choose it (the URL, the last pick, the first)."""
    wanted = st.query_params.get("name")
    if wanted in names:
        return wanted
    if st.session_state.get("target") in names:
        return str(st.session_state["target"])
    return names[0] if names else None


def fitting_range() -> str:
    """The default range for the target shown: one that fits its age (see range_for_age)."""
    if st.session_state.get(widgets.RANGE_CHOSEN):
        return widgets.DEFAULT_RANGE  # the viewer's own choice wins; no need to ask the database
    try:
        url = database_url()
        name = shown_name(data.load_names(url, settings().targets))
        first = data.load_first_probe(url, name) if name else None
    except Exception:  # the page itself reports what is wrong; the range just stays usual
        return widgets.DEFAULT_RANGE
    return widgets.range_for_age(first, data.wall_now())


time_range = widgets.sidebar(time_range=True, default=fitting_range())
st.title("Target")


def _follow_selection() -> None:
    st.query_params["name"] = st.session_state["target"]


def pick(names: list[str]) -> str:
    """The target named in the URL, else the one picked before, else the first."""
    wanted = st.query_params.get("name")
    if wanted in names:
        st.session_state["target"] = wanted
    elif wanted:
        st.warning(f"No target named {wanted!r} in the database; showing another.")
    if st.session_state.get("target") not in names:
        st.session_state["target"] = names[0]
    name = st.columns([1, 2])[0].selectbox(
        "Target", names, key="target", on_change=_follow_selection
    )
    if st.query_params.get("name") != name:
        st.query_params["name"] = name
    return name


@widgets.live
def target(name: str, time_range: widgets.TimeRange) -> None:
    url = database_url()
    tz, now = widgets.viewer_zone(), data.clock()
    start, end = time_range.bounds(now, tz)
    first = data.load_first_probe(url, name)
    # The band starts at the first probe: no grey "no data" for the time before the target.
    band_start = max(start, first) if first is not None and first < end else start
    rows = data.load_overview(url, settings().targets, now)["rows"]
    row = next((r for r in rows if r["name"] == name), None)
    if row is not None and row["state"] not in (None, "ok"):
        flag = {k: row[k] for k in ("state", "since", "detail", "hint", "facts")}
        st.markdown(f.flag_html(name, **flag, tz=tz), unsafe_allow_html=True)
    elif row is not None:
        since = f"since {f.when(row['since'], tz)} ({f.ago(row['since'], data.wall_now())})"
        st.markdown(
            f"{f.badge(row['state'])} {since if row['since'] else 'not probed yet'}",
            unsafe_allow_html=True,
        )
    if said := provider_word(name, rows, tz):
        st.warning(said, icon=":material/campaign:")
    regions_section(url, name, tz)

    timeline = data.load_timeline(url, name, band_start, end)
    buckets = timeline["buckets"]
    probes, ok = sum(b["probes"] for b in buckets), sum(b["ok"] for b in buckets)
    block = "hour" if period_for(band_start, end) == HOUR else "day"

    st.subheader("Status")
    cols = st.columns(3)
    cols[0].metric("Uptime in range", f.percent(ok / probes if probes else None))
    cols[1].metric("Probes in range", f"{probes:,}")
    cols[2].metric("Failing probes", f"{probes - ok:,}")
    st.plotly_chart(charts.status_band(buckets, tz), key="band", config=CHART_CONFIG)
    if spent := probe_cost(url, name):
        st.caption(f"Probe cost: {spent}.")
    began = f"First probe {f.when(first, tz)}. " if band_start != start and first else ""
    st.caption(
        f"{began}One block per {block}, coloured by the worst outcome in it. {widgets.UPTIME_NOTE}"
    )
    gaps = data.load_gaps(url, start, end)
    if gaps:
        spans = "; ".join(f"{f.when(a, tz)} – {f.when(b, tz)}" for a, b in gaps)
        st.caption(f"Monitor not running (no data): {spans}")

    left, right = st.columns([2, 1])
    with left:
        st.subheader("Latency")
        st.plotly_chart(charts.latency_chart(buckets, tz), key="latency", config=CHART_CONFIG)
        st.caption(f"p50 and p95 per {block}, whole probe time.")
    with right:
        st.subheader("Outcome mix")
        if timeline["mix"]:
            st.plotly_chart(charts.outcome_bars(timeline["mix"]), key="mix", config=CHART_CONFIG)
        else:
            st.caption("No probes in this range.")
    pace = data.load_stream_pace(url, name, band_start, end)
    if pace:  # a streamed target (`stream: true`)
        st.subheader("Time to first token")
        st.plotly_chart(charts.stream_chart(pace, tz), key="ttft", config=CHART_CONFIG)
        st.caption(
            f"p50 and p95 per {block} of the time from the probe's start to the first content "
            "token, and the median tokens per second after it."
        )

    if moves := data.load_provider_changes(url, name, start, end):
        st.subheader("Provider changes")
        st.dataframe(
            [
                {
                    "time": f.when(m["checked_at"], tz),
                    "added": ", ".join(m["added"]) or f.DASH,
                    "dropped": ", ".join(m["dropped"]) or f.DASH,
                    "live after": ", ".join(m["live"]) or "none",
                }
                for m in moves
            ],
            hide_index=True,
        )
        st.caption(
            "Changes in the Inference Providers serving the model, newest first: a provider "
            "dropped is the early warning before calls through it fail."
        )

    log, changes, incidents = st.tabs(["Probe log", "Transitions", "Incidents"])
    with log:
        outcomes = st.multiselect(
            "Only these outcomes", list(timeline["mix"]), key="probe_outcomes"
        )
        probes_shown = data.load_probe_log(url, name, start, end, tuple(outcomes), PROBE_LIMIT)
        frame = tables.probe_frame(probes_shown, tz)
        st.dataframe(tables.styled(frame, outcomes=["outcome"]), hide_index=True)
        st.caption(f"The newest {PROBE_LIMIT} probes in the range, with the provider's evidence.")
    with changes:
        rows = data.load_transitions(url, start, end, name)
        if rows:
            frame = tables.transition_frame(rows, tz, with_target=False)
            st.dataframe(
                tables.styled(frame, outcomes=["to"]),
                hide_index=True,
                column_config=tables.link_columns(frame),
            )
        else:
            st.caption("No state changes in this range.")
    with incidents:
        found = data.load_incidents(url, start, end, now, (name,), ())["rows"]
        if found:
            frame = tables.incident_frame(found, tz, with_target=False)
            st.dataframe(
                tables.styled(frame, outcomes=["went through"]),
                hide_index=True,
                column_config=tables.link_columns(frame),
            )
        else:
            st.caption("No incidents in this range.")
        st.page_link("views/incidents.py", label="All incidents", icon=":material/history:")


def regions_section(url: str, name: str, tz: ZoneInfo) -> None:
    """Each region's own state, with agents in several regions (nothing with one region)."""
    info = next((t for t in settings().catalog if t.name == name), None)
    regions = data.load_region_states(url, name, info.interval_s if info else None, data.clock())
    if not regions:
        return
    st.subheader("Regions")
    st.markdown("\n".join(f"- {f.plain(f.region_line(r, tz))}" for r in regions))
    st.caption(
        "Each region's own confirmed state. The target's state follows a quorum of the regions "
        "that still report (a result within two intervals); a region alone is recorded as a "
        "regional observation."
    )


def provider_word(name: str, rows: list[dict[str, Any]], tz: ZoneInfo) -> str:
    """What the target's related status page (`status_page:`) reports, when an incident."""
    info = next((t for t in settings().catalog if t.name == name), None)
    page = info.status_page if info is not None else None
    row = next((r for r in rows if r["name"] == page), None) if page else None
    if row is None or row["candidate"] != "provider_incident":
        return ""
    words = f" — {row['detail']}" if row["state"] == "provider_incident" and row["detail"] else ""
    since = f" since {f.when(row['streak_since'], tz)}" if row["streak_since"] else ""
    return f"Status page {page}: the provider reports an incident{since}{words}"


def probe_cost(url: str, name: str) -> str:
    """What probing this target costs in tokens ("" for a kind that spends none)."""
    info = next((t for t in settings().catalog if t.name == name), None)
    per_probe = cost.tokens_per_probe(data.load_usage(url, name))
    if info is not None and info.spends_tokens and info.interval_s:
        return cost.cost_line(per_probe, info.interval_s)
    return f"{per_probe:,} tokens a probe" if per_probe is not None else ""


@widgets.guarded
def page() -> None:
    url = database_url()
    names = data.load_names(url, settings().targets)
    if not names:
        raise Unavailable(f"No probes yet: {START_HINT}.")
    name = pick(names)
    if base := settings().dashboard_url:  # the same link the alert emails carry
        st.caption(f"Link to this page: {base.rstrip('/')}/target?name={quote(name, safe='')}")
    target(name, time_range)


page()

"""Overview: what needs action now, then every target's state, history, uptime and latency.

The target list is one element (an HTML table built by dashboard/wall.py), so 1,000 targets
render in seconds. `?kiosk=1` (or `?view=wall`) is the wall screen: no sidebar or header,
larger type, 100 targets side by side on one 1920x1080 screen, redrawn every REFRESH_S.
Filters and grouping come from the sidebar, or from the URL (`?group=kind&state=contract,
transient&tag=...&kind=...&provider=...`), which is how a kiosk is set up.
"""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

import streamlit as st

from dashboard import data, wall, widgets
from dashboard import format as f
from dashboard.settings import START_HINT, Unavailable, database_url, settings
from monitor.domain.agents import LOST_AFTER_S
from monitor.domain.maintenance import Window
from monitor.targets import TARGET_KINDS

KIOSK_CSS = """<style>
[data-testid="stSidebar"],[data-testid="stSidebarCollapsedControl"],[data-testid="stHeader"],
[data-testid="stToolbar"],[data-testid="stDecoration"],[data-testid="stExpandSidebarButton"]
{display:none!important}
[data-testid="stMainBlockContainer"]{padding:0.5rem 1rem 0 1rem!important;max-width:100%!important}
[data-testid="stMainBlockContainer"] [data-testid="stVerticalBlock"]{gap:0.4rem}
</style>"""
NO_NETWORK = (
    "This machine seems to have no network: every target with data fails with dns_error. "
    "Check this machine's network and DNS before suspecting the providers."
)


def _listed(name: str) -> tuple[str, ...]:
    """A comma-separated query parameter (`?state=contract,transient`)."""
    raw = st.query_params.get(name) or ""
    return tuple(v.strip() for v in raw.split(",") if v.strip())


def kiosk_mode() -> bool:
    return st.query_params.get("kiosk") in ("1", "true", "yes") or (
        st.query_params.get("view") == "wall"
    )


def choose(param: str, label: str, options: Sequence[str]) -> tuple[str, ...]:
    """A sidebar multiselect, first filled from the URL's `param`."""
    key = f"overview_{param}"
    if key not in st.session_state:
        st.session_state[key] = [v for v in _listed(param) if v in options]
    return tuple(st.multiselect(label, options, key=key, placeholder="all"))


def controls(kiosk: bool) -> tuple[wall.Filters, str]:
    """The filters and grouping: sidebar widgets, or the URL alone on the wall."""
    catalog = settings().catalog
    kinds = sorted({i.kind for i in catalog}) or sorted(TARGET_KINDS)
    tags = sorted({t for i in catalog for t in i.tags})
    providers = sorted({wall.provider(k) for k in kinds})
    default = wall.default_group(len(catalog), bool(tags))
    wanted = st.query_params.get("group")
    if kiosk:
        filters = wall.Filters(*map(_listed, ("state", "kind", "tag", "provider")))
        return filters, wanted if wanted in wall.GROUPS else default
    with st.sidebar:
        st.caption("**Targets shown**")
        filters = wall.Filters(
            choose("state", "State", wall.STATE_CHOICES),
            choose("kind", "Kind", kinds),
            choose("tag", "Tag", tags) if tags else (),
            choose("provider", "Provider", providers),
        )
        if "overview_group" not in st.session_state:
            st.session_state["overview_group"] = wanted if wanted in wall.GROUPS else default
        by = st.selectbox("Group by", wall.GROUPS, key="overview_group")
        st.markdown("[Wall screen view](?kiosk=1)")
    return filters, by


@widgets.live
def overview(filters: wall.Filters, by: str, kiosk: bool) -> None:
    url = database_url()
    tz, real_now = widgets.viewer_zone(), data.wall_now()
    s = settings()
    loaded = data.load_overview(url, s.targets, data.clock())
    rows = loaded["rows"]
    if not rows:
        raise Unavailable(f"No probes yet: {START_HINT}.")
    if wall.no_network(rows):
        st.error(NO_NETWORK, icon=":material/wifi_off:")

    items = wall.entries(rows, s.catalog)
    shown = [e for e in items if filters.keep(e)]
    parts = []
    names = {e.name for e in shown}  # a filtered wall (one team's tag) flags only its targets
    if causes := wall.group_flags(fl for fl in loaded["flags"] if fl["target"] in names):
        parts.append("<h4>Needs action</h4>" if not kiosk else "")
        parts.append(wall.flags_html(causes, tz, compact=kiosk))
    listed, note = shown, ""
    if kiosk and len(shown) > wall.KIOSK_ROWS * wall.KIOSK_COLUMNS:  # more than a screen
        listed = [e for e in shown if e.shown.group != "ok"]
        note = f" · {len(shown) - len(listed)} ok targets not listed"
    of = f" of {len(items)}" if filters.active else ""
    parts.append(
        f"<h4>{'inferwatch · ' if kiosk else ''}{len(shown)}{of} targets "
        f"{wall.summary_html(shown)} <span class='iw-d' style='font-weight:400'>{note} · "
        f"updated {f.when(real_now, tz, seconds=True)}</span></h4>"
    )
    parts.append(wall.wall_html(listed, by, real_now, tz, kiosk, filters.tags))
    st.html(wall.page_html(*parts, kiosk=kiosk))
    if not kiosk:
        quiet_periods(url, s.windows, tz)
        agents(url, tz)
        st.caption(
            f"{widgets.UPTIME_NOTE} Last 24 h: one cell per hour, coloured by the worst probe "
            f"in it. Latency p50 from the last 24 h. A change being confirmed shows as an "
            f'outlined pill ("server_error, confirming 1 of 3").'
        )


def quiet_periods(url: str, windows: tuple[Window, ...], tz: ZoneInfo) -> None:
    """Active and upcoming maintenance windows and silences (nothing when there are none)."""
    found = data.load_quiet_periods(url, windows, data.clock())
    if not found:
        return
    st.markdown("#### Maintenance and silences")
    st.dataframe(
        [
            {
                "": "active" if p["active"] else "upcoming",
                "What": f"{p['kind']} {p['name']}",
                "Covers": p["scope"],
                "From": f.when(p["starts_at"], tz),
                "Until": f.when(p["ends_at"], tz),
                "Reason / schedule": p["reason"],
            }
            for p in found
        ],
        hide_index=True,
    )
    st.caption("Alerts are held while a target is in one; probes in one are left out of uptime.")


def agents(url: str, tz: ZoneInfo) -> None:
    """The agents, when several share the database or one is lost (a lone healthy agent is
    the usual single-machine setup: nothing to say)."""
    found = data.load_agents(url, data.wall_now())
    lost = [a for a in found if not a["alive"] and a["stopped_at"] is None]
    if len(found) < 2 and not lost:
        return
    st.markdown("#### Agents")
    st.dataframe(
        [
            {
                "Agent": a["name"],
                "Region": a["region"],
                "": "alive" if a["alive"] else ("stopped" if a["stopped_at"] else "lost"),
                "Last heartbeat": f.when(a["heartbeat_at"], tz, seconds=True),
                "Targets held": a["targets_held"],
                "Host": a["host"],
            }
            for a in found
        ],
        hide_index=True,
    )
    st.caption(
        f"An agent is lost after {LOST_AFTER_S:g} s without a heartbeat; its targets move to "
        "the others."
    )


kiosk = kiosk_mode()
if kiosk:
    st.html(KIOSK_CSS)
else:
    widgets.sidebar()
    st.title("Overview")
overview(*controls(kiosk), kiosk)

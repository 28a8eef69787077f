"""What every page draws around its data: the sidebar pickers (zone, time range), the shared
captions, and the guards that turn any failure into a message.

Nothing here may show a traceback: a missing or empty database is a friendly message
(`Unavailable`), anything unexpected an apology plus a log line.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal, ParamSpec, overload
from zoneinfo import ZoneInfo, available_timezones

import streamlit as st

from dashboard.format import zone
from dashboard.settings import REFRESH_S, Unavailable, settings, shown_url

log = logging.getLogger("inferwatch.dashboard")

UPTIME_NOTE = (
    "Uptime = ok probes ÷ probes with data. Time when the monitor was not running is "
    "*no data* (grey): it counts neither for nor against a target."
)
RANGES = {
    "Last 6 hours": timedelta(hours=6),
    "Last 24 hours": timedelta(hours=24),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
    "Last 90 days": timedelta(days=90),
}
CUSTOM = "Custom dates"
DEFAULT_RANGE = "Last 7 days"
# Set once the viewer picks a range: from then on no page replaces it with its own default.
RANGE_CHOSEN = "range_chosen"
# Widget keys that must survive visiting a page that does not draw them.
SHARED_KEYS = ("tz", "range", "range_dates")

P = ParamSpec("P")


# ---------------------------------------------------------------- viewer choices (sidebar)


@st.cache_data(show_spinner=False)
def zone_names() -> list[str]:
    return sorted(n for n in available_timezones() if "/" in n or n == "UTC")


def keep_shared_widgets() -> None:
    """Widget values survive pages that do not draw them (Streamlit drops them otherwise)."""
    for key in SHARED_KEYS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def viewer_zone() -> ZoneInfo:
    """The zone picked in the sidebar; before that the browser's, else UTC."""
    return zone(st.session_state.get("tz") or _browser_zone())


def _browser_zone() -> str:
    try:
        name = st.context.timezone
    except Exception:  # older Streamlit or no browser: not worth a message
        name = None
    return name if name in zone_names() else "UTC"


@dataclass(frozen=True)
class TimeRange:
    """A relative range ("Last 24 hours", moving with the clock) or whole local days."""

    label: str
    days: tuple[date, date] | None = None

    def bounds(self, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
        if self.days is None:
            return now - RANGES.get(self.label, RANGES[DEFAULT_RANGE]), now
        first, last = self.days
        start = datetime.combine(first, datetime.min.time(), tz)
        end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tz)
        return start.astimezone(UTC), min(end.astimezone(UTC), now)


def range_for_age(first: datetime | None, now: datetime) -> str:
    """The shortest range holding a target's whole history, at most the usual 7 days: a target
    probed for three hours is not a sliver at the end of a week."""
    if first is None:
        return DEFAULT_RANGE
    for label, span in RANGES.items():
        if span > RANGES[DEFAULT_RANGE]:
            break
        if now - span <= first:
            return label
    return DEFAULT_RANGE


def _range_chosen() -> None:
    st.session_state[RANGE_CHOSEN] = True


@overload
def sidebar(time_range: Literal[True], default: str = DEFAULT_RANGE) -> TimeRange: ...
@overload
def sidebar(time_range: Literal[False] = False, default: str = DEFAULT_RANGE) -> None: ...


def sidebar(time_range: bool = False, default: str = DEFAULT_RANGE) -> TimeRange | None:
    """The viewer's zone (every page) and time range (the pages that have one). Until the
    viewer picks a range, the page's `default` applies."""
    with st.sidebar:
        names = zone_names()
        if "tz" not in st.session_state:
            st.session_state["tz"] = _browser_zone()
        st.selectbox("Times shown in", names, key="tz")
        chosen = None
        if time_range:
            options = [*RANGES, CUSTOM]
            chosen_before = st.session_state.get(RANGE_CHOSEN)
            if not chosen_before or st.session_state.get("range") not in options:
                st.session_state["range"] = default if default in options else DEFAULT_RANGE
            label = st.selectbox("Time range", options, key="range", on_change=_range_chosen)
            chosen = TimeRange(label)
            if label == CUSTOM:
                today = datetime.now(viewer_zone()).date()
                if "range_dates" not in st.session_state:
                    st.session_state["range_dates"] = (today - timedelta(days=6), today)
                picked = st.date_input("Days", key="range_dates", max_value=today)
                if isinstance(picked, tuple | list) and len(picked) == 2:
                    chosen = TimeRange(CUSTOM, (picked[0], picked[1]))
                else:  # half-picked range: the first day alone until the second is chosen
                    day = picked[0] if isinstance(picked, tuple | list) and picked else today
                    chosen = TimeRange(CUSTOM, (day, day))
        st.caption(f"Refreshes every {REFRESH_S} s.")
        if database := settings().database:
            st.caption(f"Database: {shown_url(database)}")
    return chosen


# ---------------------------------------------------------------- guards


SORRY = (
    "Something went wrong while drawing this part of the page. The details are in the "
    "dashboard's log; reloading the page usually helps."
)


def guarded(render: Callable[P, None]) -> Callable[P, None]:
    """Run `render`; show Unavailable as a message and anything else as an apology, never a
    traceback. Streamlit's own stop/rerun signals are BaseExceptions and pass through."""

    @functools.wraps(render)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            render(*args, **kwargs)
        except Unavailable as exc:
            exc.show()
        except Exception:
            log.exception("dashboard page failed")
            st.error(SORRY, icon=":material/error:")

    return run


def live(render: Callable[P, None]) -> Callable[P, None]:
    """A guarded fragment that redraws itself every REFRESH_S seconds (the live pages)."""
    return st.fragment(run_every=REFRESH_S)(guarded(render))

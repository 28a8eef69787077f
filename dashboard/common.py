"""What every page shares: settings, the read-only engine, cached queries, the sidebar, guards.

Queries run through dashboard.queries and come back as plain dicts, so st.cache_data can keep
them (ORM rows are bound to a session and do not pickle). Cache keys use a clock rounded to the
refresh interval: every viewer of a wall screen shares one query per page per 30 s.

Nothing here may show a traceback: a missing or empty database is a friendly message, anything
unexpected an apology plus a log line.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from zoneinfo import ZoneInfo, available_timezones

import streamlit as st
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session

from dashboard import queries as q
from dashboard.format import zone
from monitor.config.load import ConfigError, load_config
from monitor.config.types import DEFAULT_CONFIG_FILE
from monitor.store.db import display_url, make_engine

log = logging.getLogger("inferwatch.dashboard")

CONFIG_ENV = "INFERWATCH_CONFIG"
DATABASE_ENV = "INFERWATCH_DATABASE"
REFRESH_S = 30
START_HINT = "start the monitor with `inferwatch run`"
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
# Widget keys that must survive visiting a page that does not draw them.
SHARED_KEYS = ("tz", "range", "range_dates")

P = ParamSpec("P")
R = TypeVar("R")


class Unavailable(Exception):
    """The page cannot show data, for a reason the viewer can act on (not a bug)."""

    def __init__(self, message: str, level: str = "info"):
        super().__init__(message)
        self.message = message
        self.level = level

    def show(self) -> None:
        if self.level == "error":
            st.error(self.message, icon=":material/error:")
        else:
            st.info(self.message, icon=":material/info:")


# ---------------------------------------------------------------- settings and database


@dataclass(frozen=True)
class Settings:
    database: str | None
    targets: tuple[str, ...] | None  # config order; None: every target in the database
    dashboard_url: str | None
    config_file: str
    config_problem: str | None  # why the config was not used, when it was not


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def _settings(config_file: str, database_env: str | None) -> Settings:
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        first = exc.problems[0] if exc.problems else exc
        return Settings(database_env, None, None, config_file, str(first))
    return Settings(
        database_env or config.database,
        tuple(t.name for t in config.targets),
        config.alerts.dashboard_url,
        config_file,
        None,
    )


def settings() -> Settings:
    """INFERWATCH_CONFIG names the config; INFERWATCH_DATABASE, when set, overrides its URL."""
    return _settings(
        os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE, os.environ.get(DATABASE_ENV) or None
    )


def shown_url(url: str) -> str:
    """A URL fit for the page: a SQLite file as its path, anything else as display_url shows
    it (password masked, an unparsable URL never echoed)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return display_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return display_url(url)


def database_url() -> str:
    """The URL to read, or Unavailable saying what to do (no config, no database file)."""
    s = settings()
    if s.database is None:
        raise Unavailable(
            f"Cannot read the config {s.config_file}: {s.config_problem}. Point "
            f"{CONFIG_ENV} at your inferwatch.yaml, or {DATABASE_ENV} at the database URL.",
            level="error",
        )
    try:
        parsed = make_url(s.database)
    except ArgumentError:
        raise Unavailable(f"Not a database URL: {s.database}", level="error") from None
    path = parsed.database
    local_file = parsed.get_backend_name() == "sqlite" and path and path != ":memory:"
    if local_file and not Path(path).is_file():
        raise Unavailable(f"No database at {path}: {START_HINT}.")
    return s.database


@st.cache_resource(show_spinner=False)
def engine(url: str) -> Engine:
    """One read-only engine per database for the whole server: the dashboard never writes."""
    return make_engine(url, readonly=True)


@contextmanager
def session(url: str) -> Iterator[Session]:
    """A session whose database errors become friendly messages (no probes yet, unreadable)."""
    eng = engine(url)
    try:
        with Session(eng) as s:
            yield s
    except SQLAlchemyError as exc:
        try:
            has_schema = inspect(eng).has_table("targets")
        except SQLAlchemyError:
            has_schema = True  # cannot even look: report the original problem
        if not has_schema:
            raise Unavailable(f"No probes yet in {shown_url(url)}: {START_HINT}.") from exc
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        log.warning("cannot read %s: %s", shown_url(url), exc)
        outdated = "no such" in reason or "does not exist" in reason  # an older schema
        fix = " The schema looks older than this dashboard: run `inferwatch db upgrade`."
        raise Unavailable(
            f"Cannot read the database {shown_url(url)}: {reason}.{fix if outdated else ''}",
            level="error",
        ) from exc


def clock() -> datetime:
    """Now, rounded up to the refresh interval: a shared cache key, and no probe left out."""
    ts = math.ceil(datetime.now(UTC).timestamp() / REFRESH_S) * REFRESH_S
    return datetime.fromtimestamp(ts, UTC)


# ---------------------------------------------------------------- cached queries (plain data)


# ORM columns copied into the cached dicts.
PROBE_COLUMNS = (
    "checked_at",
    "outcome",
    "http_status",
    "latency_ms",
    "connect_ms",
    "tls_ms",
    "ttfb_ms",
    "detail",
    "hint",
    "warning",
    "request_id",
    "provider",
)
TRANSITION_COLUMNS = (
    "at",
    "started_at",
    "from_outcome",
    "to_outcome",
    "label",
    "detail",
    "hint",
    "http_status",
    "announced",
)
ALERT_COLUMNS = q.ALERT_COLUMNS


def _bucket(b: q.Bucket) -> dict[str, Any]:
    return {**dataclasses.asdict(b), "worst": b.worst, "uptime": b.uptime}


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_overview(url: str, names: tuple[str, ...] | None, now: datetime) -> dict[str, Any]:
    """Rows and flags; configured targets never probed yet appear as "no data"."""
    with session(url) as s:
        rows = q.overview(s, now, names)
    flags = [dataclasses.asdict(f) for f in q.flags(rows)]
    out = [dataclasses.asdict(r) for r in rows]
    seen = {r.name for r in rows}
    for i, name in enumerate(names or ()):
        if name not in seen:
            out.insert(i, _never_probed(name))
    return {"rows": out, "flags": flags}


def _never_probed(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "",
        "url": "",
        "state": None,
        "since": None,
        "uptime": dict.fromkeys(q.UPTIME_WINDOWS),
        "p50_ms": None,
        "p95_ms": None,
        "probes_24h": 0,
        "last_change_at": None,
        "last_change": "not probed yet",
        "detail": "",
        "hint": "",
        "http_status": None,
    }


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_names(url: str, configured: tuple[str, ...] | None) -> list[str]:
    """Configured targets first, in config order, then any others the database knows."""
    with session(url) as s:
        stored = q.target_names(s)
    if configured is None:
        return stored
    return [*configured, *(n for n in stored if n not in configured)]


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_timeline(url: str, target: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Hourly (up to 7 days) or daily buckets, every one present, and the outcome mix."""
    with session(url) as s:
        buckets = q.timeline(s, target, start, end)
    return {"buckets": [_bucket(b) for b in buckets], "mix": q.outcome_mix(buckets)}


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_probe_log(
    url: str, target: str, start: datetime, end: datetime, outcomes: tuple[str, ...], limit: int
) -> list[dict[str, Any]]:
    with session(url) as s:
        probes = q.probe_log(s, target, start, end, limit=limit, outcomes=outcomes or None)
        return [{c: getattr(p, c) for c in PROBE_COLUMNS} for p in probes]


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_transitions(
    url: str, start: datetime, end: datetime, target: str | None
) -> list[dict[str, Any]]:
    with session(url) as s:
        return [
            {"target": name, **{c: getattr(t, c) for c in TRANSITION_COLUMNS}}
            for t, name in q.transitions(s, start, end, target)
        ]


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_incidents(
    url: str,
    start: datetime,
    end: datetime,
    now: datetime,
    targets: tuple[str, ...],
    outcomes: tuple[str, ...],
) -> dict[str, Any]:
    with session(url) as s:
        rows = q.incidents(s, start, end, now, targets or None, outcomes or None)
    return {
        "rows": [{**dataclasses.asdict(r), "open": r.open} for r in rows],
        "stats": dataclasses.asdict(q.incident_stats(rows)),
    }


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_alerts(
    url: str, start: datetime, end: datetime, statuses: tuple[str, ...]
) -> list[dict[str, Any]]:
    with session(url) as s:
        return [
            {"target": name, **{c: getattr(a, c) for c in ALERT_COLUMNS}}
            for a, name in q.alert_log(s, start, end, statuses or None)
        ]


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_gaps(url: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    with session(url) as s:
        return q.gaps(s, start, end)


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


def sidebar(time_range: bool = False) -> TimeRange | None:
    """The viewer's zone (every page) and time range (the pages that have one)."""
    with st.sidebar:
        names = zone_names()
        if "tz" not in st.session_state:
            st.session_state["tz"] = _browser_zone()
        st.selectbox("Times shown in", names, key="tz")
        chosen = None
        if time_range:
            options = [*RANGES, CUSTOM]
            if st.session_state.get("range") not in options:
                st.session_state["range"] = DEFAULT_RANGE
            label = st.selectbox("Time range", options, key="range")
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

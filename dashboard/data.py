"""The pages' data: cached loaders over monitor/store/reads.py, returning plain data.

Results come back as plain dicts, so st.cache_data can keep them (ORM rows are bound to a
session and do not pickle). Cache keys use a clock rounded to the refresh interval: every
viewer of a wall screen shares one query per page per 30 s. Database errors become
`Unavailable` messages (no probes yet, an older schema, an unreadable file).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import streamlit as st
from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from dashboard.settings import REFRESH_S, START_HINT, Unavailable, engine, shown_url
from monitor.domain.history import UPTIME_WINDOWS
from monitor.domain.maintenance import Window, periods
from monitor.store import reads

log = logging.getLogger("inferwatch.dashboard")

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
    "quiet_reason",
    "incident_id",
    "region",  # set on a regional observation: the target's state did not follow it
    "regions",
)


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


def wall_now() -> datetime:
    """The real now: what every duration the viewer reads ("for 23s", "so far") runs to."""
    return datetime.now(UTC)


def clock() -> datetime:
    """Now, rounded up to the refresh interval: a shared cache key, and no probe left out.

    Only for cache keys and query ranges: a duration from it would be up to REFRESH_S long.
    """
    ts = math.ceil(wall_now().timestamp() / REFRESH_S) * REFRESH_S
    return datetime.fromtimestamp(ts, UTC)


def _bucket(b: reads.Bucket) -> dict[str, Any]:
    return {**dataclasses.asdict(b), "worst": b.worst, "uptime": b.uptime}


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_overview(url: str, names: tuple[str, ...] | None, now: datetime) -> dict[str, Any]:
    """Rows and flags; configured targets never probed yet appear as "no data"."""
    with session(url) as s:
        rows = reads.overview(s, now, names)
    flags = [dataclasses.asdict(f) for f in reads.flags(rows)]
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
        "uptime": dict.fromkeys(UPTIME_WINDOWS),
        "p50_ms": None,
        "p95_ms": None,
        "probes_24h": 0,
        "last_change_at": None,
        "last_change": "not probed yet",
        "detail": "",
        "hint": "",
        "http_status": None,
        "facts": {},
        "candidate": None,
        "streak": 0,
        "streak_since": None,
        "hours": (),
        "regional": (),
    }


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_names(url: str, configured: tuple[str, ...] | None) -> list[str]:
    """Configured targets first, in config order, then any others the database knows."""
    with session(url) as s:
        stored = reads.target_names(s)
    if configured is None:
        return stored
    return [*configured, *(n for n in stored if n not in configured)]


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_quiet_periods(
    url: str, windows: tuple[Window, ...], now: datetime
) -> list[dict[str, Any]]:
    """Maintenance windows and silences in force at `now` or starting within 7 days."""
    with session(url) as s:
        silences = reads.silences(s, since=now)
    return [
        {**dataclasses.asdict(p), "active": p.active(now)} for p in periods(windows, silences, now)
    ]


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_first_probe(url: str, target: str) -> datetime | None:
    with session(url) as s:
        return reads.first_probe(s, target)


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_provider_changes(
    url: str, target: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The changes in a model's live providers in the range, newest first."""
    with session(url) as s:
        return [dataclasses.asdict(c) for c in reads.provider_changes(s, target, start, end)]


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_usage(url: str, target: str) -> list[int]:
    """The tokens the target's newest probes cost, as their providers reported."""
    with session(url) as s:
        return reads.recent_usage(s, target)


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_timeline(url: str, target: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Hourly (up to 7 days) or daily buckets, every one present, and the outcome mix."""
    with session(url) as s:
        buckets = reads.timeline(s, target, start, end)
    return {"buckets": [_bucket(b) for b in buckets], "mix": reads.outcome_mix(buckets)}


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_stream_pace(url: str, target: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """A streamed target's time to first token and tokens per second per block; [] if none."""
    with session(url) as s:
        return [dataclasses.asdict(b) for b in reads.stream_pace(s, target, start, end)]


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_probe_log(
    url: str, target: str, start: datetime, end: datetime, outcomes: tuple[str, ...], limit: int
) -> list[dict[str, Any]]:
    with session(url) as s:
        probes = reads.probe_log(s, target, start, end, limit=limit, outcomes=outcomes or None)
        return [{c: getattr(p, c) for c in PROBE_COLUMNS} for p in probes]


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_transitions(
    url: str, start: datetime, end: datetime, target: str | None
) -> list[dict[str, Any]]:
    with session(url) as s:
        return [
            {"target": name, **{c: getattr(t, c) for c in TRANSITION_COLUMNS}}
            for t, name in reads.transitions(s, start, end, target)
        ]


def load_incidents(
    url: str,
    start: datetime,
    end: datetime,
    now: datetime,
    targets: tuple[str, ...],
    outcomes: tuple[str, ...],
) -> dict[str, Any]:
    """Incidents from the cache (keyed by the rounded `now`); open ones last to the real now."""
    loaded = _load_incidents(url, start, end, now, targets, outcomes)
    real = wall_now()
    rows = [
        {**r, "duration_s": (real - r["opened_at"]).total_seconds()} if r["open"] else r
        for r in loaded["rows"]
    ]
    return {**loaded, "rows": rows}


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def _load_incidents(
    url: str,
    start: datetime,
    end: datetime,
    now: datetime,
    targets: tuple[str, ...],
    outcomes: tuple[str, ...],
) -> dict[str, Any]:
    with session(url) as s:
        rows = reads.incidents(s, start, end, now, targets or None, outcomes or None)
    return {
        "rows": [{**dataclasses.asdict(r), "open": r.open} for r in rows],
        "stats": dataclasses.asdict(reads.incident_stats(rows)),
    }


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_alerts(
    url: str, start: datetime, end: datetime, statuses: tuple[str, ...]
) -> list[dict[str, Any]]:
    with session(url) as s:
        found = reads.alerts(s, start, end, statuses=statuses or None, limit=reads.ALERT_LOG_LIMIT)
        return [
            {"target": name, **{c: getattr(a, c) for c in reads.ALERT_COLUMNS}} for a, name in found
        ]


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_agents(url: str, now: datetime) -> list[dict[str, Any]]:
    """The registered agents (reads.agents), alive or lost by the database's clock, which their
    heartbeats are written in (`now` only keys the cache)."""
    with session(url) as s:
        return [dataclasses.asdict(a) for a in reads.agents(s)]


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_region_states(
    url: str, target: str, interval_s: float | None, now: datetime
) -> list[dict[str, Any]]:
    """Each region's own state of the target (reads.region_states), whether it still reports
    judged by the database's clock (`now` only keys the cache); [] with one region."""
    intervals = {target: interval_s} if interval_s else None
    with session(url) as s:
        found = reads.region_states(s, [target], intervals)
    return [dataclasses.asdict(r) for r in found.get(target, [])]


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def load_gaps(url: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    with session(url) as s:
        return reads.gaps(s, start, end)


def load_incident(url: str, incident_id: int, now: datetime) -> dict[str, Any] | None:
    """One incident for its page (reads.incident_detail as plain dicts), None when unknown;
    an open one lasts to the real now, like the Incidents page's."""
    loaded = _load_incident(url, incident_id, now)
    if loaded is None or loaded["incident"]["closed_at"] is not None:
        return loaded
    opened: datetime = loaded["incident"]["opened_at"]
    lasted = (wall_now() - opened).total_seconds()
    return {**loaded, "incident": {**loaded["incident"], "duration_s": lasted}}


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def _load_incident(url: str, incident_id: int, now: datetime) -> dict[str, Any] | None:
    with session(url) as s:
        found = reads.incident_detail(s, incident_id, now)
    if found is None:
        return None
    out = dataclasses.asdict(found)
    out["incident"]["open"] = found.incident.open
    return out

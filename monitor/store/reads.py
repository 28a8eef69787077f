"""Every read of the CLI and the dashboard, as plain data: the one place their SQL lives.

The review commands (monitor/cli/review.py) and the dashboard's cached loaders
(dashboard/data.py) call the same functions; benchmarks/dashboard_queries.py times them on a
large history.

The overview never scans raw probes: current states come from `target_states`, uptime and
latency from the hourly/daily rollups, "why" (with its facts) from the last transition, or for
a failing target from its newest probe in that state (one index lookup each). Otherwise raw
probes are read only for one target's probe log, a page at a time.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, and_, case, func, or_, select
from sqlalchemy.orm import Session, load_only

from monitor.domain.agents import Agent, alive
from monitor.domain.evidence import NO_DATA, Outcome, OutcomeClass
from monitor.domain.history import ACTION_OUTCOMES, UPTIME_WINDOWS, period_for, state_class
from monitor.domain.maintenance import MAINTENANCE, Silence
from monitor.domain.quorum import RegionState, reporting_regions
from monitor.domain.rollups import DAY, HOUR, PERIODS, Rollup, decode_latency, period_start
from monitor.domain.sampling import PROVIDER_CHANGE
from monitor.domain.states import TargetState
from monitor.domain.text import utcnow
from monitor.store.models import (
    AgentRecord,
    AlertRecord,
    IncidentRecord,
    MonitorRunRecord,
    ProbeRecord,
    RollupRecord,
    SilenceRecord,
    TargetRecord,
    TargetRegionStateRecord,
    TargetStateRecord,
    TransitionRecord,
)

# A regional observation (`transitions.region` set) is one region's own change that the
# target's state did not follow: every read about the target's own state leaves it out.
OWN_CHANGE = TransitionRecord.region.is_(None)


def target_names(session: Session) -> list[str]:
    """Every target name the history knows (configured now or in the past), sorted."""
    return list(session.scalars(select(TargetRecord.name).order_by(TargetRecord.name)))


def last_seen(session: Session) -> datetime | None:
    """When a monitor run last wrote (its newest heartbeat); None before the first run."""
    return session.scalar(select(func.max(MonitorRunRecord.last_seen_at)))


def first_probe(session: Session, target: str) -> datetime | None:
    """When the target's oldest kept probe ran: its history starts there (an index probe)."""
    return session.scalar(
        select(func.min(ProbeRecord.checked_at))
        .join(TargetRecord, TargetRecord.id == ProbeRecord.target_id)
        .where(TargetRecord.name == target)
    )


# ------------------------------------------------------------------ overview


@dataclass(frozen=True)
class TargetRow:
    name: str
    kind: str
    url: str
    state: str | None  # accepted outcome, None before the first probe
    since: datetime | None
    uptime: dict[str, float | None]  # window -> ok / probes with data
    p50_ms: float | None  # 24 h
    p95_ms: float | None
    probes_24h: int
    last_change_at: datetime | None
    last_change: str  # the transition's label
    detail: str  # why: the provider's words when it entered this state
    hint: str  # what to do
    http_status: int | None
    # What the answer says in structured form (replacement_url, missing_permission, ...),
    # from the same probe (or transition) as detail and hint.
    facts: dict[str, Any] = field(default_factory=dict)
    # The state machine's latest outcome and its run: a failure not confirmed yet is pending
    # (candidate != state, streak below the rule's threshold; the thresholds are the config's).
    candidate: str | None = None
    streak: int = 0
    streak_since: datetime | None = None
    # The last HISTORY_HOURS hours, oldest first, each as its colour key (Bucket.worst).
    hours: tuple[str, ...] = ()
    # Regions whose own state disagrees with the target's right now (an open regional
    # observation, monitor/domain/quorum.py); empty with one region.
    regional: tuple[str, ...] = ()


@dataclass(frozen=True)
class Flag:
    """A current state that needs someone to act, with what to do."""

    target: str
    state: str
    since: datetime | None
    detail: str
    hint: str
    facts: dict[str, Any] = field(default_factory=dict)


def overview(
    session: Session, now: datetime, names: Sequence[str] | None = None
) -> list[TargetRow]:
    """One row per target: state, since, uptime per window, latency (24 h), last change."""
    targets = session.execute(
        select(
            TargetRecord.id,
            TargetRecord.name,
            TargetRecord.kind,
            TargetRecord.url,
            TargetStateRecord.state,
        )
        .outerjoin(TargetStateRecord, TargetStateRecord.target_id == TargetRecord.id)
        .order_by(TargetRecord.name)
    ).all()
    if names is not None:
        order = {n: i for i, n in enumerate(names)}
        targets = sorted((t for t in targets if t.name in order), key=lambda t: order[t.name])
    ids = [t.id for t in targets]
    uptime = _uptimes(session, ids, now)
    latency, probes_24h = _latency_24h(session, ids, now)
    last = _last_transitions(session, ids)
    states = {t.id: TargetState.from_dict(t.state) if t.state else TargetState() for t in targets}
    failing = {
        i: str(st.accepted) for i, st in states.items() if st.accepted not in (None, Outcome.OK)
    }
    latest = _latest_probes(session, failing)
    hours = _recent_hours(session, ids, now)
    observed = _observed_regions(session, ids)
    rows = []
    for t in targets:
        state = states[t.id]
        change = last.get(t.id)
        # A failing state's words can change (404 -> 410) without a change: the latest probe.
        why: ProbeRecord | TransitionRecord | None = latest.get(t.id) or change
        rows.append(
            TargetRow(
                name=t.name,
                kind=t.kind,
                url=t.url,
                state=str(state.accepted) if state.accepted else None,
                since=state.accepted_since,
                uptime=uptime.get(t.id, dict.fromkeys(UPTIME_WINDOWS)),
                p50_ms=latency[t.id].percentile(0.5) if t.id in latency else None,
                p95_ms=latency[t.id].percentile(0.95) if t.id in latency else None,
                probes_24h=probes_24h.get(t.id, 0),
                last_change_at=change.at if change else None,
                last_change=change.label if change else "",
                detail=why.detail if why else "",
                hint=why.hint if why else "",
                http_status=why.http_status if why else None,
                facts=dict(why.facts or {}) if why else {},
                candidate=str(state.candidate) if state.candidate else None,
                streak=state.streak,
                streak_since=state.streak_since,
                hours=hours.get(t.id, (NO_DATA,) * HISTORY_HOURS),
                regional=observed.get(t.id, ()),
            )
        )
    return rows


def flags(rows: Iterable[TargetRow]) -> list[Flag]:
    """Pure: the rows whose current state needs action (deprecated, token scope, payment)."""
    return [
        Flag(r.name, r.state, r.since, r.detail, r.hint, r.facts)
        for r in rows
        if r.state in ACTION_OUTCOMES
    ]


@dataclass(frozen=True)
class BadgeFacts:
    state: str | None  # accepted outcome, None before the first confirmed one
    uptime: dict[str, float | None]  # window -> uptime, as the overview computes it


def badge_facts(session: Session, name: str, now: datetime) -> BadgeFacts | None:
    """One target's state and uptime, through the overview's own reads (two index lookups
    and the rollups); None when the history does not know the target."""
    row = session.execute(
        select(TargetRecord.id, TargetStateRecord.state)
        .outerjoin(TargetStateRecord, TargetStateRecord.target_id == TargetRecord.id)
        .where(TargetRecord.name == name)
    ).first()
    if row is None:
        return None
    accepted = TargetState.from_dict(row.state).accepted if row.state else None
    uptime = _uptimes(session, [row.id], now)[row.id]
    return BadgeFacts(str(accepted) if accepted else None, uptime)


HISTORY_HOURS = 24  # the overview's recent-history bar


def _recent_hours(session: Session, ids: list[int], now: datetime) -> dict[int, tuple[str, ...]]:
    """The last HISTORY_HOURS hourly rollups (the current hour last), each as its worst class:
    one read of at most 24 small rows per target; the outcome counts (JSON) are read only for
    the hours with a failing probe, the rest are all ok."""
    if not ids:
        return {}
    first = period_start(now, HOUR) - timedelta(hours=HISTORY_HOURS - 1)
    found: dict[int, list[str]] = {i: [NO_DATA] * HISTORY_HOURS for i in ids}
    rows = session.execute(
        select(
            RollupRecord.target_id,
            RollupRecord.bucket_start,
            RollupRecord.probes,
            RollupRecord.quiet,
            case((RollupRecord.ok < RollupRecord.probes, RollupRecord.counts)).label("counts"),
        ).where(
            RollupRecord.period == HOUR,
            RollupRecord.target_id.in_(ids),
            RollupRecord.bucket_start >= first,
        )
    )
    for row in rows:
        start: datetime = row.bucket_start
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        slot = int((start - first).total_seconds() // 3600)
        if 0 <= slot < HISTORY_HOURS and (row.probes or row.quiet):
            counts = dict(row.counts or {Outcome.OK: row.probes})
            found[row.target_id][slot] = Bucket(
                start, start, row.probes, 0, counts, None, None, row.quiet
            ).worst
    return {i: tuple(v) for i, v in found.items()}


def _uptimes(session: Session, ids: list[int], now: datetime) -> dict[int, dict[str, float | None]]:
    """24 h from hourly rollups; 7/30/90 d from daily ones (whole days, today included)."""
    if not ids:
        return {}
    day_start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    columns = []
    for window, span in UPTIME_WINDOWS.items():
        if window == "24h":
            continue
        since = day_start - span + timedelta(days=1)
        columns += [
            func.sum(case((RollupRecord.bucket_start >= since, RollupRecord.ok), else_=0)).label(
                f"ok_{window}"
            ),
            func.sum(
                case((RollupRecord.bucket_start >= since, RollupRecord.probes), else_=0)
            ).label(f"n_{window}"),
        ]
    daily = session.execute(
        select(RollupRecord.target_id, *columns)
        .where(
            RollupRecord.period == DAY,
            RollupRecord.target_id.in_(ids),
            RollupRecord.bucket_start >= day_start - timedelta(days=89),
        )
        .group_by(RollupRecord.target_id)
    ).all()
    hourly = session.execute(
        select(RollupRecord.target_id, func.sum(RollupRecord.ok), func.sum(RollupRecord.probes))
        .where(
            RollupRecord.period == HOUR,
            RollupRecord.target_id.in_(ids),
            RollupRecord.bucket_start >= now - timedelta(hours=24),
        )
        .group_by(RollupRecord.target_id)
    ).all()
    out: dict[int, dict[str, float | None]] = {i: dict.fromkeys(UPTIME_WINDOWS) for i in ids}
    for target_id, ok, n in hourly:
        out[target_id]["24h"] = ok / n if n else None
    for row in daily:
        for window in ("7d", "30d", "90d"):
            ok, n = getattr(row, f"ok_{window}"), getattr(row, f"n_{window}")
            out[row.target_id][window] = ok / n if n else None
    return out


def _latency_24h(
    session: Session, ids: list[int], now: datetime
) -> tuple[dict[int, Rollup], dict[int, int]]:
    """Latency sketches and probe counts over the last 24 h.

    Today's daily rollup already holds every hour since midnight, so only the hours before
    it are read one by one: about half the rows (and JSON decodes) of 24 hourly ones.
    """
    latency: dict[int, Rollup] = {}
    probes: dict[int, int] = defaultdict(int)
    if not ids:
        return latency, probes
    midnight = period_start(now, DAY)
    rows = session.execute(
        select(RollupRecord.target_id, RollupRecord.probes, RollupRecord.latency).where(
            RollupRecord.target_id.in_(ids),
            or_(
                and_(
                    RollupRecord.period == HOUR,
                    RollupRecord.bucket_start >= now - timedelta(hours=24),
                    RollupRecord.bucket_start < midnight,
                ),
                and_(RollupRecord.period == DAY, RollupRecord.bucket_start == midnight),
            ),
        )
    )
    sums: dict[int, dict[str, int]] = {}
    for row in rows:
        target_id, n, hist = row.target_id, row.probes, row.latency
        probes[target_id] += n
        total = sums.setdefault(target_id, {})
        for bucket, count in (hist or {}).items():  # add the stored dicts as they are
            total[bucket] = total.get(bucket, 0) + count
    for target_id, total in sums.items():
        latency[target_id] = Rollup(latency=decode_latency(total))
    return latency, probes


def _latest_probes(session: Session, states: dict[int, str]) -> dict[int, ProbeRecord]:
    """Each failing target's newest probe *in its current state*, so one passing blip (a 500
    amid a 410) cannot hide the fix; one index walk per target, only failing ones."""
    out = {}
    for target_id, state in states.items():
        probe = session.scalars(
            select(ProbeRecord)
            .where(ProbeRecord.target_id == target_id, ProbeRecord.outcome == state)
            .order_by(ProbeRecord.checked_at.desc())
            .limit(1)
        ).first()
        if probe is not None:
            out[target_id] = probe
    return out


def _last_transitions(session: Session, ids: list[int]) -> dict[int, TransitionRecord]:
    """Each target's newest change of its own state (regional observations left out)."""
    if not ids:
        return {}
    newest = (
        select(TransitionRecord.target_id, func.max(TransitionRecord.at).label("at"))
        .where(TransitionRecord.target_id.in_(ids), OWN_CHANGE)
        .group_by(TransitionRecord.target_id)
        .subquery()
    )
    rows = session.scalars(
        select(TransitionRecord)
        .join(
            newest,
            and_(
                TransitionRecord.target_id == newest.c.target_id, TransitionRecord.at == newest.c.at
            ),
        )
        .where(OWN_CHANGE)
    )
    return {t.target_id: t for t in rows}


def _observed_regions(session: Session, ids: list[int]) -> dict[int, tuple[str, ...]]:
    """Target id -> the regions with an open regional observation, by name. Filtered in SQL
    on the state's `observed` flag: no rows at all with one region."""
    if not ids:
        return {}
    rows = session.execute(
        select(TargetRegionStateRecord.target_id, TargetRegionStateRecord.region)
        .where(
            TargetRegionStateRecord.target_id.in_(ids),
            TargetRegionStateRecord.state["observed"].as_boolean().is_(True),
        )
        .order_by(TargetRegionStateRecord.target_id, TargetRegionStateRecord.region)
    )
    found: dict[int, list[str]] = defaultdict(list)
    for target_id, region in rows:
        found[target_id].append(region)
    return {i: tuple(regions) for i, regions in found.items()}


def raw_uptime(
    session: Session, now: datetime, windows: dict[str, timedelta] = UPTIME_WINDOWS
) -> dict[str, dict[str, tuple[int, int]]]:
    """Uptime the naive way, from raw probes: window -> target name -> (ok, probes), leaving
    out probes inside maintenance, as the rollups do.

    What the rollups exist to avoid (a scan of every probe in the window); no page calls it.
    benchmarks/dashboard_queries.py times it as the baseline and checks the rollups against it.
    """
    names = {i: n for i, n in session.execute(select(TargetRecord.id, TargetRecord.name))}
    out = {}
    for window, span in windows.items():
        rows = session.execute(
            select(
                ProbeRecord.target_id,
                func.sum(case((ProbeRecord.outcome == Outcome.OK, 1), else_=0)),
                func.count(),
            )
            .where(ProbeRecord.checked_at >= now - span, ProbeRecord.quiet.is_(False))
            .group_by(ProbeRecord.target_id)
        )
        out[window] = {names[r[0]]: (r[1], r[2]) for r in rows}
    return out


# ------------------------------------------------------------------ one target


@dataclass(frozen=True)
class Bucket:
    """One block of the status timeline / one point of the latency chart."""

    start: datetime
    end: datetime
    probes: int
    ok: int
    counts: dict[str, int]
    p50_ms: float | None
    p95_ms: float | None
    quiet: int = 0  # probes in maintenance: in none of the above

    @property
    def uptime(self) -> float | None:
        return self.ok / self.probes if self.probes else None

    @property
    def worst(self) -> str:
        """The bucket's colour: no data, ok, or the worst class seen outside maintenance;
        maintenance when it held most of the bucket's probes and nothing failed outside it."""
        if not self.probes:
            return MAINTENANCE if self.quiet else NO_DATA
        classes = {state_class(o) for o in self.counts}
        for cls in (str(OutcomeClass.CONTRACT), str(OutcomeClass.TRANSIENT)):
            if cls in classes:
                return cls
        return MAINTENANCE if self.quiet >= self.probes else str(OutcomeClass.OK)


def timeline(
    session: Session, target: str, start: datetime, end: datetime, period: str | None = None
) -> list[Bucket]:
    """Every hour/day of the range, including empty ones (shown as "no data")."""
    period = period or period_for(start, end)
    step = timedelta(hours=1) if period == HOUR else timedelta(days=1)
    rows = session.execute(
        select(RollupRecord)
        .join(TargetRecord)
        .where(
            TargetRecord.name == target,
            RollupRecord.period == period,
            RollupRecord.bucket_start >= period_start(start, period),
            RollupRecord.bucket_start < end,
        )
    ).scalars()
    found = {r.bucket_start: r for r in rows}
    buckets = []
    at = period_start(start, period)
    while at < end:
        r = found.get(at)
        if r is None:
            buckets.append(Bucket(at, at + step, 0, 0, {}, None, None))
        else:
            hist = decode_latency(r.latency)
            roll = Rollup(latency=hist)
            buckets.append(
                Bucket(
                    at,
                    at + step,
                    r.probes,
                    r.ok,
                    dict(r.counts),
                    roll.percentile(0.5),
                    roll.percentile(0.95),
                    r.quiet,
                )
            )
        at += step
    return buckets


@dataclass(frozen=True)
class PaceBucket:
    """One point of a streamed target's chart: time to first token and tokens per second."""

    start: datetime
    probes: int  # streamed probes with a first token in this block
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    tokens_per_s_p50: float | None


def stream_pace(
    session: Session, target: str, start: datetime, end: datetime, period: str | None = None
) -> list[PaceBucket]:
    """Every hour/day of the range with TTFT p50/p95 and the median tokens per second; empty
    when the target never streamed. From the stored probes (the rollups keep only the whole
    probe time), one indexed range of one target; probes in maintenance are left out."""
    period = period or period_for(start, end)
    rows = session.execute(
        select(ProbeRecord.checked_at, ProbeRecord.ttft_ms, ProbeRecord.tokens_per_s)
        .join(TargetRecord)
        .where(
            TargetRecord.name == target,
            ProbeRecord.checked_at >= start,
            ProbeRecord.checked_at < end,
            ProbeRecord.ttft_ms.is_not(None),
            ProbeRecord.quiet.is_(False),
        )
    ).all()
    if not rows:
        return []
    ttft: dict[datetime, list[float]] = defaultdict(list)
    pace: dict[datetime, list[float]] = defaultdict(list)
    for at, first, rate in rows:
        block = period_start(at, period)
        ttft[block].append(first or 0.0)  # never None: the query asks for a first token
        if rate is not None:
            pace[block].append(rate)
    buckets, at = [], period_start(start, period)
    while at < end:
        firsts, rates = sorted(ttft.get(at, ())), sorted(pace.get(at, ()))
        buckets.append(
            PaceBucket(at, len(firsts), _rank(firsts, 0.5), _rank(firsts, 0.95), _rank(rates, 0.5))
        )
        at += PERIODS[period]
    return buckets


def _rank(ordered: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile of sorted values (None for none)."""
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)] if ordered else None


def outcome_mix(buckets: Iterable[Bucket]) -> dict[str, int]:
    """Pure: probes per outcome over the buckets, most frequent first."""
    total: dict[str, int] = defaultdict(int)
    for b in buckets:
        for outcome, n in b.counts.items():
            total[outcome] += n
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))


def probe_log(
    session: Session,
    target: str,
    start: datetime,
    end: datetime,
    limit: int = 200,
    outcomes: Sequence[str] | None = None,
) -> list[ProbeRecord]:
    """The newest raw probes of a target with start <= checked_at < end, with their evidence."""
    query = (
        select(ProbeRecord)
        .join(TargetRecord)
        .where(
            TargetRecord.name == target,
            ProbeRecord.checked_at >= start,
            ProbeRecord.checked_at < end,
        )
    )
    if outcomes:
        query = query.where(ProbeRecord.outcome.in_(outcomes))
    return list(session.scalars(query.order_by(ProbeRecord.checked_at.desc()).limit(limit)))


def transitions(
    session: Session,
    start: datetime | None = None,
    end: datetime | None = None,
    target: str | None = None,
) -> list[tuple[TransitionRecord, str]]:
    """Transitions with start <= at < end (either bound optional), newest first, with their
    target's name: the history, regional observations included (their `region` is set; they
    did not change the target's state, and whoever shows them must say so)."""
    query = select(TransitionRecord, TargetRecord.name).join(TargetRecord)
    query = _between(query, TransitionRecord.at, start, end)
    if target is not None:
        query = query.where(TargetRecord.name == target)
    return [(t, n) for t, n in session.execute(query.order_by(TransitionRecord.at.desc()))]


def silences(session: Session, since: datetime | None = None) -> list[Silence]:
    """Silences not over by `since` (every one without it), oldest first."""
    query = select(SilenceRecord).order_by(SilenceRecord.id)
    if since is not None:
        query = query.where(SilenceRecord.ends_at > since)
    return [
        Silence(r.id, r.target, r.tag, r.starts_at, r.ends_at, r.reason)
        for r in session.scalars(query)
    ]


_S = TypeVar("_S", bound="Select[*tuple[Any, ...]]")


def _between(query: _S, column: Any, start: datetime | None, end: datetime | None) -> _S:
    if start is not None:
        query = query.where(column >= start)
    if end is not None:
        query = query.where(column < end)
    return query


# ------------------------------------------------------------------ incidents and alerts


@dataclass(frozen=True)
class IncidentRow:
    id: int
    target: str
    opened_at: datetime
    closed_at: datetime | None
    duration_s: float  # to `now` while open
    outcomes: list[str]
    first_outcome: str
    last_outcome: str
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.closed_at is None

    @property
    def duration_seconds(self) -> float | None:
        """How long it lasted, None while open (as IncidentRecord.duration_seconds)."""
        return None if self.open else self.duration_s

    @property
    def classes(self) -> list[str]:
        return [state_class(o) for o in self.outcomes]


# What the incidents keep of each alert sent for them.
INCIDENT_ALERT_COLUMNS = (
    "id",
    "created_at",
    "subject",
    "status",
    "attempts",
    "reason",
    "last_error",
    "incident_id",
)


def _incident_row(
    record: IncidentRecord, target: str, now: datetime, alerts: list[dict[str, Any]] | None = None
) -> IncidentRow:
    """An incident as the pages show it; an open one lasts until `now`."""
    return IncidentRow(
        id=record.id,
        target=target,
        opened_at=record.opened_at,
        closed_at=record.closed_at,
        duration_s=((record.closed_at or now) - record.opened_at).total_seconds(),
        outcomes=list(record.outcomes),
        first_outcome=record.first_outcome,
        last_outcome=record.last_outcome,
        alerts=alerts or [],
    )


def incidents(
    session: Session,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
    targets: Sequence[str] | None = None,
    outcomes: Sequence[str] | None = None,
    *,
    with_alerts: bool = True,
) -> list[IncidentRow]:
    """Incidents open at any time in [start, end) (still open, or closed at or after `start`,
    and opened before `end`; either bound optional), newest first, each with the alerts sent
    for it unless `with_alerts` is False. Open ones last until `now` (default: the clock)."""
    now = now or utcnow()
    query = select(IncidentRecord, TargetRecord.name).join(TargetRecord)
    if start is not None:
        still_open = IncidentRecord.closed_at.is_(None)
        query = query.where(or_(still_open, IncidentRecord.closed_at >= start))
    if end is not None:
        query = query.where(IncidentRecord.opened_at < end)
    if targets:
        query = query.where(TargetRecord.name.in_(targets))
    found = [(r[0], r[1]) for r in session.execute(query.order_by(IncidentRecord.opened_at.desc()))]
    if outcomes:
        wanted = set(outcomes)
        found = [(i, n) for i, n in found if wanted & set(i.outcomes)]
    by_incident: dict[int, list[dict[str, Any]]] = defaultdict(list)
    ids = [i.id for i, _ in found]
    if ids and with_alerts:
        for a in session.scalars(
            select(AlertRecord)
            .options(load_only(*_alert_columns(INCIDENT_ALERT_COLUMNS)))
            .where(AlertRecord.incident_id.in_(ids))
            .order_by(AlertRecord.created_at)
        ):
            if a.incident_id is not None:
                by_incident[a.incident_id].append(
                    {c: getattr(a, c) for c in INCIDENT_ALERT_COLUMNS if c != "incident_id"}
                )
    return [_incident_row(i, name, now, by_incident.get(i.id, [])) for i, name in found]


@dataclass(frozen=True)
class IncidentStats:
    count: int
    open: int
    mttr_s: float | None  # mean time to recovery of closed incidents
    per_class: dict[str, int]  # outcome -> incidents that went through it


def incident_stats(rows: Sequence[IncidentRow]) -> IncidentStats:
    """Pure: counts, MTTR, incidents per outcome."""
    closed = [r.duration_s for r in rows if not r.open]
    per: dict[str, int] = defaultdict(int)
    for r in rows:
        for outcome in set(r.outcomes):
            per[outcome] += 1
    return IncidentStats(
        count=len(rows),
        open=sum(r.open for r in rows),
        mttr_s=sum(closed) / len(closed) if closed else None,
        per_class=dict(sorted(per.items(), key=lambda kv: -kv[1])),
    )


# What the delivery logs show (the dashboard's and `inferwatch alerts`); the rendered email
# bodies (~8 KB each) are never loaded.
ALERT_COLUMNS = (
    "id",
    "reason",
    "channel",
    "recipients",
    "subject",
    "status",
    "attempts",
    "created_at",
    "next_attempt_at",
    "sent_at",
    "last_error",
    "incident_id",
)
ALERT_LOG_LIMIT = 500  # the dashboard's page size


def _alert_columns(names: Sequence[str]) -> list[Any]:
    return [getattr(AlertRecord, n) for n in names]


def alerts(
    session: Session,
    start: datetime | None = None,
    end: datetime | None = None,
    target: str | None = None,
    statuses: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[tuple[AlertRecord, str | None]]:
    """Alerts created in [start, end) (either bound optional), newest first, with their
    target's name (None for a test alert); without their bodies; the newest `limit` if given."""
    query = (
        select(AlertRecord, TargetRecord.name)
        .options(load_only(*_alert_columns(ALERT_COLUMNS)))
        .outerjoin(TargetRecord)
    )
    query = _between(query, AlertRecord.created_at, start, end)
    if target is not None:
        query = query.where(TargetRecord.name == target)
    if statuses:
        query = query.where(AlertRecord.status.in_(statuses))
    query = query.order_by(AlertRecord.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [(a, n) for a, n in session.execute(query)]


def alert_error(session: Session, alert_id: int) -> str:
    """The last delivery error of one alert ("" when it has none or does not exist)."""
    error = session.scalar(select(AlertRecord.last_error).where(AlertRecord.id == alert_id))
    return error or ""


def gaps(session: Session, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Periods in [start, end) when the monitor was not running ("no data", never uptime).
    With several agents, their runs overlap: a gap is a time when none of them ran."""
    runs = session.execute(
        select(
            MonitorRunRecord.started_at, MonitorRunRecord.stopped_at, MonitorRunRecord.last_seen_at
        ).order_by(MonitorRunRecord.started_at)
    ).all()
    out = []
    previous_end: datetime | None = None
    for started, stopped, last_seen in runs:
        if previous_end is not None and started > previous_end:
            a, b = max(previous_end, start), min(started, end)
            if a < b:
                out.append((a, b))
        ended = stopped or last_seen
        previous_end = ended if previous_end is None else max(previous_end, ended)
    return out


@dataclass(frozen=True)
class ProbeSample:
    """One probe as the benchmarks read it: what, when, and how long."""

    target: str
    checked_at: datetime
    outcome: str
    detail: str
    latency_ms: float | None
    connect_ms: float | None


def probes_between(session: Session, start: datetime, end: datetime) -> list[ProbeSample]:
    """Every probe with start <= checked_at < end, of every target (benchmarks/ read these)."""
    rows = session.execute(
        select(
            TargetRecord.name,
            ProbeRecord.checked_at,
            ProbeRecord.outcome,
            ProbeRecord.detail,
            ProbeRecord.latency_ms,
            ProbeRecord.connect_ms,
        )
        .join(TargetRecord, ProbeRecord.target_id == TargetRecord.id)
        .where(ProbeRecord.checked_at >= start, ProbeRecord.checked_at < end)
    )
    return [ProbeSample(*row) for row in rows]


# ---------------------------------------- agents, as benchmarks/agents.py reads them


def agent_ids(conn: Connection) -> dict[str, int]:
    """Every agent's id by its name."""
    return {name: id_ for name, id_ in conn.execute(select(AgentRecord.name, AgentRecord.id))}


def target_id(conn: Connection, name: str) -> int | None:
    return conn.scalar(select(TargetRecord.id).where(TargetRecord.name == name))


def probes_by_agent(conn: Connection, start: datetime, end: datetime) -> dict[int | None, int]:
    """Probe rows with start <= checked_at < end, counted by the agent that probed."""
    rows = conn.execute(
        select(ProbeRecord.agent_id, func.count())
        .where(ProbeRecord.checked_at >= start, ProbeRecord.checked_at < end)
        .group_by(ProbeRecord.agent_id)
    )
    return {agent: int(n) for agent, n in rows}


@dataclass(frozen=True)
class DecidingProbe:
    """The probe that confirmed a transition, and the agent whose writer accepted it."""

    checked_at: datetime
    latency_ms: float | None
    agent: str | None


def latest_deciding_probe(conn: Connection, target_id: int, to_ok: bool) -> DecidingProbe | None:
    """The confirming probe of the target's latest transition to ok (or away from it)."""
    to = TransitionRecord.to_outcome
    row = conn.execute(
        select(ProbeRecord.checked_at, ProbeRecord.latency_ms, AgentRecord.name)
        .join(TransitionRecord, TransitionRecord.probe_id == ProbeRecord.id)
        .outerjoin(AgentRecord, AgentRecord.id == TransitionRecord.agent_id)
        .where(
            TransitionRecord.target_id == target_id,
            to == "ok" if to_ok else to != "ok",
            OWN_CHANGE,
        )
        .order_by(TransitionRecord.id.desc())
        .limit(1)
    ).first()
    return None if row is None else DecidingProbe(*row)


def targets_probed_by(conn: Connection, agent_id: int, since: datetime) -> set[int]:
    """The targets an agent probed after `since`."""
    return set(
        conn.scalars(
            select(ProbeRecord.target_id)
            .where(ProbeRecord.agent_id == agent_id, ProbeRecord.checked_at > since)
            .distinct()
        )
    )


def targets_held_by(conn: Connection, agent_id: int) -> set[int]:
    """The targets whose state this agent's writer holds (target_states.holder)."""
    return set(
        conn.scalars(
            select(TargetStateRecord.target_id).where(TargetStateRecord.holder == agent_id)
        )
    )


def first_probes_by(
    conn: Connection, agent_ids: Sequence[int], since: datetime
) -> dict[int, datetime]:
    """Per target, the first probe by any of these agents after `since`."""
    rows = conn.execute(
        select(ProbeRecord.target_id, func.min(ProbeRecord.checked_at))
        .where(ProbeRecord.agent_id.in_(agent_ids), ProbeRecord.checked_at > since)
        .group_by(ProbeRecord.target_id)
    )
    return {target: at for target, at in rows}


def last_probes_by(conn: Connection, agent_id: int) -> dict[int, datetime]:
    """Per target, the last probe by this agent."""
    rows = conn.execute(
        select(ProbeRecord.target_id, func.max(ProbeRecord.checked_at))
        .where(ProbeRecord.agent_id == agent_id)
        .group_by(ProbeRecord.target_id)
    )
    return {target: at for target, at in rows}


def probe_count(session: Session) -> int:
    """How many probes are stored, of every target."""
    return int(session.scalar(select(func.count(ProbeRecord.id))) or 0)


@dataclass(frozen=True)
class ProviderChange:
    """A probe that saw a model's live providers change (monitor/domain/sampling.py)."""

    checked_at: datetime
    added: list[str]
    dropped: list[str]
    live: list[str]


def provider_changes(
    session: Session, target: str, start: datetime, end: datetime, limit: int = 50
) -> list[ProviderChange]:
    """The newest changes in a target's live providers with start <= checked_at < end. Such
    a probe always keeps its evidence (its warning differs), so its facts are stored."""
    query = (
        select(ProbeRecord.checked_at, ProbeRecord.facts)
        .join(TargetRecord)
        .where(
            TargetRecord.name == target,
            ProbeRecord.checked_at >= start,
            ProbeRecord.checked_at < end,
            ProbeRecord.warning.startswith(PROVIDER_CHANGE, autoescape=True),
        )
        .order_by(ProbeRecord.checked_at.desc())
        .limit(limit)
    )

    def names(facts: Any, key: str) -> list[str]:
        value = facts.get(key) if isinstance(facts, dict) else None
        return [str(v) for v in value] if isinstance(value, list) else []

    return [
        ProviderChange(
            row.checked_at,
            names(row.facts, "providers_added"),
            names(row.facts, "providers_dropped"),
            names(row.facts, "live_providers"),
        )
        for row in session.execute(query)
    ]


def recent_usage(session: Session, target: str, limit: int = 20) -> list[int]:
    """The token usage its provider reported for a target's newest probes (those that
    reported one), newest first: what monitor/domain/cost.py prices a probe from."""
    query = (
        select(ProbeRecord.usage_tokens)
        .join(TargetRecord)
        .where(TargetRecord.name == target, ProbeRecord.usage_tokens.is_not(None))
        .order_by(ProbeRecord.checked_at.desc())
        .limit(limit)
    )
    return [int(n) for n in session.scalars(query) if n is not None]


# ------------------------------------------------------------------ one incident


@dataclass(frozen=True)
class ProbePoint:
    """One point of an incident's timeline: a probe, or (for a long one) the worst probe of a
    short bucket, its slowest latency, and how many probes it stands for."""

    at: datetime
    outcome: str
    latency_ms: float | None
    http_status: int | None
    probes: int = 1


@dataclass(frozen=True)
class ProbeEvidence:
    """What one probe saw, in full (a failing probe or an outcome change keeps its evidence)."""

    id: int
    checked_at: datetime
    outcome: str
    http_status: int | None
    latency_ms: float | None
    url: str
    detail: str
    hint: str
    warning: str
    request_id: str | None
    provider: str | None
    headers: dict[str, Any]
    body_excerpt: str
    facts: dict[str, Any]


@dataclass(frozen=True)
class IncidentTransition:
    at: datetime
    started_at: datetime
    from_outcome: str | None
    to_outcome: str
    label: str
    detail: str
    hint: str
    http_status: int | None
    announced: bool
    probe_id: int | None
    quiet_reason: str | None = None  # why it was not announced (maintenance, a silence)


@dataclass(frozen=True)
class IncidentAlert:
    id: int
    reason: str
    channel: str
    subject: str
    created_at: datetime
    sent_at: datetime | None
    status: str
    attempts: int
    last_error: str


@dataclass(frozen=True)
class IncidentDetail:
    """Everything the incident page shows of one incident (see incident_detail)."""

    incident: IncidentRow  # its `alerts` left empty: see `alerts`
    transitions: list[IncidentTransition]  # oldest first
    alerts: list[IncidentAlert]  # oldest first
    points: list[ProbePoint]  # the timeline, oldest first, at most MAX_POINTS
    window: tuple[datetime, datetime]  # what the points cover
    bucketed: bool  # points stand for several probes each
    first_failing: ProbeEvidence | None
    recovering: ProbeEvidence | None


MAX_POINTS = 5_000  # an incident's timeline: probes shown one by one up to this many
_SEVERITY = {str(OutcomeClass.OK): 0, str(OutcomeClass.TRANSIENT): 1, str(OutcomeClass.CONTRACT): 2}


def incident_window(
    opened_at: datetime, closed_at: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """Pure: the incident with a margin either side (a tenth of it, 10 min to 2 h), so the
    timeline shows the healthy probes before and after; never past `now`."""
    end = closed_at or now
    margin = min(max((end - opened_at) / 10, timedelta(minutes=10)), timedelta(hours=2))
    return opened_at - margin, min(end + margin, max(now, end))


def bucket_points(points: Sequence[ProbePoint], limit: int = MAX_POINTS) -> list[ProbePoint]:
    """Pure: at most `limit` points, each the worst outcome of an equal slice of time (a
    failure never hides behind ok probes), its slowest latency, and the probes it holds."""
    if len(points) <= limit:
        return list(points)
    first, last = points[0].at, points[-1].at
    width = (last - first) / limit or timedelta(microseconds=1)
    slices: dict[int, list[ProbePoint]] = defaultdict(list)
    for p in points:
        slices[min(int((p.at - first) / width), limit - 1)].append(p)
    out = []
    for _, group in sorted(slices.items()):
        worst = max(group, key=lambda p: _SEVERITY.get(state_class(p.outcome), 0))
        latencies = [p.latency_ms for p in group if p.latency_ms is not None]
        out.append(
            ProbePoint(
                group[0].at,
                worst.outcome,
                max(latencies) if latencies else None,
                worst.http_status,
                sum(p.probes for p in group),
            )
        )
    return out


def _evidence(probe: ProbeRecord | None) -> ProbeEvidence | None:
    if probe is None:
        return None
    return ProbeEvidence(
        id=probe.id,
        checked_at=probe.checked_at,
        outcome=probe.outcome,
        http_status=probe.http_status,
        latency_ms=probe.latency_ms,
        url=probe.url or "",
        detail=probe.detail or "",
        hint=probe.hint or "",
        warning=probe.warning or "",
        request_id=probe.request_id,
        provider=probe.provider,
        headers=dict(probe.headers or {}),
        body_excerpt=probe.body_excerpt or "",
        facts=dict(probe.facts or {}),
    )


def _run_probe(
    session: Session, target_id: int, change: IncidentTransition | None
) -> ProbeRecord | None:
    """The first probe of the run a transition confirmed (an outcome change: it kept its
    evidence), else the confirming probe itself; None when both were pruned."""
    if change is None:
        return None
    first = session.scalars(
        select(ProbeRecord)
        .where(
            ProbeRecord.target_id == target_id,
            ProbeRecord.checked_at == change.started_at,
            ProbeRecord.outcome == change.to_outcome,
        )
        .limit(1)
    ).first()
    if first is not None or change.probe_id is None:
        return first
    return session.get(ProbeRecord, change.probe_id)


def incident_detail(
    session: Session, incident_id: int, now: datetime | None = None
) -> IncidentDetail | None:
    """One incident for its page: the incident, its transitions and alerts (oldest first),
    its probes from a little before it opened to a little after it closed (or `now`), at most
    MAX_POINTS of them (bucketed beyond), and the evidence of the first failing probe and of
    the first recovering one. None when there is no such incident."""
    now = now or utcnow()
    found = session.execute(
        select(IncidentRecord, TargetRecord.name)
        .join(TargetRecord)
        .where(IncidentRecord.id == incident_id)
    ).first()
    if found is None:
        return None
    record, name = found
    changes = [
        IncidentTransition(
            t.at,
            t.started_at,
            t.from_outcome,
            t.to_outcome,
            t.label,
            t.detail,
            t.hint,
            t.http_status,
            t.announced,
            t.probe_id,
            t.quiet_reason,
        )
        for t in session.scalars(
            select(TransitionRecord)
            .where(TransitionRecord.incident_id == incident_id, OWN_CHANGE)
            .order_by(TransitionRecord.at, TransitionRecord.id)
        )
    ]
    sent = [
        IncidentAlert(
            a.id,
            a.reason,
            a.channel,
            a.subject,
            a.created_at,
            a.sent_at,
            a.status,
            a.attempts,
            a.last_error or "",
        )
        for a in session.scalars(
            select(AlertRecord)
            .options(load_only(*_alert_columns(INCIDENT_DETAIL_ALERT_COLUMNS)))
            .where(AlertRecord.incident_id == incident_id)
            .order_by(AlertRecord.created_at, AlertRecord.id)
        )
    ]
    opening = changes[0] if changes else None
    closing = changes[-1] if changes and record.closed_at is not None else None
    if closing is not None and state_class(closing.to_outcome) != str(OutcomeClass.OK):
        closing = None  # closed some other way (the target removed): no recovering probe
    began = min(record.opened_at, opening.started_at) if opening else record.opened_at
    window = incident_window(began, record.closed_at, now)
    rows = session.execute(
        select(
            ProbeRecord.checked_at,
            ProbeRecord.outcome,
            ProbeRecord.latency_ms,
            ProbeRecord.http_status,
        )
        .where(
            ProbeRecord.target_id == record.target_id,
            ProbeRecord.checked_at >= window[0],
            ProbeRecord.checked_at < window[1],
        )
        .order_by(ProbeRecord.checked_at)
    )
    points = [ProbePoint(*row) for row in rows]
    return IncidentDetail(
        incident=_incident_row(record, name, now),
        transitions=changes,
        alerts=sent,
        points=bucket_points(points),
        window=window,
        bucketed=len(points) > MAX_POINTS,
        first_failing=_evidence(_run_probe(session, record.target_id, opening)),
        recovering=_evidence(_run_probe(session, record.target_id, closing)),
    )


INCIDENT_DETAIL_ALERT_COLUMNS = (
    "id",
    "reason",
    "channel",
    "subject",
    "created_at",
    "sent_at",
    "status",
    "attempts",
    "last_error",
    "incident_id",
)


# ---------------------------------------------------------------- agents (issue 13, part A)
# `inferwatch agents`, the dashboard's agent list, and who wrote a transition.


@dataclass(frozen=True)
class AgentRow:
    """One registered agent as `inferwatch agents` and the dashboard show it."""

    id: int
    name: str
    region: str
    version: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    targets_held: int
    alive: bool  # beating (domain.agents.alive); else lost, or stopped cleanly


def database_now(db: Session | Connection) -> datetime:
    """The database's clock, as an aware UTC datetime: what heartbeats are written and judged
    by, so that an agent whose host clock is off neither looks lost nor sees others lost.
    PostgreSQL's `now()` is its transaction's start, the same for every query in it."""
    dialect = db.dialect if isinstance(db, Connection) else db.get_bind().dialect
    if dialect.name == "postgresql":
        at = db.execute(select(func.now())).scalar_one()
        return at.astimezone(UTC)
    # SQLite has no clock of its own: the host's, read by the one process that holds the file.
    read: str = db.execute(select(func.strftime("%Y-%m-%d %H:%M:%f", "now"))).scalar_one()
    return datetime.fromisoformat(read).replace(tzinfo=UTC)


def agents(db: Session | Connection, now: datetime | None = None) -> list[AgentRow]:
    """Every registered agent, by region then name, with whether it is alive at `now` (by
    default the database's time, which the heartbeats are written in)."""
    now = now or database_now(db)
    query = select(AgentRecord.__table__).order_by(AgentRecord.region, AgentRecord.name)
    return [
        AgentRow(
            id=r.id,
            name=r.name,
            region=r.region,
            version=r.version,
            host=r.host,
            pid=r.pid,
            started_at=r.started_at,
            heartbeat_at=r.heartbeat_at,
            stopped_at=r.stopped_at,
            targets_held=r.targets_held,
            alive=alive(Agent(r.name, r.region, r.heartbeat_at, r.stopped_at), now),
        )
        for r in db.execute(query)
    ]


def agent_names(db: Session | Connection) -> dict[int, tuple[str, str]]:
    """Agent id -> (name, region): what the JSON outputs print for a row's agent_id."""
    rows = db.execute(select(AgentRecord.id, AgentRecord.name, AgentRecord.region))
    return {r.id: (r.name, r.region) for r in rows}


# ---------------------------------------------------------------- regions (issue 13, phase 2)
# Each region's own state per target (monitor/domain/quorum.py), as the target page shows it.


@dataclass(frozen=True)
class RegionRow:
    """One region's own view of a target."""

    region: str
    state: str | None  # its confirmed outcome, None before it confirmed one
    since: datetime | None  # since when it has been confirmed
    last_at: datetime | None  # its latest result
    # Its latest result is within quorum.REPORT_WINDOW intervals of the database's now (it
    # counts towards the quorum); None when the target's interval is unknown.
    reporting: bool | None
    observed: bool  # an open regional observation: it disagrees with the target's state


def region_states(
    db: Session | Connection,
    targets: Sequence[str] | None = None,
    intervals: Mapping[str, float] | None = None,
    now: datetime | None = None,
) -> dict[str, list[RegionRow]]:
    """Target name -> its regions' own states, by region name, for the `targets` given (all
    without). Whether a region still reports is judged at `now` (by default the database's
    time, which the results are stamped in) against the target's interval from `intervals`
    (the config's; a target missing there: unknown). Empty with one region: no rows."""
    now = now or database_now(db)
    query = (
        select(TargetRecord.name, TargetRegionStateRecord.region, TargetRegionStateRecord.state)
        .join(TargetRecord, TargetRecord.id == TargetRegionStateRecord.target_id)
        .order_by(TargetRecord.name, TargetRegionStateRecord.region)
    )
    if targets is not None:
        query = query.where(TargetRecord.name.in_(list(targets)))
    found: dict[str, list[RegionRow]] = defaultdict(list)
    for row in db.execute(query):
        own = RegionState.from_dict(row.state)
        interval = (intervals or {}).get(row.name)
        reporting = None
        if interval is not None:
            reporting = bool(reporting_regions({row.region: own}, now, interval))
        accepted = own.state.accepted
        found[row.name].append(
            RegionRow(
                region=row.region,
                state=str(accepted) if accepted is not None else None,
                since=own.state.accepted_since,
                last_at=own.last_at,
                reporting=reporting,
                observed=own.observed,
            )
        )
    return dict(found)

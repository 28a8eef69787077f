"""Every write of the monitoring service, in plain data: no other module builds these queries.

- The writer's batch (monitor/agent/writer.py): probes, target states, transitions, incidents,
  outbox rows, rollups and the run's heartbeat, all on the connection of its one transaction,
  with the few reads that transaction needs (the open incidents, the probes an alert lists).
- The outbox (monitor/alerts/outbox.py): due alerts, the claim, each attempt and its outcome,
  in the transaction shapes docs/reliability.md describes.
- Targets (also the CLI's `probe`), the test alert and the demo's delivery log.

Rows in bulk go through SQLAlchemy Core executemany: a batch of 200 results is a handful of
statements, not 200 ORM objects with their bookkeeping.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from monitor.domain.agents import Agent, Outage, alive, counted_since, replaceable
from monitor.domain.alert_event import AlertEvent, ProbeLine, jsonable, subject_for
from monitor.domain.decide import IncidentChange, OpenIncident, ProbeView, Transition
from monitor.domain.evidence import Outcome, ProbeResult, Timings
from monitor.domain.maintenance import Silence
from monitor.domain.rollups import Rollup, decode_latency, encode_latency
from monitor.store.models import (
    AgentRecord,
    AlertAttemptRecord,
    AlertRecord,
    IncidentRecord,
    MonitorRunRecord,
    ProbeRecord,
    RegionResultRecord,
    RollupRecord,
    SilenceRecord,
    TargetRecord,
    TargetRegionStateRecord,
    TargetStateRecord,
    TransitionRecord,
)
from monitor.targets import TargetBase

TARGETS = cast(Table, TargetRecord.__table__)
PROBES = cast(Table, ProbeRecord.__table__)
STATES = cast(Table, TargetStateRecord.__table__)
INCIDENTS = cast(Table, IncidentRecord.__table__)
TRANSITIONS = cast(Table, TransitionRecord.__table__)
ALERTS = cast(Table, AlertRecord.__table__)
ATTEMPTS = cast(Table, AlertAttemptRecord.__table__)
RUNS = cast(Table, MonitorRunRecord.__table__)
ROLLUPS = cast(Table, RollupRecord.__table__)
SILENCES = cast(Table, SilenceRecord.__table__)
log = logging.getLogger(__name__)

AGENTS = cast(Table, AgentRecord.__table__)
REGION_STATES = cast(Table, TargetRegionStateRecord.__table__)
REGION_RESULTS = cast(Table, RegionResultRecord.__table__)


def _conn(db: Session | Connection) -> Connection:
    """The connection of a session's transaction (callers of the CLI pass a Session)."""
    return db.connection() if isinstance(db, Session) else db


# ---------------------------------------------------------------- targets and probes


def sync_targets(
    db: Session | Connection, targets: Iterable[TargetBase], redact: Callable[[str], str] = str
) -> dict[str, int]:
    """Insert new targets, refresh kind/URL of known ones; return name -> id.

    The URL is stored redacted: a key interpolated into it (?key=${API_KEY}) stays secret.
    """
    conn = _conn(db)
    wanted = {t.name: t for t in targets}
    now = datetime.now(UTC)
    known = {
        row.name: row
        for row in conn.execute(
            select(TARGETS.c.id, TARGETS.c.name, TARGETS.c.kind, TARGETS.c.url).where(
                TARGETS.c.name.in_(list(wanted))
            )
        )
    }
    ids = {name: row.id for name, row in known.items()}
    new, changed = [], []
    for name, target in wanted.items():
        url = redact(target.endpoint)
        row = known.get(name)
        if row is None:
            new.append({"name": name, "kind": target.kind, "url": url})
        elif (row.kind, row.url) != (target.kind, url):
            changed.append({"_id": row.id, "kind": target.kind, "url": url, "updated_at": now})
    if changed:
        conn.execute(update(TARGETS).where(TARGETS.c.id == bindparam("_id")), changed)
    if new:
        rows = [{**r, "created_at": now, "updated_at": now} for r in new]
        # Several agents starting together add the same new targets: the first insert wins,
        # the others wait for it and read its ids (no unique violation failing a start).
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = (
            dialect_insert(TARGETS)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(TARGETS.c.name, TARGETS.c.id)
        )
        ids.update({name: id_ for name, id_ in conn.execute(stmt, rows)})
        if late := [r["name"] for r in new if r["name"] not in ids]:
            found = select(TARGETS.c.name, TARGETS.c.id).where(TARGETS.c.name.in_(late))
            ids.update({name: id_ for name, id_ in conn.execute(found)})
    return ids


def probe_row(
    r: ProbeResult,
    target_id: int,
    evidence: bool = True,
    quiet: bool = False,
    agent_id: int | None = None,
) -> dict[str, Any]:
    """The row of a probe; without `evidence`, the lean row (see monitor/domain/sampling.py).
    `quiet`: inside a maintenance window or silence (left out of uptime). `agent_id`: the
    agent that probed (its region is the agent's); None for a one-off `inferwatch probe`."""
    row = {
        "target_id": target_id,
        "agent_id": agent_id,
        "quiet": quiet,
        "checked_at": r.checked_at,
        "outcome": str(r.outcome),
        "http_status": r.http_status,
        "latency_ms": r.timings.total_ms,
        "connect_ms": r.timings.connect_ms,
        "tls_ms": r.timings.tls_ms,
        "ttfb_ms": r.timings.ttfb_ms,
        "ttft_ms": r.timings.ttft_ms,
        "tokens_per_s": r.tokens_per_s,
        "usage_tokens": r.usage_tokens,
    }
    return {**row, **(_evidence(r) if evidence else LEAN)}


LEAN: dict[str, Any] = {
    "url": "",
    "detail": "",
    "hint": "",
    "warning": "",
    "request_id": None,
    "provider": None,
    "headers": None,
    "body_excerpt": "",
    "facts": None,
}


def _evidence(r: ProbeResult) -> dict[str, Any]:
    return {
        "url": r.url,
        "detail": r.detail,
        "hint": r.hint,
        "warning": r.warning,
        "request_id": r.request_id,
        "provider": r.provider,
        "headers": r.headers,
        "body_excerpt": r.body_excerpt,
        "facts": jsonable(r.facts),
    }


def insert_probes(
    db: Session | Connection,
    results: Sequence[ProbeResult],
    target_ids: Mapping[str, int],
    evidence: Sequence[bool] | None = None,
    quiet: Sequence[bool] | None = None,
    agent_id: int | None = None,
) -> list[int]:
    """Add probe results in one statement; their ids, in the order given.

    `evidence[i]` False stores result i as a lean row; by default every row keeps it.
    `quiet[i]` True marks result i as taken inside maintenance; by default none is.
    `agent_id`: the agent that probed them all (None: a one-off probe, a tool).
    """
    if not results:
        return []
    keep = evidence if evidence is not None else [True] * len(results)
    hushed = quiet if quiet is not None else [False] * len(results)
    rows = [
        probe_row(r, target_ids[r.target], kept, q, agent_id)
        for r, kept, q in zip(results, keep, hushed, strict=True)
    ]
    stmt = insert(PROBES).returning(PROBES.c.id, sort_by_parameter_order=True)
    return list(_conn(db).scalars(stmt, rows))


def save_results(
    db: Session | Connection, results: Sequence[ProbeResult], target_ids: Mapping[str, int]
) -> None:
    """Add probe results in one batch (the caller commits)."""
    insert_probes(db, results, target_ids)


def recent_probes(conn: Connection, target_id: int, limit: int) -> tuple[ProbeLine, ...]:
    """The target's last `limit` probes, newest first, as an alert lists them."""
    rows = conn.execute(
        select(
            PROBES.c.checked_at,
            PROBES.c.outcome,
            PROBES.c.http_status,
            PROBES.c.latency_ms,
            PROBES.c.detail,
        )
        .where(PROBES.c.target_id == target_id)
        .order_by(PROBES.c.checked_at.desc())
        .limit(limit)
    )
    return tuple(
        ProbeLine(row.checked_at, row.outcome, row.http_status, row.latency_ms, row.detail)
        for row in rows
    )


def last_live_providers(conn: Connection, target_id: int, look_back: int = 20) -> list[str] | None:
    """The live providers (fact `live_providers`) its newest probes with facts recorded, or
    None: what the first probe after a start is compared with (monitor/domain/sampling.py).
    Once per target and start; lean rows (facts NULL) are skipped by the index scan."""
    rows = conn.execute(
        select(PROBES.c.facts)
        .where(PROBES.c.target_id == target_id, PROBES.c.facts.is_not(None))
        .order_by(PROBES.c.checked_at.desc())
        .limit(look_back)
    )
    for row in rows:
        live = row.facts.get("live_providers") if isinstance(row.facts, dict) else None
        if isinstance(live, list):
            return [str(p) for p in live]
    return None


def latest_probe(conn: Connection, target_id: int) -> ProbeView | None:
    """The evidence of the target's latest probe (what a reminder repeats)."""
    row = conn.execute(
        select(PROBES)
        .where(PROBES.c.target_id == target_id)
        .order_by(PROBES.c.checked_at.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return ProbeView(
        checked_at=row.checked_at,
        outcome=row.outcome,
        url=row.url,
        http_status=row.http_status,
        latency_ms=row.latency_ms,
        detail=row.detail,
        hint=row.hint,
        warning=row.warning,
        request_id=row.request_id,
        provider=row.provider,
        facts=row.facts or {},
    )


# ---------------------------------------------------------------- runs and states


def start_run(
    conn: Connection, now: datetime, agent_id: int | None = None
) -> tuple[int, list[datetime]]:
    """Close runs that never stopped at their last heartbeat, record a new one.

    Returns the new run's id and the last heartbeats of the crashed runs (for the log).
    An agent closes only its own crashed runs (and those from before agents existed): the
    other agents' runs are running. Without an agent (tools, tests) every open run is closed.
    The UPDATE comes first: on SQLite a transaction that reads before it writes can be
    refused the write lock when another connection committed in between.
    """
    crashed_runs = update(RUNS).where(RUNS.c.stopped_at.is_(None))
    if agent_id is not None:
        crashed_runs = crashed_runs.where((RUNS.c.agent_id == agent_id) | RUNS.c.agent_id.is_(None))
    crashed = list(
        conn.scalars(
            crashed_runs.values(stopped_at=RUNS.c.last_seen_at).returning(RUNS.c.last_seen_at)
        )
    )
    run_id = conn.scalar(
        insert(RUNS)
        .values(started_at=now, last_seen_at=now, agent_id=agent_id)
        .returning(RUNS.c.id)
    )
    assert run_id is not None
    return int(run_id), crashed


def heartbeat(conn: Connection, run_id: int, now: datetime, last_result: str | None = None) -> None:
    """The run is alive at `now`; `last_result` (when the batch had results) is the key of the
    last one it committed (see `last_result`)."""
    values: dict[str, Any] = {"last_seen_at": now}
    if last_result is not None:
        values["last_result"] = last_result
    conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(**values))


def last_result(conn: Connection, run_id: int) -> str | None:
    """The key of the last result the run's writer committed."""
    return conn.scalar(select(RUNS.c.last_result).where(RUNS.c.id == run_id))


def stop_run(conn: Connection, run_id: int | None, now: datetime) -> None:
    conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(stopped_at=now, last_seen_at=now))


def load_states(
    conn: Connection, target_ids: Iterable[int] | None = None
) -> dict[int, dict[str, Any]]:
    """Stored state-machine states (TargetState.to_dict) by target id: every one, or those of
    `target_ids` (what an agent's writer reloads when it acquires them)."""
    stmt = select(STATES.c.target_id, STATES.c.state)
    if target_ids is not None:
        stmt = stmt.where(STATES.c.target_id.in_(sorted(target_ids)))
    return {row.target_id: row.state for row in conn.execute(stmt)}


def save_states(conn: Connection, states: Mapping[int, Mapping[str, Any]], now: datetime) -> None:
    """Upsert states by target id, in one executemany. The holder is left as it is."""
    rows = [
        {"target_id": tid, "state": dict(state), "updated_at": now} for tid, state in states.items()
    ]
    _upsert(conn, STATES, rows, ("target_id",), keep=("holder",))


# ---------------------------------------------------------------- holders (several agents)


def acquire_targets(
    conn: Connection,
    agent_id: int,
    target_ids: Iterable[int],
    empty_state: Mapping[str, Any],
    now: datetime,
) -> None:
    """Make `agent_id` the holder of these targets' states, creating a state row (`empty_state`)
    where none exists yet. In id order, like `lock_held`: the UPDATE waits for a writer still
    deciding one of them, and what the caller reads after it is what that writer committed."""
    rows = [
        {"target_id": tid, "state": dict(empty_state), "updated_at": now, "holder": agent_id}
        for tid in sorted(set(target_ids))
    ]
    if not rows:
        return
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(STATES)
    stmt = stmt.on_conflict_do_update(
        index_elements=["target_id"], set_={"holder": stmt.excluded.holder}
    )
    conn.execute(stmt, rows)


def lock_held(conn: Connection, agent_id: int, target_ids: Iterable[int]) -> set[int]:
    """Of `target_ids`, those whose state `agent_id` holds, their rows locked until the commit
    (FOR UPDATE, taken in id order so two writers never deadlock; SQLite ignores it, and its
    one writer lock already serialises the batch). The fence of a writer's batch."""
    ids = sorted(set(target_ids))
    if not ids:
        return set()
    rows = conn.execute(
        select(STATES.c.target_id, STATES.c.holder)
        .where(STATES.c.target_id.in_(ids))
        .order_by(STATES.c.target_id)
        .with_for_update()
    )
    return {row.target_id for row in rows if row.holder == agent_id}


# ---------------------------------------------------------------- regions (several regions)
# A target's holder keeps each region's own state (monitor/domain/quorum.py); the other
# regions' agents hand it their results through `region_results`.


def post_region_results(
    conn: Connection, probes: Sequence[tuple[int, int]], region: str, now: datetime
) -> None:
    """Hand (target id, probe id) results of `region` to their targets' holders."""
    if probes:
        rows = [
            {"target_id": tid, "probe_id": pid, "region": region, "created_at": now}
            for tid, pid in probes
        ]
        conn.execute(insert(REGION_RESULTS), rows)


def waiting_region_results(conn: Connection, agent_id: int) -> set[int]:
    """The targets `agent_id` holds that handed-over results wait for."""
    rows = conn.execute(
        select(REGION_RESULTS.c.target_id)
        .distinct()
        .join(STATES, STATES.c.target_id == REGION_RESULTS.c.target_id)
        .where(STATES.c.holder == agent_id)
    )
    return {row.target_id for row in rows}


def take_region_results(
    conn: Connection, target_ids: Iterable[int]
) -> list[tuple[str, int, ProbeResult]]:
    """Take (delete) the results other regions handed over for these targets, and return
    them as (region, probe id, result), oldest first. Called by their holder with the targets'
    state rows locked (`lock_held`), in the transaction that decides them: a rollback puts
    them back, a commit means they were decided exactly once. A result whose probe row was
    pruned meanwhile is dropped. Lean rows come back without evidence, as stored."""
    ids = sorted(set(target_ids))
    if not ids:
        return []
    handed = conn.execute(
        delete(REGION_RESULTS)
        .where(REGION_RESULTS.c.target_id.in_(ids))
        .returning(REGION_RESULTS.c.probe_id, REGION_RESULTS.c.region)
    ).all()
    if not handed:
        return []
    region_of = {row.probe_id: row.region for row in handed}
    rows = conn.execute(
        select(PROBES, TARGETS.c.name, TARGETS.c.kind)
        .join(TARGETS, TARGETS.c.id == PROBES.c.target_id)
        .where(PROBES.c.id.in_(sorted(region_of)))
        .order_by(PROBES.c.checked_at, PROBES.c.id)
    )
    taken: list[tuple[str, int, ProbeResult]] = []
    for row in rows:
        try:
            taken.append((region_of[row.id], row.id, _result_of(row)))
        except ValueError:  # an outcome this version does not know (a newer agent wrote it)
            log.warning("left out a handed-over result of %s: %s", row.name, row.outcome)
    return taken


def _result_of(row: Any) -> ProbeResult:
    """A stored probe as the result it was (a lean row: without its evidence)."""
    return ProbeResult(
        target=row.name,
        kind=row.kind,
        url=row.url,
        checked_at=row.checked_at,
        outcome=Outcome(row.outcome),
        http_status=row.http_status,
        timings=Timings(
            connect_ms=row.connect_ms,
            tls_ms=row.tls_ms,
            ttfb_ms=row.ttfb_ms,
            total_ms=row.latency_ms,
            ttft_ms=row.ttft_ms,
        ),
        detail=row.detail,
        hint=row.hint,
        warning=row.warning,
        request_id=row.request_id,
        provider=row.provider,
        headers=dict(row.headers or {}),
        body_excerpt=row.body_excerpt,
        facts=dict(row.facts or {}),
        tokens_per_s=row.tokens_per_s,
        usage_tokens=row.usage_tokens,
    )


def load_region_states(
    conn: Connection, target_ids: Iterable[int]
) -> dict[int, dict[str, dict[str, Any]]]:
    """The regions' own states (RegionState.to_dict) of these targets: target id -> region ->
    state."""
    ids = sorted(set(target_ids))
    found: dict[int, dict[str, dict[str, Any]]] = {}
    if ids:
        rows = conn.execute(
            select(REGION_STATES.c.target_id, REGION_STATES.c.region, REGION_STATES.c.state).where(
                REGION_STATES.c.target_id.in_(ids)
            )
        )
        for row in rows:
            found.setdefault(row.target_id, {})[row.region] = row.state
    return found


def save_region_states(
    conn: Connection, states: Mapping[tuple[int, str], Mapping[str, Any]], now: datetime
) -> None:
    """Upsert regional states by (target id, region), in one executemany."""
    rows = [
        {"target_id": tid, "region": region, "state": dict(state), "updated_at": now}
        for (tid, region), state in states.items()
    ]
    _upsert(conn, REGION_STATES, rows, ("target_id", "region"))


# ---------------------------------------------------------------- transitions and incidents


def open_incidents(conn: Connection, target_ids: Iterable[int] | None = None) -> list[OpenIncident]:
    """Every incident not closed yet (or those of `target_ids`), oldest first."""
    stmt = (
        select(INCIDENTS)
        .where(INCIDENTS.c.closed_at.is_(None))
        .order_by(INCIDENTS.c.opened_at, INCIDENTS.c.id)
    )
    if target_ids is not None:
        stmt = stmt.where(INCIDENTS.c.target_id.in_(sorted(target_ids)))
    rows = conn.execute(stmt)
    return [
        OpenIncident(
            id=row.id,
            target_id=row.target_id,
            opened_at=row.opened_at,
            last_outcome=row.last_outcome,
            outcomes=tuple(row.outcomes),
            last_alert_at=row.last_alert_at,
        )
        for row in rows
    ]


def open_incident(conn: Connection, target_id: int, change: IncidentChange) -> int:
    """Record a new incident; its id."""
    incident_id = conn.scalar(
        insert(INCIDENTS)
        .values(
            target_id=target_id,
            opened_at=change.at,
            first_outcome=change.outcomes[0],
            last_outcome=change.outcome,
            outcomes=list(change.outcomes),
        )
        .returning(INCIDENTS.c.id)
    )
    assert incident_id is not None
    return int(incident_id)


def update_incident(conn: Connection, incident_id: int, change: IncidentChange) -> None:
    conn.execute(
        update(INCIDENTS)
        .where(INCIDENTS.c.id == incident_id)
        .values(last_outcome=change.outcome, outcomes=list(change.outcomes))
    )


def close_incident(conn: Connection, incident_id: int, at: datetime) -> None:
    conn.execute(update(INCIDENTS).where(INCIDENTS.c.id == incident_id).values(closed_at=at))


def mark_alerted(conn: Connection, incident_ids: Iterable[int], at: datetime) -> None:
    """Incidents people were just told about (reminders count from here)."""
    ids = sorted(set(incident_ids))
    if ids:
        conn.execute(update(INCIDENTS).where(INCIDENTS.c.id.in_(ids)).values(last_alert_at=at))


def insert_transition(
    conn: Connection, target_id: int, t: Transition, probe_id: int, agent_id: int | None = None
) -> int:
    """A transition, with the agent whose writer accepted it (None without agents)."""
    transition_id = conn.scalar(
        insert(TRANSITIONS)
        .values(
            target_id=target_id,
            agent_id=agent_id,
            at=t.at,
            started_at=t.started_at,
            from_outcome=t.from_outcome,
            to_outcome=t.to_outcome,
            label=t.label,
            detail=t.detail,
            hint=t.hint,
            facts=jsonable(t.facts),
            http_status=t.http_status,
            announced=t.announced,
            probe_id=probe_id,
            incident_id=t.incident_id,
            quiet_reason=t.quiet,
            regions=list(t.regions) or None,
            region=t.region,
        )
        .returning(TRANSITIONS.c.id)
    )
    assert transition_id is not None
    return int(transition_id)


# ---------------------------------------------------------------- the outbox


@dataclass(frozen=True)
class NewAlert:
    """One outbox row to add: an event for one channel's recipients."""

    event: AlertEvent
    channel: str
    recipients: Sequence[str]
    target_id: int | None = None
    transition_id: int | None = None
    incident_id: int | None = None


def enqueue_alerts(conn: Connection, alerts: Sequence[NewAlert], now: datetime) -> list[int]:
    """Add pending alerts, due now, each with its own Message-ID (the dedupe key for mail
    servers); their ids. The event is stored, not a rendering: channels render it when they
    send. The subject is kept beside it for the delivery log."""
    if not alerts:
        return []
    rows = [
        {
            "target_id": a.target_id,
            "transition_id": a.transition_id,
            "incident_id": a.incident_id,
            "reason": a.event.reason,
            "channel": a.channel,
            "recipients": list(a.recipients),
            "subject": subject_for(a.event),
            "body_text": "",  # rendered at send time from `event`
            "body_html": "",
            "message_id": f"<{uuid.uuid4()}@inferwatch>",
            "event": a.event.to_json(),
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
            "last_error": "",
        }
        for a in alerts
    ]
    stmt = insert(ALERTS).returning(ALERTS.c.id, sort_by_parameter_order=True)
    return list(conn.scalars(stmt, rows))


@dataclass(frozen=True)
class StoredAlert:
    """An outbox row, as the sender needs it."""

    id: int
    channel: str
    recipients: tuple[str, ...]
    subject: str
    body_text: str
    body_html: str
    message_id: str
    event: dict[str, Any]  # {} in rows written before events (migration 0004)
    status: str
    created_at: datetime


def due_alerts(conn: Connection, now: datetime) -> list[int]:
    return list(
        conn.scalars(
            select(ALERTS.c.id)
            .where(ALERTS.c.status == "pending", ALERTS.c.next_attempt_at <= now)
            .order_by(ALERTS.c.id)
        )
    )


def next_attempt_at(conn: Connection) -> datetime | None:
    """When the next pending alert is due (None: nothing is pending)."""
    due: datetime | None = conn.scalar(
        select(func.min(ALERTS.c.next_attempt_at)).where(ALERTS.c.status == "pending")
    )
    return due


def load_alert(conn: Connection, alert_id: int) -> StoredAlert | None:
    row = conn.execute(select(ALERTS).where(ALERTS.c.id == alert_id)).first()
    if row is None:
        return None
    return StoredAlert(
        id=row.id,
        channel=row.channel,
        recipients=tuple(row.recipients),
        subject=row.subject,
        body_text=row.body_text,
        body_html=row.body_html,
        message_id=row.message_id,
        event=dict(row.event or {}),
        status=row.status,
        created_at=row.created_at,
    )


CLAIM_IDLE_LIMIT = "60s"  # well above the longest guarded send (SMTP DATA: 10 s)


def begin_writing(conn: Connection) -> None:
    """Open a transaction that already holds the right to write. SQLite has one writer lock:
    take it now (BEGIN IMMEDIATE), so the commit after the server's 250 never waits behind
    the writer's batch. PostgreSQL locks the claimed row instead, which blocks nobody else
    but another sender reaching for the same alert; so that a sender whose host vanished
    mid-send (no TCP reset to tell the server) does not hold that lock for hours, the server
    ends a transaction left idle for CLAIM_IDLE_LIMIT (a send takes seconds)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            f"SET LOCAL idle_in_transaction_session_timeout = '{CLAIM_IDLE_LIMIT}'"
        )


def claim_alert(conn: Connection, alert_id: int) -> bool:
    """Count an attempt on a pending alert: True when this call got it (it touched one row)."""
    claimed = conn.execute(
        update(ALERTS)
        .where(ALERTS.c.id == alert_id, ALERTS.c.status == "pending")
        .values(attempts=ALERTS.c.attempts + 1)
    )
    return claimed.rowcount == 1


def add_attempt(conn: Connection, alert_id: int, at: datetime, ok: bool, error: str) -> None:
    """One line of the delivery log."""
    conn.execute(insert(ATTEMPTS).values(alert_id=alert_id, at=at, ok=ok, error=error))


def alert_attempts(conn: Connection, alert_id: int) -> int | None:
    return conn.scalar(select(ALERTS.c.attempts).where(ALERTS.c.id == alert_id))


def record_sent(conn: Connection, alert_id: int, at: datetime) -> None:
    conn.execute(
        update(ALERTS)
        .where(ALERTS.c.id == alert_id)
        .values(status="sent", sent_at=at, last_error="")
    )


@dataclass(frozen=True)
class Failure:
    """A failed attempt's consequence, as the outbox's retry policy decided it."""

    error: str
    attempts: int
    next_attempt_at: datetime | None  # None: failed for good
    retry_only: tuple[str, ...] = ()  # after a partial delivery: who still needs it


def record_failure(
    conn: Connection, alert_id: int, failure: Failure, *, only_pending: bool
) -> None:
    """Record a failed attempt on the row: retried at `next_attempt_at`, or failed.
    `only_pending`: leave the row alone if it was sent or given up on meanwhile."""
    values: dict[str, Any] = {"last_error": failure.error, "attempts": failure.attempts}
    if failure.retry_only:
        values["recipients"] = list(failure.retry_only)  # the rest already have it
    if failure.next_attempt_at is None:
        values["status"] = "failed"
    else:
        values["next_attempt_at"] = failure.next_attempt_at
    stmt = update(ALERTS).where(ALERTS.c.id == alert_id)
    if only_pending:
        stmt = stmt.where(ALERTS.c.status == "pending")
    conn.execute(stmt.values(**values))


def stage_delivery_log(conn: Connection) -> None:
    """For the demo's history: the oldest alerts sent, the second newest failed, the newest
    pending, so the delivery log shows every status."""
    ids = sorted(conn.scalars(update(ALERTS).values(status="pending").returning(ALERTS.c.id)))
    if not ids:
        return
    conn.execute(
        update(ALERTS)
        .where(ALERTS.c.id.in_(ids[:-2]))
        .values(status="sent", sent_at=ALERTS.c.created_at, attempts=1)
    )
    conn.execute(
        update(ALERTS)
        .where(ALERTS.c.id == ids[-2])
        .values(
            status="failed",
            attempts=1,
            last_error="127.0.0.1:2525 refused RCPT: 550 5.1.1 no such user",
        )
    )


# ---------------------------------------------------------------- silences


def silences_since(conn: Connection, since: datetime) -> list[Silence]:
    """The silences not over by `since` (the writer: the oldest result of its batch), one
    indexed read per batch, so a silence added or ended by the CLI counts at once."""
    # No ORDER BY: it would make SQLite walk the table by id instead of the ends_at index.
    rows = conn.execute(select(SILENCES).where(SILENCES.c.ends_at > since))
    return [silence_of(row) for row in rows]


def silence_of(row: Any) -> Silence:
    return Silence(row.id, row.target, row.tag, row.starts_at, row.ends_at, row.reason)


def add_silence(
    db: Session | Connection,
    *,
    target: str | None,
    tag: str | None,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
) -> int:
    """Store a silence; its id."""
    silence_id = _conn(db).scalar(
        insert(SILENCES)
        .values(
            target=target,
            tag=tag,
            reason=reason,
            created_at=starts_at,
            starts_at=starts_at,
            ends_at=ends_at,
        )
        .returning(SILENCES.c.id)
    )
    assert silence_id is not None
    return int(silence_id)


def end_silence(db: Session | Connection, silence_id: int, at: datetime) -> Silence | None:
    """End a silence now (if not over already); the silence as it is then, None if unknown."""
    conn = _conn(db)
    conn.execute(
        update(SILENCES)
        .where(SILENCES.c.id == silence_id, SILENCES.c.ends_at > at)
        .values(ends_at=at, ended_at=at)
    )
    row = conn.execute(select(SILENCES).where(SILENCES.c.id == silence_id)).first()
    return None if row is None else silence_of(row)


# ---------------------------------------------------------------- rollups


def rollup_row(target_id: int, period: str, start: datetime, r: Rollup) -> dict[str, Any]:
    return {
        "target_id": target_id,
        "period": period,
        "bucket_start": start,
        "probes": r.probes,
        "ok": r.ok,
        "counts": dict(r.counts),
        "latency": encode_latency(r.latency),
        "latency_sum": r.latency_sum,
        "latency_max": r.latency_max,
        "quiet": r.quiet,
    }


def stored_rollup(row: Any) -> Rollup:
    """A stored rollup (a RollupRecord or a row of probe_rollups) as a mergeable Rollup."""
    return Rollup(
        probes=row.probes,
        ok=row.ok,
        counts=dict(row.counts),
        latency=decode_latency(row.latency),
        latency_sum=row.latency_sum,
        latency_max=row.latency_max,
        quiet=row.quiet,
    )


RollupKey = tuple[int, str, datetime]  # target id, period, bucket start


def load_rollups(conn: Connection, keys: Iterable[RollupKey]) -> dict[RollupKey, Rollup]:
    """The stored rollups among `keys`, one query per bucket (a batch touches one or two)."""
    wanted: dict[tuple[str, datetime], set[int]] = {}
    for target_id, period, start in keys:
        wanted.setdefault((period, start), set()).add(target_id)
    found = {}
    for (period, start), target_ids in wanted.items():
        rows = conn.execute(
            select(ROLLUPS).where(
                ROLLUPS.c.period == period,
                ROLLUPS.c.bucket_start == start,
                ROLLUPS.c.target_id.in_(target_ids),
            )
        )
        for row in rows:
            found[(row.target_id, row.period, row.bucket_start)] = stored_rollup(row)
    return found


def save_rollups(conn: Connection, rollups: Mapping[RollupKey, Rollup]) -> None:
    """Write whole rollups (already merged by the caller), inserting or replacing each."""
    rows = [rollup_row(*key, rollup) for key, rollup in rollups.items()]
    _upsert(conn, ROLLUPS, rows, ("target_id", "period", "bucket_start"))


def _upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    keep: Sequence[str] = (),
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, as one executemany (SQLite and PostgreSQL);
    the columns `keep` keep their stored value."""
    if not rows:
        return
    conn.execute(_upsert_statement(conn.dialect.name, table, tuple(keys), tuple(keep)), list(rows))


@functools.cache
def _upsert_statement(
    dialect: str, table: Table, keys: tuple[str, ...], keep: tuple[str, ...]
) -> Any:
    """Built once per table and dialect: building `excluded`'s column proxies was about a
    tenth of the writer's time, every batch, for the same statement."""
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = dialect_insert(table)
    unchanged = set(keys) | set(keep)
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c.name: stmt.excluded[c.name] for c in table.c if c.name not in unchanged},
    )


# ---------------------------------------------------------------- agents (issue 13, part A)
# The registry of `inferwatch run --agent NAME --region REGION` processes
# (monitor/agent/registry.py): join, heartbeat, leave, and who is alive.


class AgentRefused(Exception):
    """A start that must not go on: its name is taken by a live agent, or SQLite already
    holds one. The message names the other agent, its host and its last heartbeat."""


def _agent_of(row: Any) -> Agent:
    return Agent(row.name, row.region, row.heartbeat_at, row.stopped_at)


def _beat_text(at: datetime, now: datetime) -> str:
    ago = max((now - at).total_seconds(), 0.0)
    return f"last heartbeat {at:%Y-%m-%d %H:%M:%S} UTC, {ago:.0f}s ago"


def join_agent(
    conn: Connection,
    name: str,
    region: str,
    version: str,
    host: str,
    pid: int,
    now: datetime,
    pid_running: Callable[[int], bool] = lambda _pid: True,
) -> int:
    """Register this start as agent `name` (a new row, or the old row taken over); its id.

    Raises AgentRefused when a live agent holds the name (unless `domain.agents.replaceable`
    says its process is gone), and on SQLite when any other agent is alive: one file, one
    writer. The INSERT comes first so that two starts racing for one name are serialised by
    the unique key (and SQLite's write lock is taken before anything is read).
    """
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    fields = {
        "region": region,
        "version": version,
        "host": host,
        "pid": pid,
        "started_at": now,
        "heartbeat_at": now,
        "stopped_at": None,
        "targets_held": 0,
    }
    inserted = conn.scalar(
        dialect_insert(AGENTS)
        .values(name=name, **fields)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(AGENTS.c.id)
    )
    query = select(AGENTS).where(AGENTS.c.name == name)
    row = conn.execute(query.with_for_update()).one()
    if inserted is None:  # the name was registered before: by a live agent, or a gone one
        if not replaceable(_agent_of(row), row.host, row.pid, host, pid, now, pid_running):
            raise AgentRefused(
                f"agent {name!r} is already running on host {row.host} (pid {row.pid}, "
                f"{_beat_text(row.heartbeat_at, now)}); stop it, or start this one with "
                "another --agent name"
            )
        conn.execute(update(AGENTS).where(AGENTS.c.id == row.id).values(**fields))
    if conn.dialect.name == "sqlite":
        others = conn.execute(select(AGENTS).where(AGENTS.c.id != row.id)).all()
        for other in others:
            if not replaceable(
                _agent_of(other), other.host, other.pid, host, pid, now, pid_running
            ):
                raise AgentRefused(
                    f"SQLite holds one agent; use PostgreSQL for several (agent "
                    f"{other.name!r} is running on host {other.host}, pid {other.pid}, "
                    f"{_beat_text(other.heartbeat_at, now)})"
                )
            if alive(_agent_of(other), now):  # beating, but its process is gone: say so
                conn.execute(update(AGENTS).where(AGENTS.c.id == other.id).values(stopped_at=now))
    return int(row.id)


def beat(
    conn: Connection,
    agent_id: int,
    now: datetime,
    targets_held: int,
    started_at: datetime | None = None,
) -> bool:
    """The agent's heartbeat: it is alive at `now` and holds this many targets' states.

    With `started_at` (its join's time) the row is beaten only while it is still this start's:
    False when another start took the name over (this one was lost: paused, cut off), which
    must then stop rather than act as the same agent twice.
    """
    stmt = update(AGENTS).where(AGENTS.c.id == agent_id)
    if started_at is not None:
        stmt = stmt.where(AGENTS.c.started_at == started_at, AGENTS.c.stopped_at.is_(None))
    done = conn.execute(stmt.values(heartbeat_at=now, targets_held=targets_held))
    return bool(done.rowcount)


def leave_agent(
    conn: Connection, agent_id: int, now: datetime, started_at: datetime | None = None
) -> None:
    """A clean stop: no longer alive, so the others take its targets at their next beat.
    With `started_at`, only if the row is still this start's (not a newer one's)."""
    stmt = update(AGENTS).where(AGENTS.c.id == agent_id)
    if started_at is not None:
        stmt = stmt.where(AGENTS.c.started_at == started_at)
    conn.execute(stmt.values(stopped_at=now, heartbeat_at=now, targets_held=0))


def agents_known(conn: Connection) -> int:
    """How many agents this database has ever registered (alive, lost or stopped)."""
    return int(conn.scalar(select(func.count()).select_from(AGENTS)) or 0)


def live_agents(conn: Connection, now: datetime, outage: Outage | None = None) -> list[Agent]:
    """The agents alive at `now` (domain.agents.alive, which `outage` extends after this
    agent's own time without the database), by name."""
    rows = conn.execute(
        select(AGENTS)
        .where(AGENTS.c.stopped_at.is_(None), AGENTS.c.heartbeat_at > counted_since(now, outage))
        .order_by(AGENTS.c.name)
    )
    return [a for a in map(_agent_of, rows) if alive(a, now, outage)]


__all__ = [
    "AgentRefused",
    "Failure",
    "NewAlert",
    "StoredAlert",
    "acquire_targets",
    "add_attempt",
    "add_silence",
    "alert_attempts",
    "beat",
    "begin_writing",
    "claim_alert",
    "close_incident",
    "due_alerts",
    "end_silence",
    "enqueue_alerts",
    "heartbeat",
    "insert_probes",
    "insert_transition",
    "join_agent",
    "latest_probe",
    "leave_agent",
    "live_agents",
    "load_alert",
    "load_rollups",
    "load_states",
    "lock_held",
    "mark_alerted",
    "next_attempt_at",
    "open_incident",
    "open_incidents",
    "probe_row",
    "recent_probes",
    "record_failure",
    "record_sent",
    "rollup_row",
    "save_results",
    "save_rollups",
    "save_states",
    "silence_of",
    "silences_since",
    "stage_delivery_log",
    "start_run",
    "stop_run",
    "stored_rollup",
    "sync_targets",
    "update_incident",
]

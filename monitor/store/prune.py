"""Retention: delete raw probes and rollups older than configured, per target key range.

Deleting by (target_id, checked_at < cutoff) walks the composite index one target at a time,
in chunks, so each write transaction stays short and the monitor's writer is never starved.
Other regions' results handed to a holder (`region_results`) that nobody took within a day
(the target removed, its holder gone) go too.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Select, Table, delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from monitor.domain.agents import job_due
from monitor.store.models import (
    DeploymentJobRecord,
    ProbeRecord,
    RegionResultRecord,
    RollupRecord,
    TargetRecord,
)
from monitor.store.reads import database_now

log = logging.getLogger(__name__)

CHUNK = 20_000
JOBS = cast(Table, DeploymentJobRecord.__table__)
REGION_RESULTS = cast(Table, RegionResultRecord.__table__)
# A handed-over result is taken by its holder within a second or two; one still waiting a day
# later will never be (its target removed, or no holder left in a region that takes it).
HANDED_KEPT = timedelta(days=1)


@dataclass(frozen=True)
class PruneReport:
    probes: int
    rollups: int
    raw_cutoff: datetime
    rollup_cutoff: datetime
    region_results: int = 0  # handed-over results nobody took (see HANDED_KEPT)


def cutoffs(
    raw_seconds: float, rollup_seconds: float, now: datetime | None = None
) -> tuple[datetime, datetime]:
    now = now or datetime.now(UTC)
    return now - timedelta(seconds=raw_seconds), now - timedelta(seconds=rollup_seconds)


def prune(
    engine: Engine,
    raw_cutoff: datetime,
    rollup_cutoff: datetime,
    *,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    handed_cutoff: datetime | None = None,
) -> PruneReport:
    """Delete raw probes before `raw_cutoff`, rollups before `rollup_cutoff`, and handed-over
    region results created before `handed_cutoff` (by default HANDED_KEPT before the
    database's now, the clock they are stamped by).

    `stop` ends the pass between two short transactions (the monitor is shutting down); what
    is left is deleted by the next pass.
    """
    stop = stop or threading.Event()
    with Session(engine) as s:
        target_ids = list(s.scalars(select(TargetRecord.id)))
    probes = rollups = 0
    for target_id in target_ids:
        if stop.is_set():
            log.info("prune stopped early (shutting down); the next pass finishes it")
            break
        probes += _delete_chunks(
            engine,
            select(ProbeRecord.id).where(
                ProbeRecord.target_id == target_id, ProbeRecord.checked_at < raw_cutoff
            ),
            ProbeRecord,
            dry_run,
            stop,
        )
        with Session(engine) as s, s.begin():
            query = delete(RollupRecord).where(
                RollupRecord.target_id == target_id, RollupRecord.bucket_start < rollup_cutoff
            )
            if dry_run:
                rollups += len(
                    s.execute(
                        select(RollupRecord.target_id).where(
                            RollupRecord.target_id == target_id,
                            RollupRecord.bucket_start < rollup_cutoff,
                        )
                    ).all()
                )
            else:
                deleted = cast(CursorResult[Any], s.execute(query))  # a DELETE's result
                rollups += deleted.rowcount or 0
    handed = 0 if stop.is_set() else _prune_handed(engine, handed_cutoff, dry_run)
    log.info(
        "pruned %d probes before %s, %d rollups before %s and %d untaken region results",
        probes,
        raw_cutoff.isoformat(timespec="seconds"),
        rollups,
        rollup_cutoff.isoformat(timespec="seconds"),
        handed,
    )
    return PruneReport(probes, rollups, raw_cutoff, rollup_cutoff, handed)


def _prune_handed(engine: Engine, cutoff: datetime | None, dry_run: bool) -> int:
    """Delete the region results nobody took before `cutoff`, in one short transaction (a
    handful of rows at most: a holder takes them within seconds)."""
    with Session(engine) as s, s.begin():
        cutoff = cutoff or database_now(s) - HANDED_KEPT
        stale = REGION_RESULTS.c.created_at < cutoff
        if dry_run:
            return int(s.scalar(select(func.count()).select_from(REGION_RESULTS).where(stale)) or 0)
        deleted = cast(CursorResult[Any], s.execute(delete(REGION_RESULTS).where(stale)))
        return deleted.rowcount or 0


@contextlib.contextmanager
def exclusive(engine: Engine, job: str) -> Iterator[bool]:
    """Whether this process runs `job` now. On PostgreSQL, only the one holding the job's
    advisory lock (a session lock: it outlives the job's many short transactions, and ends
    with its connection if the agent dies); the others get False and skip it. On SQLite one
    agent runs everything: always True."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = int.from_bytes(hashlib.blake2b(job.encode(), digest_size=8).digest())
    key -= 1 << 63  # advisory keys are signed 64-bit
    with engine.connect() as conn:
        mine = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        conn.commit()  # hold the lock, not a transaction, while the job runs
        try:
            yield mine
        finally:
            if mine:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    conn.commit()
                except DBAPIError:  # the connection died, and the lock with it
                    log.warning("the %s lock went with its connection", job)


@contextlib.contextmanager
def once_per(engine: Engine, job: str, period: timedelta, agent_id: int | None) -> Iterator[bool]:
    """Whether this agent runs `job` now, once per deployment and `period`: it holds the job's
    lock (`exclusive`) and `domain.agents.job_due` says no agent ran it within the period
    (`deployment_jobs`, in the database's time). The run is recorded as it begins, under the
    lock, so the agents that come later in the period skip it even while it runs."""
    with exclusive(engine, job) as mine:
        if mine:
            with engine.begin() as conn:
                now = database_now(conn)
                last = conn.execute(select(JOBS).where(JOBS.c.name == job)).one_or_none()
                mine = job_due(last.last_run_at if last else None, now, period)
                if mine:
                    dialect_insert = (
                        postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
                    )
                    stmt = dialect_insert(JOBS).values(name=job, last_run_at=now, agent_id=agent_id)
                    conn.execute(
                        stmt.on_conflict_do_update(
                            index_elements=["name"],
                            set_={"last_run_at": now, "agent_id": agent_id},
                        )
                    )
        yield mine


def _delete_chunks(
    engine: Engine,
    ids_query: Select[int],
    model: type[ProbeRecord],
    dry_run: bool,
    stop: threading.Event,
) -> int:
    total = 0
    while not stop.is_set():
        with Session(engine) as s, s.begin():
            ids = list(s.scalars(ids_query.limit(CHUNK)))
            if not ids:
                return total
            if dry_run:
                return total + len(list(s.scalars(ids_query)))
            s.execute(delete(model).where(model.id.in_(ids)))
            total += len(ids)
    return total

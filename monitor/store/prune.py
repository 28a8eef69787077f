"""Retention: delete raw probes and rollups older than configured, per target key range.

Deleting by (target_id, checked_at < cutoff) walks the composite index one target at a time,
in chunks, so each write transaction stays short and the monitor's writer is never starved.
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

from sqlalchemy import CursorResult, Engine, Select, delete, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from monitor.store.models import ProbeRecord, RollupRecord, TargetRecord

log = logging.getLogger(__name__)

CHUNK = 20_000


@dataclass(frozen=True)
class PruneReport:
    probes: int
    rollups: int
    raw_cutoff: datetime
    rollup_cutoff: datetime


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
) -> PruneReport:
    """Delete raw probes before `raw_cutoff` and rollups before `rollup_cutoff`.

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
    log.info(
        "pruned %d probes before %s and %d rollups before %s",
        probes,
        raw_cutoff.isoformat(timespec="seconds"),
        rollups,
        rollup_cutoff.isoformat(timespec="seconds"),
    )
    return PruneReport(probes, rollups, raw_cutoff, rollup_cutoff)


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

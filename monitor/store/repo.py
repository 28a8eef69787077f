"""Reads and writes in terms of plain data; callers never build queries themselves."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.domain.evidence import ProbeResult
from monitor.domain.rollups import Rollup, decode_latency, encode_latency
from monitor.store.models import (
    ProbeRecord,
    RollupRecord,
    TargetRecord,
)
from monitor.targets import TargetBase


def sync_targets(
    session: Session, targets: Iterable[TargetBase], redact: Callable[[str], str] = str
) -> dict[str, int]:
    """Insert new targets, refresh kind/URL of known ones; return name -> id.

    The URL is stored redacted: a key interpolated into it (?key=${API_KEY}) stays secret.
    """
    targets = list(targets)
    now = datetime.now(UTC)
    names = [t.name for t in targets]
    existing = {
        r.name: r for r in session.scalars(select(TargetRecord).where(TargetRecord.name.in_(names)))
    }
    for t in targets:
        record = existing.get(t.name)
        url = redact(t.endpoint)
        if record is None:
            record = TargetRecord(name=t.name, kind=t.kind, url=url, created_at=now, updated_at=now)
            session.add(record)
            existing[t.name] = record
        elif (record.kind, record.url) != (t.kind, url):
            record.kind, record.url, record.updated_at = t.kind, url, now
    session.flush()
    return {name: r.id for name, r in existing.items()}


def probe_record(r: ProbeResult, target_id: int) -> ProbeRecord:
    return ProbeRecord(
        target_id=target_id,
        checked_at=r.checked_at,
        outcome=str(r.outcome),
        http_status=r.http_status,
        latency_ms=r.timings.total_ms,
        connect_ms=r.timings.connect_ms,
        tls_ms=r.timings.tls_ms,
        ttfb_ms=r.timings.ttfb_ms,
        url=r.url,
        detail=r.detail,
        hint=r.hint,
        warning=r.warning,
        request_id=r.request_id,
        provider=r.provider,
        headers=r.headers,
        body_excerpt=r.body_excerpt,
    )


def rollup_record(target_id: int, period: str, start: datetime, r: Rollup) -> RollupRecord:
    return RollupRecord(
        target_id=target_id,
        period=period,
        bucket_start=start,
        probes=r.probes,
        ok=r.ok,
        counts=dict(r.counts),
        latency=encode_latency(r.latency),
        latency_sum=r.latency_sum,
        latency_max=r.latency_max,
    )


def stored_rollup(row: RollupRecord) -> Rollup:
    return Rollup(
        probes=row.probes,
        ok=row.ok,
        counts=dict(row.counts),
        latency=decode_latency(row.latency),
        latency_sum=row.latency_sum,
        latency_max=row.latency_max,
    )


def save_results(
    session: Session, results: Sequence[ProbeResult], target_ids: dict[str, int]
) -> None:
    """Add probe results in one batch (the caller commits)."""
    session.add_all(probe_record(r, target_ids[r.target]) for r in results)

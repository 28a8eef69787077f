"""Compact probe storage (issue 9): which probes keep their evidence, what a lean row costs
on disk, and that migration 0005 converts existing history to the microsecond."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from monitor.agent.writer import Writer
from monitor.domain.evidence import Outcome, ProbeResult, Timings
from monitor.domain.sampling import LastStored, after, keeps_evidence
from monitor.store import make_engine, open_database
from monitor.store.db import alembic_config
from monitor.store.models import ProbeRecord
from monitor.store.reads import probe_log
from tests.helpers import make_config

T0 = datetime(2026, 11, 30, 9, 5, 0, 123456, tzinfo=UTC)


def ok(at: datetime, target: str = "gpt", warning: str = "") -> ProbeResult:
    return ProbeResult(
        target=target,
        kind="http",
        url="https://api.example.com/v1/models",
        checked_at=at,
        outcome=Outcome.OK,
        http_status=200,
        timings=Timings(connect_ms=1.5, tls_ms=3.25, ttfb_ms=10.0, total_ms=12.345678),
        detail="200 OK",
        hint="",
        warning=warning,
        request_id="req-1",
        provider="example",
        headers={"x-request-id": "req-1", "content-type": "application/json"},
        body_excerpt='{"data": [{"id": "gpt"}]}',
        facts={},
    )


def failing(at: datetime) -> ProbeResult:
    return replace(ok(at), outcome=Outcome.SERVER_ERROR, http_status=503, detail="503")


# ------------------------------------------------------------------ the pure decision


def test_the_first_probe_and_every_failure_keep_their_evidence() -> None:
    assert keeps_evidence(ok(T0), None)
    last = LastStored("server_error", "", T0)
    assert keeps_evidence(failing(T0 + timedelta(seconds=60)), last)
    last_ok = LastStored("ok", "", T0)
    assert keeps_evidence(failing(T0 + timedelta(seconds=60)), last_ok), "a failure after ok"


def test_a_repeated_ok_is_lean_until_something_changes_or_the_hour_turns() -> None:
    last = LastStored("ok", "", T0)
    assert not keeps_evidence(ok(T0 + timedelta(minutes=1)), last)
    assert keeps_evidence(ok(T0 + timedelta(minutes=1), warning="retires on 2027-01-01"), last)
    assert keeps_evidence(ok(T0 + timedelta(minutes=1)), LastStored("slow", "", T0))
    assert keeps_evidence(ok(T0.replace(hour=10, minute=0, second=2)), last), "the hourly sample"
    assert not keeps_evidence(ok(T0.replace(minute=59)), last)


def test_after_remembers_when_evidence_was_last_kept() -> None:
    first = after(ok(T0), None, kept=False)  # a first record always has an evidence time
    assert first.evidence_at == T0
    lean = after(ok(T0 + timedelta(minutes=1)), first, kept=False)
    assert lean.evidence_at == T0 and lean.outcome == "ok"
    kept = after(failing(T0 + timedelta(minutes=2)), lean, kept=True)
    assert kept == LastStored("server_error", "", T0 + timedelta(minutes=2))


# ------------------------------------------------------------------ the writer, for real


def write_in_batches(tmp_path: Path, batches: list[list[ProbeResult]]) -> list[ProbeRecord]:
    url = f"sqlite:///{tmp_path / 'compact.db'}"
    config = make_config(
        [{"name": "gpt", "kind": "http", "url": "https://api.example.com"}], database=url
    )
    engine = open_database(url)
    writer = Writer(engine, config)
    writer.start_run()
    for batch in batches:
        writer.write_batch(batch)
    with Session(engine) as s:
        return list(s.scalars(select(ProbeRecord).order_by(ProbeRecord.checked_at)))


def test_the_writer_stores_repeated_oks_lean_and_everything_else_whole(tmp_path: Path) -> None:
    minute = timedelta(minutes=1)
    probes = [ok(T0 + i * minute) for i in range(5)]  # first kept, then 4 lean
    probes.append(failing(T0 + 5 * minute))  # kept: not ok
    probes.append(ok(T0 + 6 * minute))  # kept: the outcome changed
    probes.append(ok(T0 + 7 * minute))  # lean
    probes.append(ok(T0.replace(hour=10, minute=0)))  # kept: first of a new hour
    # Across batches too: the writer remembers what each target stored last.
    rows = write_in_batches(tmp_path, [probes[:3], probes[3:]])

    whole = [bool(r.headers) for r in rows]
    assert whole == [True, False, False, False, False, True, True, False, True]
    for row, probe in zip(rows, probes, strict=True):  # every probe keeps its time and timings
        assert row.checked_at == probe.checked_at
        assert row.outcome == probe.outcome
        assert row.http_status == probe.http_status
        assert abs((row.latency_ms or 0) - 12.345678) < 0.001
        assert row.connect_ms == 1.5 and row.tls_ms == 3.25 and row.ttfb_ms == 10.0
    lean = rows[1]
    assert (lean.url, lean.detail, lean.body_excerpt, lean.request_id) == ("", "", "", None)
    assert lean.headers == {} and lean.facts == {}
    assert rows[5].body_excerpt and rows[5].headers["x-request-id"] == "req-1"


def test_the_probe_log_still_lists_lean_probes(tmp_path: Path) -> None:
    probes = [ok(T0 + timedelta(minutes=i)) for i in range(4)]
    write_in_batches(tmp_path, [probes])
    engine = make_engine(f"sqlite:///{tmp_path / 'compact.db'}")
    with Session(engine) as s:
        log = probe_log(s, "gpt", T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert [r.checked_at for r in log] == [p.checked_at for p in reversed(probes)]
    assert [r.outcome for r in log] == ["ok"] * 4


def test_a_lean_ok_probe_takes_under_150_bytes_on_disk(tmp_path: Path) -> None:
    """The issue's bound (aim: 80), measured as the file grows by 5,000 lean rows, after
    VACUUM, index included."""
    url = f"sqlite:///{tmp_path / 'size.db'}"
    config = make_config(
        [{"name": f"t{i}", "kind": "http", "url": "http://x"} for i in range(50)], database=url
    )
    engine = open_database(url)
    writer = Writer(engine, config)
    writer.start_run()
    writer.write_batch([ok(T0, target=f"t{i}") for i in range(50)])  # the kept first probes

    def size() -> int:
        with engine.connect() as conn:
            conn.execute(text("VACUUM"))
        return (tmp_path / "size.db").stat().st_size

    before = size()
    for step in range(1, 101):
        at = T0 + timedelta(seconds=30 * step)
        writer.write_batch([ok(at + timedelta(milliseconds=i), target=f"t{i}") for i in range(50)])
    per_probe = (size() - before) / 5000
    with Session(engine) as s:
        assert s.scalar(select(ProbeRecord.id).order_by(ProbeRecord.id.desc()).limit(1)) == 5050
    assert per_probe <= 150, f"{per_probe:.0f} bytes per lean ok probe"


# ------------------------------------------------------------------ migration 0005


def test_migration_0005_converts_history_to_the_microsecond_and_back(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{path}")
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
    old = sqlite3.connect(path)  # rows as revision 0004 wrote them
    old.execute(
        "INSERT INTO targets (id, name, kind, url, created_at, updated_at) VALUES "
        "(1, 'gpt', 'http', 'https://x', '2026-11-01 00:00:00.000000', "
        "'2026-11-01 00:00:00.000000')"
    )
    old.execute(
        "INSERT INTO probe_results (target_id, checked_at, outcome, http_status, latency_ms, "
        "connect_ms, tls_ms, ttfb_ms, url, detail, hint, warning, request_id, provider, "
        "headers, body_excerpt, facts) VALUES "
        "(1, '2026-11-29 23:59:58.654321', 'ok', 200, 12.3456, 0.5, NULL, 9.75, 'https://x', "
        "'200 OK', '', '', 'r1', NULL, '{\"a\": \"b\"}', 'ok', '{}'),"
        "(1, '2026-11-30 00:00:01.000007', 'deprecated', 410, 3.0, NULL, NULL, NULL, "
        "'https://x', 'gone', 'use the router', '', NULL, NULL, '{}', 'gone', "
        '\'{"replacement_url": "https://router"}\')'
    )
    old.commit()
    old.close()

    open_database(f"sqlite:///{path}")  # upgrades to head

    raw = (
        sqlite3.connect(path)
        .execute(
            "SELECT typeof(checked_at), typeof(latency_ms), headers FROM probe_results ORDER BY id"
        )
        .fetchall()
    )
    assert raw == [("integer", "integer", '{"a": "b"}'), ("integer", "integer", None)]
    with Session(engine) as s:
        rows = list(s.scalars(select(ProbeRecord).order_by(ProbeRecord.id)))
    assert rows[0].checked_at == datetime(2026, 11, 29, 23, 59, 58, 654321, tzinfo=UTC)
    assert rows[1].checked_at == datetime(2026, 11, 30, 0, 0, 1, 7, tzinfo=UTC)
    assert rows[0].latency_ms == 12.346 and rows[0].connect_ms == 0.5 and rows[0].tls_ms is None
    assert rows[0].headers == {"a": "b"} and rows[0].facts == {}
    assert rows[1].facts == {"replacement_url": "https://router"} and rows[1].headers == {}

    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    back = (
        sqlite3.connect(path)
        .execute("SELECT checked_at, latency_ms, headers, facts FROM probe_results ORDER BY id")
        .fetchall()
    )
    assert back == [
        ("2026-11-29 23:59:58.654321", 12.346, '{"a": "b"}', "{}"),
        ("2026-11-30 00:00:01.000007", 3.0, "{}", '{"replacement_url": "https://router"}'),
    ]

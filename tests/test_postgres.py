"""The same store on PostgreSQL, for teams that outgrow one machine.

Runs when INFERWATCH_TEST_POSTGRES_URL names a database it may wipe (`.ci/run` starts a
throwaway PostgreSQL and sets it); the rest of the suite covers SQLite.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from monitor.demo.seed import seed, seed_config
from monitor.store import Base, make_engine, open_database
from monitor.store import reads as q
from monitor.store.db import upgrade
from monitor.store.models import ProbeRecord
from monitor.store.prune import prune

URL = os.environ.get("INFERWATCH_TEST_POSTGRES_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="set INFERWATCH_TEST_POSTGRES_URL (CI does)")
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


@pytest.fixture
def pg() -> Iterator[Engine]:
    with make_engine(URL).begin() as conn:  # a clean database each time
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine = open_database(URL)
    yield engine
    engine.dispose()


def test_migrations_create_exactly_the_orm_schema_on_postgres(pg: Engine) -> None:
    with pg.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    assert diff == []


def test_the_writer_queries_and_prune_work_on_postgres(pg: Engine) -> None:
    seed(pg, now=NOW, days=2, config=seed_config(URL))

    with Session(pg) as s:
        rows = {r.name: r for r in q.overview(s, NOW)}
        flags = {f.target for f in q.flags(rows.values())}
        incidents = q.incidents(s, NOW - timedelta(days=7), NOW, NOW)
        blocks = q.timeline(s, "status-page", NOW - timedelta(days=3), NOW)
    assert rows["gpt2-legacy"].state == "deprecated" and rows["gpt2-legacy"].http_status == 410
    assert rows["minilm-embeddings"].uptime["24h"] == 1.0
    assert flags == {"gpt2-legacy", "llama-chat"}
    assert {i.target for i in incidents} >= {"status-page", "llama-chat"}
    assert len(blocks) == 72 and blocks[-2].uptime == 1.0

    report = prune(pg, NOW - timedelta(days=1), NOW - timedelta(days=1))
    assert report.probes > 0 and report.rollups > 0


def test_two_senders_on_postgres_send_one_alert_once(pg: Engine) -> None:
    """The claim is a row lock held across DATA: a second sender waits, then finds it sent."""
    import threading

    from monitor.agent.writer import Writer
    from monitor.alerts.outbox import Sender
    from monitor.domain.evidence import Outcome
    from tests.helpers import make_config
    from tests.smtp import Inbox
    from tests.test_loop_writer import T0, result

    inbox = Inbox().up()
    try:
        config = make_config(
            [{"name": "t", "kind": "hf-legacy", "model": "gpt2"}],
            alerts={"email": inbox.settings()},
            database=URL,
        )
        writer = Writer(pg, config, clock=lambda: T0)
        writer.start_run()
        for i in range(2):
            writer.write_batch([result("t", Outcome.DEPRECATED, T0 + timedelta(minutes=i))])
        senders = [Sender(pg, config, env={}, clock=lambda: T0) for _ in range(4)]
        (alert_id,) = senders[0].due()
        start = threading.Barrier(len(senders))
        outcomes: list[bool] = []

        def race(sender: Sender) -> None:
            start.wait()
            outcomes.append(sender.deliver(alert_id))

        threads = [threading.Thread(target=race, args=(s,)) for s in senders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    finally:
        inbox.down()

    assert len(inbox.messages) == 1
    assert sorted(outcomes) == [False, False, False, True]


def test_migration_0005_keeps_postgres_history_and_empties_only_empty_evidence() -> None:
    with make_engine(URL).begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine = make_engine(URL)
    upgrade(engine, "0004")
    at = datetime(2026, 11, 29, 23, 59, 58, 654321)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO targets (id, name, kind, url, created_at, updated_at) "
                "VALUES (1, 'gpt', 'http', 'https://x', :at, :at)"
            ),
            {"at": at},
        )
        conn.execute(
            text(
                "INSERT INTO probe_results (target_id, checked_at, outcome, http_status, "
                "latency_ms, url, detail, hint, warning, headers, body_excerpt, facts) VALUES "
                "(1, :at, 'ok', 200, 12.3456, 'https://x', '', '', '', '{}', '', '{}'), "
                "(1, :at, 'deprecated', 410, 3.5, 'https://x', 'gone', '', '', "
                '\'{"a": "b"}\', \'gone\', \'{"replacement_url": "https://r"}\')'
            ),
            {"at": at},
        )
    upgrade(engine)
    with engine.connect() as conn:
        raw = conn.execute(
            text("SELECT headers IS NULL, facts IS NULL FROM probe_results ORDER BY id")
        ).all()
    assert [tuple(r) for r in raw] == [(True, True), (False, False)]
    with Session(engine) as s:
        rows = list(s.scalars(select(ProbeRecord).order_by(ProbeRecord.id)))
    assert [r.checked_at for r in rows] == [at.replace(tzinfo=UTC)] * 2
    assert [r.latency_ms for r in rows] == [12.3456, 3.5]  # a float on PostgreSQL, unrounded
    assert rows[0].headers == {} and rows[1].facts == {"replacement_url": "https://r"}
    engine.dispose()


def test_a_sender_gone_silent_mid_send_frees_its_claim(
    pg: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sender whose host vanished mid-send sends no TCP reset: the server only sees its
    transaction go idle. The claim's transaction is limited (CLAIM_IDLE_LIMIT), so another
    sender gets the alert then instead of waiting for TCP keepalive (hours)."""
    import threading
    import time

    from monitor.agent.writer import Writer
    from monitor.domain.evidence import Outcome
    from monitor.store import writes
    from tests.helpers import make_config
    from tests.test_loop_writer import T0, result

    monkeypatch.setattr(writes, "CLAIM_IDLE_LIMIT", "1s")
    config = make_config(
        [{"name": "t", "kind": "hf-legacy", "model": "gpt2"}],
        alerts={"email": {"host": "127.0.0.1", "sender": "a@b.c", "recipients": ["d@e.f"]}},
        database=URL,
    )
    writer = Writer(pg, config, clock=lambda: T0)
    writer.start_run()
    for i in range(2):
        writer.write_batch([result("t", Outcome.DEPRECATED, T0 + timedelta(minutes=i))])
    with pg.connect() as conn:
        (alert_id,) = writes.due_alerts(conn, T0 + timedelta(days=1))
    silent = pg.connect()  # claims, then never speaks again (its host is gone)
    writes.begin_writing(silent)
    assert writes.claim_alert(silent, alert_id)
    got: list[bool] = []

    def other_sender() -> None:
        with pg.connect() as conn:
            writes.begin_writing(conn)
            got.append(writes.claim_alert(conn, alert_id))
            conn.rollback()

    started = time.monotonic()
    thread = threading.Thread(target=other_sender, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert got == [True]  # the silent claim was rolled back by the server
    assert 0.5 < time.monotonic() - started < 15
    silent.invalidate()

"""Maintenance and silences on PostgreSQL: migration 0006 up and down over existing history,
and the writer's quiet probes, rollups and silences. Runs when INFERWATCH_TEST_POSTGRES_URL
names a database it may wipe (`.ci/run` sets it), like tests/test_postgres.py."""

from __future__ import annotations

import os
from datetime import datetime

import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from monitor.store import make_engine, reads
from monitor.store.db import alembic_config, upgrade
from monitor.store.models import ProbeRecord, RollupRecord, TransitionRecord
from tests.test_maintenance import WINDOW, feed, utc, writer_for

URL = os.environ.get("INFERWATCH_TEST_POSTGRES_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="set INFERWATCH_TEST_POSTGRES_URL (CI does)")


def wipe() -> None:
    with make_engine(URL).begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))


def test_migration_0006_keeps_postgres_history_and_goes_back() -> None:
    wipe()
    engine = make_engine(URL)
    upgrade(engine, "0005")
    at = datetime(2026, 11, 29, 23, 59, 58)
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
                "INSERT INTO probe_results (target_id, checked_at, outcome, url, detail, hint, "
                "warning, body_excerpt) VALUES (1, :at, 'ok', '', '', '', '', '')"
            ),
            {"at": at},
        )
    upgrade(engine)
    with Session(engine) as s:
        assert s.scalars(select(ProbeRecord.quiet)).all() == [False]
        assert reads.silences(s) == []
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    with engine.connect() as conn:
        tables = set(
            conn.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        )
        count = conn.scalar(text("SELECT count(*) FROM probe_results"))
    assert "silences" not in tables and count == 1
    engine.dispose()


def test_the_writer_keeps_quiet_and_tells_once_on_postgres() -> None:
    wipe()
    writer = writer_for(URL, maintenance=[WINDOW])
    feed(writer, "oo", utc(2026, 12, 1, 20, 50))
    feed(writer, "gggg", utc(2026, 12, 1, 21, 30))
    feed(writer, "gg", utc(2026, 12, 1, 23, 5))
    with Session(writer.engine) as s:
        day = s.scalars(select(RollupRecord).where(RollupRecord.period == "d")).one()
        reasons = list(
            s.scalars(select(TransitionRecord.quiet_reason).order_by(TransitionRecord.id))
        )
        alerts = reads.alerts(s, utc(2026, 12, 1))
    assert (day.probes, day.quiet) == (4, 4)
    assert reasons == [None, "maintenance weekly-deploy"]
    assert [a.subject for a, _ in alerts] == [
        "[inferwatch] llama-chat: still failing after maintenance weekly-deploy: deprecated (410)"
    ]
    writer.engine.dispose()

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
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from dashboard import queries as q
from monitor.prune import prune
from monitor.seed import seed, seed_config
from monitor.store import Base, make_engine, open_database

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

"""Agents started at the same instant on an empty PostgreSQL take turns migrating it.

Without the advisory lock around the migration (monitor/store/db.py `MIGRATION_LOCK`), the
racers all try to create `alembic_version` and the schema's tables, and all but one fail.
"""

from __future__ import annotations

import threading

from sqlalchemy import text

from monitor.store import make_engine, open_database
from monitor.store.db import current_revision, head_revision
from tests.test_agents_ownership import URL, needs_pg

RACERS = 4


@needs_pg
def test_agents_opening_an_empty_database_together_all_start() -> None:
    with make_engine(URL).begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    start = threading.Barrier(RACERS)
    errors: list[BaseException] = []

    def open_it() -> None:
        start.wait()
        try:
            open_database(URL).dispose()
        except BaseException as exc:  # every failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    engine = make_engine(URL)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()

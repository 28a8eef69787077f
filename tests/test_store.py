"""The SQLite store: migrations match the ORM exactly, pragmas are on, the index serves queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from monitor.domain.evidence import Outcome, ProbeResult, Timings
from monitor.store import Base, make_engine, open_database, save_results, sync_targets
from monitor.store.db import alembic_config, current_revision, head_revision, upgrade
from monitor.store.reads import probe_log
from tests.helpers import make_config


def result(target: str, at: datetime, outcome: Outcome = Outcome.OK) -> ProbeResult:
    return ProbeResult(
        target=target,
        kind="http",
        url="http://x/",
        checked_at=at,
        outcome=outcome,
        http_status=200,
        timings=Timings(1.0, None, 2.0, 3.0),
        detail="d",
        hint="",
        warning="",
        request_id="r",
        provider=None,
        headers={"x-request-id": "r"},
        body_excerpt="ok",
    )


def test_migrations_create_exactly_the_orm_schema(db_url: str) -> None:
    engine = open_database(db_url)

    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        diff = compare_metadata(ctx, Base.metadata)

    assert diff == []
    assert current_revision(engine) == head_revision()


def test_migrations_go_down_and_up_again(db_url: str) -> None:
    engine = open_database(db_url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}

    upgrade(engine)

    assert {"targets", "probe_results"} <= set(inspect(engine).get_table_names())


def test_upgrading_twice_is_harmless(db_url: str) -> None:
    engine = open_database(db_url)
    with Session(engine) as s, s.begin():
        ids = sync_targets(
            s, make_config([{"name": "a", "kind": "http", "url": "http://a/"}]).targets
        )
        save_results(s, [result("a", datetime.now(UTC))], ids)

    upgrade(make_engine(db_url))

    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from probe_results")).scalar() == 1


def test_sqlite_pragmas_are_set(db_url: str) -> None:
    engine = open_database(db_url)
    with engine.connect() as conn:
        pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 1  # NORMAL
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == 5000


def test_the_time_range_query_uses_the_index(db_url: str) -> None:
    engine = open_database(db_url)
    with engine.connect() as conn:
        plan = conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT * FROM probe_results "
            "WHERE target_id = 1 AND checked_at >= '2026-01-01' AND checked_at < '2026-02-01'"
        ).all()
    assert "ix_probe_results_target_id_checked_at" in " ".join(str(row) for row in plan)


def test_results_round_trip_in_utc_and_filter_by_time(db_url: str) -> None:
    engine = open_database(db_url)
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    config = make_config([{"name": n, "kind": "http", "url": f"http://{n}/"} for n in ("a", "b")])
    with Session(engine) as s, s.begin():
        ids = sync_targets(s, config.targets)
        save_results(s, [result("a", t0 + timedelta(minutes=i)) for i in range(10)], ids)
        save_results(s, [result("b", t0, Outcome.DEPRECATED)], ids)

    with Session(engine) as s:
        rows = probe_log(s, "a", t0 + timedelta(minutes=2), t0 + timedelta(minutes=5))

    assert [r.checked_at for r in rows] == [t0 + timedelta(minutes=m) for m in (4, 3, 2)]
    assert rows[0].checked_at.tzinfo is UTC
    assert rows[0].headers == {"x-request-id": "r"}


def test_sync_targets_keeps_ids_and_refreshes_urls(db_url: str) -> None:
    engine = open_database(db_url)
    before = make_config([{"name": "a", "kind": "http", "url": "http://old/"}]).targets
    after = make_config([{"name": "a", "kind": "http", "url": "http://new/"}]).targets
    with Session(engine) as s, s.begin():
        first = sync_targets(s, before)
    with Session(engine) as s, s.begin():
        second = sync_targets(s, after)
    with engine.connect() as conn:
        assert conn.execute(text("select url from targets")).scalar() == "http://new/"
    assert first == second


def test_a_read_only_engine_cannot_write(db_url: str) -> None:
    open_database(db_url)
    ro = make_engine(db_url, readonly=True)

    with ro.connect() as conn:
        assert conn.execute(text("select count(*) from targets")).scalar() == 0
        with pytest.raises(OperationalError, match="readonly"):
            conn.execute(
                text(
                    "insert into targets (name, kind, url, created_at, updated_at) "
                    "values ('x', 'http', 'u', '2026-01-01', '2026-01-01')"
                )
            )


def test_naive_datetimes_are_refused(db_url: str) -> None:
    engine = open_database(db_url)
    with Session(engine) as s, s.begin():
        ids = sync_targets(
            s, make_config([{"name": "a", "kind": "http", "url": "http://a/"}]).targets
        )
        with pytest.raises(Exception, match="naive datetime"):
            save_results(s, [result("a", datetime(2026, 1, 1))], ids)  # written at once

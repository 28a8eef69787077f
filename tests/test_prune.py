"""Retention: old raw probes and rollups go, per target; everything recent stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from monitor.cli import app
from monitor.demo.seed import seed
from monitor.store import open_database
from monitor.store.models import ProbeRecord, RollupRecord, TransitionRecord
from monitor.store.prune import prune
from tests.helpers import write_config

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def counts(engine):  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return (
            s.scalar(select(func.count(ProbeRecord.id))),
            s.scalar(select(func.count()).select_from(RollupRecord)),
            s.scalar(select(func.min(ProbeRecord.checked_at))),
        )


def test_prune_deletes_only_what_is_older_than_the_cutoffs(db_url: str) -> None:
    engine = open_database(db_url)
    seed(engine, now=NOW, days=2)
    probes, rollups, _ = counts(engine)
    raw_cutoff = NOW - timedelta(days=1)

    report = prune(engine, raw_cutoff, NOW - timedelta(days=1, hours=12))

    after_probes, after_rollups, oldest = counts(engine)
    assert oldest >= raw_cutoff
    assert report.probes == probes - after_probes > 0
    assert report.rollups == rollups - after_rollups > 0
    with Session(engine) as s:  # transitions keep their rows; the pruned evidence link is cleared
        assert s.scalar(select(func.count(TransitionRecord.id))) > 0


def test_a_dry_run_counts_but_keeps_everything(db_url: str) -> None:
    engine = open_database(db_url)
    seed(engine, now=NOW, days=1)
    before = counts(engine)

    report = prune(engine, NOW, NOW, dry_run=True)

    assert counts(engine) == before
    assert report.probes == before[0]


def test_prune_command_reports_what_it_deleted(tmp_path, db_url: str) -> None:  # type: ignore[no-untyped-def]
    engine = open_database(db_url)
    seed(engine, now=datetime.now(UTC) - timedelta(days=40), days=1)
    cfg = write_config(
        tmp_path / "c.yaml", [{"name": "a", "kind": "http", "url": "http://a/"}], database=db_url
    )

    result = CliRunner().invoke(app, ["prune", "-c", str(cfg)])

    assert result.exit_code == 0, result.output
    assert "deleted" in result.stdout and "raw probes" in result.stdout
    assert counts(engine)[0] == 0

"""A commit whose answer is lost: the database committed the batch, the connection dropped
before the writer heard back, and the backlog writes the batch again when it can.

A real server cannot be made to drop a connection at that exact instant, so the SQLite
connection here is wrapped: its `commit` commits and then raises the error a dropped
connection gives. Without the writer's catch-up, the retry stores the probe twice and, since
the writer's caches never saw the commit, records the transition and queues its alert twice.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from monitor.agent.writer import Writer
from monitor.domain.evidence import Outcome
from monitor.store.db import upgrade
from monitor.store.models import AlertRecord, ProbeRecord, TransitionRecord
from tests.test_agents_ownership import rows
from tests.test_loop_writer import T0, config, result


class DropsAfterCommit:
    """A sqlite3 connection whose next commit (when armed) commits, then fails with `error`."""

    armed = False
    error: Exception = sqlite3.OperationalError("disk I/O error: the connection dropped")

    def __init__(self, real: sqlite3.Connection) -> None:
        self._real = real

    def commit(self) -> None:
        self._real.commit()
        if DropsAfterCommit.armed:
            DropsAfterCommit.armed = False
            raise DropsAfterCommit.error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_batch_whose_commit_answer_was_lost_is_not_written_twice(tmp_path: Path) -> None:
    path = tmp_path / "lost.db"
    engine = create_engine(
        "sqlite://", creator=lambda: DropsAfterCommit(sqlite3.connect(path, timeout=5))
    )
    upgrade(engine)
    writer = Writer(engine, config(), clock=lambda: T0)
    writer.start_run()

    def at(minute: int, outcome: Outcome) -> list[Any]:
        return [result("gpt2-legacy", outcome, T0 + timedelta(minutes=minute))]

    async def run() -> None:
        await writer.backlog.write(at(0, Outcome.OK))
        await writer.backlog.write(at(1, Outcome.DEPRECATED))
        DropsAfterCommit.armed = True
        await writer.backlog.write(at(2, Outcome.DEPRECATED))  # confirms it; answer lost
        assert len(writer.backlog) == 1  # held, as for any outage
        while not await writer.backlog.flush():
            await asyncio.sleep(0.1)
        await writer.backlog.write(at(3, Outcome.DEPRECATED))

    asyncio.run(run())
    probes = rows(engine, ProbeRecord)
    assert [p.checked_at for p in probes] == [T0 + timedelta(minutes=m) for m in range(4)]
    assert [t.to_outcome for t in rows(engine, TransitionRecord)] == ["ok", "deprecated"]
    assert len(rows(engine, AlertRecord)) == 1
    # The writer read back the state the lost commit left, and carried on from it.
    assert writer.states["gpt2-legacy"].accepted is Outcome.DEPRECATED
    engine.dispose()


def test_a_lost_commit_answer_then_results_written_one_by_one_are_not_doubled(
    tmp_path: Path,
) -> None:
    """An error after the commit that does not read as the database being away sends the
    backlog through its one-result-per-transaction path: none of the batch's results, all
    committed, may be written again."""
    path = tmp_path / "lost.db"
    engine = create_engine(
        "sqlite://", creator=lambda: DropsAfterCommit(sqlite3.connect(path, timeout=5))
    )
    upgrade(engine)
    writer = Writer(engine, config(), clock=lambda: T0)
    writer.start_run()
    at = [T0 + timedelta(minutes=m) for m in range(5)]

    async def run() -> None:
        await writer.backlog.write([result("gpt2-legacy", Outcome.OK, at[0])])
        DropsAfterCommit.armed = True
        DropsAfterCommit.error = sqlite3.IntegrityError("an answer no one expected")
        await writer.backlog.write([result("gpt2-legacy", Outcome.DEPRECATED, t) for t in at[1:4]])
        await writer.backlog.write([result("gpt2-legacy", Outcome.DEPRECATED, at[4])])

    try:
        asyncio.run(run())
    finally:
        DropsAfterCommit.error = sqlite3.OperationalError("disk I/O error: the connection dropped")
    assert [p.checked_at for p in rows(engine, ProbeRecord)] == at
    assert [t.to_outcome for t in rows(engine, TransitionRecord)] == ["ok", "deprecated"]
    assert len(rows(engine, AlertRecord)) == 1
    engine.dispose()

"""Issue 13, phase 1 follow-ups: liveness by the database's clock (a host whose clock is off),
the daily prune once per deployment (not once per agent), and an agent's own outage not taken
for everyone else's death. On a real PostgreSQL (INFERWATCH_TEST_POSTGRES_URL, a database the
tests may wipe; a throwaway cluster for the outage) and a real SQLite."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from monitor.agent import service
from monitor.agent.registry import Identity, Registry
from monitor.agent.service import PRUNE_JOB, PRUNE_PERIOD, Monitor
from monitor.domain.agents import LOST_AFTER_S, Agent, Outage, alive, duties, job_due
from monitor.store import make_engine, open_database, reads
from monitor.store.db import alembic_config
from monitor.store.models import DeploymentJobRecord
from tests.helpers import make_config
from tests.pg import BINS, MISSING, Cluster

URL = os.environ.get("INFERWATCH_TEST_POSTGRES_URL", "")
T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)
needs_postgres = pytest.mark.skipif(not URL, reason="set INFERWATCH_TEST_POSTGRES_URL (CI does)")


class Clock:
    def __init__(self, at: datetime = T0):
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def wipe_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def pg() -> Iterator[Engine]:
    if not URL:
        pytest.fail(MISSING)
    wipe_postgres(URL)
    engine = open_database(URL)
    yield engine
    engine.dispose()


# ------------------------------------------------------------------ 1. the database's clock

# A registry in a process whose wall clock is off by argv[3] seconds, as on a host with a
# wrong clock: Python's datetime.now is shifted for the whole process (monitor imports it after
# the shift), the database driver keeps the real class. It beats argv[4] times, printing the
# live agents it sees at each beat.
SKEWED_AGENT = """
import datetime as _dt, json, os, sys, time
import psycopg, sqlalchemy.dialects.postgresql.psycopg
_real = _dt.datetime
SKEW = _dt.timedelta(seconds=float(sys.argv[3]))
class Skewed(_real):
    @classmethod
    def now(cls, tz=None):
        return _real.now(tz) + SKEW
_dt.datetime = Skewed
from monitor.agent.registry import Identity, Registry
from monitor.domain.text import utcnow
from monitor.store import make_engine
print(json.dumps(round((utcnow() - _real.now(_dt.UTC)).total_seconds())), flush=True)
name = sys.argv[2]
me = Registry(make_engine(sys.argv[1]), Identity(name, "eu", "host-" + name, os.getpid()))
me.join()
for _ in range(int(sys.argv[4])):
    time.sleep(0.4)
    print(json.dumps(sorted(a.name for a in me.beat())), flush=True)
print(json.dumps(sorted(a.name for a in me.beat())), flush=True)
sys.stdin.read()  # stay alive (and unstopped) until the test has looked
me.leave()
"""


@needs_postgres
def test_a_host_clock_20s_off_neither_looks_lost_nor_sees_the_others_lost(pg: Engine) -> None:
    """Two agents whose hosts' clocks are 20 s ahead and 20 s behind, and one with the right
    time: each sees all three alive, `inferwatch agents` (reads.agents) too, and the targets
    are shared three ways. With heartbeats in each host's time, the one behind looked lost
    to the others (its beats 20 s old) and the one ahead saw the others lost."""
    me = Registry(pg, Identity("right", "eu", "host-right", os.getpid()))
    me.join()
    children = {
        name: subprocess.Popen(
            [sys.executable, "-c", SKEWED_AGENT, URL, name, str(skew), "15"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, skew in (("ahead", 20), ("behind", -20))
    }
    try:
        everyone = ["ahead", "behind", "right"]
        seen: dict[str, list[str]] = {}
        for name, child in children.items():
            assert child.stdout is not None
            assert json.loads(child.stdout.readline()) == (20 if name == "ahead" else -20)
            for _ in range(16):  # its beats, until it has seen the other two join (or all)
                seen[name] = json.loads(child.stdout.readline())
                if seen[name] == everyone:
                    break
        live = me.beat()
        assert sorted(a.name for a in live) == everyone
        assert seen == {"ahead": everyone, "behind": everyone}
        with Session(pg) as s:
            assert [(a.name, a.alive) for a in reads.agents(s)] == [(n, True) for n in everyone]
        targets = [f"t{i}" for i in range(30)]
        held = [duties(n, "eu", targets, live)[1] for n in everyone]
        assert sum(map(len, held)) == 30 and all(held)  # each target held once, by all three
    finally:
        for child in children.values():
            child.communicate("", timeout=10)
    assert all(child.returncode == 0 for child in children.values())


def test_heartbeats_are_written_in_the_database_time_on_sqlite(tmp_path: Path) -> None:
    """SQLite has no clock of its own: the host's, read through the database (to the ms)."""
    engine = open_database(f"sqlite:///{tmp_path / 'clock.db'}")
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    me = Registry(engine, Identity("solo", "eu", "host", os.getpid()))
    me.join()
    [agent] = me.beat()
    assert before <= agent.heartbeat_at <= datetime.now(UTC)
    with engine.connect() as conn:
        assert abs(reads.database_now(conn) - datetime.now(UTC)) < timedelta(seconds=1)


# ------------------------------------------------------------------ 2. once per deployment


def test_job_due_is_skipped_after_any_run_within_the_period_less_a_little_jitter() -> None:
    day = timedelta(days=1)
    assert job_due(None, T0, day)
    assert not job_due(T0, T0 + timedelta(minutes=1), day)  # a restart a minute after a prune
    assert not job_due(T0, T0 + timedelta(hours=22), day)
    assert job_due(T0, T0 + day - timedelta(seconds=5), day)  # its own schedule, a bit early
    assert job_due(T0, T0 + day, day)


def monitor_of(engine: Engine, name: str) -> Monitor:
    """An agent's monitor, joined but not started: its daily prune is called directly."""
    config = make_config(
        [{"name": "t", "kind": "http", "url": "http://127.0.0.1:9/"}], database=URL
    )
    monitor = Monitor(config, engine, env={}, identity=Identity(name, "eu", "host-" + name, 1))
    monitor.registry.join()
    return monitor


@needs_postgres
def test_three_agents_daily_prunes_in_one_day_prune_once(
    pg: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three agents started at different times of the day each run their daily prune: the
    first prunes, the others (after it, and one while it runs) skip it; a day later the next
    agent's prune runs again. Before, each agent pruned once a day: three prunes."""
    pruned: list[str] = []
    running, finish = threading.Event(), threading.Event()

    def prune(*args: Any, **kwargs: Any) -> None:
        pruned.append(threading.current_thread().name)
        running.set()
        finish.wait(10)

    monkeypatch.setattr(service, "prune", prune)
    engines = [pg, make_engine(URL), make_engine(URL)]  # each agent its own pool and session
    a, b, c = (monitor_of(e, n) for e, n in zip(engines, "abc", strict=True))
    cutoff = datetime.now(UTC) - timedelta(days=1)
    ran: dict[str, bool] = {}

    def daily(monitor: Monitor) -> None:
        ran[monitor.registry.name] = monitor.prune_once(cutoff, cutoff)

    first = threading.Thread(target=daily, args=(a,), name="a")
    first.start()
    assert running.wait(10)
    daily(b)  # while a's runs: the lock
    finish.set()
    first.join(10)
    daily(c)  # hours later the same day: a's run is recorded
    daily(b)
    assert ran == {"a": True, "b": False, "c": False} and pruned == ["a"]

    with Session(pg) as s, s.begin():  # a day later (the record is in the database's time)
        job = s.get(DeploymentJobRecord, PRUNE_JOB)
        assert job is not None and job.agent_id == a.registry.agent_id
        job.last_run_at -= PRUNE_PERIOD
    daily(c)
    daily(b)
    assert (ran["c"], ran["b"]) == (True, False)
    with Session(pg) as s:
        job = s.get(DeploymentJobRecord, PRUNE_JOB)
        assert job is not None and job.agent_id == c.registry.agent_id
    for engine in engines[1:]:
        engine.dispose()


def migration_0009_up_and_down(engine: Engine) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0008")
    assert "deployment_jobs" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with engine.begin() as conn:
        conn.execute(
            DeploymentJobRecord.__table__.insert().values(
                name=PRUNE_JOB, last_run_at=T0, agent_id=None
            )
        )
    with Session(engine) as s:
        assert s.scalars(select(DeploymentJobRecord.last_run_at)).all() == [T0]
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0008")
    assert "deployment_jobs" not in inspect(engine).get_table_names()
    assert "agents" in inspect(engine).get_table_names()


def test_migration_0009_up_and_down_on_sqlite(tmp_path: Path) -> None:
    migration_0009_up_and_down(make_engine(f"sqlite:///{tmp_path / 'm.db'}"))


@needs_postgres
def test_migration_0009_up_and_down_on_postgres() -> None:
    wipe_postgres(URL)
    engine = make_engine(URL)
    migration_0009_up_and_down(engine)
    engine.dispose()


# ------------------------------------------------------------------ 3. an agent's own outage


def test_after_its_own_outage_an_agent_keeps_the_peers_it_last_saw_alive_for_lost_after() -> None:
    lost = timedelta(seconds=LOST_AFTER_S)
    last, back = T0, T0 + timedelta(seconds=30)
    outage = Outage(last_beat=last, back_at=back)
    peer = Agent("b", "eu", heartbeat_at=last - timedelta(seconds=3))
    assert not alive(peer, back)  # by its heartbeat alone: lost
    assert alive(peer, back, outage) and alive(peer, back + lost - timedelta(seconds=1), outage)
    assert not alive(peer, back + lost, outage)  # it had LOST_AFTER_S to beat, and did not
    assert not alive(Agent("c", "eu", last - lost), back, outage)  # already lost before
    assert not alive(Agent("d", "eu", last, stopped_at=last), back, outage)  # left cleanly


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if not BINS:
        pytest.fail(MISSING)
    root = Path(tempfile.mkdtemp(prefix="inferwatch-pg-"))  # user postgres must enter it
    pg = Cluster(root)
    try:
        yield pg
    finally:
        pg.kill()
        shutil.rmtree(root, ignore_errors=True)


def test_the_first_agent_back_from_a_postgres_outage_does_not_take_every_target(
    cluster: Cluster,
) -> None:
    """PostgreSQL stopped for 30 s under two agents: the first back still sees the other
    (whose heartbeat is 30 s old: it could not beat either) and holds only its own share,
    until the other has had LOST_AFTER_S of a reachable database; an agent that left, or was
    lost before the outage, is not brought back. Before, it held every target for a beat."""
    engine = open_database(cluster.url)
    clock = Clock()
    a, b, c, d = (
        Registry(engine, Identity(n, "eu", "host-" + n, os.getpid()), clock) for n in "abcd"
    )
    for agent in (a, b, c, d):
        agent.join()
    clock.advance(5)
    for agent in (a, b, c):
        agent.beat()  # d is silent from now on: lost at T0+15
    c.leave()  # a clean stop
    clock.advance(5)
    b.beat(), a.beat()
    clock.advance(10)  # d's heartbeat is 20 s old
    assert [x.name for x in b.beat()] == ["a", "b"]
    assert [x.name for x in a.beat()] == ["a", "b"]  # its last beat before the outage

    cluster.stop()
    clock.advance(5)
    for agent in (a, b):
        with pytest.raises(OperationalError):
            agent.beat()
    clock.advance(25)
    cluster.start()

    targets = [f"t{i}" for i in range(40)]
    back = a.beat()  # the first back: b's heartbeat is 30 s old
    assert [x.name for x in back] == ["a", "b"]
    assert 0 < len(duties("a", "eu", targets, back)[1]) < len(targets)  # its share, not all
    clock.advance(LOST_AFTER_S - 1)
    assert [x.name for x in a.beat()] == ["a", "b"]  # b still has a second to beat
    clock.advance(1)
    assert [x.name for x in a.beat()] == ["a"]  # b never came back: lost now
    b.beat()
    assert [x.name for x in a.beat()] == ["a", "b"]
    engine.dispose()

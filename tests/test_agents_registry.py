"""Issue 13, part A: the agent registry (join, heartbeat, leave, the refusal rules), runs per
agent, `inferwatch agents`, agent and region in the JSON outputs, and the prune run by one
agent at a time. On SQLite and on a real PostgreSQL (when INFERWATCH_TEST_POSTGRES_URL names
a database it may wipe, like tests/test_postgres.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from monitor.agent import service
from monitor.agent.registry import Identity, Registry, Replaced, pid_running
from monitor.agent.service import PRUNE_JOB, Monitor
from monitor.cli import app
from monitor.demo.simulator import FakeProvider, Reply
from monitor.domain.agents import LOST_AFTER_S
from monitor.store import make_engine, open_database, reads, writes
from monitor.store.models import AgentRecord, MonitorRunRecord, ProbeRecord
from monitor.store.prune import exclusive
from monitor.store.writes import AgentRefused
from tests.helpers import make_config
from tests.pg import MISSING
from tests.test_launch import db_count, start_cli, wait_for

URL = os.environ.get("INFERWATCH_TEST_POSTGRES_URL", "")
T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)
HOST = "host-1"


class Clock:
    def __init__(self, at: datetime = T0):
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def wipe_postgres() -> None:
    with make_engine(URL).begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "postgresql":
        if not URL:
            pytest.fail(MISSING)
        wipe_postgres()
        engine = open_database(URL)
    else:
        engine = open_database(f"sqlite:///{tmp_path / 'agents.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def pg() -> Iterator[Engine]:
    if not URL:
        pytest.fail(MISSING)
    wipe_postgres()
    engine = open_database(URL)
    yield engine
    engine.dispose()


def agent(
    engine: Engine, clock: Clock, name: str, host: str = HOST, pid: int = 0, region: str = "eu"
) -> Registry:
    return Registry(engine, Identity(name, region, host, pid or os.getpid()), clock)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_running(child.pid)
    return child.pid


def row(engine: Engine, name: str) -> AgentRecord:
    with Session(engine) as s:
        found = s.scalars(select(AgentRecord).where(AgentRecord.name == name)).one()
        s.expunge(found)
        return found


# ------------------------------------------------------------------ join, beat, leave


def test_join_beat_and_leave_write_the_agents_row(db: Engine) -> None:
    clock = Clock()
    me = agent(db, clock, "eu-1")
    agent_id = me.join()

    joined = row(db, "eu-1")
    assert joined.id == agent_id and (joined.region, joined.host) == ("eu", HOST)
    assert joined.pid == os.getpid() and joined.version
    assert joined.started_at == joined.heartbeat_at == T0 and joined.stopped_at is None
    assert [a.name for a in me.live] == ["eu-1"]

    clock.advance(5)
    me.targets_held = 7
    live = me.beat()
    beaten = row(db, "eu-1")
    assert (beaten.heartbeat_at, beaten.targets_held) == (T0 + timedelta(seconds=5), 7)
    assert [(a.name, a.region) for a in live] == [("eu-1", "eu")]

    clock.advance(1)
    me.leave()
    left = row(db, "eu-1")
    assert left.stopped_at == T0 + timedelta(seconds=6) and left.targets_held == 0
    with db.connect() as conn:
        assert writes.live_agents(conn, clock()) == []
        assert [(a.name, a.alive) for a in reads.agents(conn, clock())] == [("eu-1", False)]


def test_a_live_agents_name_is_refused_until_it_is_lost(db: Engine) -> None:
    clock = Clock()
    first_id = agent(db, clock, "eu-1", host="host-a").join()
    clock.advance(LOST_AFTER_S - 1)  # still alive: its last beat is 14 s old

    with pytest.raises(AgentRefused) as refused:
        agent(db, clock, "eu-1", host="host-b").join()
    message = str(refused.value)
    assert "'eu-1'" in message and "host-a" in message and f"pid {os.getpid()}" in message
    assert "last heartbeat 2026-11-30 12:00:00 UTC, 14s ago" in message
    assert row(db, "eu-1").host == "host-a"  # the refused start changed nothing

    clock.advance(1)  # no beat for LOST_AFTER_S: lost, its name can be taken over
    assert agent(db, clock, "eu-1", host="host-b", region="us").join() == first_id
    taken = row(db, "eu-1")
    assert (taken.host, taken.region, taken.started_at) == ("host-b", "us", clock())


def test_a_lost_agent_that_comes_back_after_a_takeover_stops_and_leaves_nothing(
    db: Engine,
) -> None:
    """Paused past LOST_AFTER_S, then resumed: its name is another start's now. Its beat
    says so (two processes as one agent id would defeat the writers' fencing) and its
    leave does not mark the new one stopped."""
    clock = Clock()
    paused = agent(db, clock, "eu-1", host="host-a")
    paused.join()
    clock.advance(LOST_AFTER_S)
    agent(db, clock, "eu-1", host="host-b").join()
    clock.advance(1)
    with pytest.raises(Replaced, match="'eu-1' was taken over by another start"):
        paused.beat()
    paused.leave()
    now = row(db, "eu-1")
    assert (now.host, now.stopped_at, now.heartbeat_at) == (
        "host-b",
        None,
        clock() - timedelta(seconds=1),
    )


def test_a_restart_after_kill_9_on_the_same_host_takes_over_at_once(db: Engine) -> None:
    clock = Clock()
    gone = dead_pid()
    agent(db, clock, "eu-1", pid=gone).join()  # the killed process: its beat is fresh
    clock.advance(1)

    restarted = agent(db, clock, "eu-1")  # same host, another (running) pid: this test
    restarted.join()
    assert row(db, "eu-1").pid == os.getpid()

    # Its pid is running (this process), so another start on the same host is refused.
    with pytest.raises(AgentRefused, match="already running on host host-1"):
        agent(db, clock, "eu-1", pid=os.getppid()).join()


def test_sqlite_holds_one_agent_postgres_several(db: Engine) -> None:
    clock = Clock()
    agent(db, clock, "eu-1", host="host-a").join()
    second = agent(db, clock, "eu-2", host="host-b")
    if db.dialect.name == "sqlite":
        with pytest.raises(AgentRefused) as refused:
            second.join()
        assert str(refused.value).startswith("SQLite holds one agent; use PostgreSQL for several")
        assert "'eu-1'" in str(refused.value) and "host-a" in str(refused.value)
        clock.advance(LOST_AFTER_S)  # the first one lost: the second may run
        second.join()
    else:
        second.join()
        assert [a.name for a in second.live] == ["eu-1", "eu-2"]


def test_a_start_closes_only_its_own_agents_crashed_runs(db: Engine) -> None:
    clock = Clock()
    first = agent(db, clock, "eu-1", host="host-a")
    a = first.join()
    with db.begin() as conn:
        legacy, _ = writes.start_run(conn, T0)  # from before agents: no agent's own
        a_run, crashed = writes.start_run(conn, T0, a)  # then eu-1 is killed
    assert crashed == [T0]  # the first agent to start closes the one from before agents
    clock.advance(LOST_AFTER_S)
    b = agent(db, clock, "eu-2", host="host-b").join()
    with db.begin() as conn:
        b_run, crashed = writes.start_run(conn, clock(), b)
    assert crashed == []  # eu-1's run is eu-1's to close
    with db.begin() as conn:
        writes.heartbeat(conn, b_run, clock())
    clock.advance(LOST_AFTER_S)  # eu-2 lost too (SQLite would refuse a second live agent)
    first.join()  # eu-1 back (its old row, lost)
    with db.begin() as conn:
        again, crashed = writes.start_run(conn, clock(), a)
    assert crashed == [T0]
    with Session(db) as s:
        runs = {r.id: r for r in s.scalars(select(MonitorRunRecord))}
    assert runs[legacy].stopped_at == T0 and runs[a_run].stopped_at == T0
    assert runs[b_run].stopped_at is None  # eu-2's, closed when eu-2 starts again
    assert runs[again].agent_id == a and runs[again].stopped_at is None


# ------------------------------------------------------------------ once per deployment


def monitor_on(engine: Engine) -> Monitor:
    """An agent's monitor, not started: its daily prune is called directly."""
    config = make_config(
        [{"name": "t", "kind": "http", "url": "http://127.0.0.1:9/"}], database=URL
    )
    return Monitor(config, engine, env={})


def test_the_prune_runs_in_one_agent_at_a_time_on_postgres(pg: Engine) -> None:
    cutoff = datetime.now(UTC) - timedelta(days=1)
    holding, release = threading.Event(), threading.Event()
    other = make_engine(URL)  # another agent: its own pool, its own session lock

    def other_agent() -> None:  # its prune is still running
        with exclusive(other, PRUNE_JOB) as mine:
            assert mine
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=other_agent)
    thread.start()
    assert holding.wait(10)
    me = monitor_on(pg)
    assert me.prune_once(cutoff, cutoff) is False  # skipped here
    with exclusive(pg, "another-job") as mine:
        assert mine  # each job has its own lock
    release.set()
    thread.join(10)
    assert me.prune_once(cutoff, cutoff) is True  # the lock is free again

    # An agent killed mid-prune frees the lock with its connection.
    release.clear()
    holding.clear()
    thread = threading.Thread(target=other_agent)
    thread.start()
    assert holding.wait(10)
    assert me.prune_once(cutoff, cutoff) is False
    with pg.begin() as admin:
        holder = admin.scalar(
            text(
                "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
            )
        )
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder})
        admin.execute(text("DELETE FROM deployment_jobs"))  # as if a day had passed
    assert me.prune_once(cutoff, cutoff) is True
    release.set()
    thread.join(10)  # its unlock on the dead connection is not an error
    assert not thread.is_alive()
    other.dispose()


def test_two_agents_daily_prunes_at_once_on_postgres_prune_once(
    pg: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two agents' daily prunes at the same moment: exactly one prunes, the other skips."""
    ran: list[int] = []
    real = service.prune

    def slow_prune(*args: Any, **kwargs: Any) -> Any:
        ran.append(threading.get_ident())
        time.sleep(0.5)  # a prune's many chunks: the other agent arrives meanwhile
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "prune", slow_prune)
    second = make_engine(URL)
    agents = [monitor_on(pg), monitor_on(second)]
    barrier = threading.Barrier(2)
    ran_here: list[bool] = []
    cutoff = datetime.now(UTC) - timedelta(days=1)

    def daily(monitor: Monitor) -> None:
        barrier.wait(5)
        ran_here.append(monitor.prune_once(cutoff, cutoff))

    threads = [threading.Thread(target=daily, args=(m,)) for m in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(ran) == 1 and sorted(ran_here) == [False, True]
    second.dispose()


# ------------------------------------------------------------------ the command line


def write_config(folder: Path, targets: list[dict[str, object]], database: str) -> Path:
    path = folder / "inferwatch.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database": database,
                "defaults": {"interval": "200ms", "timeout": "1s"},
                "targets": targets,
            }
        )
    )
    return path


def test_inferwatch_agents_lists_alive_lost_and_stopped(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path,
        [{"name": "t", "kind": "http", "url": "http://127.0.0.1:9/"}],
        "sqlite:///agents.db",
    )
    engine = open_database(f"sqlite:///{tmp_path / 'agents.db'}")
    now = datetime.now(UTC)
    clock = Clock(now - timedelta(minutes=5))
    gone = agent(engine, clock, "ap-1", host="host-c", region="ap")
    gone.join()
    gone.leave()
    clock.advance(60)
    agent(engine, clock, "us-1", host="host-b", region="us").join()  # then no beat: lost
    clock.at = now
    live = agent(engine, clock, "eu-1", host="host-a", region="eu")
    live.join()
    live.targets_held = 4
    live.beat()
    engine.dispose()

    result = CliRunner().invoke(app, ["agents", "-c", str(cfg), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert [r["region"] for r in json.loads(result.output)] == ["ap", "eu", "us"]
    assert (rows["eu-1"]["status"], rows["eu-1"]["alive"]) == ("alive", True)
    assert (rows["us-1"]["status"], rows["us-1"]["alive"]) == ("lost", False)
    assert rows["ap-1"]["status"] == "stopped"
    assert rows["eu-1"]["targets_held"] == 4 and rows["eu-1"]["host"] == "host-a"
    assert rows["eu-1"]["version"] and rows["eu-1"]["last_heartbeat"].startswith(
        now.isoformat()[:16]
    )

    table = CliRunner().invoke(app, ["agents", "-c", str(cfg)])
    assert table.exit_code == 0, table.output
    lines = {line.split()[1]: line for line in table.output.splitlines() if "host-" in line}
    assert set(lines) == {"ap-1", "eu-1", "us-1"}, table.output
    assert "alive" in lines["eu-1"] and "host-a" in lines["eu-1"] and "│ 4 " in lines["eu-1"]
    assert all(len(line) <= 80 for line in table.output.splitlines())
    assert "lost" in lines["us-1"] and "stopped" in lines["ap-1"]


def agent_rows(path: Path) -> list[tuple[str, int, bool]]:
    """The agents as the running process left them (read-only; [] before it migrated)."""
    if not path.exists():
        return []
    engine = make_engine(f"sqlite:///{path}", readonly=True)
    try:
        with engine.connect() as conn:
            return [(a.name, a.pid, a.alive) for a in reads.agents(conn)]
    except OperationalError:
        return []
    finally:
        engine.dispose()


def test_same_name_refused_through_the_cli_and_a_kill_9_restart_starts_at_once(
    tmp_path: Path, provider: FakeProvider
) -> None:
    provider.route("/up", Reply(200, "ok"))
    cfg = write_config(
        tmp_path,
        [{"name": "t", "kind": "http", "url": f"{provider.url}/up"}],
        "sqlite:///watch.db",
    )
    database = tmp_path / "watch.db"
    first = start_cli(["run", "-c", str(cfg), "--agent", "eu-1"], tmp_path / "first.log")
    try:
        wait_for(
            lambda: [p for _, p, _ in agent_rows(database)] == [first.pid],
            first,
            tmp_path / "first.log",
        )
        second = subprocess.run(
            [sys.executable, "-m", "monitor", "run", "-c", str(cfg), "--agent", "eu-1"],
            capture_output=True,
            text=True,
            timeout=30,
            env={k: v for k, v in os.environ.items() if not k.startswith("INFERWATCH_")},
        )
        assert second.returncode == 2, second.stdout + second.stderr
        said = second.stdout + second.stderr
        assert "agent 'eu-1' is already running on host" in said
        assert f"(pid {first.pid}, last heartbeat" in said and "nothing was run" in said
        assert "Traceback" not in said

        first.send_signal(signal.SIGKILL)  # kill -9, then restart at once
        first.wait(5)
        restarted = start_cli(
            ["run", "-c", str(cfg)], tmp_path / "restart.log", {"INFERWATCH_AGENT": "eu-1"}
        )
        try:
            started = time.monotonic()
            wait_for(
                lambda: agent_rows(database) == [("eu-1", restarted.pid, True)],
                restarted,
                tmp_path / "restart.log",
            )
            assert time.monotonic() - started < LOST_AFTER_S  # did not wait for it to be lost
            # Running (its signal handlers in place) before it is asked to stop.
            log = tmp_path / "restart.log"
            wait_for(lambda: "monitoring 1 targets" in log.read_text(), restarted, log)
        finally:
            restarted.send_signal(signal.SIGTERM)
            assert restarted.wait(15) == 0
        assert agent_rows(database) == [("eu-1", restarted.pid, False)]  # left cleanly
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def test_probes_and_transitions_carry_the_agent_and_its_region(
    tmp_path: Path, provider: FakeProvider
) -> None:
    provider.route("/down", Reply(503, "busy"))
    cfg = write_config(
        tmp_path,
        [{"name": "t", "kind": "http", "url": f"{provider.url}/down"}],
        "sqlite:///watch.db",
    )
    database = tmp_path / "watch.db"
    log = tmp_path / "run.log"
    proc = start_cli(["run", "-c", str(cfg), "--agent", "eu-1", "--region", "eu-west"], log)
    try:
        wait_for(lambda: db_count(database, "SELECT count(*) FROM transitions") > 0, proc, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()

    found = CliRunner().invoke(app, ["transitions", "-c", str(cfg), "--format", "json"])
    assert found.exit_code == 0, found.output
    changes = json.loads(found.output)
    assert changes and {(c["agent"], c["region"]) for c in changes} == {("eu-1", "eu-west")}
    engine = make_engine(f"sqlite:///{database}", readonly=True)
    with Session(engine) as s:
        me = s.scalars(select(AgentRecord).where(AgentRecord.name == "eu-1")).one()
        probed_by = set(s.scalars(select(ProbeRecord.agent_id)))
        runs = s.scalars(select(MonitorRunRecord)).all()
    engine.dispose()
    assert me.region == "eu-west" and probed_by == {me.id}
    assert [r.agent_id for r in runs] == [me.id]

    # A one-off probe is no agent's.
    once = CliRunner().invoke(app, ["probe", "-c", str(cfg), "--format", "json"])
    assert once.exit_code == 0, once.output
    assert [(r["agent"], r["region"]) for r in json.loads(once.output)] == [(None, None)]


def test_the_overview_lists_the_agents_alive_and_lost(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import streamlit as st

    from monitor.demo.seed import seed
    from tests.test_dashboard import app, page, text

    url = f"sqlite:///{tmp_path / 'seed.db'}"
    engine = open_database(url)
    now = datetime.now(UTC)
    seed(engine, now=now)
    clock = Clock(now - timedelta(minutes=2))
    agent(engine, clock, "us-1", host="host-b", region="us").join()  # no beat since: lost
    clock.at = now
    agent(engine, clock, "eu-1", host="host-a", region="eu").join()
    engine.dispose()
    monkeypatch.setenv("INFERWATCH_CONFIG", str(tmp_path / "absent.yaml"))
    st.cache_data.clear()
    st.cache_resource.clear()

    at = page(app(monkeypatch, url))
    seen = text(at.main)
    assert "Agents" in seen
    shown = at.dataframe[-1].value
    assert list(shown["Agent"]) == ["eu-1", "us-1"]
    assert list(shown[""]) == ["alive", "lost"] and list(shown["Region"]) == ["eu", "us"]
    st.cache_data.clear()
    st.cache_resource.clear()


def test_two_starts_racing_for_one_name_on_postgres_one_wins(pg: Engine) -> None:
    """Both on other hosts, at the same moment: the unique name serialises them."""
    clock = Clock()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def start(host: str) -> None:
        engine = make_engine(URL)
        barrier.wait(5)
        try:
            agent(engine, clock, "eu-1", host=host).join()
            outcomes.append("joined")
        except AgentRefused:
            outcomes.append("refused")
        finally:
            engine.dispose()

    threads = [threading.Thread(target=start, args=(h,)) for h in ("host-a", "host-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(outcomes) == ["joined", "refused"]


def test_a_running_monitor_taken_over_stops_at_its_next_beat(tmp_path: Path) -> None:
    import asyncio

    config = make_config(
        [{"name": "t", "kind": "http", "url": "http://127.0.0.1:9/"}],
        database=f"sqlite:///{tmp_path / 'm.db'}",
    )
    engine = open_database(config.database)

    async def main() -> float:
        monitor = Monitor(config, engine, env={}, identity=Identity("eu-1", "eu", HOST, 1))
        running = asyncio.create_task(monitor.run())
        while monitor.registry.agent_id is None:
            await asyncio.sleep(0.05)
        # Another start of eu-1 after this one went unheard for LOST_AFTER_S (a long pause).
        later = datetime.now(UTC) + timedelta(seconds=LOST_AFTER_S)
        with engine.begin() as conn:
            writes.join_agent(conn, "eu-1", "eu", "0", "host-b", 2, later)
        started = time.monotonic()
        await asyncio.wait_for(running, 20)
        return time.monotonic() - started

    took = asyncio.run(main())
    assert took < 5 + 10  # its next beat, then a clean stop
    taken = row(engine, "eu-1")
    assert (taken.host, taken.pid, taken.stopped_at) == ("host-b", 2, None)  # not left
    engine.dispose()


def test_no_data_gaps_are_times_when_no_agent_ran(db: Engine) -> None:
    """Agents' runs overlap: one restarting while another runs is no gap in the history."""
    clock = Clock()
    a = agent(db, clock, "eu-1", host="host-a").join()
    m = timedelta(minutes=1)
    with db.begin() as conn:
        long_run, _ = writes.start_run(conn, T0, a)
        writes.heartbeat(conn, long_run, T0 + 60 * m)  # eu-1: 12:00 to 13:00
        for begin, end in ((T0 + 5 * m, T0 + 10 * m), (T0 + 15 * m, T0 + 20 * m)):
            other, _ = writes.start_run(conn, begin, a)  # another agent's restarts, inside
            writes.stop_run(conn, other, end)
        late, _ = writes.start_run(conn, T0 + 90 * m, a)  # nobody from 13:00 to 13:30
        writes.stop_run(conn, late, T0 + 100 * m)
    with Session(db) as s:
        assert reads.gaps(s, T0, T0 + 120 * m) == [(T0 + 60 * m, T0 + 90 * m)]


def test_an_agent_name_or_region_the_table_cannot_hold_is_refused_at_once(
    tmp_path: Path,
) -> None:
    cfg = write_config(
        tmp_path, [{"name": "t", "kind": "http", "url": "http://127.0.0.1:9/"}], "sqlite:///w.db"
    )
    for args, said in (
        (["--agent", "a" * 101], "an agent name has 1 to 100 characters"),
        (["--region", "r" * 65], "a region has 1 to 64 characters"),
    ):
        for command in ("run", "up"):
            result = CliRunner().invoke(app, [command, "-c", str(cfg), *args])
            assert result.exit_code == 2, result.output
            assert said in result.output
    assert not (tmp_path / "w.db").exists()  # refused before anything was opened

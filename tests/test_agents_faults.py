"""Agents under faults, as real processes on a real (Debian) PostgreSQL of their own.

PostgreSQL restarted under two running agents: they keep probing, hold what they cannot write
and write it when the database is back, lose nothing written before, and an alert confirmed
across the outage is sent exactly once. The bound of that backlog drops the oldest results.
Three agents in one region share the targets; a kill -9 of the one holding a failing target
moves it to another, which confirms the failure and alerts exactly once; a start with a live
agent's name exits 2. Values PostgreSQL refuses where SQLite did not (a NUL byte, an overlong
request id) and a result the store refuses cost no batch.

Each test here starts and stops a throwaway cluster (initdb + pg_ctl, as `.ci/run` does), so
it never disturbs the database INFERWATCH_TEST_POSTGRES_URL names; skipped without Debian's
PostgreSQL binaries.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, text

from monitor.agent.writer import Writer
from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider, Reply, Seen
from monitor.domain.evidence import Outcome
from monitor.store import make_engine, open_database
from tests.helpers import make_config, probe_once
from tests.pg import BINS, Cluster
from tests.smtp import Inbox
from tests.test_launch import start_cli, stop, wait_for
from tests.test_loop_writer import result

pytestmark = pytest.mark.skipif(not BINS, reason="needs Debian's postgresql (initdb, pg_ctl)")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Not under pytest's tmp_path: user postgres cannot enter root's 0700 pytest folder.
    root = Path(tempfile.mkdtemp(prefix="inferwatch-pg-"))
    pg = Cluster(root)
    try:
        yield pg
    finally:
        pg.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg(cluster: Cluster) -> Iterator[Engine]:
    """The cluster's database, emptied and migrated."""
    with make_engine(cluster.url).begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine = open_database(cluster.url)
    yield engine
    engine.dispose()


def _scalar(engine: Engine, sql: str, **params: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def _naive(at: float) -> datetime:
    """A time as PostgreSQL's columns hold it: naive UTC (models.UTCDateTime)."""
    return datetime.fromtimestamp(at, UTC).replace(tzinfo=None)


def _timed(log: list[float], answer: Callable[[], Reply]) -> Callable[[Seen], Reply]:
    """A route that notes when each request came (the fake keeps no times)."""

    def route(_: Seen) -> Reply:
        log.append(time.time())
        return answer()

    return route


def test_postgres_restarted_under_running_agents_loses_nothing(
    tmp_path: Path, cluster: Cluster, pg: Engine, provider: FakeProvider, inbox: Inbox
) -> None:
    """Two agents sharing a region's targets; PostgreSQL stopped for 4 s and started again."""
    failing = threading.Event()
    seen: list[float] = []
    provider.route("/ok", _timed(seen, lambda: Reply(200, "ok")))
    provider.route(
        "/flaky", _timed(seen, lambda: sim.server_500() if failing.is_set() else Reply(200, "ok"))
    )
    targets = [{"name": f"ok{i}", "kind": "http", "url": f"{provider.url}/ok"} for i in range(6)]
    targets.append({"name": "flaky", "kind": "http", "url": f"{provider.url}/flaky"})
    config = tmp_path / "inferwatch.yaml"
    settings = {
        "database": cluster.url,
        "defaults": {
            "interval": "200ms",
            "timeout": "1s",
            "failure_threshold": 3,
            "success_threshold": 1,
        },
        "alerts": {"email": inbox.settings()},
        "targets": targets,
    }
    config.write_text(yaml.safe_dump(settings))
    logs = {n: tmp_path / f"{n}.log" for n in ("e1", "e2")}
    agents = {n: _start_agent(config, n, log) for n, log in logs.items()}
    first = agents["e1"]
    try:
        # Settled: each target probed by one agent, both agents probing.
        def shared() -> bool:
            lately = _probers(pg, _naive(time.time() - 1.0))
            return (
                len(lately) == len(targets)
                and all(len(by) == 1 for by in lately.values())
                and set().union(*lately.values()) == set(agents)
            )

        wait_for(shared, first, logs["e1"], timeout=30)
        with pg.connect() as conn:
            committed = set(conn.scalars(text("select id from probe_results")))
        pg.dispose()  # this test's own connections would not survive the restart either
        cluster.stop()
        down = time.time()
        asked = len(seen)
        failing.set()  # the flaky target fails while nothing can be written: its alert
        # must still be decided, stored and sent once the database is back
        time.sleep(1.0)
        # A reload meanwhile: the writers cannot record the new target yet, and must go on.
        added = {"name": "added", "kind": "http", "url": f"{provider.url}/ok"}
        config.write_text(yaml.safe_dump({**settings, "targets": [*targets, added]}))
        for proc in agents.values():
            proc.send_signal(signal.SIGHUP)
        time.sleep(3.0)
        probed_meanwhile = len(seen) - asked
        cluster.start()
        up = time.time()
        wait_for(lambda: len(inbox.messages) >= 1, first, logs["e1"], timeout=30)
        # The heartbeats survived the outage too: both agents beat again, still alive.
        wait_for(
            lambda: (
                _scalar(pg, "select count(*) from agents where heartbeat_at > :up", up=_naive(up))
                == 2
            ),
            first,
            logs["e1"],
            timeout=15,
        )
        # Keep running a little: a doubled send or a lost write would show by now.
        time.sleep(1.5)
    finally:
        codes = {n: stop(proc, logs[n])[0] for n, proc in agents.items()}
    outputs = {n: log.read_text() for n, log in logs.items()}
    assert codes == {"e1": 0, "e2": 0}, outputs

    # Probing went on through the outage, at about its pace (7 targets every 200 ms).
    assert probed_meanwhile >= 0.7 * 7 * 4.0 / 0.2, probed_meanwhile
    # What was probed while PostgreSQL was down is in the database now, counted by time,
    # and by each agent.
    window = {"a": _naive(down + 0.3), "b": _naive(up - 0.3)}
    during = _scalar(
        pg, "select count(*) from probe_results where checked_at > :a and checked_at < :b", **window
    )
    answered = sum(1 for at in seen if down + 0.3 < at < up - 0.3)
    assert during >= answered - 7 and during > 80, (during, answered)
    by_agent = _scalar(
        pg,
        "select count(distinct agent_id) from probe_results "
        "where checked_at > :a and checked_at < :b",
        **window,
    )
    assert by_agent == 2
    # Every answer the provider gave is a stored result: before, during and after; what was
    # committed before the restart is all still there, and every probe names its agent.
    assert _scalar(pg, "select count(*) from probe_results") == len(seen)
    with pg.connect() as conn:
        assert committed <= set(conn.scalars(text("select id from probe_results")))
    assert _scalar(pg, "select count(*) from probe_results where agent_id is null") == 0
    assert (
        _scalar(
            pg,
            "select count(*) from probe_results p join targets t on t.id = p.target_id "
            "where t.name = 'added'",
        )
        > 10
    )
    for output in outputs.values():
        assert "the database is unreachable" in output, output
        assert "the database is back after" in output, output
        assert "Traceback" not in output.split("the database is back after")[-1], output
    # The alert was decided from results held across the outage and sent exactly once.
    assert inbox.subjects and len(inbox.messages) == 1, inbox.subjects
    assert "flaky" in inbox.subjects[0]
    assert _scalar(pg, "select count(*) from alerts") == 1
    assert _scalar(pg, "select count(*) from alerts where status = 'sent'") == 1


def test_a_long_outage_drops_the_oldest_held_results_and_says_how_many(
    cluster: Cluster, pg: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The bound: 250 results arrive while PostgreSQL is down and 100 may be held; the 100
    newest are written when it is back, and the log counts the 150 dropped."""
    config = make_config(
        [{"name": "t", "kind": "hf-legacy", "model": "gpt2"}], database=cluster.url
    )
    writer = Writer(pg, config)
    writer.backlog.bound = 100
    writer.start_run()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    probes = [result("t", Outcome.OK, t0 + timedelta(seconds=i)) for i in range(250)]

    async def feed() -> None:
        task = asyncio.create_task(writer.run())
        pg.dispose()
        cluster.stop()
        try:
            for p in probes:
                await writer.submit(p)
            while len(writer.backlog) < 100 or writer.queue.qsize():
                await asyncio.sleep(0.05)
        finally:
            cluster.start()
        await writer.close()
        await asyncio.wait_for(task, timeout=30)

    with caplog.at_level(logging.WARNING, logger="monitor.agent.backlog"):
        asyncio.run(feed())
    with pg.connect() as conn:
        stored = list(conn.scalars(text("select checked_at from probe_results order by id")))
    assert stored == [p.checked_at.replace(tzinfo=None) for p in probes[150:]]
    assert "150 older ones were dropped (over 100 held)" in caplog.text, caplog.text


def _start_agent(config: Path, name: str, log: Path) -> subprocess.Popen:  # type: ignore[type-arg]
    return start_cli(["run", "-c", str(config), "--agent", name, "--region", "eu"], log)


def _probers(engine: Engine, since: datetime) -> dict[str, set[str]]:
    """Per target, the agents whose probes of it were stored since `since` (naive UTC)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select distinct t.name, a.name from probe_results p "
                "join targets t on t.id = p.target_id join agents a on a.id = p.agent_id "
                "where p.checked_at > :since"
            ),
            {"since": since},
        ).all()
    found: dict[str, set[str]] = {}
    for target, agent in rows:
        found.setdefault(target, set()).add(agent)
    return found


def _holder(engine: Engine, target: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "select a.name from target_states s join targets t on t.id = s.target_id "
                "join agents a on a.id = s.holder where t.name = :t"
            ),
            {"t": target},
        ).scalar()


def test_three_agents_share_the_targets_and_survive_a_kill_9_of_the_holder(
    tmp_path: Path, cluster: Cluster, pg: Engine, provider: FakeProvider, inbox: Inbox
) -> None:
    """One region, three agents: each target probed by one of them; kill -9 of the one holding
    the failing target: another takes it over, and its alert (and the recovery's) arrive
    exactly once. A fourth start with a live agent's name exits 2."""
    failing = threading.Event()
    bad_seen: list[float] = []
    provider.route("/ok", Reply(200, "ok"))
    provider.route(
        "/bad",
        _timed(bad_seen, lambda: sim.server_500() if failing.is_set() else Reply(200, "ok")),
    )
    names = [f"t{i:02d}" for i in range(29)] + ["bad"]
    targets = [
        {"name": n, "kind": "http", "url": f"{provider.url}/{'bad' if n == 'bad' else 'ok'}"}
        for n in names
    ]
    config = tmp_path / "inferwatch.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": cluster.url,
                "defaults": {
                    "interval": "500ms",
                    "timeout": "400ms",
                    "failure_threshold": 4,
                    "success_threshold": 1,
                },
                "alerts": {"email": inbox.settings()},
                "targets": targets,
            }
        )
    )
    agents = {n: _start_agent(config, n, tmp_path / f"{n}.log") for n in ("a1", "a2", "a3")}
    logs = {n: tmp_path / f"{n}.log" for n in agents}
    try:
        first = agents["a1"]

        # Settled: every target probed by exactly one agent lately, and all three probing.
        def shared() -> bool:
            lately = _probers(pg, _naive(time.time() - 1.5))
            return (
                len(lately) == len(names)
                and all(len(by) == 1 for by in lately.values())
                and set().union(*lately.values()) == set(agents)
            )

        wait_for(shared, first, logs["a1"], timeout=30)
        window = _naive(time.time() - 1.5)
        share = collections.Counter(a for (a,) in map(tuple, _probers(pg, window).values()))
        assert all(len(names) * 0.15 <= n <= len(names) * 0.55 for n in share.values()), share

        holder = _holder(pg, "bad")
        assert holder in agents
        failing.set()
        wait_for(
            lambda: (
                _scalar(
                    pg,
                    "select count(*) from probe_results p join targets t on t.id = p.target_id "
                    "where t.name = 'bad' and p.outcome != 'ok'",
                )
                >= 1
            ),
            first,
            logs["a1"],
        )
        agents[holder].send_signal(signal.SIGKILL)
        killed = time.time()
        agents[holder].wait(timeout=10)

        # The same name again, while the others run: refused with exit 2, naming the agent.
        twin_log = tmp_path / "twin.log"
        survivor = next(n for n in agents if n != holder)
        twin = _start_agent(config, survivor, twin_log)
        assert twin.wait(timeout=30) == 2, twin_log.read_text()
        said = twin_log.read_text()
        assert f"agent '{survivor}' is already running on host" in said, said
        assert "last heartbeat" in said and "Traceback" not in said, said

        # Taken over: another agent probes and holds it.
        others = {n: p for n, p in agents.items() if n != holder}
        watch = next(iter(others.values()))
        wait_for(
            lambda: bool(_probers(pg, _naive(killed)).get("bad", set()) - {holder}),
            watch,
            logs[survivor],
            timeout=40,
        )
        taken = max(0.0, min(at for at in bad_seen if at > killed) - killed)
        wait_for(lambda: len(inbox.messages) >= 1, watch, logs[survivor], timeout=20)
        failing.clear()
        wait_for(lambda: len(inbox.messages) >= 2, watch, logs[survivor], timeout=20)
        time.sleep(1.5)  # a doubled send would arrive by now
    finally:
        for name, proc in agents.items():
            if proc.poll() is None:
                stop(proc, logs[name])
    print(f"takeover after kill -9: first probe by another agent {taken:.1f} s later")
    assert taken <= 15 + 2 * 5 + 2, taken  # LOST_AFTER_S, then a beat or two
    assert _holder(pg, "bad") != holder
    with pg.connect() as conn:
        deciders = conn.execute(
            text(
                "select tr.to_outcome, a.name from transitions tr join agents a "
                "on a.id = tr.agent_id join targets t on t.id = tr.target_id "
                "where t.name = 'bad' order by tr.id"
            )
        ).all()
    # First seen up; the killed agent saw the first failure only, so the taker confirmed it
    # (from the count the killed one had committed), then the recovery.
    assert [o for o, _ in deciders] == ["ok", "server_error", "ok"], deciders
    assert all(a != holder for _, a in deciders[1:]), deciders
    subjects = inbox.subjects
    assert len(subjects) == 2, subjects
    assert all("bad" in s for s in subjects), subjects
    assert _scalar(pg, "select count(*) from alerts") == 2
    assert _scalar(pg, "select count(*) from alerts where status = 'sent'") == 2


def test_a_nul_byte_in_an_answer_does_not_fail_the_batch_on_postgres(
    cluster: Cluster, pg: Engine, provider: FakeProvider
) -> None:
    """PostgreSQL's text columns refuse NUL: one provider answering with it used to fail the
    writer's whole batch (every target's results in it) on every probe. It is stored as U+FFFD."""
    provider.route("/text", Reply(500, b"upstream \x00 died", content_type="text/plain"))
    provider.route(
        "/v1/chat/completions",
        Reply(
            400,
            '{"error": {"message": "bad \\u0000 request", "type": "invalid_request_error", '
            '"code": "x\\u0000y"}}',
            content_type="application/json",
            headers={"x-request-id": "req-1"},
        ),
    )
    provider.route("/ok", Reply(200, "ok"))
    config = make_config(
        [
            {"name": "text", "kind": "http", "url": f"{provider.url}/text"},
            {
                "name": "json",
                "kind": "openai-chat",
                "base_url": f"{provider.url}/v1",
                "model": "m",
            },
            {"name": "ok", "kind": "http", "url": f"{provider.url}/ok"},
        ],
        database=cluster.url,
    )
    writer = Writer(pg, config)
    writer.start_run()
    results = probe_once(config)
    writer.write_batch(list(results.values()))
    with pg.connect() as conn:
        rows = dict(
            conn.execute(
                text(
                    "select t.name, p.detail || ' ' || p.body_excerpt from probe_results p "
                    "join targets t on t.id = p.target_id"
                )
            ).all()
        )
    assert set(rows) == {"text", "json", "ok"}
    assert "upstream \ufffd died" in rows["text"], rows
    assert "bad \ufffd request" in rows["json"], rows  # the provider's JSON-escaped NUL
    assert "\x00" not in "".join(rows.values())


def test_an_overlong_request_id_or_provider_header_does_not_fail_the_batch_on_postgres(
    cluster: Cluster, pg: Engine, provider: FakeProvider
) -> None:
    """PostgreSQL enforces the columns' lengths (SQLite does not): a provider's 500-character
    x-request-id used to fail every batch holding its result. Both are cut to fit."""
    provider.route(
        "/long",
        Reply(
            200,
            "ok",
            headers={"x-request-id": "r" * 500, "x-inference-provider": "p" * 300},
        ),
    )
    config = make_config(
        [{"name": "long", "kind": "http", "url": f"{provider.url}/long"}], database=cluster.url
    )
    writer = Writer(pg, config)
    writer.start_run()
    writer.write_batch(list(probe_once(config).values()))
    with pg.connect() as conn:
        request_id, by = conn.execute(text("select request_id, provider from probe_results")).one()
    assert request_id == "r" * 199 + "…" and by == "p" * 99 + "…"


def test_a_result_the_store_refuses_costs_only_itself_and_no_wait(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Not an outage (here a naive time, which the store's types refuse): waiting cannot cure
    it, so the batch is written again at once one result per transaction; only the refused
    result is lost, the ones around it are stored, in order."""
    config = make_config([{"name": "t", "kind": "hf-legacy", "model": "gpt2"}], database=db_url)
    writer = Writer(open_database(db_url), config)
    writer.start_run()
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    good = [result("t", Outcome.OK, t0 + timedelta(seconds=i)) for i in range(4)]
    bad = result("t", Outcome.OK, (t0 + timedelta(seconds=2)).replace(tzinfo=None))
    batch = [good[0], good[1], bad, good[2], good[3]]

    async def feed() -> float:
        task = asyncio.create_task(writer.run())
        started = time.monotonic()
        for r in batch:
            await writer.submit(r)
        await writer.close()
        await asyncio.wait_for(task, timeout=10)
        return time.monotonic() - started

    with caplog.at_level(logging.ERROR, logger="monitor.agent.backlog"):
        took = asyncio.run(feed())
    with writer.engine.connect() as conn:
        times = list(conn.scalars(text("select checked_at from probe_results order by id")))
    assert len(times) == 4 and times == sorted(times)
    assert len(writer.backlog) == 0 and took < 2.0, took
    assert caplog.text.count("could not write the probe of t; dropping it") == 1, caplog.text

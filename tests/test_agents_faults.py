"""Agents under faults, as real processes on a real (Debian) PostgreSQL of their own.

PostgreSQL restarted under a running agent: it keeps probing, holds what it cannot write and
writes it when the database is back, loses nothing it wrote before, and an alert confirmed
across the outage is sent exactly once. The bound of that backlog drops the oldest results.

Each test here starts and stops a throwaway cluster (initdb + pg_ctl, as `.ci/run` does), so
it never disturbs the database INFERWATCH_TEST_POSTGRES_URL names; skipped without Debian's
PostgreSQL binaries.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import shutil
import socket
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
from tests.helpers import make_config
from tests.smtp import Inbox
from tests.test_launch import start_cli, stop, wait_for
from tests.test_loop_writer import result

BINS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
pytestmark = pytest.mark.skipif(not BINS, reason="needs Debian's postgresql (initdb, pg_ctl)")


class Cluster:
    """A throwaway PostgreSQL on a Unix socket in `root`; `stop()`/`start()` restart it."""

    def __init__(self, root: Path):
        self.root = root
        self.bin = BINS[-1]
        self.data = root / "data"
        with socket.socket() as s:  # a port nobody uses; only its socket file's name matters
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql+psycopg://postgres@/faults?host={root}&port={self.port}"
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        self._as_postgres(f"{self.bin}/initdb -D {self.data} -A trust -U postgres")
        self.start()
        self._as_postgres(
            f"{self.bin}/psql -h {root} -p {self.port} -U postgres -qc 'create database faults'"
        )

    def _as_postgres(self, command: str) -> None:
        """Run as user postgres when we are root (initdb refuses root), else as ourselves."""
        argv = ["su", "postgres", "-c", command] if os.geteuid() == 0 else ["sh", "-c", command]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode:
            raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)

    def start(self) -> None:
        self._as_postgres(
            f"{self.bin}/pg_ctl -D {self.data} -l {self.root}/log -w start "
            f"-o '-p {self.port} -k {self.root} -c listen_addresses='"
        )

    def kill(self) -> None:
        """At the end of the tests: no checkpoint, nothing is kept."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self._as_postgres(f"{self.bin}/pg_ctl -D {self.data} -m immediate -w stop")

    def stop(self) -> None:
        """A fast shutdown: open sessions are cut off, as in a real restart or failover."""
        self._as_postgres(f"{self.bin}/pg_ctl -D {self.data} -m fast -w stop")


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


def test_postgres_restarted_under_a_running_agent_loses_nothing(
    tmp_path: Path, cluster: Cluster, pg: Engine, provider: FakeProvider, inbox: Inbox
) -> None:
    failing = threading.Event()
    seen: list[float] = []
    provider.route("/ok", _timed(seen, lambda: Reply(200, "ok")))
    provider.route(
        "/flaky", _timed(seen, lambda: sim.server_500() if failing.is_set() else Reply(200, "ok"))
    )
    targets = [{"name": f"ok{i}", "kind": "http", "url": f"{provider.url}/ok"} for i in range(4)]
    targets.append({"name": "flaky", "kind": "http", "url": f"{provider.url}/flaky"})
    config = tmp_path / "inferwatch.yaml"
    config.write_text(
        yaml.safe_dump(
            {
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
        )
    )
    log = tmp_path / "run.log"
    proc = start_cli(["run", "-c", str(config)], log)
    try:
        wait_for(
            lambda: _scalar(pg, "select count(*) from probe_results") >= 20, proc, log, timeout=30
        )
        pg.dispose()  # this test's own connections would not survive the restart either
        cluster.stop()
        down = time.time()
        asked = len(seen)
        failing.set()  # the flaky target fails while nothing can be written: its alert
        # must still be decided, stored and sent once the database is back
        time.sleep(4.0)
        probed_meanwhile = len(seen) - asked
        cluster.start()
        up = time.time()
        wait_for(lambda: len(inbox.messages) >= 1, proc, log, timeout=30)
        # Keep running a little: a doubled send or a lost write would show by now.
        time.sleep(1.5)
    finally:
        code, _ = stop(proc, log)
    output = log.read_text()
    assert code == 0, output

    # Probing went on through the outage, at about its pace (5 targets every 200 ms).
    assert probed_meanwhile >= 0.7 * 5 * 4.0 / 0.2, probed_meanwhile
    # What was probed while PostgreSQL was down is in the database now, counted by time.
    during = _scalar(
        pg,
        "select count(*) from probe_results where checked_at > :a and checked_at < :b",
        a=_naive(down + 0.3),
        b=_naive(up - 0.3),
    )
    answered = sum(1 for at in seen if down + 0.3 < at < up - 0.3)
    assert during >= answered - 5 and during > 50, (during, answered)
    # Every answer the provider gave is a stored result: before, during and after.
    assert _scalar(pg, "select count(*) from probe_results") == len(seen)
    assert "the database is unreachable" in output, output
    assert "the database is back after" in output, output
    # The alert was decided from results held across the outage and sent exactly once.
    assert inbox.subjects and len(inbox.messages) == 1, inbox.subjects
    assert "flaky" in inbox.subjects[0]
    assert _scalar(pg, "select count(*) from alerts") == 1
    assert _scalar(pg, "select count(*) from alerts where status = 'sent'") == 1
    assert "Traceback" not in output.split("the database is back after")[-1]


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

"""Three `inferwatch run` processes in three regions (eu, us, ap) on a real PostgreSQL, a fake
provider on 127.0.0.1 and a real SMTP inbox: the quorum of regions (issue 13) end to end.

Every agent reads the same config; `${PROBE_REGION}` in the targets' URLs (from each agent's
environment) gives each region its own path on the fake provider (/eu/bad, /us/bad, ...), so
one region's provider can fail alone. What is proved:

* one region failing alone is a regional observation (a transition with `region`), no email;
  every region failing is one email, naming the confirming regions; recovery is one email;
  a target narrowed to `regions: [eu]` is probed by the eu agent only;
* with `alerts.regional: true` the one-region failure is one email, reason `regional`;
* a kill -9 of the holder while every region fails: another region's agent takes the target
  over and the alert is sent exactly once; no committed probe row is lost, and every answer a
  surviving agent got is a stored row.

The schema is created with `inferwatch db upgrade` before the agents start (agents started
together on an empty database race on it).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, text

from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider, Reply, Seen
from monitor.store import make_engine
from tests.smtp import Inbox
from tests.test_agents_ownership import URL, needs_pg
from tests.test_launch import start_cli, stop, wait_for

pytestmark = needs_pg

REGIONS = ("eu", "us", "ap")
INTERVAL = 1.0  # seconds; a region stops counting 2 intervals after its latest result


@pytest.fixture
def pg() -> Iterator[Engine]:
    """The run's PostgreSQL, emptied (the schema comes from `inferwatch db upgrade`)."""
    engine = make_engine(URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    yield engine
    engine.dispose()


class Regions:
    """The fake provider's per-region routes: /<region>/ok always 200, /<region>/bad 500 while
    that region is failing. Counts each region's answers (the fake keeps no per-path count)."""

    def __init__(self, provider: FakeProvider):
        self.failing: set[str] = set()
        self.answered: dict[str, int] = dict.fromkeys(REGIONS, 0)
        self._lock = threading.Lock()
        for region in REGIONS:
            provider.route(f"/{region}/ok", self._route(region, bad=False))
            provider.route(f"/{region}/bad", self._route(region, bad=True))

    def _route(self, region: str, bad: bool) -> Any:
        def answer(_: Seen) -> Reply:
            with self._lock:
                self.answered[region] += 1
            return sim.server_500() if bad and region in self.failing else Reply(200, "ok")

        return answer

    def fail(self, *regions: str) -> None:
        self.failing = set(regions)


class Fleet:
    """One agent process per region, all on one config file."""

    def __init__(self, tmp: Path, config: Path):
        self.logs = {r: tmp / f"{r}.log" for r in REGIONS}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for region in REGIONS:
            self.procs[region] = start_cli(
                ["run", "-c", str(config), "--agent", f"agent-{region}", "--region", region],
                self.logs[region],
                env={"PROBE_REGION": region},
            )

    def wait(self, check: Any, timeout: float = 30.0) -> None:
        """Poll `check`; on failure, every agent's log."""
        try:
            alive = next(r for r, p in self.procs.items() if p.poll() is None)
            wait_for(check, self.procs[alive], self.logs[alive], timeout=timeout)
        except (AssertionError, StopIteration):
            print(self.outputs(), file=sys.stderr)
            raise

    def outputs(self) -> str:
        return "\n".join(f"--- {r}\n{log.read_text()}" for r, log in self.logs.items())

    def stop(self) -> dict[str, int]:
        """SIGTERM to every agent still running; their exit codes."""
        codes = {}
        for region, proc in self.procs.items():
            if proc.poll() is None:
                codes[region] = stop(proc, self.logs[region])[0]
        return codes


def write_config(path: Path, inbox: Inbox, provider: FakeProvider, **alerts: Any) -> None:
    base = f"{provider.url}/${{PROBE_REGION}}"
    path.write_text(
        yaml.safe_dump(
            {
                "database": URL,
                "defaults": {
                    "interval": f"{INTERVAL:g}s",
                    "timeout": "500ms",
                    "failure_threshold": 3,
                    "success_threshold": 1,
                },
                "alerts": {"email": inbox.settings(), **alerts},
                "targets": [
                    {"name": "bad", "kind": "http", "url": f"{base}/bad"},
                    {"name": "only-eu", "kind": "http", "url": f"{base}/ok", "regions": ["eu"]},
                    *({"name": f"ok{i}", "kind": "http", "url": f"{base}/ok"} for i in range(4)),
                ],
            }
        )
    )


def upgrade(config: Path, tmp: Path) -> None:
    log = tmp / "upgrade.log"
    # The config needs its ${PROBE_REGION}, though the schema does not depend on it.
    done = start_cli(["db", "upgrade", "-c", str(config)], log, env={"PROBE_REGION": "eu"})
    assert done.wait(timeout=60) == 0, log.read_text()


def scalar(engine: Engine, sql: str, **params: object) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def rows(engine: Engine, sql: str, **params: object) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params).all())


def watched_by_every_region(engine: Engine) -> bool:
    """The holder of `bad` keeps a state for each region: all three agents joined, probed
    and handed their results over."""
    return (
        scalar(
            engine,
            "select count(*) from target_region_states s join targets t on t.id = s.target_id "
            "where t.name = 'bad'",
        )
        == 3
    )


def holder_of(engine: Engine, target: str) -> str | None:
    return scalar(
        engine,
        "select a.region from target_states s join targets t on t.id = s.target_id "
        "join agents a on a.id = s.holder where t.name = :t",
        t=target,
    )


def failing_probes(engine: Engine, region: str) -> int:
    return int(
        scalar(
            engine,
            "select count(*) from probe_results p join targets t on t.id = p.target_id "
            "join agents a on a.id = p.agent_id "
            "where t.name = 'bad' and a.region = :r and p.outcome != 'ok'",
            r=region,
        )
    )


def start(tmp: Path, pg: Engine, provider: FakeProvider, inbox: Inbox, **alerts: Any) -> Fleet:
    config = tmp / "inferwatch.yaml"
    write_config(config, inbox, provider, **alerts)
    upgrade(config, tmp)
    fleet = Fleet(tmp, config)
    fleet.wait(lambda: watched_by_every_region(pg), timeout=40)
    return fleet


def test_one_region_alone_is_regional_and_quiet_every_region_alerts_once_each_way(
    tmp_path: Path, pg: Engine, provider: FakeProvider, inbox: Inbox
) -> None:
    """eu fails alone: recorded as eu's observation, no email. Then all fail: one email, the
    event naming the confirming regions; recovery: one email. `only-eu` (`regions: [eu]`) is
    probed by the eu agent alone."""
    routes = Regions(provider)
    fleet = start(tmp_path, pg, provider, inbox)
    try:
        routes.fail("eu")
        fleet.wait(
            lambda: bool(scalar(pg, "select count(*) from transitions where region = 'eu'")),
            timeout=20,
        )
        # Two more intervals of eu failing alone: still no alert of any kind.
        time.sleep(2 * INTERVAL + 0.5)
        assert inbox.raw == [] and scalar(pg, "select count(*) from alerts") == 0
        routes.fail(*REGIONS)
        fleet.wait(lambda: len(inbox.raw) >= 1, timeout=20)
        routes.fail()
        fleet.wait(lambda: len(inbox.raw) >= 2, timeout=20)
        time.sleep(2 * INTERVAL)  # a doubled send would arrive by now
    finally:
        codes = fleet.stop()
    assert codes == dict.fromkeys(REGIONS, 0), fleet.outputs()

    regional = rows(
        pg,
        "select tr.to_outcome, tr.announced, tr.incident_id, tr.label from transitions tr "
        "join targets t on t.id = tr.target_id where t.name = 'bad' and tr.region = 'eu'",
    )
    assert len(regional) == 1, regional
    to, announced, incident, label = regional[0]
    assert (to, announced, incident) == ("server_error", False, None), regional[0]
    assert label.startswith("eu: server_error (500) since "), label
    assert scalar(pg, "select count(*) from transitions where region in ('us', 'ap')") == 0

    changes = rows(
        pg,
        "select tr.to_outcome, tr.regions from transitions tr join targets t "
        "on t.id = tr.target_id where t.name = 'bad' and tr.region is null order by tr.id",
    )
    assert [o for o, _ in changes] == ["ok", "server_error", "ok"], changes
    assert len(changes[1][1]) >= 2 and set(changes[1][1]) <= set(REGIONS), changes

    alerts = rows(pg, "select reason, event, status from alerts order by id")
    assert [(r, e["to_outcome"], s) for r, e, s in alerts] == [
        ("transition", "server_error", "sent"),
        ("transition", "ok", "sent"),
    ], alerts
    named = alerts[0][1]["regions"]
    assert len(named) >= 2 and set(named) <= set(REGIONS), named
    assert len(inbox.subjects) == 2 and all("bad" in s for s in inbox.subjects), inbox.subjects
    assert "server_error" in inbox.subjects[0] or "500" in inbox.subjects[0], inbox.subjects

    # Narrowed to eu: probed, and only ever by the eu agent.
    probers = rows(
        pg,
        "select a.region, count(*) from probe_results p join targets t on t.id = p.target_id "
        "join agents a on a.id = p.agent_id where t.name = 'only-eu' group by a.region",
    )
    assert len(probers) == 1 and probers[0][0] == "eu" and probers[0][1] >= 5, probers
    assert holder_of(pg, "only-eu") == "eu"


def test_alerts_regional_emails_the_one_region_failure_once(
    tmp_path: Path, pg: Engine, provider: FakeProvider, inbox: Inbox
) -> None:
    routes = Regions(provider)
    fleet = start(tmp_path, pg, provider, inbox, regional=True)
    try:
        routes.fail("us")
        fleet.wait(lambda: len(inbox.raw) >= 1, timeout=20)
        time.sleep(3 * INTERVAL)  # still failing alone: a second email would come by now
    finally:
        codes = fleet.stop()
    assert codes == dict.fromkeys(REGIONS, 0), fleet.outputs()
    alerts = rows(pg, "select reason, subject, status, event from alerts")
    assert len(alerts) == 1 and len(inbox.raw) == 1, (alerts, inbox.subjects)
    reason, subject, status, event = alerts[0]
    assert (reason, status, event["reason"]) == ("regional", "sent", "regional"), alerts[0]
    assert "us: server_error (500) since" in subject, subject
    assert "us: server_error (500) since" in inbox.subjects[0], inbox.subjects
    assert scalar(pg, "select count(*) from incidents") == 0
    assert (
        scalar(pg, "select count(*) from transitions where region is null and to_outcome != 'ok'")
        == 0
    )


def test_kill_9_of_the_holder_while_every_region_fails_alerts_exactly_once(
    tmp_path: Path, pg: Engine, provider: FakeProvider, inbox: Inbox
) -> None:
    """The holder of `bad` is killed after the first failing probes, before a quorum could
    confirm: an agent of another region takes the target over (LOST_AFTER_S, then a beat),
    confirms the failure and emails it once; then the recovery once."""
    routes = Regions(provider)
    fleet = start(tmp_path, pg, provider, inbox)
    holder = holder_of(pg, "bad")
    assert holder in REGIONS
    survivors = [r for r in REGIONS if r != holder]
    try:
        routes.fail(*REGIONS)
        fleet.wait(lambda: failing_probes(pg, holder) >= 1, timeout=10)
        fleet.procs[holder].send_signal(signal.SIGKILL)
        killed = time.time()
        fleet.procs[holder].wait(timeout=10)
        # Before the kill's effect: no alert yet (3 failing probes are needed per region).
        assert scalar(pg, "select count(*) from alerts") == 0, "too late: alerted before kill"
        committed = {r for (r,) in rows(pg, "select id from probe_results")}
        fleet.wait(lambda: holder_of(pg, "bad") in survivors, timeout=40)
        moved = time.time() - killed
        fleet.wait(lambda: len(inbox.raw) >= 1, timeout=20)
        alerted = time.time() - killed
        routes.fail()
        fleet.wait(lambda: len(inbox.raw) >= 2, timeout=20)
        time.sleep(2 * INTERVAL)  # a doubled send would arrive by now
    finally:
        codes = fleet.stop()
    print(f"kill -9 of {holder}: holder moved after {moved:.1f} s, email after {alerted:.1f} s")
    assert codes == dict.fromkeys(survivors, 0), fleet.outputs()
    assert moved <= 15 + 2 * 5 + 2, moved  # LOST_AFTER_S, then a beat or two

    deciders = rows(
        pg,
        "select tr.to_outcome, a.region from transitions tr join agents a on a.id = tr.agent_id "
        "join targets t on t.id = tr.target_id where t.name = 'bad' and tr.region is null "
        "order by tr.id",
    )
    assert [o for o, _ in deciders] == ["ok", "server_error", "ok"], deciders
    assert all(r in survivors for _, r in deciders[1:]), deciders
    alerts = rows(pg, "select event, status from alerts order by id")
    assert [(e["to_outcome"], s) for e, s in alerts] == [("server_error", "sent"), ("ok", "sent")]
    assert len(inbox.raw) == 2, inbox.subjects

    # Nothing committed was lost, and every answer a survivor got is a stored row of it.
    assert committed <= {r for (r,) in rows(pg, "select id from probe_results")}
    stored = dict(
        rows(
            pg,
            "select a.region, count(*) from probe_results p join agents a on a.id = p.agent_id "
            "group by a.region",
        )
    )
    for region in survivors:
        assert stored[region] == routes.answered[region], (region, stored, routes.answered)
    assert stored[holder] <= routes.answered[holder]

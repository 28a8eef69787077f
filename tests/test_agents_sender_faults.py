"""The agent about to send an alert dies; another agent's sender delivers it, once (issue 13).

Every agent of a deployment runs the outbox sender over the same `alerts` table on PostgreSQL,
claiming each send with a conditional UPDATE whose row stays locked until the server's 250 is
recorded (monitor/alerts/outbox.py). Four real `inferwatch run` processes in one region, a fake
provider on 127.0.0.1 and a real SMTP server on a port that is closed at first:

1. `bad` fails and its holder confirms it while the SMTP port is closed: the alert stays pending,
   its refused attempt in the delivery log, retried with backoff. Every agent that tried gets
   `kill -9`.
2. The SMTP server comes up, stalling its first DATA: it has received the whole message but
   never answers. The agent whose session that is gets `kill -9` mid-send: PostgreSQL rolls its
   claim back (the attempt leaves no row) and the row lock goes with the connection.
3. A surviving agent's sender claims the alert and the server says 250.

What arrives: one accepted message with the outbox row's Message-ID; the stalled copy carries the
same Message-ID. That copy is the one window docs/reliability.md names ("a crash between the server
receiving the whole message and our COMMIT"): a server that kept it would hold a duplicate that
mail servers drop by its Message-ID. Nothing else is sent twice.
"""

from __future__ import annotations

import asyncio
import email
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from sqlalchemy import Engine, text

from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider, Reply
from monitor.store import make_engine
from tests.smtp import Inbox
from tests.test_agents_ownership import URL, needs_pg
from tests.test_launch import start_cli, stop, wait_for

pytestmark = needs_pg

AGENTS = ("a1", "a2", "a3", "a4")  # four: even if two had tried in step 1, two are left after 2
REGION = "eu"
INTERVAL = 1.0
TRIED = "not sent ("  # the sender's warning for a failed attempt it will retry
SENT = "alert sent by email"


@pytest.fixture
def pg() -> Iterator[Engine]:
    engine = make_engine(URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    yield engine
    engine.dispose()


class StallFirstData:
    """aiosmtpd handler: the first DATA is received whole and never answered (until released);
    every later one is kept in `box.raw` and answered 250, as tests/smtp.py's inbox does."""

    def __init__(self, box: Inbox):
        self.box = box
        self.stalled: list[bytes] = []
        self.stalled_peer: tuple[str, int] | None = None
        self.stalling = threading.Event()
        self.released = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        if not self.stalled:
            self.stalled.append(envelope.content)
            self.stalled_peer = session.peer
            self.stalling.set()
            deadline = time.monotonic() + 60
            while not self.released and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return "451 4.3.0 stalled"
        self.box.raw.append(envelope.content)
        self.box.received_at.append(time.time())
        return "250 OK"


def client_pid(peer_port: int, server_port: int, pids: dict[str, int]) -> str | None:
    """The agent whose process owns the loopback TCP socket from `peer_port` to `server_port`."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == peer_port and int(remote.split(":")[1], 16) == (
            server_port
        ):
            inode = fields[9]
    if inode is None:
        return None
    for name, pid in pids.items():
        with_fds = Path(f"/proc/{pid}/fd")
        for fd in with_fds.iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return name
            except OSError:  # closed meanwhile
                continue
    return None


def message_id(raw: bytes) -> str:
    return str(email.message_from_bytes(raw, policy=default)["message-id"]).strip("<>")


def scalar(engine: Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def rows(engine: Engine, sql: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql)).all())


def write_config(path: Path, box: Inbox, provider: FakeProvider) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "database": URL,
                "defaults": {
                    "interval": f"{INTERVAL:g}s",
                    "timeout": "500ms",
                    "failure_threshold": 2,
                    "success_threshold": 1,
                },
                # 10 s: a guarded DATA may wait that long for the 250, time enough to kill it.
                "alerts": {"email": {**box.settings(), "timeout": "10s"}},
                "targets": [
                    {"name": "bad", "kind": "http", "url": f"{provider.url}/bad"},
                    *(
                        {"name": f"ok{i}", "kind": "http", "url": f"{provider.url}/ok"}
                        for i in range(5)
                    ),
                ],
            }
        )
    )


def test_kill_9_of_the_agent_about_to_send_another_agent_sends_the_alert_once(
    tmp_path: Path, pg: Engine, provider: FakeProvider
) -> None:
    failing = threading.Event()
    provider.route("/bad", lambda _: sim.server_500() if failing.is_set() else Reply(200, "ok"))
    provider.route("/ok", lambda _: Reply(200, "ok"))
    box = Inbox()  # its port stays closed until step 2
    stall = StallFirstData(box)
    config = tmp_path / "inferwatch.yaml"
    write_config(config, box, provider)
    upgraded = start_cli(["db", "upgrade", "-c", str(config)], tmp_path / "upgrade.log")
    assert upgraded.wait(timeout=60) == 0, (tmp_path / "upgrade.log").read_text()

    logs = {a: tmp_path / f"{a}.log" for a in AGENTS}
    procs: dict[str, subprocess.Popen[bytes]] = {
        a: start_cli(["run", "-c", str(config), "--agent", a, "--region", REGION], logs[a])
        for a in AGENTS
    }
    alive = dict(procs)
    controller: Controller | None = None

    def outputs() -> str:
        return "\n".join(f"--- {a}\n{log.read_text()}" for a, log in logs.items())

    def wait(check: Any, timeout: float) -> None:
        try:
            some = next(iter(alive))
            wait_for(check, alive[some], logs[some], timeout=timeout)
        except AssertionError:
            print(outputs(), file=sys.stderr)
            raise

    def kill(agent: str) -> None:
        alive.pop(agent).send_signal(signal.SIGKILL)
        procs[agent].wait(timeout=10)

    def tried(agent: str) -> int:
        return logs[agent].read_text().count(TRIED)

    try:
        # Every agent has met the others and planned its share of the targets.
        wait(lambda: all("monitoring " in logs[a].read_text() for a in AGENTS), 40)
        time.sleep(2 * INTERVAL)

        # 1. Confirmed while the SMTP port is closed: pending, the refusal logged, then the
        # agents that tried are killed.
        failing.set()
        wait(lambda: (scalar(pg, "select count(*) from alert_attempts") or 0) >= 1, 20)
        triers = [a for a in AGENTS if tried(a)]
        assert triers and len(triers) <= 2, outputs()
        for agent in triers:
            kill(agent)
        assert rows(pg, "select status from alerts") == [("pending",)]

        # 2. The server is up but stalls the first DATA: its sender is killed mid-send.
        controller = Controller(stall, hostname="127.0.0.1", port=box.port)
        controller.start()
        wait(stall.stalling.is_set, 45)
        assert stall.stalled_peer is not None
        mid_send = client_pid(stall.stalled_peer[1], box.port, {a: p.pid for a, p in alive.items()})
        assert mid_send in alive, (stall.stalled_peer, mid_send, outputs())
        killed_mid_send = time.time()
        kill(mid_send)

        # 3. A survivor's sender gets the claim and the 250 (at once if it was already waiting
        # for the row lock the killed agent held).
        wait(lambda: len(box.raw) >= 1, 45)
        time.sleep(3)  # a doubled send would arrive by now
    finally:
        stall.released = True
        codes = {a: stop(p, logs[a])[0] for a, p in alive.items()}
        if controller is not None:
            controller.stop()
    print(
        f"tried while SMTP was closed: {triers}; killed mid-send: {mid_send}; alive: {list(alive)}"
    )
    assert codes == dict.fromkeys(codes, 0), outputs()
    assert len(alive) >= 2

    # The outbox: one alert, sent once, after the mid-send kill.
    alerts = rows(pg, "select id, message_id, status, attempts from alerts")
    assert len(alerts) == 1, alerts
    alert_id, outbox_id, status, attempts = alerts[0]
    assert status == "sent" and box.received_at[0] > killed_mid_send, alerts

    # At the server: exactly one accepted message per Message-ID; the stalled copy is the same
    # message (the documented window), so a receiving MTA drops it by its Message-ID.
    assert [message_id(m) for m in box.raw] == [outbox_id.strip("<>")], box.subjects
    assert "bad" in box.subjects[0], box.subjects
    assert [message_id(m) for m in stall.stalled] == [outbox_id.strip("<>")]

    # The delivery log: each refused attempt an agent logged, then the one that went through.
    # The killed mid-send attempt left no row: its claim was rolled back with the connection.
    log = rows(pg, f"select ok, error from alert_attempts where alert_id = {alert_id} order by id")
    refused = sum(tried(a) for a in AGENTS)
    assert [ok for ok, _ in log] == [False] * refused + [True], (log, outputs())
    assert attempts == refused + 1, alerts  # the killed claim's count was rolled back too
    assert all(re.search(r"refused|connect", e, re.I) for ok, e in log if not ok), log

    # Sent by a survivor, and only by it; the killed ones never said they sent it.
    senders = [a for a in AGENTS if SENT in logs[a].read_text()]
    after = box.received_at[0] - killed_mid_send
    print(f"sent by {senders}, arrived {after:.1f} s after the mid-send kill; log {log}")
    assert len(senders) == 1 and senders[0] in alive, outputs()
    assert senders[0] != mid_send and senders[0] not in triers

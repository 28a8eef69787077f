"""`inferwatch run` as a real process under kill -9 and under load at SIGTERM.

An alert is delivered once per channel across crashes (none lost, none doubled), and a
SIGTERM writes every queued result and stops background jobs without a traceback.
"""

from __future__ import annotations

import collections
import contextlib
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider, Reply, Seen
from tests.smtp import Inbox
from tests.test_launch import start_cli, wait_for

KILLS = 20
FLIPPING = 10  # targets whose answer alternates, so alerts are always being sent
STEADY = 60  # healthy targets that keep the writer busy with batches
UNAVOIDABLE = 0.05  # seconds between the server's acceptance and a kill that can double


@contextlib.contextmanager
def killed_on_failure(proc: subprocess.Popen) -> Iterator[None]:  # type: ignore[type-arg]
    """A failing wait must not leave a monitor running after the test."""
    try:
        yield
    except BaseException:
        proc.kill()
        proc.wait(timeout=10)
        raise


def _query(db: Path, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def _alternating(offset: float, period: float = 0.8):  # type: ignore[no-untyped-def]
    """ok, then 500, then ok... each for `period` seconds (phase-shifted per target)."""

    def answer(_: Seen) -> Reply:
        if stable["on"] or int((time.monotonic() + offset) / period) % 2 == 0:
            return Reply(200, "ok")
        return sim.server_500()

    return answer


stable = {"on": False}  # set at the end: every target recovers and stays up


def test_no_alert_is_lost_or_doubled_across_kill_9(
    tmp_path: Path, provider: FakeProvider, inbox: Inbox
) -> None:
    stable["on"] = False
    for i in range(FLIPPING):
        provider.route(f"/flip{i}", _alternating(i * 0.07))
    provider.route("/steady", Reply(200, "ok"))
    targets = [
        {"name": f"flip{i}", "kind": "http", "url": f"{provider.url}/flip{i}"}
        for i in range(FLIPPING)
    ] + [
        {"name": f"steady{i}", "kind": "http", "url": f"{provider.url}/steady", "interval": "500ms"}
        for i in range(STEADY)
    ]
    config = tmp_path / "inferwatch.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": f"sqlite:///{tmp_path / 'crash.db'}",
                "defaults": {
                    "interval": "200ms",
                    "timeout": "400ms",
                    "failure_threshold": 1,
                    "success_threshold": 1,
                },
                "alerts": {"email": inbox.settings()},
                "targets": targets,
            }
        )
    )
    db = tmp_path / "crash.db"
    pace = random.Random(7)

    def alerts_sent() -> int:
        if not db.exists():
            return 0
        try:
            return _query(db, "select count(*) from alerts where status = 'sent'")[0][0]
        except sqlite3.OperationalError:
            return 0

    kills: list[float] = []
    for kill in range(KILLS):
        log = tmp_path / f"run{kill}.log"
        proc = start_cli(["run", "-c", str(config)], log)
        try:
            before = alerts_sent()
            # Kill while alerts are being sent: after this run has sent at least one.
            wait_for(lambda b=before: alerts_sent() > b, proc, log, timeout=30)
            time.sleep(pace.uniform(0.0, 0.6))
        finally:  # never leave a monitor behind, even when the test fails
            proc.send_signal(signal.SIGKILL)
            kills.append(time.time())
            proc.wait(timeout=10)

    # The last run: every target recovers, the outbox drains, then a clean stop.
    stable["on"] = True
    log = tmp_path / "final.log"
    asked = len(provider.requests)
    proc = start_cli(["run", "-c", str(config)], log)
    try:
        wait_for(
            lambda: (
                # It probes, so it is running and takes SIGTERM as a clean stop.
                len(provider.requests) > asked
                and _query(db, "select count(*) from alerts where status != 'sent'")[0][0] == 0
                and _query(db, "select count(*) from alerts")[0][0] > 0
                and _settled(db)
            ),
            proc,
            log,
            timeout=60,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()

    stored = {mid for (mid,) in _query(db, "select message_id from alerts")}
    arrivals: dict[str, list[float]] = collections.defaultdict(list)
    for message, at in zip(inbox.messages, inbox.received_at, strict=True):
        arrivals[str(message["message-id"])].append(at)
    lost = stored - set(arrivals)
    assert len(stored) >= KILLS, "too few alerts to say anything"
    assert not lost, f"{len(lost)} alerts never arrived of {len(stored)}"
    assert set(arrivals) == stored  # nothing arrived that the outbox does not know
    # SMTP cannot be exactly-once: a kill after the server has the whole message and before
    # our COMMIT (right after its 250) doubles it; the retry carries the same Message-ID.
    # That window is milliseconds, so a copy is forgiven only when a kill came within
    # UNAVOIDABLE seconds of the first one. Either side of it: both times are taken in this
    # process, by the inbox's thread and by this one, and on a loaded machine either can lag.
    # The old code (recording 'sent' in a transaction that waited behind the writer's batch)
    # doubled 6 to 7 alerts per 20 kills.
    doubled = {mid: times for mid, times in arrivals.items() if len(times) > 1}
    nearest = {
        mid: min((kill - times[0] for kill in kills), key=abs) for mid, times in doubled.items()
    }
    unexplained = {mid: offset for mid, offset in nearest.items() if abs(offset) >= UNAVOIDABLE}
    assert not unexplained, (
        f"{len(unexplained)} of {len(stored)} alerts doubled with no kill near their first copy "
        f"(nearest kill, seconds after it): {unexplained}"
    )
    # A kill can land in that window at most once each (under load the window is wider).
    assert len(doubled) <= KILLS, f"{len(doubled)} of {len(stored)} alerts doubled"


def _settled(db: Path) -> bool:
    """Every flipping target's last transition is a recovery (so no new alert is coming)."""
    rows = _query(
        db,
        "select t.name, tr.to_outcome from transitions tr join targets t on t.id = tr.target_id"
        " where tr.id in (select max(id) from transitions group by target_id)",
    )
    return all(outcome == "ok" for _, outcome in rows)


def test_sigterm_under_load_writes_every_answered_probe(
    tmp_path: Path, provider: FakeProvider
) -> None:
    """300 targets every second: SIGTERM within 10 s, and every answer the provider gave is
    a stored result (the writer used to give up after 1.5 s and drop what was queued)."""
    provider.route("/ok", Reply(200, "ok"))
    targets = [
        {"name": f"t{i:03d}", "kind": "http", "url": f"{provider.url}/ok"} for i in range(300)
    ]
    config = tmp_path / "inferwatch.yaml"
    db = tmp_path / "load.db"
    config.write_text(
        yaml.safe_dump(
            {
                "database": f"sqlite:///{db}",
                "defaults": {"interval": "500ms", "timeout": "450ms"},
                "targets": targets,
            }
        )
    )
    log = tmp_path / "run.log"
    proc = start_cli(["run", "-c", str(config)], log)
    with killed_on_failure(proc):
        wait_for(lambda: len(provider.requests) >= 4000, proc, log, timeout=60)

    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0, log.read_text()
    took = time.monotonic() - sent

    text = log.read_text()
    assert took < 10, text
    assert "did not finish in time" not in text
    assert "Traceback" not in text and "CancelledError" not in text
    stored = _query(db, "select count(*) from probe_results")[0][0]
    assert stored == len(provider.requests), f"{len(provider.requests) - stored} results lost"


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


def test_a_sighup_with_a_hostile_config_never_stops_probing(
    tmp_path: Path, provider: FakeProvider
) -> None:
    provider.route("/ok", Reply(200, "ok"))
    config = tmp_path / "inferwatch.yaml"
    db = tmp_path / "hup.db"
    config.write_text(
        yaml.safe_dump(
            {
                "database": f"sqlite:///{db}",
                "defaults": {"interval": "200ms", "timeout": "150ms"},
                "targets": [{"name": "t", "kind": "http", "url": f"{provider.url}/ok"}],
            }
        )
    )
    log = tmp_path / "run.log"
    proc = start_cli(["run", "-c", str(config)], log)
    with killed_on_failure(proc):
        wait_for(lambda: len(provider.requests) >= 3, proc, log)
        config.write_text(BILLION_LAUGHS)
        proc.send_signal(signal.SIGHUP)
        before = len(provider.requests)
        wait_for(lambda: len(provider.requests) >= before + 10, proc, log, timeout=10)

    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0, log.read_text()
    assert time.monotonic() - sent < 10
    text = log.read_text()
    assert "reload refused" in text and "Traceback" not in text


def test_shutdown_ends_a_running_prune_cleanly(
    tmp_path: Path,
    monkeypatch,
    caplog,  # type: ignore[no-untyped-def]
) -> None:
    """The daily prune still running at SIGTERM used to end in a CancelledError traceback."""
    import asyncio
    import logging
    import threading

    from monitor.agent import service
    from monitor.config.load import parse_config
    from monitor.store import open_database

    stopped_by: list[threading.Event] = []

    def slow_prune(engine, raw, rolled, *, stop: threading.Event, **_):  # type: ignore[no-untyped-def]
        stopped_by.append(stop)
        assert stop.wait(20), "shutdown never told the prune to stop"

    monkeypatch.setattr(service, "prune", slow_prune)
    config = parse_config(
        yaml.safe_dump(
            {
                "database": f"sqlite:///{tmp_path / 'p.db'}",
                "targets": [{"name": "t", "kind": "http", "url": "http://127.0.0.1:9/"}],
            }
        ),
        file="p.yaml",
        env={},
    )
    engine = open_database(config.database)

    async def main() -> float:
        monitor = service.Monitor(config, engine, env={})
        running = asyncio.create_task(monitor.run())
        await asyncio.sleep(0.3)
        pruning = asyncio.create_task(monitor._prune())
        await asyncio.sleep(0.3)
        started = time.monotonic()
        monitor.stop()
        await asyncio.wait_for(running, 12)
        await asyncio.wait_for(pruning, 2)
        return time.monotonic() - started

    with caplog.at_level(logging.INFO):
        took = asyncio.run(main())

    assert stopped_by and stopped_by[0].is_set()
    assert took < 10
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "CancelledError" not in caplog.text

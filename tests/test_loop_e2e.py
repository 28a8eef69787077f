"""The whole loop for real: scheduler -> HTTP to a fake provider -> SQLite -> SMTP inbox.

Intervals are 200 ms so a scenario takes seconds; the rules are the same as at 60 s.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from monitor.agent.service import Monitor
from monitor.config.load import load_config
from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider, Reply
from monitor.store import open_database
from monitor.store.models import AlertRecord, ProbeRecord, TargetRecord
from tests.smtp import Inbox

FAST = {"interval": "200ms", "timeout": "1s"}
OK_JSON = Reply(200, [[0.1, 0.2]])


def probes(engine: Engine, name: str | None = None) -> int:
    with Session(engine) as s:
        query = select(func.count(ProbeRecord.id))
        if name:
            query = query.join(TargetRecord).where(TargetRecord.name == name)
        return s.scalar(query) or 0


def run_monitor(
    config_path: Path, until: Callable[[Engine], bool], timeout: float = 20.0
) -> Engine:
    config = load_config(config_path, env={})
    engine = open_database(config.database)

    async def main() -> None:
        monitor = Monitor(config, engine, env={}, config_path=config_path)
        task = asyncio.create_task(monitor.run())
        deadline = time.monotonic() + timeout
        while not until(engine) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        monitor.stop()
        await asyncio.wait_for(task, 12)

    asyncio.run(main())
    return engine


def write(path: Path, targets: list[dict[str, Any]], inbox: Inbox | None = None) -> Path:
    data: dict[str, Any] = {"database": "sqlite:///loop.db", "defaults": FAST, "targets": targets}
    if inbox is not None:
        data["alerts"] = {"email": inbox.settings(), "dashboard_url": "http://localhost:8501"}
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_issue_scenarios_in_one_live_run(
    tmp_path: Path, provider: FakeProvider, inbox: Inbox
) -> None:
    ok = OK_JSON
    provider.route("/gone/models/gpt2", [ok, ok, ok, sim.legacy_410()])
    provider.route(
        "/scope/api/whoami-v2",
        [sim.whoami(), sim.whoami(), sim.whoami(permissions=["repo.content.read"])],
    )
    provider.route("/outage/models/m", [ok, ok] + [sim.server_500()] * 4 + [ok])
    provider.route("/waking/models/m", [ok, ok, sim.model_loading_503("m"), ok])
    provider.route("/broken/models/m", sim.legacy_401_no_token())
    base = provider.url
    cfg = write(
        tmp_path / "inferwatch.yaml",
        [
            {"name": "gone", "kind": "hf-legacy", "model": "gpt2", "base_url": f"{base}/gone"},
            {
                "name": "scope",
                "kind": "hf-whoami",
                "base_url": f"{base}/scope",
                "interval": "200ms",
            },
            {"name": "outage", "kind": "hf-legacy", "model": "m", "base_url": f"{base}/outage"},
            {"name": "waking", "kind": "hf-legacy", "model": "m", "base_url": f"{base}/waking"},
            {"name": "broken", "kind": "hf-legacy", "model": "m", "base_url": f"{base}/broken"},
        ],
        inbox,
    )

    def settled(engine: Engine) -> bool:
        return len(inbox.messages) >= 5 and all(
            probes(engine, n) >= 12 for n in ("gone", "scope", "outage", "waking", "broken")
        )

    run_monitor(cfg, settled)

    by_target: dict[str, list[str]] = {}
    for subject in inbox.subjects:
        name = subject.removeprefix("[inferwatch] ").split(":")[0]
        by_target.setdefault(name, []).append(subject)
    assert by_target["gone"] == ["[inferwatch] gone: ok → deprecated (410)"]
    assert by_target["scope"] == ["[inferwatch] scope: token scope regression"]
    assert by_target["outage"][0].split(": ", 1)[1] == "ok → server_error (500)"
    assert "recovered after" in by_target["outage"][1] and len(by_target["outage"]) == 2
    assert "waking" not in by_target  # a lone 503 while a model wakes never alerts
    assert by_target["broken"] == ["[inferwatch] broken: first probe: auth_missing (401)"]
    gone = next(m for m in inbox.messages if "gone" in str(m["subject"]))
    text = gone.get_body(preferencelist=("plain",)).get_content()
    assert "no longer supported" in text and "switch to https://router.huggingface.co" in text


def test_smtp_down_during_a_change_delivers_after_it_returns(
    tmp_path: Path, provider: FakeProvider, inbox: Inbox
) -> None:
    provider.route("/models/gpt2", sim.legacy_410())
    cfg = write(
        tmp_path / "c.yaml",
        [{"name": "gone", "kind": "hf-legacy", "model": "gpt2", "base_url": provider.url}],
        inbox,
    )
    inbox.down()

    def failed_once_then_back(engine: Engine) -> bool:
        with Session(engine) as s:
            alert = s.scalars(select(AlertRecord)).first()
        if alert is not None and alert.attempts >= 1 and inbox._controller is None:
            inbox.up()
        return len(inbox.messages) >= 1

    engine = run_monitor(cfg, failed_once_then_back)

    assert inbox.subjects == ["[inferwatch] gone: first probe: deprecated (410)"]
    with Session(engine) as s:
        (alert,) = s.scalars(select(AlertRecord))
    assert alert.status == "sent" and alert.attempts == 2


def test_a_restart_sends_nothing_twice_but_announces_what_changed(
    tmp_path: Path, provider: FakeProvider, inbox: Inbox
) -> None:
    provider.route("/models/gpt2", sim.legacy_401_no_token())
    cfg = write(
        tmp_path / "c.yaml",
        [{"name": "t", "kind": "hf-legacy", "model": "gpt2", "base_url": provider.url}],
        inbox,
    )
    run_monitor(cfg, lambda e: len(inbox.messages) >= 1 and probes(e) >= 6)
    assert len(inbox.messages) == 1

    run_monitor(cfg, lambda e: probes(e) >= 14)  # same state after the restart: silence
    assert len(inbox.messages) == 1

    provider.route("/models/gpt2", sim.legacy_410())  # changed while stopped
    run_monitor(cfg, lambda e: len(inbox.messages) >= 2 and probes(e) >= 22)
    assert inbox.subjects[1] == "[inferwatch] t: auth_missing → deprecated (410)"
    assert len(inbox.messages) == 2


# ---------------------------------------------------------------- the real process


def start(cfg: Path, *args: str) -> subprocess.Popen[str]:
    """`inferwatch run` as a real process; its log goes to a file (a pipe could fill up)."""
    env = {k: v for k, v in os.environ.items() if k != "INFERWATCH_CONFIG"}
    log = (cfg.parent / "run.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(cfg), *args],
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
        env=env,
    )


def stop(proc: subprocess.Popen[str], cfg: Path) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=12)
    except subprocess.TimeoutExpired:
        proc.kill()  # fail the test, but never leave a monitor running behind it
        raise
    return (cfg.parent / "run.log").read_text()


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def db_count(path: Path, sql: str) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path) as db:
            return db.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # not migrated yet


def test_sigterm_stops_cleanly_within_10_seconds(tmp_path: Path, provider: FakeProvider) -> None:
    provider.route("/models/slow", Reply(200, [[1.0]], delay=0.8))  # probes in flight at SIGTERM
    cfg = write(
        tmp_path / "c.yaml",
        [
            {"name": f"t{i}", "kind": "hf-legacy", "model": "slow", "base_url": provider.url}
            for i in range(3)
        ],
    )
    db = tmp_path / "loop.db"
    proc = start(cfg)
    try:
        wait_for(lambda: db_count(db, "select count(*) from probe_results") >= 3)
    except AssertionError:
        proc.kill()
        raise

    sent = time.monotonic()
    stderr = stop(proc, cfg)

    assert proc.returncode == 0, stderr
    assert time.monotonic() - sent < 10
    assert "stopped" in stderr
    assert db_count(db, "select count(*) from monitor_runs where stopped_at is not null") == 1


def test_sighup_reloads_targets_without_a_restart(tmp_path: Path, provider: FakeProvider) -> None:
    provider.route("/models/a", OK_JSON)
    provider.route("/models/b", OK_JSON)
    a = {"name": "a", "kind": "hf-legacy", "model": "a", "base_url": provider.url}
    b = {"name": "b", "kind": "hf-legacy", "model": "b", "base_url": provider.url}
    cfg = write(tmp_path / "c.yaml", [a])
    db = tmp_path / "loop.db"
    per = (
        "select count(*) from probe_results p join targets t on t.id = p.target_id "
        "where t.name = '{}'"
    )
    proc = start(cfg)
    try:
        wait_for(lambda: db_count(db, per.format("a")) >= 2)

        cfg.write_text("targets: [{name: b, kind: nope}]\n")  # a broken config is refused...
        proc.send_signal(signal.SIGHUP)
        before = db_count(db, per.format("a"))
        wait_for(lambda: db_count(db, per.format("a")) >= before + 3)  # ...and a keeps running

        write(cfg, [b])
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: db_count(db, per.format("b")) >= 3)
        time.sleep(0.5)
        a_after = db_count(db, per.format("a"))
        time.sleep(0.6)
        assert db_count(db, per.format("a")) == a_after  # a is no longer probed
    finally:
        stderr = stop(proc, cfg)
    assert proc.returncode == 0
    assert "reload refused" in stderr and "kind" in stderr
    assert "b: added to the config" in stderr and "a: removed from the config" in stderr


def test_an_alert_confirmed_by_the_last_probe_is_still_sent_at_shutdown(
    tmp_path: Path, provider: FakeProvider, inbox: Inbox
) -> None:
    provider.route("/models/gpt2", Reply(410, {"error": "gone"}, delay=0.4))
    target = {
        "name": "t",
        "kind": "hf-legacy",
        "model": "gpt2",
        "base_url": provider.url,
        "contract_threshold": 1,
        "interval": "1h",
    }
    cfg = write(tmp_path / "c.yaml", [target], inbox)

    run_monitor(cfg, lambda e: len(provider.requests) >= 1)  # stop while that probe is in flight

    assert inbox.subjects == ["[inferwatch] t: first probe: deprecated (410)"]

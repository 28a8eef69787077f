"""Maintenance and silences through the real loop: scheduler -> HTTP to the fake provider ->
SQLite -> the SMTP inbox, with `inferwatch silence` run as a separate process while the
monitor runs. Intervals are 200 ms, so each scenario takes a few seconds."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from monitor.agent.service import Monitor
from monitor.config.load import load_config
from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider
from monitor.store import open_database
from monitor.store.models import ProbeRecord, TransitionRecord
from tests.smtp import Inbox
from tests.test_loop_e2e import FAST, OK_JSON

ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, provider: FakeProvider, inbox: Inbox, **top: Any) -> Path:
    data: dict[str, Any] = {
        "database": "sqlite:///loop.db",
        "defaults": FAST,
        "alerts": {"email": inbox.settings()},
        "targets": [
            {
                "name": "llama-chat",
                "kind": "hf-legacy",
                "model": "gpt2",
                "base_url": provider.url,
                "tags": ["prod"],
            }
        ],
        **top,
    }
    path.write_text(yaml.safe_dump(data))
    return path


async def run_until(
    config_path: Path, steps: list[Callable[[Engine], bool]], timeout: float = 20.0
) -> Engine:
    """Run the monitor; each step is polled until it returns True, then the next one."""
    config = load_config(config_path, env={})
    engine = open_database(config.database)
    monitor = Monitor(config, engine, env={}, config_path=config_path)
    task = asyncio.create_task(monitor.run())
    deadline = time.monotonic() + timeout
    try:
        for step in steps:
            while not await asyncio.to_thread(step, engine):
                assert time.monotonic() < deadline, f"timed out at {step.__name__}"
                await asyncio.sleep(0.05)
    finally:
        monitor.stop()
        await asyncio.wait_for(task, 12)
    return engine


def cli(config_path: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "monitor", *args, "--config", str(config_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=True,
    )
    return done.stdout


def transitions(engine: Engine) -> list[TransitionRecord]:
    with Session(engine) as s:
        return list(s.scalars(select(TransitionRecord).order_by(TransitionRecord.id)))


def probes(engine: Engine) -> list[ProbeRecord]:
    with Session(engine) as s:
        return list(s.scalars(select(ProbeRecord).order_by(ProbeRecord.id)))


def test_a_failure_inside_a_window_sends_nothing_and_its_end_sends_one_email(
    tmp_path: Path, provider: FakeProvider, inbox: Inbox
) -> None:
    provider.route("/models/gpt2", sim.legacy_410())
    start = datetime.now(UTC).replace(microsecond=0)
    window = {"name": "deploy", "targets": ["llama-chat"], "start": start.isoformat()}
    cfg = write(tmp_path / "c.yaml", provider, inbox, maintenance=[{**window, "duration": "4s"}])
    ends = start + timedelta(seconds=4)

    def window_over(engine: Engine) -> bool:
        return datetime.now(UTC) > ends + timedelta(seconds=1.5) and len(inbox.messages) >= 1

    engine = asyncio.run(run_until(cfg, [window_over]))

    assert [s.strip() for s in inbox.subjects] == [
        "[inferwatch] llama-chat: still failing after maintenance deploy: deprecated (410)"
    ]
    (transition,) = transitions(engine)
    assert (transition.to_outcome, transition.announced) == ("deprecated", False)
    assert transition.quiet_reason == "maintenance deploy"
    quiet = [p.quiet for p in probes(engine)]
    assert quiet[0] and not quiet[-1] and sorted(quiet, reverse=True) == quiet  # in, then out
    body = inbox.body(0)
    assert "still failing after maintenance deploy" in body and "no longer supported" in body


def test_silence_add_through_the_cli_suppresses_at_once_and_silence_end_tells_once(
    tmp_path: Path, provider: FakeProvider, inbox: Inbox
) -> None:
    provider.route("/models/gpt2", OK_JSON)
    cfg = write(tmp_path / "c.yaml", provider, inbox)
    added: dict[str, Any] = {}

    def silenced_then_failing(engine: Engine) -> bool:
        if len(probes(engine)) < 3:
            return False
        said = cli(cfg, "silence", "add", "--tag", "prod", "--for", "2h", "--reason", "deploy v2")
        added.update(said=said, at=datetime.now(UTC))
        provider.route("/models/gpt2", sim.legacy_410())  # the deploy breaks it
        return True

    def failure_recorded(engine: Engine) -> bool:
        return (
            any(t.to_outcome == "deprecated" for t in transitions(engine))
            and len(probes(engine)) > len([p for p in probes(engine) if p.outcome == "ok"]) + 4
        )

    def ended(engine: Engine) -> bool:
        added["listed"] = cli(cfg, "silence", "list", "--format", "json")
        added["end"] = cli(cfg, "silence", "end", "1")
        added["ended_at"] = time.monotonic()
        return True

    def told(engine: Engine) -> bool:
        return len(inbox.messages) >= 1 and time.monotonic() > added["ended_at"] + 1.5

    engine = asyncio.run(run_until(cfg, [silenced_then_failing, failure_recorded, ended, told]))

    assert "silence #1: tag prod for 2h" in added["said"]
    assert '"name": "#1"' in added["listed"] and '"active": true' in added["listed"]
    assert [s.strip() for s in inbox.subjects] == [
        "[inferwatch] llama-chat: still failing after silence #1: deprecated (410)"
    ]
    failing = [t for t in transitions(engine) if t.to_outcome == "deprecated"]
    assert [(t.announced, t.quiet_reason) for t in failing] == [
        (False, "silenced by #1: deploy v2")
    ]
    # Every failing probe before the end was taken under the silence: it counted at once.
    with Session(engine) as s:
        first_failure = s.scalars(
            select(ProbeRecord).where(ProbeRecord.outcome == "deprecated").order_by(ProbeRecord.id)
        ).first()
    assert first_failure is not None and first_failure.quiet
    transitions_json = cli(cfg, "transitions", "--format", "json")
    assert '"reason": "silenced by #1: deploy v2"' in transitions_json
    assert '"announced": false' in transitions_json

"""`inferwatch test-alert [--channel NAME]` through every configured channel, as a user runs it:
the real SMTP server (tests/smtp.py) and an Apprise json:// URL pointed at a receiver on
127.0.0.1; each attempt lands in the delivery log with its channel."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from monitor.cli import app
from tests.smtp import Inbox
from tests.test_channel_apprise import TOKEN, VAR, Receiver

runner = CliRunner()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver().up()
    yield receiver
    receiver.down()


def write(tmp_path: Path, alerts: dict[str, Any]) -> Path:
    cfg = tmp_path / "inferwatch.yaml"
    data = {
        "database": f"sqlite:///{tmp_path / 'inferwatch.db'}",
        "targets": [{"name": "a", "kind": "http", "url": "http://a/"}],
        "alerts": alerts,
    }
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    return cfg


def both(tmp_path: Path, inbox: Inbox, monkeypatch: pytest.MonkeyPatch, url: str) -> Path:
    monkeypatch.setenv(VAR, url)
    return write(tmp_path, {"email": inbox.settings(), "apprise": {"urls_env": VAR}})


def delivery_log(cfg: Path) -> list[dict[str, Any]]:
    result = runner.invoke(app, ["alerts", "-c", str(cfg), "-f", "json"])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return sorted(rows, key=lambda r: r["id"])


def test_every_configured_channel_gets_one_and_the_log_names_each(
    tmp_path: Path, inbox: Inbox, hook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = both(tmp_path, inbox, monkeypatch, hook.url)

    result = runner.invoke(app, ["test-alert", "-c", str(cfg)])

    assert result.exit_code == 0, result.output
    assert "✓ email: test alert sent to oncall@example.com" in result.stdout
    assert "✓ apprise: test alert sent" in result.stdout
    assert inbox.subjects == ["[inferwatch] test alert"]
    (note,) = hook.accepted
    assert note["title"] == "[inferwatch] test alert" and f"${VAR}" in note["message"]
    log = delivery_log(cfg)
    assert [(r["channel"], r["reason"], r["status"]) for r in log] == [
        ("email", "test", "sent"),
        ("apprise", "test", "sent"),
    ]
    assert log[0]["recipients"] == ["oncall@example.com"] and log[1]["recipients"] == []

    # The table names each row's channel (an Apprise row has no recipients to show).
    table = runner.invoke(app, ["alerts", "-c", str(cfg)], env={"COLUMNS": "200"}).stdout
    lines = table.splitlines()
    assert "Channel" in next(line for line in lines if "Status" in line)
    firsts = [line.split("│")[3].strip() for line in lines if "test alert" in line]
    assert sorted(firsts) == ["apprise", "email"]
    assert "oncall@example.com" in table
    assert TOKEN not in table and TOKEN not in result.output


def test_one_channel_by_name(
    tmp_path: Path, inbox: Inbox, hook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = both(tmp_path, inbox, monkeypatch, hook.url)

    result = runner.invoke(app, ["test-alert", "-c", str(cfg), "--channel", "apprise"])

    assert result.exit_code == 0, result.output
    assert len(hook.accepted) == 1 and inbox.messages == []
    assert [r["channel"] for r in delivery_log(cfg)] == ["apprise"]


def test_a_channel_that_is_not_configured_is_a_usage_error_naming_the_configured_ones(
    tmp_path: Path, inbox: Inbox, hook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = both(tmp_path, inbox, monkeypatch, hook.url)

    result = runner.invoke(app, ["test-alert", "-c", str(cfg), "--channel", "slack"])

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert str(cfg) in message and "no alerts.slack section" in message
    assert "configured: email, apprise" in message
    assert hook.posts == [] and inbox.messages == []


def test_a_failing_receiver_exits_1_naming_the_channel_and_why(
    tmp_path: Path, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = Receiver(500).up()
    try:
        cfg = both(tmp_path, inbox, monkeypatch, failing.url)
        result = runner.invoke(app, ["test-alert", "-c", str(cfg)])
    finally:
        failing.down()

    assert result.exit_code == 1
    assert "✓ email: test alert sent" in result.stdout  # the others are still tested
    error = " ".join(result.stderr.split())
    assert "apprise: the test alert was not sent: apprise#1 (json): Failed to send JSON" in error
    assert "error=500" in error
    assert TOKEN not in result.output and failing.url not in result.output
    statuses = {r["channel"]: r["status"] for r in delivery_log(cfg)}
    assert statuses == {"email": "sent", "apprise": "pending"}


def test_with_two_urls_the_error_names_only_the_one_that_failed(
    tmp_path: Path, hook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = Receiver(503).up()
    try:
        monkeypatch.setenv(VAR, f"{hook.url} {failing.url}")
        cfg = write(tmp_path, {"apprise": {"urls_env": VAR}})
        result = runner.invoke(app, ["test-alert", "-c", str(cfg)])
    finally:
        failing.down()

    assert result.exit_code == 1
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: apprise: the test alert was not sent: apprise#2 (json): ")
    assert "apprise#1" not in error
    assert len(hook.accepted) == 1 and len(failing.posts) == 1 and failing.accepted == []
    (row,) = delivery_log(cfg)
    assert row["status"] == "pending" and row["recipients"] == ["apprise#2 (json)"]

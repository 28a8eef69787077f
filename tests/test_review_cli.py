"""`inferwatch transitions / incidents / alerts / test-alert` as a user runs them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app, parse_since
from monitor.demo.seed import seed, seed_config
from monitor.store import open_database
from tests.helpers import write_config
from tests.smtp import Inbox

runner = CliRunner()


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    seed(open_database(url), now=datetime.now(UTC), days=1)
    return write_config(
        tmp_path / "c.yaml", [{"name": "a", "kind": "http", "url": "http://a/"}], database=url
    )


def test_transitions_json_has_the_documented_fields(seeded: Path) -> None:
    result = runner.invoke(
        app, ["transitions", "-c", str(seeded), "-f", "json", "-t", "llama-chat"]
    )

    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {"target", "at", "from_outcome", "to_outcome", "label", "detail"} <= set(rows[0])
    assert rows[0]["label"] == "token scope regression (403)"
    assert rows[0]["from_outcome"] == "ok" and rows[0]["to_outcome"] == "token_scope"
    assert {r["target"] for r in rows} == {"llama-chat"}


def test_incidents_and_alerts_in_both_formats(seeded: Path) -> None:
    incidents = json.loads(
        runner.invoke(app, ["incidents", "-c", str(seeded), "-f", "json"]).stdout
    )
    alerts = json.loads(
        runner.invoke(app, ["alerts", "-c", str(seeded), "--format", "json"]).stdout
    )
    table = runner.invoke(app, ["incidents", "-c", str(seeded)], env={"COLUMNS": "200"})

    assert {i["target"] for i in incidents} >= {"gpt2-legacy", "llama-chat", "status-page"}
    assert any(i["open"] is False and i["duration_seconds"] > 0 for i in incidents)
    assert {a["status"] for a in alerts} == {"sent", "pending", "failed"}
    assert "status-page" in table.stdout and "(open)" in table.stdout


def test_since_filters_out_older_rows(seeded: Path) -> None:
    result = runner.invoke(app, ["transitions", "-c", str(seeded), "-f", "json", "--since", "1s"])
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", datetime(2026, 11, 21, 12, tzinfo=UTC)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T06:30+01:00", datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
    ],
)
def test_parse_since(text: str, expected: datetime) -> None:
    assert parse_since(text, now=datetime(2026, 11, 22, 12, tzinfo=UTC)) == expected


def test_test_alert_sends_through_the_configured_server(tmp_path: Path, inbox: Inbox) -> None:
    import yaml

    cfg = tmp_path / "c.yaml"
    config = seed_config(f"sqlite:///{tmp_path / 't.db'}")
    data = {
        "database": config.database,
        "targets": [{"name": "a", "kind": "http", "url": "http://a/"}],
        "alerts": {"email": inbox.settings()},
    }
    cfg.write_text(yaml.safe_dump(data))

    result = runner.invoke(app, ["test-alert", "-c", str(cfg)])
    log = json.loads(runner.invoke(app, ["alerts", "-c", str(cfg), "-f", "json"]).stdout)

    assert result.exit_code == 0, result.output
    assert inbox.subjects == ["[inferwatch] test alert"]
    assert log[0]["reason"] == "test" and log[0]["status"] == "sent"


def test_test_alert_reports_a_refusal(tmp_path: Path, inbox: Inbox) -> None:
    import yaml

    inbox.reject_with = "550 5.7.1 relaying denied"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "database": f"sqlite:///{tmp_path / 't.db'}",
                "targets": [{"name": "a", "kind": "http", "url": "http://a/"}],
                "alerts": {"email": inbox.settings()},
            }
        )
    )

    result = runner.invoke(app, ["test-alert", "-c", str(cfg)])

    assert result.exit_code == 1
    assert "550" in result.stderr and "relaying denied" in result.stderr


def test_test_alert_without_email_settings_is_a_usage_error(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", [{"name": "a", "kind": "http", "url": "http://a/"}])
    result = runner.invoke(app, ["test-alert", "-c", str(cfg)])
    assert result.exit_code == 2 and "no alert channel to test" in result.stderr
    assert "alerts.webhook" in result.stderr  # it says what could be configured


@pytest.mark.parametrize("command", ["transitions", "incidents", "alerts"])
def test_an_unknown_target_is_a_usage_error_like_probe(seeded: Path, command: str) -> None:
    result = runner.invoke(app, [command, "-c", str(seeded), "-t", "lama-chat"])

    assert result.exit_code == 2
    assert "no target named 'lama-chat'" in result.stderr
    assert "llama-chat" in result.stderr  # the known names, to spot the typo


def test_a_target_only_in_the_history_is_still_reviewable(seeded: Path) -> None:
    # 'llama-chat' is in the seeded history but not in this config (removed since).
    result = runner.invoke(app, ["incidents", "-c", str(seeded), "-t", "llama-chat"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", ["transitions", "incidents", "alerts"])
def test_an_empty_result_says_nothing_found(seeded: Path, command: str) -> None:
    table = runner.invoke(app, [command, "-c", str(seeded), "--since", "1s", "-t", "a"])
    listing = runner.invoke(app, [command, "-c", str(seeded), "-s", "1s", "-t", "a", "-f", "json"])

    assert table.exit_code == 0 and listing.exit_code == 0
    assert table.stdout.startswith("nothing found: no ") and "for a since" in table.stdout
    assert json.loads(listing.stdout) == []

"""`inferwatch probe` and `inferwatch db` as a user runs them, against a real fake provider."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider
from tests.helpers import write_config

REQUIRED_KEYS = {
    "target",
    "kind",
    "url",
    "outcome",
    "http_status",
    "latency_ms",
    "detail",
    "hint",
    "request_id",
    "provider",
    "checked_at",
}


@pytest.fixture
def seeds_config(tmp_path: Path, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The seeds' story at one moment: embeddings fine, legacy host gone, token lacking scope."""
    monkeypatch.setenv("HF_TOKEN", "hf_cli_test_token_value_123456")
    provider.route(
        "/hf-inference/models/sentence-transformers/all-MiniLM-L6-v2/pipeline/feature-extraction",
        sim.embedding_ok(384),
    )
    provider.route("/models/gpt2", sim.legacy_410())
    provider.route("/v1/chat/completions", sim.router_403_scope("harshalhonde"))
    return write_config(
        tmp_path / "inferwatch.yaml",
        [
            {
                "name": "minilm-embeddings",
                "kind": "hf-inference",
                "base_url": provider.url,
                "model": "sentence-transformers/all-MiniLM-L6-v2",
                "token_env": "HF_TOKEN",
                "expect": {"embedding_dim": 384},
            },
            {
                "name": "gpt2-legacy",
                "kind": "hf-legacy",
                "model": "gpt2",
                "base_url": provider.url,
                "token_env": "HF_TOKEN",
            },
            {
                "name": "llama-chat",
                "kind": "openai-chat",
                "base_url": f"{provider.url}/v1",
                "model": "meta-llama/Llama-3.1-8B-Instruct",
                "token_env": "HF_TOKEN",
            },
        ],
        database="sqlite:///probes.db",
    )


def test_probe_json_has_one_object_per_target(seeds_config: Path) -> None:
    result = CliRunner().invoke(app, ["probe", "--config", str(seeds_config), "--format", "json"])

    assert result.exit_code == 0, result.output
    rows = {r["target"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"minilm-embeddings", "gpt2-legacy", "llama-chat"}
    for row in rows.values():
        assert set(row) >= REQUIRED_KEYS
    assert rows["minilm-embeddings"]["outcome"] == "ok"
    assert rows["gpt2-legacy"]["outcome"] == "deprecated"
    assert rows["gpt2-legacy"]["http_status"] == 410
    assert "switch to https://router.huggingface.co" in rows["gpt2-legacy"]["hint"]
    assert rows["llama-chat"]["outcome"] == "token_scope"
    assert rows["minilm-embeddings"]["provider"] == "hf-inference"


def test_probe_stores_every_result_next_to_the_config(seeds_config: Path) -> None:
    CliRunner().invoke(app, ["probe", "--config", str(seeds_config)])
    CliRunner().invoke(app, ["probe", "--config", str(seeds_config), "-t", "gpt2-legacy"])

    db = sqlite3.connect(seeds_config.parent / "probes.db")
    rows = db.execute(
        "select t.name, p.outcome, p.http_status "
        "from probe_results p join targets t on t.id = p.target_id"
    ).fetchall()
    assert sorted(rows) == sorted(
        [
            ("minilm-embeddings", "ok", 200),
            ("gpt2-legacy", "deprecated", 410),
            ("llama-chat", "token_scope", 403),
            ("gpt2-legacy", "deprecated", 410),
        ]
    )


def test_probe_table_says_what_and_what_to_do(seeds_config: Path) -> None:
    result = CliRunner().invoke(
        app, ["probe", "--config", str(seeds_config)], env={"COLUMNS": "250"}
    )

    assert result.exit_code == 0  # down targets are a result, not a failure
    for text in (
        "minilm-embeddings",
        "deprecated",
        "HTTP 410 ·",
        "→ switch to https://router.huggingface.co",
        "token_scope",
        "on behalf of user harshalhonde",
        "→ create a token with 'Make calls to Inference Providers'",
        "3 targets: 1 ok, 1 deprecated, 1 token_scope",
    ):
        assert text in result.stdout


def test_probe_only_the_named_targets(seeds_config: Path) -> None:
    result = CliRunner().invoke(
        app, ["probe", "-c", str(seeds_config), "-t", "llama-chat", "-f", "json"]
    )

    assert [r["target"] for r in json.loads(result.stdout)] == ["llama-chat"]


def test_an_unknown_target_name_is_a_usage_error(seeds_config: Path) -> None:
    result = CliRunner().invoke(app, ["probe", "-c", str(seeds_config), "-t", "nope"])

    assert result.exit_code == 2
    assert "no target named 'nope'" in result.stderr
    assert "minilm-embeddings" in result.stderr


def test_a_bad_config_stops_probe_with_exit_2(tmp_path: Path) -> None:
    bad = write_config(tmp_path / "c.yaml", [{"name": "x", "kind": "hf-legacy"}])

    result = CliRunner().invoke(app, ["probe", "-c", str(bad)])

    assert result.exit_code == 2
    assert "target 'x'" in result.stderr and "field 'model'" in result.stderr


def test_an_unusable_database_is_a_clear_runtime_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    cfg = write_config(
        tmp_path / "c.yaml",
        [{"name": "x", "kind": "http", "url": "http://127.0.0.1:9/"}],
        database=f"sqlite:///{tmp_path}/file/sub/db.sqlite",
    )

    result = CliRunner().invoke(app, ["db", "upgrade", "-c", str(cfg)])

    assert result.exit_code == 1
    assert "cannot open database" in result.stderr


def test_a_database_in_a_missing_folder_is_refused_not_created(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "c.yaml",
        [{"name": "x", "kind": "http", "url": "http://127.0.0.1:9/"}],
        database=f"sqlite:///{tmp_path}/typo/db.sqlite",
    )

    for command in ("probe", "prune", "test-alert"):
        result = CliRunner().invoke(app, [command, "-c", str(cfg)])
        assert result.exit_code in (1, 2), (command, result.output)
        if command != "test-alert":  # that one first says there is no channel to test
            assert "typo" in result.stderr and "does not exist" in result.stderr
            assert str(cfg) in result.stderr
    assert not (tmp_path / "typo").exists()

    result = CliRunner().invoke(app, ["db", "upgrade", "-c", str(cfg)])  # ...unless asked to
    assert result.exit_code == 0, result.output
    assert (tmp_path / "typo" / "db.sqlite").is_file()


def test_review_commands_on_a_missing_database_say_so(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "c.yaml",
        [{"name": "x", "kind": "http", "url": "http://127.0.0.1:9/"}],
        database=f"sqlite:///{tmp_path}/never.db",
    )

    for command in ("transitions", "incidents", "alerts", "dashboard"):
        result = CliRunner().invoke(app, [command, "-c", str(cfg)])
        assert result.exit_code == 1, (command, result.output)
        assert "no database at" in result.stderr and "run" in result.stderr
    assert not (tmp_path / "never.db").exists()


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "c.yaml",
        [{"name": "x", "kind": "http", "url": "http://x/"}],
        database="sqlite:///fresh.db",
    )

    result = CliRunner().invoke(app, ["db", "upgrade", "-c", str(cfg)])

    assert result.exit_code == 0
    from monitor.store.db import head_revision

    assert f"schema revision {head_revision()}" in result.stdout
    tables = (
        sqlite3.connect(tmp_path / "fresh.db").execute("select name from sqlite_master").fetchall()
    )
    assert ("probe_results",) in tables


def test_every_command_explains_itself() -> None:
    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    for command in ("check", "probe", "db"):
        assert command in top.stdout
        assert runner.invoke(app, [command, "--help"]).exit_code == 0
    assert "--format" in runner.invoke(app, ["probe", "--help"]).stdout

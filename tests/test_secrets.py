"""Tokens never reach the database, the output or the logs, even when a provider echoes them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.redact import MASK, RedactingFilter, Redactor
from monitor.simulator import FakeProvider, Reply, Seen
from tests.conftest import write_config

TOKEN = "hf_SECRETsecret0123456789abcdefghij"
OTHER = "sk-other-target-secret-987654321"
HEADER_KEY = "x-api-key-value-5555-abcdef"


def echo(seen: Seen) -> Reply:
    """A badly behaved provider that repeats the credentials it was sent everywhere."""
    auth = seen.headers.get("authorization", "")
    token = auth.removeprefix("Bearer ")
    # Put a token right across the 512-byte excerpt boundary, and more after it.
    body = "x" * 500 + token + f" again: {token} key={seen.headers.get('x-api-key', '')}"
    return Reply(
        410,
        {
            "error": f"token {token} is no longer supported. "
            "Please use https://router.huggingface.co instead.",
            "pad": body,
        },
        {"x-error-message": f"bad token {token}", "x-request-id": f"req-{token}"},
    )


@pytest.fixture
def leaky_setup(tmp_path: Path, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> Path:
    provider.route("/models/gpt2", echo)
    provider.route("/chat/completions", echo)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("OTHER_TOKEN", OTHER)
    monkeypatch.setenv("API_KEY", HEADER_KEY)
    return write_config(
        tmp_path / "inferwatch.yaml",
        [
            {
                "name": "legacy",
                "kind": "hf-legacy",
                "model": "gpt2",
                "base_url": provider.url,
                "token_env": "HF_TOKEN",
            },
            {
                "name": "chat",
                "kind": "openai-chat",
                "model": "m",
                "base_url": provider.url,
                "token_env": "OTHER_TOKEN",
                "headers": {"x-api-key": "${API_KEY}"},
            },
        ],
        database=f"sqlite:///{tmp_path / 'inferwatch.db'}",
    )


def test_it_never_stores_or_prints_a_token(
    leaky_setup: Path, tmp_path: Path, provider: FakeProvider
) -> None:
    runner = CliRunner()

    as_json = runner.invoke(app, ["probe", "--config", str(leaky_setup), "--format", "json"])
    as_table = runner.invoke(app, ["probe", "--config", str(leaky_setup)])

    assert as_json.exit_code == 0 and as_table.exit_code == 0
    # The provider really did receive and echo the tokens...
    assert any(TOKEN in r.headers.get("authorization", "") for r in provider.requests)
    # ...but nothing we produced contains them.
    db_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("inferwatch.db*"))
    for secret in (TOKEN, OTHER, HEADER_KEY):
        assert secret not in as_json.output
        assert secret not in as_table.output
        assert secret.encode() not in db_bytes
        # Not even a half-cut prefix at the 512-byte excerpt boundary.
        assert secret[:12].encode() not in db_bytes
    assert MASK in as_json.output
    assert "authorization" not in as_json.output.lower()


def test_the_excerpt_is_cut_after_redaction_so_no_prefix_leaks() -> None:
    redact = Redactor([TOKEN])
    text = "y" * 505 + TOKEN

    excerpt = redact.cut(text, 512)

    assert TOKEN[:5] not in excerpt
    assert excerpt.endswith(MASK)
    assert len(excerpt.encode()) <= 512


def test_logs_are_redacted_including_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redaction")
    handler_filter = RedactingFilter(Redactor([TOKEN]))
    logger.addFilter(handler_filter)
    try:
        with caplog.at_level(logging.INFO, logger="test.redaction"):
            logger.info("sending %s", TOKEN)
            try:
                raise ValueError(f"bad header Bearer {TOKEN}")
            except ValueError:
                logger.exception("probe failed")
    finally:
        logger.removeFilter(handler_filter)

    text = caplog.text
    assert TOKEN not in text
    assert "sending ***" in text
    assert "bad header Bearer ***" in text


def test_longer_secrets_are_masked_before_their_substrings() -> None:
    redact = Redactor(["abc12345", "abc12345-long-suffix"])

    assert redact("x abc12345-long-suffix y abc12345") == "x *** y ***"


def test_a_token_pasted_with_a_newline_is_stripped_and_never_echoed(provider: FakeProvider) -> None:
    from tests.conftest import make_config, probe_once

    provider.route("/models/gpt2", Reply(200, [[0.1]]))
    env = {"HF_TOKEN": TOKEN + "\n"}
    config = make_config(
        [
            {
                "name": "t",
                "kind": "hf-legacy",
                "model": "gpt2",
                "base_url": provider.url,
                "token_env": "HF_TOKEN",
            }
        ],
        env=env,
    )

    result = probe_once(config, env)["t"]

    assert result.outcome == "ok"
    assert provider.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"


def test_escaped_forms_of_a_secret_are_masked_too() -> None:
    redact = Redactor([TOKEN + "\n"])
    assert TOKEN not in redact(f"Illegal header value b'Bearer {TOKEN}\\\\n'")
    assert TOKEN not in redact(f"value {TOKEN!r}")


def test_keys_interpolated_into_urls_never_reach_the_database(
    tmp_path: Path, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "AIzaSyD-secret-gemini-key-0123456789"
    monkeypatch.setenv("GEMINI_API_KEY", key)
    provider.route("/v1/models", Reply(200, {"models": []}))
    cfg = write_config(
        tmp_path / "c.yaml",
        [
            {
                "name": "gemini",
                "kind": "http",
                "url": f"{provider.url}/v1/models?key=${{GEMINI_API_KEY}}",
            }
        ],
        database=f"sqlite:///{tmp_path / 'k.db'}",
    )
    runner = CliRunner()

    check = runner.invoke(app, ["check", "-c", str(cfg)])
    probe = runner.invoke(app, ["probe", "-c", str(cfg), "-f", "json"])

    assert provider.requests[-1].path == "/v1/models"  # the key was really sent...
    assert key not in check.output and key not in probe.output  # ...and shown nowhere
    db = b"".join(p.read_bytes() for p in tmp_path.glob("k.db*"))
    assert key.encode() not in db and b"key=***" in db


def test_a_database_password_is_never_printed(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "c.yaml",
        [{"name": "a", "kind": "http", "url": "http://a/"}],
        database="postgresql+psycopg://monitor:pg-s3cret-pw@127.0.0.1:1/inferwatch",
    )
    result = CliRunner().invoke(app, ["check", "-c", str(cfg)])
    assert result.exit_code == 0 and "pg-s3cret-pw" not in result.output and "***" in result.output

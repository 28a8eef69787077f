"""A hostile provider echoes the token back in every encoding: none of it is stored or shown.

The echo server (tests/helpers_echo.py) reflects the bearer token and the x-api-key value raw,
percent-encoded (once and twice), JSON-escaped, HTML-escaped, as base64/base64url of the token
and of the header it travels in, and as hex: in the redirect Location (so the stored URL), the
error message (so the detail, the hint, transitions and emails), the headers and the body. The
checks use an independent detector that decodes every field every way a reader could.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from monitor.agent.service import Monitor
from monitor.cli import app
from monitor.config.load import load_config
from monitor.domain.evidence import ProbeResult
from monitor.store import open_database
from tests.helpers import make_config, probe_once
from tests.helpers_echo import FORMS, STATUSES, EchoServer, leaks
from tests.smtp import Inbox

# Realistic shapes: `_`, `-`, `/` and `+` are the characters encoders treat differently.
TOKEN_A = "hf_Zq3vXkLm9_pQ2rT8wYb4NcE7sJ1uAxyzQw"
TOKEN_B = "sk-proj-Ab3/Cd+Ef0_12gH-45/IjKl+MnOpQr"
API_KEY = "x-api-key-value-5555-abcdef"
SECRETS = (TOKEN_A, TOKEN_B, API_KEY)
ENV = {"TOKEN_A": TOKEN_A, "TOKEN_B": TOKEN_B, "API_KEY": API_KEY}
# Credential-like query values the server puts in the redirect; not configured secrets.
UNKNOWN_CREDENTIALS = ("deadbeefcafef00d1234", "AKIAEXAMPLE0000", "c2lnbmF0dXJlLW5vdC1hLXRva2Vu")


def echo_targets(base: str, statuses: tuple[str, ...] = STATUSES) -> list[dict[str, Any]]:
    """A target for every form and status."""
    targets = []
    for i, (form, status) in enumerate((f, s) for f in FORMS for s in statuses):
        target: dict[str, Any] = {
            "name": f"{form}-{status}",
            "kind": "http",
            "token_env": "TOKEN_A" if i % 2 else "TOKEN_B",
            "headers": {"x-api-key": "${API_KEY}"},
        }
        if status == "302":  # the redirect itself is the answer: its Location is kept
            target |= {"url": f"{base}/cb/{form}/302/x", "follow_redirects": False}
        else:
            target["url"] = f"{base}/t/{form}/{status}"
        targets.append(target)
    return targets


def round_robin_targets(base: str) -> list[dict[str, Any]]:
    """One target per form, the statuses taken in turn."""
    every = echo_targets(base)
    by_name = {t["name"]: t for t in every}
    return [by_name[f"{form}-{STATUSES[i % len(STATUSES)]}"] for i, form in enumerate(FORMS)]


def result_texts(result: ProbeResult) -> Iterator[tuple[str, str]]:
    """Every text of a result that is stored or printed, by field."""
    for field, value in result.as_dict().items():
        if isinstance(value, str):
            yield field, value
    for name, value in result.headers.items():
        yield f"headers.{name}", value
    for name, value in result.facts.items():  # stored with the probe and the transition
        yield f"facts.{name}", json.dumps(value)


def leaking(texts: Iterator[tuple[str, str]], where: str) -> list[tuple[str, str, list[str]]]:
    found = []
    for place, text in texts:
        if secrets := leaks(text, SECRETS):
            found.append((where, place, secrets))
    return found


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    with EchoServer() as server:
        yield server


def test_without_redaction_the_echo_server_leaks_every_form(echo: EchoServer) -> None:
    """The scenario is real: with no secrets configured, every form reaches the results."""
    config = make_config(round_robin_targets(echo.url), env=ENV)
    config._secrets = frozenset()  # what a redactor that knows no secret would store

    results = probe_once(config, ENV)

    leaked_forms = {
        name.rsplit("-", 1)[0] for name, r in results.items() if leaking(result_texts(r), name)
    }
    assert leaked_forms == set(FORMS)
    assert any(TOKEN_A in s.get("authorization", "") for s in echo.seen)


def test_no_stored_or_printed_field_holds_a_token_in_any_encoding(echo: EchoServer) -> None:
    config = make_config(echo_targets(echo.url), env=ENV)

    results = probe_once(config, ENV)

    assert len(results) == len(FORMS) * len(STATUSES)
    assert {s.get("authorization") for s in echo.seen} == {f"Bearer {TOKEN_A}", f"Bearer {TOKEN_B}"}
    assert {s.get("x-api-key") for s in echo.seen} == {API_KEY}
    found = [leak for name, r in results.items() for leak in leaking(result_texts(r), name)]
    assert found == []
    for r in results.values():
        texts = [text for _, text in result_texts(r)]
        assert not [c for c in UNKNOWN_CREDENTIALS for t in texts if c in t]
    # What is not a credential is still there to read.
    raw = results["raw-401"]
    assert raw.http_status == 401 and raw.detail.startswith("HTTP 401: Invalid credentials ***")
    assert "/cb/raw/401/***?access_token=***&api_key=***" in raw.url and "page=2" in raw.url
    assert raw.headers["x-error-message"] == "bad credentials ***"
    assert results["b64-header-410"].hint.startswith("switch to https://router.example.com/v1")
    assert results["hex-302"].detail.startswith("unexpected HTTP 302 to /login/***?next=***")
    assert "retirement" in results["html-dec-200"].warning


def test_a_detail_that_would_be_cut_inside_an_encoded_token_is_redacted_first(
    echo: EchoServer,
) -> None:
    """Cut at 300 characters, the message would end inside the encoded token. Redaction
    comes first, so the token is masked whole and the mask leaves room for the line."""
    config = make_config(echo_targets(echo.url, ("401cut",)), env=ENV)

    results = probe_once(config, ENV)

    for name, r in results.items():
        assert "***" in r.detail and "…" not in r.detail, (name, r.detail[-40:])
        assert leaking(result_texts(r), name) == []


def test_the_probe_command_prints_no_token_in_any_encoding(
    echo: EchoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {"targets": round_robin_targets(echo.url), "database": f"sqlite:///{tmp_path}/c.db"}
        )
    )
    runner = CliRunner()

    as_json = runner.invoke(app, ["probe", "-c", str(path), "-f", "json"])
    as_table = runner.invoke(app, ["probe", "-c", str(path)])

    assert as_json.exception is None and as_table.exception is None
    assert "***" in as_json.output
    assert leaks(as_json.output, SECRETS) == [] and leaks(as_table.output, SECRETS) == []


# ---------------------------------------------------------------- the live loop, end to end


def stored_texts(db: Path) -> Iterator[tuple[str, str]]:
    """Every text (or blob) in every column of every table, as `table.column`."""
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, bytes):
                        value = value.decode("latin-1")
                    if isinstance(value, str):
                        yield f"{table}.{column}", value


def email_texts(messages: list[EmailMessage]) -> Iterator[tuple[str, str]]:
    for i, message in enumerate(messages):
        for name, value in message.items():
            yield f"email {i} {name}", str(value)
        for part in message.walk():
            if part.get_content_maintype() == "text":
                yield f"email {i} {part.get_content_type()}", part.get_content()


def test_the_live_loop_stores_and_mails_no_token_in_any_encoding(
    tmp_path: Path, inbox: Inbox
) -> None:
    db = tmp_path / "echo.db"
    with EchoServer(healthy_first=2) as echo:
        targets = round_robin_targets(echo.url)
        path = tmp_path / "inferwatch.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "database": f"sqlite:///{db}",
                    "defaults": {
                        "interval": "200ms",
                        "timeout": "2s",
                        "failure_threshold": 1,
                        "contract_threshold": 1,
                    },
                    "alerts": {"email": inbox.settings(), "dashboard_url": "http://dash:8501"},
                    "targets": targets,
                }
            )
        )
        failing = [t for t in targets if not t["name"].endswith("-200")]
        config = load_config(path, env=ENV)
        engine = open_database(config.database)

        def probes_per_target() -> int:
            with sqlite3.connect(db) as conn:
                rows = conn.execute(
                    "SELECT target_id, COUNT(*) FROM probe_results GROUP BY target_id"
                )
                counts = [n for _, n in rows]
            return min(counts) if len(counts) == len(targets) else 0

        async def main() -> None:
            monitor = Monitor(config, engine, env=ENV, config_path=path)
            task = asyncio.create_task(monitor.run())
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and not (
                len(inbox.messages) >= len(failing) and probes_per_target() >= 4
            ):
                await asyncio.sleep(0.1)
            monitor.stop()
            await asyncio.wait_for(task, 15)

        asyncio.run(main())
        engine.dispose()

    assert len(inbox.messages) >= len(failing)
    assert probes_per_target() >= 4
    found = leaking(stored_texts(db), "db") + leaking(email_texts(inbox.messages), "email")
    assert found == []
    stored = [text for _, text in stored_texts(db)] + [t for _, t in email_texts(inbox.messages)]
    assert not [c for c in UNKNOWN_CREDENTIALS for t in stored if c in t]
    data = b"".join(p.read_bytes() for p in tmp_path.glob("echo.db*"))
    assert not [s for s in SECRETS if s.encode() in data or s[:12].encode() in data]
    # The alerts still say what happened.
    assert any("ok → auth_invalid (401)" in s for s in inbox.subjects)

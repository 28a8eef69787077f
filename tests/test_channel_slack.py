"""The Slack channel against a fake incoming webhook on 127.0.0.1 that checks the Block Kit
shape and answers as Slack does (ok / invalid_payload / channel_is_archived / 429 ...).

Also the whole loop once: a target's confirmed transition is one POST to the webhook, one to
Slack and one email.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from monitor.agent.service import Monitor
from monitor.alerts.channels import slack
from monitor.alerts.channels.common import NEUTRAL_COLOUR
from monitor.alerts.outbox import Sender, retry_delay
from monitor.alerts.test import queue_test_alert
from monitor.cli import app
from monitor.config.load import load_config
from monitor.config.model import Config
from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider
from monitor.domain.alert_event import AlertEvent, ProbeLine
from monitor.domain.evidence import CLASS_COLOUR
from monitor.store import open_database
from tests.helpers import make_config
from tests.smtp import Inbox
from tests.test_channel_webhook import (
    ENV,
    SIGNING_KEY,
    Answer,
    Received,
    Receiver,
    alerts,
    attempts,
    deliver_due,
    outage_alert,
    verified,
)
from tests.test_loop_e2e import OK_JSON, probes
from tests.test_loop_outbox import Clock

SLACK_PATH = "/services/T0AAA/B0BBB/xoxb-hook-token-5e6f"

# ---------------------------------------------------------------- a fake Slack


_LINK = re.compile(r"<(https?://[^|<>\s]+)\|([^<>]*)>")
_ENTITY = re.compile(r"&(amp|lt|gt);")


def mrkdwn_problems(text: str, where: str) -> list[str]:
    """Slack's rule: &, < and > are escaped except in <url|label> links."""
    bare = _ENTITY.sub("", _LINK.sub("", text))
    return [f"{where}: unescaped {c!r}" for c in "&<>" if c in bare]


def block_kit_problems(payload: Any) -> list[str]:
    """What Slack would reject (invalid_payload) or cut, per its Block Kit limits."""
    problems: list[str] = []
    if not isinstance(payload.get("text"), str) or not payload["text"].strip():
        problems.append("no fallback text")
    else:
        problems += mrkdwn_problems(payload["text"], "text")
    (attachment,) = payload.get("attachments") or [{}]
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", attachment.get("color", "")):
        problems.append("attachment colour is not #rrggbb")
    blocks = attachment.get("blocks") or []
    if not 1 <= len(blocks) <= 50:
        problems.append(f"{len(blocks)} blocks")
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "header":
            text = block["text"]
            if text["type"] != "plain_text" or not 0 < len(text["text"]) <= 150:
                problems.append(f"block {i}: header text {len(text['text'])} chars")
        elif kind == "section":
            texts = [block["text"]] if "text" in block else []
            fields = block.get("fields", [])
            if (not texts and not fields) or len(fields) > 10:
                problems.append(f"block {i}: section with {len(fields)} fields and no text")
            for t in texts:
                if not 0 < len(t["text"]) <= 3000:
                    problems.append(f"block {i}: section text {len(t['text'])} chars")
            for f in fields:
                if not 0 < len(f["text"]) <= 2000:
                    problems.append(f"block {i}: field {len(f['text'])} chars")
            for t in texts + fields:
                if t["type"] == "mrkdwn":
                    problems += mrkdwn_problems(t["text"], f"block {i}")
        elif kind == "context":
            if not 1 <= len(block["elements"]) <= 10:
                problems.append(f"block {i}: context elements")
        else:
            problems.append(f"block {i}: unknown type {kind!r}")
    return problems


class FakeSlack(Receiver):
    """Answers 400 invalid_payload to a malformed message, like Slack; else the script."""

    def __init__(self) -> None:
        super().__init__(check=self.validate)
        self.problems: list[list[str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{SLACK_PATH}"

    def validate(self, request: Received) -> Answer | None:
        try:
            payload = request.json()
            problems = block_kit_problems(payload)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            problems = [f"unreadable: {exc!r}"]
        self.problems.append(problems)
        return (400, b"invalid_payload", {}) if problems else None

    def messages(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.received]


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    box = FakeSlack()
    box.up()
    yield box
    box.down()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    box = Receiver().up()
    yield box
    box.down()


SLACK_ENV = {**ENV, "SLACK_URL": ""}


def slack_config(**extra: Any) -> Config:
    return make_config(
        [{"name": "t0", "kind": "hf-legacy", "model": "gpt2", "base_url": "http://x"}],
        env=SLACK_ENV,
        alerts={
            "slack": {"webhook_url_env": "SLACK_URL", "timeout": "2s"},
            "dashboard_url": "http://dash:8501",
            **extra,
        },
    )


def env_for(fake: FakeSlack) -> dict[str, str]:
    return {**ENV, "SLACK_URL": fake.url}


def all_text(message: dict[str, Any]) -> str:
    """Every text in the message, as one string (for `in` checks)."""
    return json.dumps(message, ensure_ascii=False)


# ---------------------------------------------------------------- the message


def test_a_transition_says_what_the_email_says_in_the_outcomes_colour(
    db_url: str, fake_slack: FakeSlack
) -> None:
    sender = outage_alert(db_url, slack_config(), Clock(), env=env_for(fake_slack))
    (alert,) = alerts(sender)

    deliver_due(sender)

    assert fake_slack.problems == [[]]
    (message,) = fake_slack.messages()
    assert message["text"] == alert.subject.replace("&", "&amp;").replace(">", "&gt;")
    (attachment,) = message["attachments"]
    assert attachment["color"] == CLASS_COLOUR["contract"]  # deprecated: a contract change
    blocks = attachment["blocks"]
    assert blocks[0]["text"]["text"] == "t0: ok → deprecated"
    text = all_text(message)
    assert "*t0* (hf-legacy) changed from *ok* to *deprecated*." in text
    assert "*What to do:* switch to https://router.huggingface.co" in text
    assert "no longer supported" in text  # the provider's words
    assert "*Since*\\n2026-11-01 09:02:00 UTC" in text
    assert "*Confirmed*\\n2026-11-01 09:03:00 UTC (1m after it began)" in text
    assert "*Request id*\\nRoot=1-abc" in text
    assert "<http://dash:8501/target?name=t0|Open in the dashboard>" in text
    assert re.search(r"<http://dash:8501/incident\?id=\d+\|Open the incident>", text)
    (sent,) = alerts(sender)
    assert sent.status == "sent"


def event(**changes: Any) -> AlertEvent:
    base = AlertEvent.from_json(
        {
            "reason": "transition",
            "target": "t",
            "kind": "http",
            "url": "http://x/?a=1&b=2",
            "from_outcome": "ok",
            "to_outcome": "server_error",
            "label": "ok → server_error (500)",
            "at": "2026-11-01T09:03:00",
            "since": "2026-11-01T09:02:00",
            "http_status": 500,
            "detail": "HTTP 500",
        }
    )
    return dataclasses.replace(base, **changes)


def test_provider_text_is_escaped_and_links_stay_links() -> None:
    message = slack.render(
        event(detail="<!channel> & <https://evil|click> <b>", hint="use a < b > c")
    )
    assert block_kit_problems(message) == []
    text = all_text(message)
    assert "&lt;!channel&gt; &amp; &lt;https://evil|click&gt; &lt;b&gt;" in text
    assert "use a &lt; b &gt; c" in text
    assert "http://x/?a=1&amp;b=2" in text


def test_block_kit_limits_hold_for_huge_provider_answers() -> None:
    long_line = ProbeLine(event().at, "server_error", 500, 12.0, "x" * 500)
    message = slack.render(
        event(
            target="t" * 400,
            detail="&" * 10_000,  # escaping makes it five times longer
            hint="<" * 5000,
            recent=(long_line,) * 60,
        )
    )
    assert block_kit_problems(message) == []
    header = message["attachments"][0]["blocks"][0]["text"]["text"]
    assert len(header) == 150 and header.endswith("…")


def test_a_cut_never_splits_an_entity() -> None:
    assert slack.fit("ab&amp;cd", 5) == "ab…"
    assert slack.fit("ab&amp;cd", 8) == "ab&amp;…"
    assert slack.fit("short", 10) == "short"


def test_recent_probes_are_listed_while_they_fit() -> None:
    lines = tuple(
        ProbeLine(event().at - timedelta(minutes=i), "server_error", 500, 40.0, f"probe {i}")
        for i in range(5)
    )
    text = all_text(slack.render(event(recent=lines)))
    assert "*Last probes* (newest first)" in text
    assert all(f"probe {i}" in text for i in range(5))
    assert "```" in text


def test_each_reason_has_its_own_headline_and_colour() -> None:
    heads = {
        reason: slack.render(event(reason=reason))["attachments"][0]
        for reason in ("reminder", "flapping_started", "flapping_stopped", "test")
    }
    assert heads["reminder"]["blocks"][0]["text"]["text"] == "Reminder: t is still server_error"
    assert heads["flapping_started"]["blocks"][0]["text"]["text"] == "t is flapping"
    assert heads["test"]["blocks"][0]["text"]["text"] == "Test alert from inferwatch"
    assert heads["test"]["color"] == NEUTRAL_COLOUR
    assert heads["reminder"]["color"] == CLASS_COLOUR["transient"]
    recovered = slack.render(event(from_outcome="server_error", to_outcome="ok"))
    assert recovered["attachments"][0]["blocks"][0]["text"]["text"] == "t works again"
    assert recovered["attachments"][0]["color"] == CLASS_COLOUR["ok"]


def test_the_end_of_a_quiet_window_says_where_the_target_stands() -> None:
    message = slack.render(
        event(reason="quiet_ended", label="still failing after maintenance weekly-deploy")
    )
    blocks = message["attachments"][0]["blocks"]
    assert blocks[0]["text"]["text"] == "t: still failing after maintenance weekly-deploy"
    assert "recorded, not sent" in blocks[1]["text"]["text"]
    assert "(the last alert said *ok*)" in blocks[1]["text"]["text"]
    assert block_kit_problems(message) == []


def test_a_test_alert_reaches_slack(db_url: str, fake_slack: FakeSlack) -> None:
    config = slack_config()
    sender = Sender(open_database(db_url), config, env=env_for(fake_slack))
    assert sender.deliver(queue_test_alert(sender.engine, config, "slack"))
    (message,) = fake_slack.messages()
    assert fake_slack.problems == [[]]
    assert "Slack alerts work" in all_text(message)


# ---------------------------------------------------------------- Slack's answers


@pytest.mark.parametrize(
    ("status", "words", "advice"),
    [
        (400, "invalid_payload", "rejected the message's shape"),
        (403, "invalid_token", "was revoked"),
        (404, "no_service", "no longer exists"),
        (410, "channel_is_archived", "the Slack channel is archived"),
    ],
)
def test_slacks_refusals_fail_for_good_and_say_what_to_do(
    db_url: str, fake_slack: FakeSlack, status: int, words: str, advice: str
) -> None:
    clock = Clock()
    sender = outage_alert(db_url, slack_config(), clock, env=env_for(fake_slack))
    fake_slack.default = (status, words.encode(), {})

    deliver_due(sender)
    clock.advance(3600)
    deliver_due(sender)

    assert len(fake_slack.received) == 1
    (alert,) = alerts(sender)
    assert alert.status == "failed"
    assert alert.last_error.startswith(f"Slack answered {status}: {words}; ")
    assert advice in alert.last_error


def test_a_malformed_message_is_refused_by_the_fake_as_by_slack(fake_slack: FakeSlack) -> None:
    """The fake's validator can fail: a header over 150 characters is invalid_payload."""
    message = slack.render(event())
    message["attachments"][0]["blocks"][0]["text"]["text"] = "h" * 151
    fake_slack.validate(Received(SLACK_PATH, {}, json.dumps(message).encode()))
    assert fake_slack.problems == [["block 0: header text 151 chars"]]


@pytest.mark.parametrize(
    "answer",
    [(429, b"rate_limited", {"Retry-After": "30"}), (500, b"", {}), (503, b"busy", {})],
)
def test_rate_limits_and_server_errors_are_retried(
    db_url: str, fake_slack: FakeSlack, answer: Answer
) -> None:
    clock = Clock()
    sender = outage_alert(db_url, slack_config(), clock, env=env_for(fake_slack))
    fake_slack.script = [answer]

    deliver_due(sender)
    (alert,) = alerts(sender)
    assert alert.status == "pending" and f"Slack answered {answer[0]}" in alert.last_error
    if answer[0] == 429:
        assert alert.last_error == "Slack answered 429: rate_limited (Retry-After: 30)"
        clock.advance(retry_delay(1))
        deliver_due(sender)  # Slack asked for 30 s: not yet
        assert len(fake_slack.received) == 1
        clock.advance(30 - retry_delay(1))
    else:
        clock.advance(retry_delay(1))
    deliver_due(sender)

    (alert,) = alerts(sender)
    assert alert.status == "sent"
    assert [a.ok for a in attempts(sender, alert.id)] == [False, True]
    assert len(fake_slack.received) == 2


def test_a_missing_hook_variable_is_a_clear_error(db_url: str, fake_slack: FakeSlack) -> None:
    sender = outage_alert(db_url, slack_config(), Clock(), env=ENV)
    deliver_due(sender)
    (alert,) = alerts(sender)
    assert alert.status == "failed" and fake_slack.received == []
    assert "SLACK_URL (alerts.slack.webhook_url_env) is not set or empty" in alert.last_error


def test_the_hook_url_reaches_neither_the_database_nor_the_logs(
    db_url: str, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    echo = f"no_service for {fake_slack.url}; Cannot POST {SLACK_PATH}"  # a proxy's words
    fake_slack.script = [(404, echo.encode(), {})]
    with caplog.at_level(logging.DEBUG):
        sender = outage_alert(db_url, slack_config(), clock, env=env_for(fake_slack))
        deliver_due(sender)
    (alert,) = alerts(sender)
    assert alert.status == "failed" and alert.last_error.startswith("Slack answered 404")
    assert alert.last_error.count("***") == 2
    dump = "\n".join(sqlite3.connect(db_url.removeprefix("sqlite:///")).iterdump())
    assert "Slack answered 404" in dump
    for secret in (fake_slack.url, SLACK_PATH):
        assert secret not in dump
        assert secret not in caplog.text
    assert "failed for good" in caplog.text


# ---------------------------------------------------------------- the whole loop


def test_a_confirmed_transition_is_one_post_per_channel_in_a_live_run(
    tmp_path: Path,
    provider: FakeProvider,
    inbox: Inbox,
    hook: Receiver,
    fake_slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider.route("/gone/models/gpt2", [OK_JSON, OK_JSON, OK_JSON, sim.legacy_410()])
    path = tmp_path / "inferwatch.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database": f"sqlite:///{tmp_path / 'loop.db'}",
                "defaults": {"interval": "200ms", "timeout": "1s"},
                "alerts": {
                    "email": inbox.settings(),
                    "webhook": {"url": hook.url, "secret_env": "HOOK_KEY"},
                    "slack": {"webhook_url_env": "SLACK_URL"},
                    "dashboard_url": "http://localhost:8501",
                },
                "targets": [
                    {
                        "name": "gone",
                        "kind": "hf-legacy",
                        "model": "gpt2",
                        "base_url": f"{provider.url}/gone",
                    }
                ],
            }
        )
    )
    env = env_for(fake_slack)
    config = load_config(path, env=env)
    engine = open_database(config.database)

    def settled() -> bool:
        arrived = hook.received and fake_slack.received and inbox.messages
        return bool(arrived) and probes(engine, "gone") >= 12

    async def main() -> None:
        monitor = Monitor(config, engine, env=env, config_path=path)
        task = asyncio.create_task(monitor.run())
        deadline = time.monotonic() + 20
        while not settled() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        monitor.stop()
        await asyncio.wait_for(task, 12)

    with caplog.at_level(logging.INFO):
        asyncio.run(main())

    assert len(inbox.messages) == 1
    assert inbox.subjects == ["[inferwatch] gone: ok → deprecated (410)"]
    (posted,) = hook.received
    assert verified(posted) and posted.json()["label"] == "ok → deprecated (410)"
    (message,) = fake_slack.messages()
    assert fake_slack.problems == [[]]
    assert message["attachments"][0]["blocks"][0]["text"]["text"] == "gone: ok → deprecated"
    for secret in (hook.url, fake_slack.url, SIGNING_KEY):
        assert secret not in caplog.text


# ---------------------------------------------------------------- inferwatch test-alert


def test_test_alert_reaches_the_webhook_and_slack_and_says_why_one_failed(
    tmp_path: Path, hook: Receiver, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_KEY", SIGNING_KEY)
    monkeypatch.setenv("SLACK_URL", fake_slack.url)
    cfg = tmp_path / "inferwatch.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "database": f"sqlite:///{tmp_path / 'inferwatch.db'}",
                "targets": [{"name": "a", "kind": "http", "url": "http://a/"}],
                "alerts": {
                    "webhook": {"url": hook.url, "secret_env": "HOOK_KEY"},
                    "slack": {"webhook_url_env": "SLACK_URL"},
                },
            }
        )
    )
    fake_slack.default = (410, b"channel_is_archived", {})

    result = CliRunner().invoke(app, ["test-alert", "-c", str(cfg)])

    assert result.exit_code == 1, result.output
    assert "✓ webhook: test alert sent" in result.stdout
    error = " ".join(result.stderr.split())
    assert "slack: the test alert was not sent: Slack answered 410: channel_is_archived" in error
    (posted,) = hook.received
    assert verified(posted) and posted.json()["event"] == "test"
    assert fake_slack.problems == [[]]  # a well-formed message Slack refused for its own reasons
    for secret in (hook.url, fake_slack.url, SIGNING_KEY, SLACK_PATH):
        assert secret not in result.output

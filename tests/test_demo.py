"""`inferwatch demo`: its story is a pure table, each answer is judged as the story says, and a
short accelerated run catches the emails and records the states a newcomer must see."""

from __future__ import annotations

import email
import itertools
from email.policy import default
from pathlib import Path

import pytest
import yaml

from monitor.config.load import parse_config
from monitor.demo.simulator import FakeProvider
from monitor.demo.story import (
    DEMO_TOKEN,
    PROBE_EVERY,
    SCRIPT,
    STORY_SECONDS,
    TARGETS,
    StoryClock,
    beat_at,
    demo_config,
    reply_at,
    route_path,
)
from monitor.domain.evidence import Outcome
from tests.helpers import probe_once
from tests.test_launch import db_count, get, start_cli, stop, wait_for


@pytest.mark.parametrize(
    ("target", "second", "status", "outcome"),
    [
        ("minilm-embeddings", 0, 200, Outcome.OK),
        ("minilm-embeddings", 10_000, 200, Outcome.OK),
        ("gpt2-legacy", 11.9, 200, Outcome.OK),
        ("gpt2-legacy", 12, 404, Outcome.DEPRECATED),
        ("gpt2-legacy", 35, 410, Outcome.DEPRECATED),
        ("gpt2-legacy", 10_000, 410, Outcome.DEPRECATED),  # the story's end state stays
        ("sst2-classifier", 22, 503, Outcome.LOADING),
        ("sst2-classifier", 24, 200, Outcome.OK),
        ("sst2-classifier", 90, 503, Outcome.LOADING),
        ("sst2-classifier", 98, 200, Outcome.OK),
        ("hf-token", 44.9, 200, Outcome.OK),
        ("hf-token", 45, 200, Outcome.TOKEN_SCOPE),  # whoami answers 200 but lacks the permission
        ("llama-chat", 52, 403, Outcome.TOKEN_SCOPE),
        ("mistral-chat", 64, 429, Outcome.RATE_LIMITED),
        ("mistral-chat", 80, 200, Outcome.OK),
        ("llama-providers", 28, 200, Outcome.OK),  # together dropped: a warning, still ok
        ("claude-status", 56, 200, Outcome.PROVIDER_INCIDENT),
        ("claude-chat", 60, 529, Outcome.OVERLOADED),
        ("claude-chat", 100, 200, Outcome.OK),
    ],
)
def test_the_story_is_a_table_of_time_to_answer(
    target: str, second: float, status: int, outcome: Outcome
) -> None:
    assert reply_at(target, second).status == status
    assert beat_at(target, second).outcome is outcome


def test_an_unknown_target_has_no_answer() -> None:
    with pytest.raises(KeyError):
        reply_at("nope", 1)


def test_every_answer_is_judged_as_the_story_says(provider: FakeProvider) -> None:
    """The real probe and classifier at every beat: the script cannot drift from them."""
    config = parse_config(
        yaml.safe_dump(demo_config(provider.url, 25, "http://localhost:1", 2)),
        env={"HF_TOKEN": DEMO_TOKEN},
    )
    for second in sorted({b.at for b in SCRIPT}):
        for target in config.targets:
            provider.route(route_path(target), reply_at(target.name, second))
        results = probe_once(config, {"HF_TOKEN": DEMO_TOKEN})
        for name, result in results.items():
            assert result.outcome is beat_at(name, second).outcome, (name, second, result.detail)
    assert "https://router.huggingface.co" in results["gpt2-legacy"].hint  # named by the 410
    last = {r.path.split("/")[1]: r for r in provider.requests}  # each target's last request
    assert last["llama-chat"].headers["authorization"] == f"Bearer {DEMO_TOKEN}"
    assert last["claude-chat"].headers["x-api-key"] == DEMO_TOKEN
    assert not {"authorization", "x-api-key"} & set(last["claude-status"].headers)  # public


def test_the_timeline_shows_everything_within_two_minutes() -> None:
    """The flags a newcomer must see come early; failures last long enough to be confirmed."""
    starts = {(b.target, b.outcome): b.at for b in SCRIPT}
    assert reply_at("gpt2-legacy", 60).status == 410
    assert (
        starts[("hf-token", Outcome.TOKEN_SCOPE)] < 60
        and starts[("llama-chat", Outcome.TOKEN_SCOPE)] < 60
    )
    assert all(b.at < STORY_SECONDS for b in SCRIPT)
    assert {t["name"] for t in TARGETS} == {b.target for b in SCRIPT}
    for target in {b.target for b in SCRIPT}:
        beats = sorted((b for b in SCRIPT if b.target == target), key=lambda b: b.at)
        for beat, after in itertools.pairwise(beats):
            probes = (after.at - beat.at) / PROBE_EVERY
            if beat.outcome is Outcome.LOADING and probes == 1:
                continue  # the lone blip that must not alert
            assert probes >= 4, f"{target} at {beat.at}: too short to be confirmed"


def test_the_clock_scales_the_story_and_the_intervals() -> None:
    now = [100.0]
    clock = StoryClock(0.5, now=lambda: now[0])
    now[0] += 15
    assert clock.story() == 60.0 and clock.real(120) == 30
    two = demo_config("http://x", 25, "http://localhost:1", 2)
    assert two["defaults"]["interval"] == "2000ms"
    assert demo_config("http://x", 25, "u", 0.25)["targets"][0]["interval"] == "250ms"
    assert two["defaults"].keys() == {"interval", "timeout"}  # thresholds stay the defaults


def test_a_short_demo_catches_emails_and_records_the_flags(tmp_path: Path, free_port: int) -> None:
    folder = tmp_path / "demo"
    db = folder / "inferwatch.db"
    log = tmp_path / "demo.log"
    per_state = (
        "select count(*) from transitions x join targets t on t.id = x.target_id "
        "where x.to_outcome = '{}'"
    )
    proc = start_cli(
        ["demo", "--minutes", "0.25", "--dir", str(folder), "--port", str(free_port)],
        log,
        env={"HF_TOKEN": "hf_real_token_that_must_not_be_used"},
    )
    try:
        wait_for(
            lambda: (
                db_count(db, per_state.format("deprecated")) >= 1
                and db_count(db, per_state.format("token_scope")) >= 2
                and db_count(db, per_state.format("overloaded")) >= 1
                and len(list((folder / "mail").glob("*.eml"))) >= 4
            ),
            proc,
            log,
            timeout=50,
        )
        wait_for(lambda: f"http://localhost:{free_port}" in log.read_text(), proc, log)
        assert get(f"http://127.0.0.1:{free_port}/_stcore/health") == (200, "ok")
    finally:
        code, _ = stop(proc, log)
    text = log.read_text()
    assert code == 0, text
    assert "✉  [inferwatch] gpt2-legacy: ok → deprecated (404)" in text
    assert "✉  [inferwatch] hf-token: token scope regression" in text
    assert "Traceback" not in text
    emails = sorted((folder / "mail").glob("*.eml"))
    first = email.message_from_bytes(emails[0].read_bytes(), policy=default)
    assert str(first["subject"]) == "[inferwatch] gpt2-legacy: ok → deprecated (404)"
    assert "move to https://router.huggingface.co" in first.get_body(("plain",)).get_content()
    overload = next(e for e in emails if "claude-chat" in e.name)
    said = email.message_from_bytes(overload.read_bytes(), policy=default)
    body = " ".join(said.get_body(("plain",)).get_content().split())
    assert "the provider reports an incident since" in body and "claude-status" in body
    for stored in [db, *emails]:
        data = stored.read_bytes()
        assert DEMO_TOKEN.encode() not in data and b"hf_real_token" not in data

"""The dashboard's flags read the structured facts, and say exactly what they said before.

Rows stored before facts existed (facts == {}) still get the replacement URL and the missing
permission read back from their prose.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dashboard import format as f
from monitor.demo import simulator as sim
from monitor.demo.simulator import Reply
from monitor.domain.evidence import Evidence, Timings
from monitor.domain.redact import Redactor
from monitor.probing.pipeline import judge, to_result
from tests.helpers import make_config

UTC_ZONE = ZoneInfo("UTC")
TARGETS = make_config(
    [
        {"name": "legacy", "kind": "hf-legacy", "model": "gpt2", "token_env": "HF_TOKEN"},
        {"name": "embed", "kind": "hf-inference", "model": "m", "token_env": "HF_TOKEN"},
        {"name": "chat", "kind": "openai-chat", "model": "m", "token_env": "HF_TOKEN"},
        {"name": "http", "kind": "http", "url": "http://x/"},
        {"name": "whoami", "kind": "hf-whoami", "token_env": "HF_TOKEN"},
    ]
).targets
REPLIES = [
    sim.legacy_410("plain"),
    sim.legacy_410("slash"),
    sim.legacy_410("hf-inference"),
    sim.legacy_404(),
    sim.router_410_model_deprecated(),
    sim.openai_404_deprecated(),
    sim.router_403_scope(),
    sim.whoami(permissions=["repo.content.read"]),
    Reply(400, {"error": "gone; use https://new.example/v2, instead"}),
    Reply(404, {"error": "The model is deprecated. Please use https://x.example/v1/ instead."}),
]


def result_of(target: Any, reply: Reply) -> Any:
    body, ctype = reply.encoded()
    ev = Evidence(
        url="http://x/",
        method="POST",
        started_at=datetime(2026, 11, 20, tzinfo=UTC),
        token_sent=True,
        status=reply.status,
        headers={k.lower(): v for k, v in reply.headers.items()} | {"content-type": ctype},
        body=body,
        timings=Timings(total_ms=5.0),
    )
    return to_result(target, ev, judge(target, ev), Redactor([]))


@pytest.mark.parametrize("reply", REPLIES)
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_a_flag_from_facts_reads_as_the_flag_from_prose(target: Any, reply: Reply) -> None:
    r = result_of(target, reply)
    from_prose = f.flag_html("t", r.outcome, None, r.detail, r.hint, UTC_ZONE)
    from_facts = f.flag_html("t", r.outcome, None, r.detail, r.hint, UTC_ZONE, facts=r.facts)
    assert from_facts == from_prose


def test_facts_name_the_replacement_and_the_permission() -> None:
    url = "https://router.huggingface.co"
    html = f.flag_html("m", "deprecated", None, "", "", UTC_ZONE, facts={"replacement_url": url})
    assert f"Replacement: <a href='{url}'>{url}</a>" in html
    html = f.flag_html(
        "m", "token_scope", None, "", "", UTC_ZONE, facts={"missing_permission": "<Make calls>"}
    )
    assert "Missing token permission: <b>&lt;Make calls&gt;</b>" in html


def test_rows_with_facts_are_not_read_back_from_prose() -> None:
    hint = "switch to https://old.example (named by the provider as the replacement)"
    facts = {"sunset": "2026-07-01"}  # facts, but no replacement named
    assert f.replacement_url("", hint, facts) is None
    assert f.missing_permission("create a token with 'X' at", {"retry_after_s": 1.0}) is None


@pytest.mark.parametrize("facts", [{}, None, ["not", "a", "mapping"]])
def test_rows_from_before_facts_fall_back_to_the_prose(facts: Any) -> None:
    hint = "switch to https://router.huggingface.co (named by the provider as the replacement)"
    assert f.replacement_url("", hint, facts) == "https://router.huggingface.co"
    permission = f.missing_permission("create a token with 'Make calls' at", facts)
    assert permission == "Make calls"

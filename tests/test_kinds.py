"""The kinds' hooks: the headers that carry the token, and the provider's reading of errors.

The generic classifier knows HTTP families and standard headers only; what a Hugging Face or
OpenAI-style answer means is asked of the kind first (`TargetBase.judge_error`).
"""

from __future__ import annotations

import ast
import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider, Reply, Seen
from monitor.domain.evidence import CREDENTIAL_HEADERS, Evidence, Outcome, Timings, Verdict
from monitor.domain.redact import Redactor
from monitor.probing.classify import classify
from monitor.probing.engine import Prober
from monitor.probing.pipeline import probe_one
from monitor.targets import TARGET_KINDS
from monitor.targets.http import HttpTarget
from tests.helpers import make_config
from tests.helpers_echo import leaks

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-ant-api03-Zq3vXkLm9_pQ2rT8wYb4NcE7sJ1uAxyzQw"


class ApiKeyTarget(HttpTarget):
    """What an Anthropic kind would add: its own auth header and a version header."""

    default_headers: ClassVar[Mapping[str, str]] = {"anthropic-version": "2023-06-01"}

    def auth_headers(self, token: str) -> dict[str, str]:
        return {"x-api-key": token}


def api_key_target(url: str = "http://x/v1/messages", **extra: Any) -> ApiKeyTarget:
    raw = {"name": "a", "kind": "http", "url": url, "token_env": "KEY", **extra}
    return ApiKeyTarget.model_validate(raw)


# ---------------------------------------------------------------- auth_headers / default_headers


def test_the_default_is_a_bearer_token() -> None:
    target = make_config([{"name": "t", "kind": "http", "url": "http://x/"}]).targets[0]
    spec = target.build_request("tok")
    assert spec.headers["authorization"] == "Bearer tok" and spec.token_sent
    assert "authorization" not in target.build_request(None).headers


def test_a_kind_can_send_its_own_auth_and_version_headers() -> None:
    spec = api_key_target().build_request(KEY)
    assert spec.headers["x-api-key"] == KEY
    assert spec.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in spec.headers
    assert spec.token_sent  # so a 401 reads as a rejected key, not a missing one
    # The version goes out without a key too (the API then says the key is missing).
    unsent = api_key_target().build_request(None)
    assert unsent.headers["anthropic-version"] == "2023-06-01" and not unsent.token_sent


def test_the_users_headers_override_the_kinds_but_never_the_token() -> None:
    target = api_key_target(headers={"Anthropic-Version": "2024-01-01"})
    assert target.build_request(KEY).headers["anthropic-version"] == "2024-01-01"


def test_a_header_that_also_sets_the_token_is_a_config_error() -> None:
    assert api_key_target(headers={"X-API-Key": "k"}).config_errors() == [
        ("headers", "a x-api-key header and token_env both set the token; keep one")
    ]
    bearer = make_config([{"name": "t", "kind": "http", "url": "http://x/"}]).targets[0]
    clash = bearer.model_copy(update={"token_env": "T", "headers": {"Authorization": "x"}})
    assert clash.config_errors() == [
        ("headers", "an Authorization header and token_env both set the token; keep one")
    ]


@pytest.mark.parametrize("kind", sorted(TARGET_KINDS))
def test_every_kind_sends_its_token_in_a_credential_header(kind: str) -> None:
    names = {name.lower() for name in TARGET_KINDS[kind].model_construct().auth_headers("t")}
    assert names and names <= CREDENTIAL_HEADERS


def test_a_key_echoed_back_from_a_kinds_header_is_masked(provider: FakeProvider) -> None:
    """The whole value the hook sends is masked, however the provider echoes it."""

    def echo(seen: Seen) -> Reply:
        key = seen.headers.get("x-api-key", "")
        message = f"invalid x-api-key {key}; header line x-api-key: {key}"
        body = {"type": "error", "error": {"type": "authentication_error", "message": message}}
        return Reply(401, body, {"x-error-message": f"rejected {key}"})

    provider.route("/v1/messages", echo)
    target = api_key_target(f"{provider.url}/v1/messages")

    async def main() -> Any:
        async with Prober(2) as prober:
            return await probe_one(target, prober, 2.0, KEY, Redactor([KEY]))

    result = asyncio.run(main())

    assert provider.requests[-1].headers["x-api-key"] == KEY
    assert result.outcome == Outcome.AUTH_INVALID
    assert result.detail == "HTTP 401: invalid x-api-key ***; header line x-api-key: ***"
    texts = [result.detail, result.body_excerpt, json.dumps(result.headers)]
    assert [t for t in texts if leaks(t, [KEY])] == []


# ---------------------------------------------------------------- judge_error: provider rules


class BareTarget(HttpTarget):
    """A kind that knows no provider: only the generic classifier reads its answers."""

    def judge_error(self, ev: Evidence) -> Verdict | None:
        return None


def ev(reply: Reply) -> Evidence:
    body, ctype = reply.encoded()
    headers = {k.lower(): v for k, v in reply.headers.items()} | {"content-type": ctype}
    return Evidence(
        url="http://x/",
        method="POST",
        started_at=datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
        token_sent=True,
        status=reply.status,
        headers=headers,
        body=body,
        timings=Timings(total_ms=5.0),
    )


PROVIDER_ANSWERS = [
    # (reply, what the kinds read, what HTTP alone says)
    (sim.gated_403("m"), Outcome.GATED, Outcome.FORBIDDEN),
    (sim.router_403_scope(), Outcome.TOKEN_SCOPE, Outcome.FORBIDDEN),
    (sim.router_400_model_not_supported("m"), Outcome.MODEL_UNSUPPORTED, Outcome.CLIENT_ERROR),
    (sim.router_400_provider_unmapped(), Outcome.MODEL_UNSUPPORTED, Outcome.CLIENT_ERROR),
    (sim.openai_429_insufficient_quota(), Outcome.PAYMENT_REQUIRED, Outcome.RATE_LIMITED),
    (sim.anthropic_400_billing(), Outcome.PAYMENT_REQUIRED, Outcome.CLIENT_ERROR),
    (
        Reply(429, {"error": "You have used up your credits"}),
        Outcome.PAYMENT_REQUIRED,
        Outcome.RATE_LIMITED,
    ),
]


@pytest.mark.parametrize(("reply", "provider_outcome", "generic_outcome"), PROVIDER_ANSWERS)
def test_provider_rules_live_in_the_kinds(
    reply: Reply, provider_outcome: Outcome, generic_outcome: Outcome
) -> None:
    """The same answer: read by a kind that knows the provider, and by HTTP alone."""
    chat = make_config([{"name": "c", "kind": "openai-chat", "model": "m"}]).targets[0]
    assert classify(chat, ev(reply)).outcome == provider_outcome
    bare = BareTarget.model_validate({"name": "b", "kind": "http", "url": "http://x/"})
    assert classify(bare, ev(reply)).outcome == generic_outcome


def test_generic_rules_need_no_provider() -> None:
    """402, 429 with its reset, 529, 5xx and a loading 503 are HTTP's own."""
    bare = BareTarget.model_validate({"name": "b", "kind": "http", "url": "http://x/"})
    assert classify(bare, ev(sim.router_402_credits())).outcome == Outcome.PAYMENT_REQUIRED
    limited = classify(bare, ev(sim.openai_429_rate_limit()))
    assert limited.outcome == Outcome.RATE_LIMITED and limited.facts["retry_after_s"] == 20.0
    assert classify(bare, ev(sim.anthropic_529_overloaded())).outcome == Outcome.OVERLOADED
    assert classify(bare, ev(sim.server_500())).outcome == Outcome.SERVER_ERROR
    loading = classify(bare, ev(sim.model_loading_503("m", 20.0)))
    # Generic: loading, but Hugging Face's estimated_time is read only by the kinds.
    assert loading.outcome == Outcome.LOADING and loading.facts == {}
    assert "in about" not in loading.hint


def test_the_generic_classifier_imports_no_provider_module() -> None:
    tree = ast.parse((ROOT / "monitor/probing/classify.py").read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert not {m for m in imported if m in ("monitor.targets.hf", "monitor.targets.openai")}

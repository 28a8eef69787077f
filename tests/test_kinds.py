"""The kinds' hooks: the headers that carry the token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from monitor.demo.simulator import FakeProvider, Reply, Seen
from monitor.domain.evidence import CREDENTIAL_HEADERS, Outcome
from monitor.domain.redact import Redactor
from monitor.probing.engine import Prober
from monitor.probing.pipeline import judge, to_result
from monitor.targets import TARGET_KINDS
from monitor.targets.http import HttpTarget
from tests.conftest import make_config
from tests.helpers_echo import leaks

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
            ev = await prober.probe(target.build_request(KEY), 2.0)
        return to_result(target, ev, judge(target, ev), Redactor([KEY]))

    result = asyncio.run(main())

    assert provider.requests[-1].headers["x-api-key"] == KEY
    assert result.outcome == Outcome.AUTH_INVALID
    assert result.detail == "HTTP 401: invalid x-api-key ***; header line x-api-key: ***"
    texts = [result.detail, result.body_excerpt, json.dumps(result.headers)]
    assert [t for t in texts if leaks(t, [KEY])] == []

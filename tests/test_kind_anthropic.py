"""`anthropic-messages`: the request Anthropic expects, and every answer of its catalogue
(../shared/provider-errors.md, "Anthropic Messages API") read right, as a pure table and end to
end from the fake provider on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config.load import ConfigError
from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider, Reply, Seen
from monitor.domain.evidence import Evidence, Outcome, Timings
from monitor.probing.classify import classify
from monitor.targets.anthropic import AnthropicMessagesTarget
from tests.helpers import make_config, probe_once, write_config
from tests.helpers_echo import leaks

KEY = "sk-ant-api03-Zq3vXkLm9_pQ2rT8wYb4NcE7sJ1uAxyzQw-7hJ2kAA"
ENV = {"ANTHROPIC_API_KEY": KEY}
MODEL = "claude-haiku-4-5"
REQ = "req_011CSHoEeqs5C35K2UUqR7Fy"
STARTED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    """Anthropic's error shape, its request id in the body and in `request-id`."""
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": REQ}
    return Reply(status, body, {"request-id": REQ, **(headers or {})})


OK = Reply(
    200,
    {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [{"type": "text", "text": "OK"}],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    },
    {"request-id": REQ},
)
RATE_LIMITED = error(
    429,
    "rate_limit_error",
    "This request would exceed the rate limit for your organization "
    "(8f6a3c1e-0b2d-4e5f-9a7b-1c2d3e4f5a6b) of 50 requests per minute. For details, refer to: "
    "https://docs.claude.com/en/api/rate-limits. You can see the response headers for current "
    "usage. Please reduce the prompt length or the maximum tokens requested, or try again later.",
    {
        "retry-after": "12",
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2026-11-20T12:00:12Z",
        "anthropic-ratelimit-tokens-limit": "40000",
        "anthropic-ratelimit-tokens-remaining": "39000",
        "anthropic-ratelimit-tokens-reset": "2026-11-20T12:00:01Z",
    },
)
# The facts of the rate limit, relative to the probe's start.
RETRY_12S = {"retry_after_s": 12.0}

# (id, reply, key sent, outcome, in detail, in hint (all), facts)
CASES: list[tuple[str, Reply, bool, Outcome, str, tuple[str, ...], dict[str, Any]]] = [
    ("ok", OK, True, Outcome.OK, "HTTP 200", (), {}),
    (
        "bad key",
        error(401, "authentication_error", "invalid x-api-key"),
        True,
        Outcome.AUTH_INVALID,
        "HTTP 401: invalid x-api-key",
        ("ANTHROPIC_API_KEY", "https://console.anthropic.com/settings/keys"),
        {},
    ),
    (
        "no key",
        error(401, "authentication_error", "x-api-key header is required"),
        False,
        Outcome.AUTH_MISSING,
        "HTTP 401: x-api-key header is required",
        ("ANTHROPIC_API_KEY is not set",),
        {},
    ),
    (
        "no version header",
        error(400, "invalid_request_error", "anthropic-version: header is required"),
        True,
        Outcome.REQUEST_REJECTED,
        "anthropic-version: header is required",
        ("`anthropic_version`", "2023-06-01"),
        {},
    ),
    (
        "overloaded, everyone",
        error(529, "overloaded_error", "Overloaded"),
        True,
        Outcome.OVERLOADED,
        "HTTP 529: Overloaded",
        ("for everyone, not your rate limit", "https://status.claude.com"),
        {},
    ),
    (
        "browser origin sent",
        error(
            401,
            "authentication_error",
            "CORS requests are not allowed for this Organization because of an organization "
            "setting. Please contact support.",
        ),
        True,
        Outcome.REQUEST_REJECTED,
        "CORS requests are not allowed",
        ("remove Origin",),
        {},
    ),
    (
        "rate limited",
        RATE_LIMITED,
        True,
        Outcome.RATE_LIMITED,
        "of 50 requests per minute",
        (
            "the requests per-minute limit is used up",
            "resets at 2026-11-20T12:00:12+00:00",
            "https://console.anthropic.com/settings/limits",
        ),
        RETRY_12S,
    ),
    (
        "billing",
        sim.anthropic_400_billing(),
        True,
        Outcome.PAYMENT_REQUIRED,
        "Your credit balance is too low",
        ("https://console.anthropic.com/settings/billing",),
        {},
    ),
    (
        "permission",
        sim.anthropic_403_permission(),
        True,
        Outcome.FORBIDDEN,
        "does not have permission",
        ("ANTHROPIC_API_KEY", "valid but may not use this model"),
        {},
    ),
    (
        "unknown model",
        error(404, "not_found_error", "model: claude-3-opus-20240229"),
        True,
        Outcome.NOT_FOUND,
        "HTTP 404: model: claude-3-opus-20240229",
        ("`model`", "retired"),
        {},
    ),
    (
        "too large",
        error(413, "request_too_large", "Request exceeds the maximum allowed number of bytes."),
        True,
        Outcome.REQUEST_REJECTED,
        "HTTP 413",
        ("`prompt`",),
        {},
    ),
    (
        "api error",
        error(500, "api_error", "Internal server error"),
        True,
        Outcome.SERVER_ERROR,
        "HTTP 500: Internal server error",
        ("not your request",),
        {},
    ),
    (
        "timeout",
        error(504, "timeout_error", "Request timed out"),
        True,
        Outcome.SERVER_ERROR,
        "HTTP 504: Request timed out",
        ("(timeout_error)", "not your request"),
        {},
    ),
    (
        "max_tokens refused",
        error(
            400,
            "invalid_request_error",
            "max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens "
            "for claude-sonnet-4-5-20250929",
        ),
        True,
        Outcome.REQUEST_REJECTED,
        "max_tokens",
        ("set `max_tokens`",),
        {},
    ),
    (
        "200 without content",
        Reply(200, {**OK.body, "content": []}),
        True,
        Outcome.BAD_RESPONSE,
        "no content",
        (),
        {},
    ),
    (
        "200 carrying an error",
        Reply(
            200, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        ),
        True,
        Outcome.BAD_RESPONSE,
        "HTTP 200 carrying an error: Overloaded",
        (),
        {},
    ),
]


def raw(base_url: str = "http://x", **extra: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "kind": "anthropic-messages",
        "model": MODEL,
        "token_env": "ANTHROPIC_API_KEY",
        "base_url": base_url,
        **extra,
    }


def target(base_url: str = "http://x", **extra: Any) -> AnthropicMessagesTarget:
    found = make_config([raw(base_url, **extra)], env=ENV).targets[0]
    assert isinstance(found, AnthropicMessagesTarget)
    return found


def evidence(reply: Reply, token_sent: bool) -> Evidence:
    body, ctype = reply.encoded()
    headers = {k.lower(): v for k, v in reply.headers.items()} | {"content-type": ctype}
    return Evidence(
        url="http://x/v1/messages",
        method="POST",
        started_at=STARTED,
        token_sent=token_sent,
        status=reply.status,
        headers=headers,
        body=body,
        timings=Timings(total_ms=5.0),
    )


@pytest.mark.parametrize(
    ("reply", "sent", "outcome", "detail", "hints", "facts"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_it_reads_every_anthropic_answer(
    reply: Reply,
    sent: bool,
    outcome: Outcome,
    detail: str,
    hints: tuple[str, ...],
    facts: dict[str, Any],
) -> None:
    verdict = classify(target(), evidence(reply, sent))

    assert verdict.outcome == outcome, (verdict.detail, verdict.hint)
    assert detail in verdict.detail
    assert all(h in verdict.hint for h in hints), verdict.hint
    if facts:
        assert verdict.facts == {**facts, "retry_at": "2026-11-20T12:00:12+00:00"}
    else:
        assert verdict.facts == {}


@pytest.mark.parametrize(
    ("reply", "sent", "outcome", "detail", "hints", "facts"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_it_reads_every_anthropic_answer_end_to_end(
    provider: FakeProvider,
    reply: Reply,
    sent: bool,
    outcome: Outcome,
    detail: str,
    hints: tuple[str, ...],
    facts: dict[str, Any],
) -> None:
    provider.route("/v1/messages", reply)
    env = ENV if sent else {}

    result = probe_once(make_config([raw(provider.url)], env=env), env)["t"]

    assert result.outcome == outcome, (result.detail, result.hint)
    assert result.http_status == reply.status
    assert detail in result.detail
    assert all(h in result.hint for h in hints), result.hint
    assert {k: v for k, v in result.facts.items() if k != "retry_at"} == facts
    if reply.headers.get("request-id"):
        assert result.request_id == REQ
    if outcome == Outcome.RATE_LIMITED:  # the limit's state is kept as evidence
        assert result.headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert result.headers["anthropic-ratelimit-requests-reset"] == "2026-11-20T12:00:12Z"
    assert ("x-api-key" in provider.requests[-1].headers) is sent
    assert not leaks(json.dumps([result.as_dict(), result.facts]), [KEY])


def test_the_rate_limit_reset_alone_gives_the_retry_time() -> None:
    """Without retry-after, the used-up limit's RFC 3339 reset says when (and which limit)."""
    headers = {k: v for k, v in RATE_LIMITED.headers.items() if k != "retry-after"}
    headers["anthropic-ratelimit-tokens-remaining"] = "0"
    headers["anthropic-ratelimit-requests-remaining"] = "7"

    verdict = classify(target(), evidence(Reply(429, RATE_LIMITED.body, headers), True))

    assert verdict.outcome == Outcome.RATE_LIMITED
    assert "the tokens per-minute limit is used up" in verdict.hint
    assert "resets at 2026-11-20T12:00:01+00:00" in verdict.hint
    assert verdict.facts == {"retry_after_s": 1.0, "retry_at": "2026-11-20T12:00:01+00:00"}


def test_the_request_is_the_messages_api_with_the_key_and_version(provider: FakeProvider) -> None:
    provider.route("/v1/messages", OK)
    config = make_config([raw(provider.url)], env=ENV)

    result = probe_once(config, ENV)["t"]

    seen = provider.requests[-1]
    assert (seen.method, seen.path) == ("POST", "/v1/messages")  # no query: URLs are stored
    assert seen.headers["x-api-key"] == KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen.headers and "origin" not in seen.headers
    assert json.loads(seen.body) == {
        "model": MODEL,
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "Say OK."}],
    }
    assert result.outcome == Outcome.OK and result.request_id == REQ
    assert result.url == f"{provider.url}/v1/messages"
    assert result.usage_tokens == 12 + 1  # usage.input_tokens + output_tokens


def test_the_version_goes_out_without_a_key_and_is_configurable(provider: FakeProvider) -> None:
    provider.route("/v1/messages", OK)
    spec = raw(provider.url, anthropic_version="2024-01-01", prompt="ping")

    probe_once(make_config([spec], env={}), {})

    seen = provider.requests[-1]
    assert seen.headers["anthropic-version"] == "2024-01-01" and "x-api-key" not in seen.headers
    assert json.loads(seen.body)["messages"][0]["content"] == "ping"


def test_the_users_headers_override_the_version_but_not_the_key() -> None:
    spec = target(headers={"Anthropic-Version": "2025-01-01"}).build_request(KEY)
    assert spec.headers["anthropic-version"] == "2025-01-01"
    assert spec.headers["x-api-key"] == KEY and spec.token_sent


def test_the_default_base_is_anthropics() -> None:
    plain = {"name": "t", "kind": "anthropic-messages", "model": MODEL}
    assert make_config([plain]).targets[0].endpoint == "https://api.anthropic.com/v1/messages"


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"headers": {"Origin": "https://app.example"}}, "headers", "Origin header"),
        ({"headers": {"X-Api-Key": "k"}}, "headers", "token_env both set the token"),
        ({"anthropic_version": ""}, "anthropic_version", "at least 1 character"),
    ],
)
def test_config_that_cannot_work_is_refused(extra: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config([raw(token_env="K", **extra)])
    assert f"target 't': field '{field}'" in str(caught.value) and words in str(caught.value)


def test_cost_model_and_request_id_are_read_from_the_answer() -> None:
    t = target()
    ok = evidence(OK, True)
    assert t.usage_tokens(ok) == 13
    assert t.answered_model(ok) == "claude-haiku-4-5-20251001"
    assert t.request_id(ok) == REQ  # from the header when the body has none
    assert t.request_id(evidence(error(529, "overloaded_error", "Overloaded"), True)) == REQ
    odd = Reply(200, {"content": [{}], "usage": {"input_tokens": True, "output_tokens": "1"}})
    assert t.usage_tokens(evidence(odd, True)) is None
    assert t.answered_model(evidence(odd, True)) is None


def echo_key(seen: Seen) -> Reply:
    """A provider that repeats the key it got in its message, its request id and a header."""
    key = seen.headers.get("x-api-key", "")
    body = {
        "type": "error",
        "error": {"type": "authentication_error", "message": f"invalid x-api-key {key}"},
        "request_id": f"req_{key}",
    }
    return Reply(401, body, {"request-id": f"req_{key}"})


def test_the_key_never_reaches_the_database_or_the_output(
    tmp_path: Path, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider.route("/v1/messages", echo_key)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    cfg = write_config(
        tmp_path / "c.yaml", [raw(provider.url)], database=f"sqlite:///{tmp_path / 'a.db'}"
    )

    probe = CliRunner().invoke(app, ["probe", "-c", str(cfg), "-f", "json"])

    assert provider.requests[-1].headers["x-api-key"] == KEY  # the key was really sent...
    [row] = json.loads(probe.output)
    assert row["outcome"] == "auth_invalid" and row["request_id"] == "req_***"
    db = b"".join(p.read_bytes() for p in tmp_path.glob("a.db*"))
    assert KEY.encode() not in db and b"invalid x-api-key ***" in db  # ...and kept nowhere
    assert not leaks(probe.output, [KEY])


def test_the_example_configs_commented_target_is_valid() -> None:
    example = (Path(__file__).resolve().parent.parent / "inferwatch.example.yaml").read_text()
    line = next(line for line in example.splitlines() if "kind: anthropic-messages" in line)
    config = make_config([yaml.safe_load(line.split("# - ", 1)[1])])
    assert config.targets[0].endpoint == "https://api.anthropic.com/v1/messages"


# ---------------------------------------------------------------- a silent substitution


def test_another_model_answering_is_a_warning_but_a_snapshot_is_the_same_model(
    provider: FakeProvider,
) -> None:
    swapped = Reply(200, {**OK.body, "model": "claude-3-5-haiku-20241022"}, OK.headers)
    provider.route("/v1/messages", [OK, swapped])
    config = make_config([raw(provider.url)], env=ENV)

    same, other = probe_once(config, ENV)["t"], probe_once(config, ENV)["t"]

    assert same.outcome == Outcome.OK and same.warning == ""  # claude-haiku-4-5-20251001
    assert other.outcome == Outcome.OK
    assert "asked for model 'claude-haiku-4-5' but 'claude-3-5-haiku-20241022'" in other.warning


# ---------------------------------------------------------------- streamed: first token, pace


def streamed(provider: FakeProvider, reply: Reply, **extra: Any) -> Any:
    provider.route("/v1/messages", reply)
    return probe_once(make_config([raw(provider.url, stream=True, **extra)], env=ENV), ENV)["t"]


def test_a_stream_times_the_first_text_token_past_pings(provider: FakeProvider) -> None:
    # message_start, content_block_start and a ping at once; the first text delta 300 ms on.
    result = streamed(provider, sim.anthropic_stream(("O", "K"), first_after=0.3))

    assert result.outcome == Outcome.OK, result.detail
    ttft = result.timings.ttft_ms
    assert ttft is not None and abs(ttft - 300) <= 20, ttft
    assert result.request_id == REQ


def test_a_stream_reports_its_pace_and_the_usage_it_says(provider: FakeProvider) -> None:
    # 11 tokens 30 ms apart: 10 tokens after the first over 300 ms = 33.3 tokens/s.
    result = streamed(provider, sim.anthropic_stream(tuple("abcdefghijk"), every=0.03))

    assert result.outcome == Outcome.OK, result.detail
    assert result.tokens_per_s is not None and 30 <= result.tokens_per_s <= 34.5
    assert result.usage_tokens == 12 + 11  # message_start's input, message_delta's output


def test_a_streamed_request_asks_for_a_small_stream(provider: FakeProvider) -> None:
    streamed(provider, sim.anthropic_stream())
    streamed(provider, sim.anthropic_stream(), max_tokens=32)

    first, second = (json.loads(seen.body) for seen in provider.requests)
    assert first["stream"] is True and first["max_tokens"] == 16
    assert second["max_tokens"] == 32
    seen = provider.requests[0]
    assert seen.headers["accept"] == "text/event-stream"
    assert seen.headers["x-api-key"] == KEY and seen.headers["anthropic-version"] == "2023-06-01"


@pytest.mark.parametrize(
    ("kind", "message", "outcome"),
    [
        ("overloaded_error", "Overloaded", Outcome.OVERLOADED),
        (
            "rate_limit_error",
            "Number of concurrent connections has exceeded your rate limit.",
            Outcome.RATE_LIMITED,
        ),
        ("api_error", "Internal server error", Outcome.SERVER_ERROR),
    ],
)
def test_an_error_event_after_the_200_is_judged_like_that_error(
    provider: FakeProvider, kind: str, message: str, outcome: Outcome
) -> None:
    result = streamed(provider, sim.anthropic_stream_error(kind, message))

    assert result.outcome == outcome, result.detail
    assert result.http_status == 200
    assert result.detail == f"HTTP 200, then an error event: {message}"


def test_a_streamed_answer_names_its_model_in_message_start(provider: FakeProvider) -> None:
    same = streamed(provider, sim.anthropic_stream(model="claude-haiku-4-5-20251001"))
    other = streamed(provider, sim.anthropic_stream(model="claude-3-haiku-20240307"))

    assert same.outcome == Outcome.OK and same.warning == ""
    assert "but 'claude-3-haiku-20240307' answered" in other.warning


def test_a_thinking_delta_is_no_first_token() -> None:
    from monitor.domain.evidence import StreamEvent

    def at(ms: float, kind: str, data: dict[str, Any]) -> StreamEvent:
        return StreamEvent(kind, json.dumps({"type": kind, **data}), ms)

    thinking = {"index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me"}}
    text = {"index": 1, "delta": {"type": "text_delta", "text": "OK"}}
    events = [
        at(5, "ping", {}),
        at(10, "content_block_delta", thinking),
        at(400, "content_block_delta", text),
        at(410, "message_stop", {}),
    ]

    reading = target().read_stream(events)

    assert reading.ttft_ms == 400 and reading.ended


@pytest.mark.parametrize(
    ("status", "body", "headers", "outcome"),
    [
        (529, {"type": "error", "error": {"type": 5}}, {}, Outcome.OVERLOADED),
        (
            429,
            {"type": "error", "error": {"type": "rate_limit_error"}},
            {
                "retry-after": "soon",
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": "not a date",
            },
            Outcome.RATE_LIMITED,
        ),
        (
            429,
            {"type": "error", "error": {"type": "rate_limit_error"}},
            {"retry-after": "99999999999"},
            Outcome.RATE_LIMITED,
        ),
        (401, {"type": "error", "error": ["authentication_error"]}, {}, Outcome.AUTH_INVALID),
        (
            400,
            {"type": "error", "error": {"type": "invalid_request_error", "message": {"x": 1}}},
            {},
            Outcome.REQUEST_REJECTED,
        ),
        (
            200,
            {"content": "OK", "usage": {"input_tokens": -1, "output_tokens": 1}},
            {},
            Outcome.BAD_RESPONSE,
        ),
        (200, [1, 2], {}, Outcome.BAD_RESPONSE),
    ],
)
def test_odd_shapes_are_judged_never_raised(
    status: int, body: Any, headers: dict[str, str], outcome: Outcome
) -> None:
    """Whatever the JSON holds, the probe gets a verdict (no 'could not judge'), and no
    retry time is made up."""
    t = target()
    odd = evidence(Reply(status, body, headers), True)

    verdict = classify(t, odd)

    assert verdict.outcome == outcome, verdict.detail
    assert verdict.facts == {}
    assert t.usage_tokens(odd) is None and t.request_id(odd) is None


def test_check_warns_about_a_target_without_a_key(tmp_path: Path) -> None:
    keyless = {k: v for k, v in raw().items() if k != "token_env"}
    cfg = write_config(tmp_path / "c.yaml", [keyless])

    check = CliRunner().invoke(app, ["check", "-c", str(cfg)])

    assert check.exit_code == 0, check.output
    assert (
        "target 't': field 'token_env': anthropic-messages without a key can only answer 401"
        in (" ".join(check.output.split()))
    )

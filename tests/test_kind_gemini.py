"""`gemini-generate`: the request Gemini expects (the key in a header, never in the URL), and
every answer of its catalogue (../shared/provider-errors.md, "Google Gemini") read right, as a
pure table and end to end from the fake provider on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from monitor.cli import app
from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider, Reply, Seen
from monitor.domain.evidence import Evidence, Outcome, Timings
from monitor.probing.classify import classify
from monitor.targets.gemini import GeminiGenerateTarget
from tests.helpers import make_config, probe_once, write_config
from tests.helpers_echo import leaks

KEY = "AIzaSyD-gemini-SECRET-key-0123456789abcd"
ENV = {"GEMINI_API_KEY": KEY}
MODEL = "gemini-2.0-flash"
PATH = f"/v1beta/models/{MODEL}:generateContent"
STARTED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
RPC = "type.googleapis.com/google.rpc."
PROJECT = "573025418121"
ACTIVATION = (
    "https://console.developers.google.com/apis/api/generativelanguage.googleapis.com/"
    f"overview?project={PROJECT}"
)


def rpc(code: int, status: str, message: str, *details: dict[str, Any]) -> Reply:
    """A google.rpc error answer, as Gemini sends it."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return Reply(code, {"error": error})


OK = Reply(
    200,
    {
        "candidates": [
            {
                "content": {"parts": [{"text": "OK"}], "role": "model"},
                "finishReason": "MAX_TOKENS",
                "avgLogprobs": -0.0123,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 4,
            "candidatesTokenCount": 1,
            "totalTokenCount": 5,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 4}],
        },
        "modelVersion": "gemini-2.0-flash",
        "responseId": "8oMkaeKXG9OqvdIPp9WYwQk",
    },
)
BAD_KEY = rpc(
    400,
    "INVALID_ARGUMENT",
    "API key not valid. Please pass a valid API key.",
    {"@type": RPC + "ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"},
)
NO_KEY = rpc(
    403,
    "PERMISSION_DENIED",
    "Method doesn't allow unregistered callers (callers without established identity). Please "
    "use API Key or other form of API consumer identity to call this API.",
)
SERVICE_DISABLED = rpc(
    403,
    "PERMISSION_DENIED",
    f"Generative Language API has not been used in project {PROJECT} before or it is disabled. "
    f"Enable it by visiting {ACTIVATION} then retry. If you enabled this API recently, wait a "
    "few minutes for the action to propagate to our systems and retry.",
    {
        "@type": RPC + "ErrorInfo",
        "reason": "SERVICE_DISABLED",
        "domain": "googleapis.com",
        "metadata": {
            "consumer": f"projects/{PROJECT}",
            "service": "generativelanguage.googleapis.com",
            "activationUrl": ACTIVATION,
        },
    },
)
NOT_ALLOWED = rpc(403, "PERMISSION_DENIED", "The caller does not have permission")
FREE_TIER = rpc(
    400,
    "FAILED_PRECONDITION",
    "Gemini API free tier is not available in your country. Please enable billing on your "
    "project in Google AI Studio.",
)
QUOTA = rpc(
    429,
    "RESOURCE_EXHAUSTED",
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    {
        "@type": RPC + "QuotaFailure",
        "violations": [
            {
                "quotaMetric": "generativelanguage.googleapis.com/"
                "generate_content_free_tier_requests",
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "quotaDimensions": {"location": "global", "model": MODEL},
                "quotaValue": "15",
            }
        ],
    },
    {
        "@type": RPC + "Help",
        "links": [
            {
                "description": "Learn more about Gemini API quotas",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
            }
        ],
    },
    {"@type": RPC + "RetryInfo", "retryDelay": "37s"},
)
RETRY_37S = {"retry_after_s": 37.0}

# (id, reply, key sent, outcome, in detail, in hint (all), facts)
CASES: list[tuple[str, Reply, bool, Outcome, str, tuple[str, ...], dict[str, Any]]] = [
    ("ok", OK, True, Outcome.OK, "HTTP 200", (), {}),
    (
        "bad key is a 400",
        BAD_KEY,
        True,
        Outcome.AUTH_INVALID,
        "HTTP 400: API key not valid",
        ("GEMINI_API_KEY", "https://aistudio.google.com/apikey"),
        {},
    ),
    (
        "bad key, no details",
        sim.gemini_400_bad_key(),
        True,
        Outcome.AUTH_INVALID,
        "API key not valid",
        ("GEMINI_API_KEY",),
        {},
    ),
    (
        "no key",
        NO_KEY,
        False,
        Outcome.AUTH_MISSING,
        "HTTP 403: Method doesn't allow unregistered callers",
        ("GEMINI_API_KEY is not set", "https://aistudio.google.com/apikey"),
        {},
    ),
    (
        "API not enabled",
        SERVICE_DISABLED,
        True,
        Outcome.FORBIDDEN,
        "Generative Language API has not been used",
        ("enable it at " + ACTIVATION,),
        {},
    ),
    (
        "model not allowed",
        NOT_ALLOWED,
        True,
        Outcome.FORBIDDEN,
        "HTTP 403: The caller does not have permission",
        ("`model`", "GEMINI_API_KEY"),
        {},
    ),
    (
        "free tier not in the country",
        FREE_TIER,
        True,
        Outcome.FORBIDDEN,
        "free tier is not available in your country",
        ("enable billing", "https://aistudio.google.com/apikey"),
        {},
    ),
    (
        "region not served",
        rpc(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
        True,
        Outcome.FORBIDDEN,
        "User location is not supported",
        (
            "not offered where the probe runs",
            "https://ai.google.dev/gemini-api/docs/available-regions",
        ),
        {},
    ),
    (
        "quota used up",
        QUOTA,
        True,
        Outcome.RATE_LIMITED,
        "You exceeded your current quota",
        (
            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier is used up",
            "retry in 37 s",
            "https://ai.google.dev/gemini-api/docs/rate-limits",
        ),
        RETRY_37S,
    ),
    (
        "unknown model",
        rpc(
            404,
            "NOT_FOUND",
            "models/gemini-1.0-pro is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            "supported methods.",
        ),
        True,
        Outcome.NOT_FOUND,
        "is not found for API version v1beta",
        ("`model`", "/v1beta/models"),
        {},
    ),
    (
        "retired model",
        rpc(
            404,
            "NOT_FOUND",
            "Gemini 1.0 Pro Vision has been deprecated on July 12, 2024. Consider switching to "
            "different model, for example gemini-1.5-flash.",
        ),
        True,
        Outcome.DEPRECATED,
        "has been deprecated on July 12, 2024",
        ("change `model` (it names gemini-1.5-flash)",),
        {},
    ),
    (
        "probe field refused",
        rpc(
            400,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received. Unknown name \"maxTokens\" at 'generation_config': "
            "Cannot find field.",
        ),
        True,
        Outcome.REQUEST_REJECTED,
        "Invalid JSON payload received",
        ("`payload`",),
        {},
    ),
    (
        "overloaded",
        rpc(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
        True,
        Outcome.OVERLOADED,
        "HTTP 503: The model is overloaded",
        (),
        {},
    ),
    (
        "prompt blocked",
        Reply(200, {"promptFeedback": {"blockReason": "SAFETY"}, "modelVersion": MODEL}),
        True,
        Outcome.BAD_RESPONSE,
        "blocked the probe's prompt (SAFETY)",
        ("`prompt`",),
        {},
    ),
    (
        "200 without candidates",
        Reply(200, {"candidates": []}),
        True,
        Outcome.BAD_RESPONSE,
        "the answer has no candidates",
        (),
        {},
    ),
    (
        "200 carrying an error",
        Reply(200, {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}),
        True,
        Outcome.BAD_RESPONSE,
        "HTTP 200 carrying an error: Internal error",
        (),
        {},
    ),
]


def raw(base_url: str = "http://x", **extra: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "kind": "gemini-generate",
        "model": MODEL,
        "token_env": "GEMINI_API_KEY",
        "base_url": base_url,
        **extra,
    }


def target(base_url: str = "http://x", **extra: Any) -> GeminiGenerateTarget:
    found = make_config([raw(base_url, **extra)], env=ENV).targets[0]
    assert isinstance(found, GeminiGenerateTarget)
    return found


def evidence(reply: Reply, token_sent: bool) -> Evidence:
    body, ctype = reply.encoded()
    headers = {k.lower(): v for k, v in reply.headers.items()} | {"content-type": ctype}
    return Evidence(
        url=f"http://x{PATH}",
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
def test_it_reads_every_gemini_answer(
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
        assert verdict.facts == {**facts, "retry_at": "2026-11-20T12:00:37+00:00"}
    else:
        assert verdict.facts == {}


@pytest.mark.parametrize(
    ("reply", "sent", "outcome", "detail", "hints", "facts"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_it_reads_every_gemini_answer_end_to_end(
    provider: FakeProvider,
    reply: Reply,
    sent: bool,
    outcome: Outcome,
    detail: str,
    hints: tuple[str, ...],
    facts: dict[str, Any],
) -> None:
    provider.route(PATH, reply)
    env = ENV if sent else {}

    result = probe_once(make_config([raw(provider.url)], env=env), env)["t"]

    assert result.outcome == outcome, (result.detail, result.hint)
    assert result.http_status == reply.status
    assert detail in result.detail
    assert all(h in result.hint for h in hints), result.hint
    assert {k: v for k, v in result.facts.items() if k != "retry_at"} == facts
    assert ("x-goog-api-key" in provider.requests[-1].headers) is sent
    assert not leaks(json.dumps([result.as_dict(), result.facts]), [KEY])


def test_the_request_is_generate_content_with_the_key_in_a_header(provider: FakeProvider) -> None:
    provider.route(PATH, OK)

    result = probe_once(make_config([raw(provider.url)], env=ENV), ENV)["t"]

    seen = provider.requests[-1]
    assert (seen.method, seen.path) == ("POST", PATH)  # the whole path: no ?key= in the URL
    assert seen.headers["x-goog-api-key"] == KEY
    assert "authorization" not in seen.headers and "origin" not in seen.headers
    assert json.loads(seen.body) == {
        "contents": [{"role": "user", "parts": [{"text": "Say OK."}]}],
        "generationConfig": {"maxOutputTokens": 1},
    }
    assert result.outcome == Outcome.OK and result.url == f"{provider.url}{PATH}"
    assert KEY not in result.url


def test_a_model_written_with_its_models_prefix_is_the_same_model() -> None:
    assert target(model=f"models/{MODEL}").endpoint == f"http://x{PATH}"


def test_the_default_base_is_googles() -> None:
    plain = {"name": "t", "kind": "gemini-generate", "model": MODEL}
    assert make_config([plain]).targets[0].endpoint == (
        f"https://generativelanguage.googleapis.com{PATH}"
    )


def test_a_key_header_next_to_token_env_is_refused() -> None:
    from monitor.config.load import ConfigError

    with pytest.raises(ConfigError, match="field 'headers': a x-goog-api-key header and token_env"):
        make_config([raw(headers={"X-Goog-Api-Key": "k"})])


def test_a_retry_after_header_is_the_fallback_for_a_quota() -> None:
    """A 429 without RetryInfo (a proxy's, an older API version) still says when to retry."""
    bare = Reply(
        429,
        {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}},
        {"retry-after": "5"},
    )

    verdict = classify(target(), evidence(bare, True))

    assert verdict.outcome == Outcome.RATE_LIMITED
    assert verdict.hint.startswith("rate limited; retry in 5 s")
    assert verdict.facts == {"retry_after_s": 5.0, "retry_at": "2026-11-20T12:00:05+00:00"}


def test_cost_and_model_are_read_from_the_answer() -> None:
    t = target()
    assert t.usage_tokens(evidence(OK, True)) == 5
    assert t.answered_model(evidence(OK, True)) == MODEL
    odd = Reply(200, {"candidates": [{}], "usageMetadata": {"totalTokenCount": "5"}})
    assert t.usage_tokens(evidence(odd, True)) is None
    assert t.answered_model(evidence(odd, True)) is None


def echo_key(seen: Seen) -> Reply:
    """A provider that repeats the key it got in its message and its details."""
    key = seen.headers.get("x-goog-api-key", "")
    return rpc(
        400,
        "INVALID_ARGUMENT",
        f"API key not valid: {key}. Please pass a valid API key.",
        {"@type": RPC + "ErrorInfo", "reason": "API_KEY_INVALID", "metadata": {"key": key}},
    )


def test_the_key_never_reaches_the_database_or_the_output(
    tmp_path: Path, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider.route(PATH, echo_key)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    cfg = write_config(
        tmp_path / "c.yaml", [raw(provider.url)], database=f"sqlite:///{tmp_path / 'g.db'}"
    )

    probe = CliRunner().invoke(app, ["probe", "-c", str(cfg), "-f", "json"])

    assert provider.requests[-1].headers["x-goog-api-key"] == KEY  # the key was really sent...
    [row] = json.loads(probe.output)
    assert row["outcome"] == "auth_invalid" and "API key not valid: ***" in row["detail"]
    db = b"".join(p.read_bytes() for p in tmp_path.glob("g.db*"))
    assert KEY.encode() not in db and b"API key not valid: ***" in db  # ...and kept nowhere
    assert not leaks(probe.output, [KEY])


def test_the_example_configs_commented_target_is_valid() -> None:
    example = (Path(__file__).resolve().parent.parent / "inferwatch.example.yaml").read_text()
    line = next(line for line in example.splitlines() if "kind: gemini-generate" in line)
    config = make_config([yaml.safe_load(line.split("# - ", 1)[1])])
    assert config.targets[0].endpoint == f"https://generativelanguage.googleapis.com{PATH}"


# ---------------------------------------------------------------- what an ok answer says

# Gemini 2.5 thinks first: with a small budget the candidate ends at MAX_TOKENS with no text.
THOUGHT_ONLY = Reply(
    200,
    {
        "candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS", "index": 0}],
        "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 28, "thoughtsTokenCount": 24},
        "modelVersion": "gemini-2.5-pro",
        "responseId": "Ri8kaYGNI_SrvdIPgJvdwAw",
    },
)


def test_a_budget_spent_thinking_is_ok_with_a_warning(provider: FakeProvider) -> None:
    provider.route("/v1beta/models/gemini-2.5-pro:generateContent", THOUGHT_ONLY)
    config = make_config([raw(provider.url, model="gemini-2.5-pro")], env=ENV)

    result = probe_once(config, ENV)["t"]

    assert result.outcome == Outcome.OK  # the model answered: it is up
    assert "spent the 1-token budget thinking (24 thought tokens)" in result.warning
    assert "max_tokens: 256" in result.warning
    assert result.usage_tokens == 28


def test_the_answer_reports_its_cost_and_another_model_is_a_warning(
    provider: FakeProvider,
) -> None:
    swapped = Reply(200, {**OK.body, "modelVersion": "gemini-1.5-flash-002"})
    snapshot = Reply(200, {**OK.body, "modelVersion": f"{MODEL}-001"})
    provider.route(PATH, [OK, snapshot, swapped])
    config = make_config([raw(provider.url)], env=ENV)

    results = [probe_once(config, ENV)["t"] for _ in range(3)]

    assert [r.outcome for r in results] == [Outcome.OK] * 3
    assert [r.usage_tokens for r in results] == [5, 5, 5]  # usageMetadata.totalTokenCount
    assert results[0].warning == results[1].warning == ""
    assert "asked for model 'gemini-2.0-flash' but 'gemini-1.5-flash-002'" in results[2].warning


def test_max_tokens_sets_the_output_budget(provider: FakeProvider) -> None:
    provider.route(PATH, OK)

    probe_once(make_config([raw(provider.url, max_tokens=256)], env=ENV), ENV)

    assert json.loads(provider.requests[-1].body)["generationConfig"] == {"maxOutputTokens": 256}


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (429, {"error": {"status": "RESOURCE_EXHAUSTED", "details": 5}}, Outcome.RATE_LIMITED),
        (
            429,
            {
                "error": {
                    "status": "RESOURCE_EXHAUSTED",
                    "details": [
                        {"@type": RPC + "QuotaFailure", "violations": "all"},
                        {"@type": RPC + "RetryInfo", "retryDelay": 37},
                    ],
                }
            },
            Outcome.RATE_LIMITED,
        ),
        (
            429,
            {"error": {"details": [{"@type": RPC + "RetryInfo", "retryDelay": "999999999s"}]}},
            Outcome.RATE_LIMITED,
        ),
        (
            403,
            {
                "error": {
                    "status": 7,
                    "details": [{"@type": RPC + "ErrorInfo", "reason": ["x"], "metadata": "m"}],
                }
            },
            Outcome.FORBIDDEN,
        ),
        (
            403,
            {
                "error": {
                    "status": "PERMISSION_DENIED",
                    "details": [
                        {
                            "@type": RPC + "ErrorInfo",
                            "reason": "SERVICE_DISABLED",
                            "metadata": {"activationUrl": "javascript:alert(1)"},
                        }
                    ],
                }
            },
            Outcome.FORBIDDEN,
        ),
        (400, {"error": "plain words"}, Outcome.CLIENT_ERROR),
        (500, [], Outcome.SERVER_ERROR),
        (200, {"candidates": [5]}, Outcome.BAD_RESPONSE),
        (200, {"candidates": "many", "promptFeedback": {"blockReason": 3}}, Outcome.BAD_RESPONSE),
        (
            200,
            {"candidates": [{"finishReason": "MAX_TOKENS", "content": "x"}], "usageMetadata": 3},
            Outcome.OK,
        ),
    ],
)
def test_odd_shapes_are_judged_never_raised(status: int, body: Any, outcome: Outcome) -> None:
    """Whatever the JSON holds where the details should be, the probe gets a verdict (no
    'could not judge'), and no fact or URL is made up from it."""
    verdict = classify(target(), evidence(Reply(status, body), True))

    assert verdict.outcome == outcome, verdict.detail
    assert verdict.facts == {}
    assert "javascript:" not in verdict.hint


def test_check_warns_about_a_target_without_a_key(tmp_path: Path) -> None:
    keyless = {k: v for k, v in raw().items() if k != "token_env"}
    cfg = write_config(tmp_path / "c.yaml", [keyless])

    check = CliRunner().invoke(app, ["check", "-c", str(cfg)])

    assert check.exit_code == 0, check.output
    assert "target 't': field 'token_env': gemini-generate without a key can only answer 403" in (
        " ".join(check.output.split())
    )

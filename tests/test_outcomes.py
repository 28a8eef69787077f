"""Every outcome, produced end to end: real HTTP from a local fake provider -> probe -> classify.

The fake answers with the exact bodies and headers of shared/provider-errors.md; each case
checks the outcome and that the detail and hint say what happened and what to do.
"""

from __future__ import annotations

import importlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider, Reply
from monitor.domain.evidence import Outcome
from tests.helpers import make_config, probe_once

TOKEN = "hf_testtoken0123456789abcdefXYZ"
WITH_TOKEN = {"HF_TOKEN": TOKEN}
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"

EMBED = {
    "kind": "hf-inference",
    "model": MINILM,
    "token_env": "HF_TOKEN",
    "expect": {"embedding_dim": 384},
}
LEGACY = {"kind": "hf-legacy", "model": "gpt2", "token_env": "HF_TOKEN"}
CHAT = {"kind": "openai-chat", "model": LLAMA, "token_env": "HF_TOKEN"}
OAI_EMBED = {
    "kind": "openai-embeddings",
    "model": "text-embedding-3-small",
    "token_env": "HF_TOKEN",
}
WHOAMI = {"kind": "hf-whoami", "token_env": "HF_TOKEN"}
HTTP = {"kind": "http", "url": "{base}/status"}

# --- OpenAI and OpenAI-compatible APIs (provider-errors.md, "More providers (2026)")
OPENAI_KEY = {"OPENAI_API_KEY": "sk-proj-test0123456789abcdefXYZ"}
GPT = {"kind": "openai-chat", "model": "gpt-4.1", "token_env": "OPENAI_API_KEY"}
GPT_EMBED = {
    "kind": "openai-embeddings",
    "model": "text-embedding-3-small",
    "token_env": "OPENAI_API_KEY",
}


def openai_error(
    status: int,
    message: str,
    type_: str | None = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """OpenAI's error shape, keys in OpenAI's order."""
    error = {"message": message, "type": type_, "param": param, "code": code}
    return Reply(status, {"error": error}, {"x-request-id": "req_oai", **(headers or {})})


OPENAI_BAD_KEY = openai_error(
    401,
    "Incorrect API key provided: sk-abc***xyz. You can find your API key at "
    "https://platform.openai.com/account/api-keys.",
    code="invalid_api_key",
)
OPENAI_TPM = openai_error(
    429,
    "Rate limit reached for gpt-4.1 in organization org-… on tokens per min (TPM): Limit "
    "30000, Used 28039, Requested 3906. Please try again in 3.89s. Visit "
    "https://platform.openai.com/account/rate-limits to learn more.",
    type_="tokens",
    code="rate_limit_exceeded",
    headers={
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "1961",
        "x-ratelimit-reset-tokens": "3.89s",
        "openai-processing-ms": "12",
    },
)
OPENAI_TOO_LARGE = openai_error(
    429,
    "Request too large for gpt-4o in organization org-… on tokens per min (TPM): Limit 30000, "
    "Requested 30601. The input or output tokens must be reduced in order to run successfully.",
    type_="tokens",
    code="rate_limit_exceeded",
)
OPENAI_UNSUPPORTED_MAX_TOKENS = openai_error(
    400,
    "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
    "'max_completion_tokens' instead.",
    code="unsupported_parameter",
    param="max_tokens",
)
OPENAI_TOKEN_FLOOR = openai_error(
    400,
    "Invalid 'max_tokens': integer below minimum value. Expected a value >= 16, but got 1 instead.",
    code="integer_below_min_value",
    param="max_tokens",
)
OPENAI_BUDGET_SPENT = openai_error(
    400, "Could not finish the message because max_tokens or model output limit was reached"
)
OPENAI_CONTEXT = openai_error(
    400,
    "This model's maximum context length is 128000 tokens. However, your messages resulted "
    "in 130532 tokens. Please reduce the length of the messages.",
    code="context_length_exceeded",
    param="messages",
)
AZURE_NO_DEPLOYMENT = Reply(
    404,
    {
        "error": {
            "code": "DeploymentNotFound",
            "message": "The API deployment for this resource does not exist. If you created "
            "the deployment within the last 5 minutes, please wait a moment and try again.",
        }
    },
)
AZURE_API_VERSION = Reply(404, {"error": {"code": "404", "message": "Resource not found"}})
GROQ_DECOMMISSIONED = Reply(
    400,
    {
        "error": {
            "message": "The model `llama-3.2-11b-vision-preview` has been decommissioned and is "
            "no longer supported. Please refer to https://console.groq.com/docs/deprecations "
            "for a recommendation on which model to use instead.",
            "type": "invalid_request_error",
            "code": "model_decommissioned",
        }
    },
)
OPENROUTER_CREDITS = Reply(
    402,
    {
        "error": {
            "message": "Insufficient credits. Add more using https://openrouter.ai/settings/credits",
            "code": 402,
        }
    },
)
COHERE_BAD_TOKEN = Reply(401, {"message": "invalid api token"})
COHERE_NO_MODEL = Reply(
    404,
    {
        "message": "model 'xlarge' not found, make sure the correct model ID was used and that "
        "you have access to the model."
    },
)

# (id, target, reply, env, outcome, text expected in detail, text expected in hint)
CASES: list[tuple[str, dict[str, Any], Reply, dict[str, str], Outcome, str, str]] = [
    ("embedding ok", EMBED, sim.embedding_ok(384), WITH_TOKEN, Outcome.OK, "HTTP 200", ""),
    ("chat ok", CHAT, sim.chat_ok(), WITH_TOKEN, Outcome.OK, "HTTP 200", ""),
    (
        "openai embeddings ok",
        OAI_EMBED,
        sim.openai_embeddings_ok(1536),
        WITH_TOKEN,
        Outcome.OK,
        "",
        "",
    ),
    ("classic read token ok", WHOAMI, sim.whoami(role="read"), WITH_TOKEN, Outcome.OK, "", ""),
    (
        "fine-grained token with the permission",
        WHOAMI,
        sim.whoami(),
        WITH_TOKEN,
        Outcome.OK,
        "",
        "",
    ),
    (
        "global permission counts",
        WHOAMI,
        sim.whoami(
            permissions=["repo.content.read"], global_permissions=["inference.serverless.write"]
        ),
        WITH_TOKEN,
        Outcome.OK,
        "",
        "",
    ),
    ("http ok", HTTP, sim.ok_text(), {}, Outcome.OK, "HTTP 200", ""),
    # --- auth
    (
        "router without token",
        EMBED,
        sim.router_401_no_token(),
        {},
        Outcome.AUTH_MISSING,
        "HTTP 401",
        "HF_TOKEN is not set",
    ),
    (
        "legacy without token",
        LEGACY,
        sim.legacy_401_no_token(),
        {},
        Outcome.AUTH_MISSING,
        "Invalid username or password.",
        "HF_TOKEN is not set",
    ),
    (
        "invalid token",
        EMBED,
        sim.router_401_invalid(),
        WITH_TOKEN,
        Outcome.AUTH_INVALID,
        "Invalid credentials in Authorization header",
        "rejected",
    ),
    (
        "openai invalid key",
        CHAT,
        sim.openai_401_invalid_key(),
        WITH_TOKEN,
        Outcome.AUTH_INVALID,
        "Incorrect API key provided",
        "create a new one",
    ),
    (
        "gemini bad key is auth, not client error",
        CHAT,
        sim.gemini_400_bad_key(),
        WITH_TOKEN,
        Outcome.AUTH_INVALID,
        "API key not valid",
        "",
    ),
    # --- the seeds' 403: token lacks "Make calls to Inference Providers"
    (
        "token scope 403",
        EMBED,
        sim.router_403_scope("harshalhonde"),
        WITH_TOKEN,
        Outcome.TOKEN_SCOPE,
        "on behalf of user harshalhonde",
        "Make calls to Inference Providers",
    ),
    (
        "token scope seen by whoami",
        WHOAMI,
        sim.whoami(permissions=["repo.content.read"]),
        WITH_TOKEN,
        Outcome.TOKEN_SCOPE,
        "lacks 'Make calls to Inference Providers'",
        "settings/tokens",
    ),
    (
        "gated model",
        EMBED,
        sim.gated_403("meta-llama/Llama-3.1-8B"),
        WITH_TOKEN,
        Outcome.GATED,
        "is restricted",
        "gated",
    ),
    (
        "other 403",
        CHAT,
        sim.anthropic_403_permission(),
        WITH_TOKEN,
        Outcome.FORBIDDEN,
        "does not have permission",
        "",
    ),
    # --- billing
    (
        "credits 2025",
        CHAT,
        sim.router_402_credits(2025),
        WITH_TOKEN,
        Outcome.PAYMENT_REQUIRED,
        "exceeded your monthly included credits",
        "credits",
    ),
    (
        "credits 2026",
        CHAT,
        sim.router_402_credits(2026),
        WITH_TOKEN,
        Outcome.PAYMENT_REQUIRED,
        "depleted your monthly included credits",
        "retrying will not help",
    ),
    (
        "insufficient_quota is billing, not a rate limit",
        CHAT,
        sim.openai_429_insufficient_quota(),
        WITH_TOKEN,
        Outcome.PAYMENT_REQUIRED,
        "exceeded your current quota",
        "",
    ),
    (
        "anthropic billing_error",
        CHAT,
        sim.anthropic_400_billing(),
        WITH_TOKEN,
        Outcome.PAYMENT_REQUIRED,
        "credit balance is too low",
        "",
    ),
    # --- missing and unsupported models
    (
        "model not deployed on hf-inference",
        EMBED,
        sim.router_404_not_deployed(),
        WITH_TOKEN,
        Outcome.NOT_FOUND,
        "404",
        "provider mapping",
    ),
    (
        "openai unknown model",
        CHAT,
        sim.openai_404_unknown("gpt-9"),
        WITH_TOKEN,
        Outcome.NOT_FOUND,
        "The model `gpt-9` does not exist",
        "model id",
    ),
    (
        "vllm unknown model",
        CHAT,
        sim.vllm_404_unknown("x"),
        WITH_TOKEN,
        Outcome.NOT_FOUND,
        "does not exist",
        "",
    ),
    (
        "no enabled provider",
        CHAT,
        sim.router_400_model_not_supported(LLAMA),
        WITH_TOKEN,
        Outcome.MODEL_UNSUPPORTED,
        "not supported by any provider you have enabled",
        "inference-providers",
    ),
    (
        "provider route not mapped",
        CHAT,
        sim.router_400_provider_unmapped("together"),
        WITH_TOKEN,
        Outcome.MODEL_UNSUPPORTED,
        "Model not supported by provider together",
        "",
    ),
    # --- the seeds' retirements
    (
        "legacy 404 while auth works",
        LEGACY,
        sim.legacy_404(),
        WITH_TOKEN,
        Outcome.DEPRECATED,
        "404",
        "router.huggingface.co",
    ),
    (
        "legacy host 410",
        LEGACY,
        sim.legacy_410("plain"),
        WITH_TOKEN,
        Outcome.DEPRECATED,
        "is no longer supported",
        "switch to https://router.huggingface.co ",
    ),
    (
        "legacy host 410 with slashes",
        LEGACY,
        sim.legacy_410("slash"),
        WITH_TOKEN,
        Outcome.DEPRECATED,
        "no longer supported",
        "switch to https://router.huggingface.co ",
    ),
    (
        "legacy host 410 naming hf-inference",
        LEGACY,
        sim.legacy_410("hf-inference"),
        WITH_TOKEN,
        Outcome.DEPRECATED,
        "no longer supported",
        "switch to https://router.huggingface.co/hf-inference ",
    ),
    (
        "410 on the router too",
        EMBED,
        sim.legacy_410("plain"),
        WITH_TOKEN,
        Outcome.DEPRECATED,
        "no longer supported",
        "switch to https://router.huggingface.co ",
    ),
    (
        "model retired by a provider",
        EMBED,
        sim.router_410_model_deprecated(),
        WITH_TOKEN,
        Outcome.DEPRECATED,
        "deprecated and no longer supported by provider hf-inference",
        "replacement",
    ),
    (
        "openai retired model",
        CHAT,
        sim.openai_404_deprecated("text-davinci-003"),
        WITH_TOKEN,
        Outcome.DEPRECATED,
        "has been deprecated",
        "",
    ),
    # --- transient
    (
        "hub rate limit",
        WHOAMI,
        sim.hub_429(),
        WITH_TOKEN,
        Outcome.RATE_LIMITED,
        "hourly quotas",
        "resets in 293 s",
    ),
    (
        "openai rate limit",
        CHAT,
        sim.openai_429_rate_limit(),
        WITH_TOKEN,
        Outcome.RATE_LIMITED,
        "Rate limit reached",
        "retry after 20 s",
    ),
    (
        "model loading",
        EMBED,
        sim.model_loading_503(MINILM, 20.0),
        WITH_TOKEN,
        Outcome.LOADING,
        "is currently loading",
        "in about 20 s",
    ),
    (
        "anthropic overloaded",
        CHAT,
        sim.anthropic_529_overloaded(),
        WITH_TOKEN,
        Outcome.OVERLOADED,
        "Overloaded",
        "capacity",
    ),
    (
        "tgi overloaded 429",
        CHAT,
        sim.tgi_429_overloaded(),
        WITH_TOKEN,
        Outcome.OVERLOADED,
        "Model is overloaded",
        "",
    ),
    (
        "500",
        CHAT,
        sim.server_500(),
        WITH_TOKEN,
        Outcome.SERVER_ERROR,
        "HTTP 500",
        "not your request",
    ),
    (
        "gateway timeout html page",
        CHAT,
        sim.gateway_504_html(),
        WITH_TOKEN,
        Outcome.SERVER_ERROR,
        "HTML page: 504 Gateway Time-out",
        "",
    ),
    (
        "unhealthy 503 is not loading",
        HTTP,
        sim.unhealthy_503(),
        {},
        Outcome.SERVER_ERROR,
        "unhealthy",
        "",
    ),
    # --- other client errors
    (
        "422",
        CHAT,
        Reply(422, {"error": {"message": "messages: field required"}}),
        WITH_TOKEN,
        Outcome.CLIENT_ERROR,
        "field required",
        "",
    ),
    (
        "405 on http",
        HTTP,
        Reply(405, "Method Not Allowed"),
        {},
        Outcome.CLIENT_ERROR,
        "HTTP 405",
        "",
    ),
    # --- right status, wrong answer
    (
        "embedding of the wrong size",
        EMBED,
        sim.embedding_ok(768),
        WITH_TOKEN,
        Outcome.BAD_RESPONSE,
        "768 dimensions, expected 384",
        "",
    ),
    (
        "embedding with NaN",
        EMBED,
        Reply(200, b"[0.1, NaN, 0.3]", content_type="application/json"),
        WITH_TOKEN,
        Outcome.BAD_RESPONSE,
        "NaN",
        "",
    ),
    ("empty embedding", EMBED, Reply(200, []), WITH_TOKEN, Outcome.BAD_RESPONSE, "empty", ""),
    (
        "embedding of strings",
        EMBED,
        Reply(200, ["a", "b"]),
        WITH_TOKEN,
        Outcome.BAD_RESPONSE,
        "not a numeric vector",
        "",
    ),
    (
        "html where json was expected",
        EMBED,
        Reply(200, "<html><title>Login</title></html>", content_type="text/html"),
        WITH_TOKEN,
        Outcome.BAD_RESPONSE,
        "expected JSON, got text/html",
        "proxy",
    ),
    (
        "chat without choices",
        CHAT,
        Reply(200, {"id": "x", "choices": []}),
        WITH_TOKEN,
        Outcome.BAD_RESPONSE,
        "choices[0]",
        "",
    ),
    (
        "chat without message",
        CHAT,
        Reply(200, {"choices": [{"text": "hi"}]}),
        WITH_TOKEN,
        Outcome.BAD_RESPONSE,
        "choices[0].message",
        "",
    ),
    (
        "openai embeddings without data",
        OAI_EMBED,
        Reply(200, {"data": []}),
        WITH_TOKEN,
        Outcome.BAD_RESPONSE,
        "data[0].embedding",
        "",
    ),
    (
        "whoami without accessToken",
        WHOAMI,
        Reply(200, {"name": "x", "auth": {}}),
        WITH_TOKEN,
        Outcome.BAD_RESPONSE,
        "auth.accessToken",
        "",
    ),
    (
        "http json path mismatch",
        {**HTTP, "expect": {"json_path": {"status.indicator": "none"}}},
        Reply(200, {"status": {"indicator": "major"}}),
        {},
        Outcome.BAD_RESPONSE,
        "'status.indicator' is 'major', expected 'none'",
        "",
    ),
    (
        "http json path missing",
        {**HTTP, "expect": {"json_path": {"status.indicator": "none"}}},
        Reply(200, {"page": {}}),
        {},
        Outcome.BAD_RESPONSE,
        "'status.indicator' is missing",
        "",
    ),
    (
        "http body text missing",
        {**HTTP, "expect": {"body_contains": "Operational"}},
        sim.ok_text("Major Outage"),
        {},
        Outcome.BAD_RESPONSE,
        "does not contain 'Operational'",
        "",
    ),
    (
        "http json path ok",
        {**HTTP, "expect": {"json_path": {"status.indicator": "none", "list.1": 2}}},
        Reply(200, {"status": {"indicator": "none"}, "list": [1, 2]}),
        {},
        Outcome.OK,
        "",
        "",
    ),
    (
        "expected non-2xx status",
        {**HTTP, "expect": {"status": [401, 403]}},
        sim.router_401_no_token(),
        {},
        Outcome.OK,
        "HTTP 401",
        "",
    ),
    (
        "unexpected redirect",
        {**HTTP, "follow_redirects": False},
        Reply(302, "", {"location": "/elsewhere"}),
        {},
        Outcome.BAD_RESPONSE,
        "unexpected HTTP 302",
        "",
    ),
    # --- OpenAI and OpenAI-compatible (2026): a rejected probe request is ours to fix
    (
        "openai max_tokens not supported",
        GPT,
        OPENAI_UNSUPPORTED_MAX_TOKENS,
        OPENAI_KEY,
        Outcome.REQUEST_REJECTED,
        "Unsupported parameter: 'max_tokens'",
        "set max_tokens_field: max_completion_tokens",
    ),
    (
        "openai max_completion_tokens not supported either way",
        {**GPT, "max_tokens_field": "max_completion_tokens"},
        openai_error(
            400,
            "Unsupported parameter: 'max_completion_tokens' is not supported with this model. "
            "Use 'max_tokens' instead.",
            code="unsupported_parameter",
            param="max_completion_tokens",
        ),
        OPENAI_KEY,
        Outcome.REQUEST_REJECTED,
        "max_completion_tokens",
        "set max_tokens_field: max_tokens",
    ),
    (
        "token floor",
        GPT,
        OPENAI_TOKEN_FLOOR,
        OPENAI_KEY,
        Outcome.REQUEST_REJECTED,
        "Expected a value >= 16, but got 1",
        "set max_tokens: 16",
    ),
    (
        "reasoning model spends the budget",
        {**GPT, "max_tokens": 16},
        OPENAI_BUDGET_SPENT,
        OPENAI_KEY,
        Outcome.REQUEST_REJECTED,
        "Could not finish the message",
        "`max_tokens` (now 16) before answering (a reasoning model thinks first): raise it, "
        "e.g. max_tokens: 256",
    ),
    (
        "context too long",
        GPT,
        OPENAI_CONTEXT,
        OPENAI_KEY,
        Outcome.REQUEST_REJECTED,
        "maximum context length is 128000 tokens",
        "shorten `prompt`",
    ),
    (
        "request larger than the TPM limit",
        GPT,
        OPENAI_TOO_LARGE,
        OPENAI_KEY,
        Outcome.REQUEST_REJECTED,
        "Request too large for gpt-4o",
        "lower `max_tokens` (now 1) or shorten `prompt` (retrying will not help)",
    ),
    (
        "embeddings input too long",
        GPT_EMBED,
        openai_error(
            400,
            "This model's maximum context length is 8192 tokens, however you requested 9000 "
            "tokens (9000 in your prompt; 0 for the completion). Please reduce your prompt; or "
            "completion length.",
        ),
        OPENAI_KEY,
        Outcome.REQUEST_REJECTED,
        "maximum context length is 8192",
        "shorten it in `payload`",
    ),
    (
        "own payload refused names the payload",
        {**GPT, "payload": {"model": "gpt-4.1", "messages": [], "max_tokens": 1}},
        OPENAI_UNSUPPORTED_MAX_TOKENS,
        OPENAI_KEY,
        Outcome.REQUEST_REJECTED,
        "Unsupported parameter",
        "does not accept `max_tokens`: change `payload`",
    ),
    # --- the rest of the OpenAI-compatible table
    (
        "openai bad key",
        GPT,
        OPENAI_BAD_KEY,
        OPENAI_KEY,
        Outcome.AUTH_INVALID,
        "Incorrect API key provided: sk-abc***xyz",
        "the token in OPENAI_API_KEY was rejected",
    ),
    (
        "openai missing key",
        GPT,
        openai_error(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code="missing_api_key",
        ),
        {},
        Outcome.AUTH_MISSING,
        "You didn't provide an API key",
        "OPENAI_API_KEY is not set",
    ),
    (
        "openai key of another organization",
        GPT,
        openai_error(
            401,
            "OpenAI-Organization header should match organization for API key",
            code="mismatched_organization",
        ),
        OPENAI_KEY,
        Outcome.AUTH_INVALID,
        "should match organization",
        "OpenAI-Organization header",
    ),
    (
        "ip not allowed",
        GPT,
        openai_error(401, "IP not authorized"),
        OPENAI_KEY,
        Outcome.FORBIDDEN,
        "IP not authorized",
        "allowlist",
    ),
    (
        "country not supported",
        GPT,
        openai_error(
            403,
            "Country, region, or territory not supported",
            type_="request_forbidden",
            code="unsupported_country_region_territory",
        ),
        OPENAI_KEY,
        Outcome.FORBIDDEN,
        "Country, region, or territory not supported",
        "supported region",
    ),
    (
        "openai model does not exist or no access",
        GPT,
        openai_error(
            404,
            "The model `gpt-4` does not exist or you do not have access to it.",
            code="model_not_found",
        ),
        OPENAI_KEY,
        Outcome.NOT_FOUND,
        "The model `gpt-4` does not exist or you do not have access to it.",
        "model id",
    ),
    (
        "openai tokens per minute",
        GPT,
        OPENAI_TPM,
        OPENAI_KEY,
        Outcome.RATE_LIMITED,
        "on tokens per min (TPM)",
        "resets in 3.89s (x-ratelimit-reset-tokens)",
    ),
    (
        "azure deployment not found",
        {**GPT, "model": "gpt-4o-prod"},
        AZURE_NO_DEPLOYMENT,
        OPENAI_KEY,
        Outcome.NOT_FOUND,
        "The API deployment for this resource does not exist",
        "no deployment named 'gpt-4o-prod': set `model` to the deployment's name",
    ),
    (
        "azure api-version",
        GPT,
        AZURE_API_VERSION,
        OPENAI_KEY,
        Outcome.NOT_FOUND,
        "HTTP 404: Resource not found",
        "api-version: use base_url https://<resource>.openai.azure.com/openai/v1",
    ),
    (
        "groq model decommissioned",
        {**GPT, "model": "llama-3.2-11b-vision-preview"},
        GROQ_DECOMMISSIONED,
        OPENAI_KEY,
        Outcome.DEPRECATED,
        "has been decommissioned",
        "pick its successor (see https://console.groq.com/docs/deprecations)",
    ),
    (
        "openai retired model names its deprecations page",
        GPT,
        sim.openai_404_deprecated("text-davinci-003"),
        OPENAI_KEY,
        Outcome.DEPRECATED,
        "has been deprecated",
        "see https://platform.openai.com/docs/deprecations",
    ),
    (
        "openrouter out of credits",
        {**GPT, "model": "openai/gpt-4o"},
        OPENROUTER_CREDITS,
        OPENAI_KEY,
        Outcome.PAYMENT_REQUIRED,
        "Insufficient credits",
        "add credits at https://openrouter.ai/settings/credits (retrying will not help)",
    ),
    (
        "cohere bad token",
        {**GPT, "model": "command-r"},
        COHERE_BAD_TOKEN,
        OPENAI_KEY,
        Outcome.AUTH_INVALID,
        "HTTP 401: invalid api token",
        "rejected",
    ),
    (
        "cohere unknown model",
        {**GPT, "model": "xlarge"},
        COHERE_NO_MODEL,
        OPENAI_KEY,
        Outcome.NOT_FOUND,
        "model 'xlarge' not found",
        "model id",
    ),
    # --- a success status that is not a success
    (
        "200 carrying an error object",
        GPT,
        Reply(200, {"error": {"message": "Provider returned error", "code": 502}}),
        OPENAI_KEY,
        Outcome.BAD_RESPONSE,
        "HTTP 200 carrying an error: Provider returned error",
        "reported success",
    ),
    (
        "200 carrying an error string, any kind",
        EMBED,
        Reply(200, {"error": "Internal Server Error"}),
        WITH_TOKEN,
        Outcome.BAD_RESPONSE,
        "HTTP 200 carrying an error: Internal Server Error",
        "",
    ),
]


def _target(spec: dict[str, Any], base: str) -> dict[str, Any]:
    target = {"name": "t", **spec}
    if target["kind"] == "http":
        target["url"] = target["url"].format(base=base)
    else:
        target["base_url"] = base
    return target


@pytest.mark.parametrize(
    ("target", "reply", "env", "outcome", "detail", "hint"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_it_classifies_real_provider_answers(
    provider: FakeProvider,
    target: dict[str, Any],
    reply: Reply,
    env: dict[str, str],
    outcome: Outcome,
    detail: str,
    hint: str,
) -> None:
    config = make_config([_target(target, provider.url)], env=env)
    provider.route(urlsplit(config.targets[0].endpoint).path, reply)

    result = probe_once(config, env)["t"]

    assert result.outcome == outcome, (result.detail, result.hint)
    assert detail in result.detail
    assert hint in result.hint
    assert result.http_status == reply.status
    assert "\n" not in result.detail


SCOPE_FACTS = {
    "missing_permission": "Make calls to Inference Providers",
    "missing_permission_id": "inference.serverless.write",
}
# (id, target, reply, env, facts; retry_at is checked against the probe's own time)
FACT_CASES: list[tuple[str, dict[str, Any], Reply, dict[str, Any]]] = [
    ("legacy 410", LEGACY, sim.legacy_410(), {"replacement_url": "https://router.huggingface.co"}),
    (
        "legacy 410 naming hf-inference",
        LEGACY,
        sim.legacy_410("hf-inference"),
        {"replacement_url": "https://router.huggingface.co/hf-inference"},
    ),
    (
        "410 on the router",
        EMBED,
        sim.legacy_410("slash"),
        {"replacement_url": "https://router.huggingface.co"},
    ),
    ("legacy 404 names no replacement", LEGACY, sim.legacy_404(), {}),
    ("token scope 403", CHAT, sim.router_403_scope(), SCOPE_FACTS),
    ("token scope by whoami", WHOAMI, sim.whoami(permissions=["repo.content.read"]), SCOPE_FACTS),
    ("model loading", EMBED, sim.model_loading_503(MINILM, 20.0), {"estimated_time_s": 20.0}),
    ("hub rate limit", WHOAMI, sim.hub_429(), {"retry_after_s": 293.0}),
    ("openai rate limit", CHAT, sim.openai_429_rate_limit(), {"retry_after_s": 20.0}),
    ("openai tokens per minute", CHAT, OPENAI_TPM, {"retry_after_s": 3.89}),
    ("500", CHAT, sim.server_500(), {}),
    ("ok", EMBED, sim.embedding_ok(384), {}),
]


@pytest.mark.parametrize(
    ("target", "reply", "facts"), [c[1:] for c in FACT_CASES], ids=[c[0] for c in FACT_CASES]
)
def test_results_carry_structured_facts(
    provider: FakeProvider, target: dict[str, Any], reply: Reply, facts: dict[str, Any]
) -> None:
    config = make_config([_target(target, provider.url)], env=WITH_TOKEN)
    provider.route(urlsplit(config.targets[0].endpoint).path, reply)

    result = probe_once(config, WITH_TOKEN)["t"]

    if "retry_after_s" in facts:
        at = result.checked_at + timedelta(seconds=facts["retry_after_s"])
        facts = {**facts, "retry_at": at.isoformat(timespec="seconds")}
    assert result.facts == facts


def real_answer_outcomes() -> set[Outcome]:
    """The outcomes expected by every test file's table of real answers: by convention a
    module-level list named CASES whose tuples hold the expected Outcome (this file's, the
    Anthropic kind's, the status page kind's, ...)."""
    produced: set[Outcome] = set()
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        if not re.search(r"^CASES\b", path.read_text(encoding="utf-8"), re.M):
            continue
        cases = getattr(importlib.import_module(f"tests.{path.stem}"), "CASES", [])
        produced |= {x for case in cases for x in case if isinstance(x, Outcome)}
    return produced


def test_the_union_of_real_answer_tables_includes_this_file_and_others() -> None:
    produced = real_answer_outcomes()
    assert {c[4] for c in CASES} <= produced
    assert Outcome.REQUEST_REJECTED in produced  # from this file's OpenAI cases


def test_every_outcome_is_covered_by_a_real_answer() -> None:
    """The tables of real answers plus the transport tests below reach every outcome name."""
    produced = real_answer_outcomes() | {
        Outcome.SLOW,
        Outcome.TIMEOUT,
        Outcome.DNS_ERROR,
        Outcome.CONNECT_ERROR,
        Outcome.TLS_ERROR,
    }
    assert produced == set(Outcome)


def test_it_reports_slow_answers_that_still_pass(provider: FakeProvider) -> None:
    config = make_config([_target({**HTTP, "expect": {"max_latency": "100ms"}}, provider.url)])
    provider.route("/status", Reply(200, "fine", delay=0.3))

    result = probe_once(config)["t"]

    assert result.outcome == Outcome.SLOW
    assert "over the 100 ms limit" in result.detail
    assert result.latency_ms is not None and result.latency_ms >= 300


def test_it_reports_a_timeout_when_no_answer_comes(provider: FakeProvider) -> None:
    config = make_config([_target({**HTTP, "timeout": "300ms"}, provider.url)])
    provider.route("/status", Reply(200, "late", delay=2))

    result = probe_once(config)["t"]

    assert result.outcome == Outcome.TIMEOUT
    assert "no response within 0.3 s" in result.detail
    assert result.http_status is None


def test_it_reports_dns_failure() -> None:
    config = make_config([{"name": "t", "kind": "http", "url": "http://no-such-host.invalid/"}])

    result = probe_once(config)["t"]

    assert result.outcome == Outcome.DNS_ERROR
    assert "no-such-host.invalid" in result.detail
    assert "host name" in result.hint


def test_it_reports_a_refused_connection(free_port: int) -> None:
    config = make_config([{"name": "t", "kind": "http", "url": f"http://127.0.0.1:{free_port}/"}])

    result = probe_once(config)["t"]

    assert result.outcome == Outcome.CONNECT_ERROR
    assert "refused" in result.detail


def test_it_records_announced_retirement_on_an_ok_probe(provider: FakeProvider) -> None:
    config = make_config([_target(EMBED, provider.url)], env=WITH_TOKEN)
    answer = sim.embedding_ok(384)
    headers = {
        **answer.headers,
        "Deprecation": "@1767225600",
        "Sunset": "Wed, 01 Jul 2026 00:00:00 GMT",
        "Link": '<https://huggingface.co/docs/deprecations>; rel="deprecation"',
    }
    provider.route(urlsplit(config.targets[0].endpoint).path, Reply(200, answer.body, headers))

    result = probe_once(config, WITH_TOKEN)["t"]

    assert result.outcome == Outcome.OK
    assert "deprecated since 2026-01-01" in result.warning
    assert "retires on 2026-07-01" in result.warning
    assert "https://huggingface.co/docs/deprecations" in result.warning
    assert result.headers["sunset"] == "Wed, 01 Jul 2026 00:00:00 GMT"


def test_it_keeps_request_id_provider_and_headers_of_interest(provider: FakeProvider) -> None:
    config = make_config([_target(LEGACY, provider.url)], env=WITH_TOKEN)
    provider.route("/models/gpt2", sim.legacy_404())

    result = probe_once(config, WITH_TOKEN)["t"]

    assert result.request_id == "Root=1-68a2f1c0-0d1e2f3a4b5c6d7e8f901234"
    assert result.provider == "hf-inference"
    assert result.body_excerpt == "Not Found"
    assert "x-powered-by" not in result.headers  # only headers of interest are kept


def test_request_id_falls_back_to_cloudfront_id(provider: FakeProvider) -> None:
    config = make_config([_target(LEGACY, provider.url)], env=WITH_TOKEN)
    provider.route("/models/gpt2", sim.legacy_410())

    result = probe_once(config, WITH_TOKEN)["t"]

    assert result.request_id == sim.legacy_410().headers["x-amz-cf-id"]


def test_it_sends_the_token_only_when_its_variable_is_set(provider: FakeProvider) -> None:
    config = make_config(
        [
            _target({**EMBED, "name": "with"}, provider.url),
            _target({**CHAT, "name": "without"}, provider.url),
        ]
    )
    for t in config.targets:
        provider.route(urlsplit(t.endpoint).path, sim.chat_ok())

    probe_once(config, {"HF_TOKEN": TOKEN})
    probe_once(config, {})

    auth = [(r.path, r.headers.get("authorization")) for r in provider.requests]
    # The two probes of a pass run concurrently: compare each pass as a set.
    assert set(auth[:2]) == {
        (
            "/hf-inference/models/sentence-transformers/all-MiniLM-L6-v2/pipeline/feature-extraction",
            f"Bearer {TOKEN}",
        ),
        ("/chat/completions", f"Bearer {TOKEN}"),
    }
    assert [a for _, a in auth[2:]] == [None, None]


def test_minimal_payloads_are_what_the_apis_expect(provider: FakeProvider) -> None:
    import json

    config = make_config(
        [
            _target({**CHAT, "name": "chat"}, provider.url),
            _target({**EMBED, "name": "embed"}, provider.url),
            _target(
                {
                    "kind": "hf-inference",
                    "model": "m",
                    "task": "sentence-similarity",
                    "name": "sim",
                },
                provider.url,
            ),
        ]
    )
    probe_once(config, {})

    bodies = {r.path: json.loads(r.body) for r in provider.requests}
    chat = bodies["/chat/completions"]
    assert chat["model"] == LLAMA and chat["max_tokens"] == 1
    assert [m["role"] for m in chat["messages"]] == ["user"]
    assert isinstance(
        bodies[f"/hf-inference/models/{MINILM}/pipeline/feature-extraction"]["inputs"], str
    )
    assert (
        "source_sentence" in bodies["/hf-inference/models/m/pipeline/sentence-similarity"]["inputs"]
    )


# ---------------------------------------------------------------- the probe's own token budget


def test_the_budget_field_and_size_are_the_targets_to_choose(provider: FakeProvider) -> None:
    import json

    target = {**GPT, "max_tokens": 16, "max_tokens_field": "max_completion_tokens"}
    config = make_config([_target(target, provider.url)], env=OPENAI_KEY)
    provider.route("/chat/completions", sim.chat_ok(model="gpt-4.1"))

    result = probe_once(config, OPENAI_KEY)["t"]

    assert result.outcome == Outcome.OK
    (sent,) = [json.loads(r.body) for r in provider.requests]
    assert sent["max_completion_tokens"] == 16
    assert "max_tokens" not in sent


def test_a_reasoning_model_that_spends_the_budget_thinking_is_ok_with_a_warning(
    provider: FakeProvider,
) -> None:
    """OpenAI's o-series answer 200 with an empty message and finish_reason "length" when
    max_completion_tokens is all spent reasoning: the model is up, but no text was checked."""
    thought_only = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "o4-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ""},
                "finish_reason": "length",
            }
        ],
        "usage": {
            "prompt_tokens": 9,
            "completion_tokens": 16,
            "total_tokens": 25,
            "completion_tokens_details": {"reasoning_tokens": 16},
        },
    }
    target = {**GPT, "model": "o4-mini", "max_tokens": 16}
    config = make_config([_target(target, provider.url)], env=OPENAI_KEY)
    provider.route("/chat/completions", [Reply(200, thought_only), sim.chat_ok(model="o4-mini")])

    spent, answered = (probe_once(config, OPENAI_KEY)["t"] for _ in range(2))

    assert spent.outcome == Outcome.OK and answered.outcome == Outcome.OK
    assert "spent the 16-token budget reasoning (16 reasoning tokens)" in spent.warning
    assert "max_tokens: 256" in spent.warning
    assert spent.usage_tokens == 25
    assert answered.warning == ""  # a real answer within the budget says nothing


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("max_tokens_field", "max_output_tokens", "'max_tokens' or 'max_completion_tokens'"),
        ("max_tokens", 0, "greater than or equal to 1"),
    ],
)
def test_a_wrong_budget_setting_is_a_config_error_naming_the_field(
    field: str, value: object, words: str
) -> None:
    from monitor.config.load import ConfigError

    with pytest.raises(ConfigError) as info:
        make_config([{**GPT, "name": "gpt", "base_url": "https://api.openai.com/v1", field: value}])

    (problem,) = info.value.problems
    assert (problem.target, problem.field) == ("gpt", field)
    assert words in problem.message


# ---------------------------------------------------------------- silent model substitution


def test_a_model_answered_by_another_is_ok_with_a_recorded_warning(
    provider: FakeProvider, db_url: str
) -> None:
    from sqlalchemy.orm import Session

    from monitor.store import reads, save_results, sync_targets
    from monitor.store.db import open_database

    target = {**GPT, "model": "llama-3.1-70b-versatile"}
    config = make_config([_target(target, provider.url)], env=OPENAI_KEY, database=db_url)
    provider.route("/chat/completions", sim.chat_ok(model="llama-3.3-70b-versatile"))

    result = probe_once(config, OPENAI_KEY)["t"]

    assert result.outcome == Outcome.OK
    assert result.warning.startswith(
        "asked for model 'llama-3.1-70b-versatile' but 'llama-3.3-70b-versatile' answered"
    )
    engine = open_database(db_url)
    with Session(engine) as session, session.begin():
        save_results(session, [result], sync_targets(session, config.targets, config.redactor()))
    with Session(engine) as session:
        (stored,) = reads.probe_log(session, "t", result.checked_at, datetime.now(UTC))
        assert stored.outcome == "ok"
        assert stored.warning == result.warning


@pytest.mark.parametrize(
    ("requested", "answered"),
    [
        ("gpt-4o", "gpt-4o-2024-08-06"),  # a dated snapshot of the alias
        ("gpt-4", "gpt-4-0613"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet-20241022"),
        ("chatgpt-4o-latest", "chatgpt-4o-latest"),
        ("gemini-1.5-flash", "gemini-1.5-flash-002"),
        (LLAMA, "meta-llama/llama-3.1-8b-instruct"),  # a provider's lower case
        (f"{LLAMA}:together", LLAMA),  # Hugging Face's router suffix picks the provider
        (LLAMA, "Llama-3.1-8B-Instruct"),  # the organisation left out
    ],
)
def test_the_same_model_under_its_usual_spellings_is_no_substitution(
    provider: FakeProvider, requested: str, answered: str
) -> None:
    config = make_config([_target({**GPT, "model": requested}, provider.url)], env=OPENAI_KEY)
    provider.route("/chat/completions", sim.chat_ok(model=answered))

    result = probe_once(config, OPENAI_KEY)["t"]

    assert (result.outcome, result.warning) == (Outcome.OK, "")


@pytest.mark.parametrize(
    ("requested", "answered"),
    [
        ("gpt-4", "gpt-4o"),
        ("gpt-4o", "gpt-4o-mini"),
        (LLAMA, "meta-llama/Llama-3.1-70B-Instruct"),
        (LLAMA, "other-org/Llama-3.1-8B-Instruct"),
    ],
)
def test_another_model_is_a_substitution(requested: str, answered: str) -> None:
    from monitor.probing.classify import same_model

    assert not same_model(requested, answered)


def test_the_limit_that_ran_out_names_the_reset(provider: FakeProvider) -> None:
    """OpenAI sends both limits' headers; a tokens-per-minute 429 waits for the tokens one."""
    config = make_config([_target(GPT, provider.url)], env=OPENAI_KEY)
    requests_too = {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-reset-requests": "120ms",
        **OPENAI_TPM.headers,
    }
    provider.route("/chat/completions", Reply(429, OPENAI_TPM.body, requests_too))

    result = probe_once(config, OPENAI_KEY)["t"]

    assert result.outcome == Outcome.RATE_LIMITED
    assert "resets in 3.89s (x-ratelimit-reset-tokens)" in result.hint
    assert result.facts["retry_after_s"] == 3.89


def test_a_rejected_probe_request_never_counts_as_working(provider: FakeProvider) -> None:
    """LiteLLM's health check once called such an endpoint healthy; here it is a contract break."""
    from monitor.domain.evidence import OutcomeClass, outcome_class
    from monitor.domain.states import WORKING_OUTCOMES

    config = make_config([_target(GPT, provider.url)], env=OPENAI_KEY)
    provider.route("/chat/completions", OPENAI_UNSUPPORTED_MAX_TOKENS)

    result = probe_once(config, OPENAI_KEY)["t"]

    assert result.outcome == Outcome.REQUEST_REJECTED
    assert result.outcome not in WORKING_OUTCOMES
    assert outcome_class(result.outcome) is OutcomeClass.CONTRACT


def test_a_floor_on_another_parameter_is_not_a_token_budget(provider: FakeProvider) -> None:
    config = make_config([_target({**GPT, "payload": {"temperature": -1}}, provider.url)])
    floor = openai_error(
        400,
        "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got -1 "
        "instead.",
        code="decimal_below_min_value",
        param="temperature",
    )
    provider.route("/chat/completions", floor)

    result = probe_once(config, OPENAI_KEY)["t"]

    assert result.outcome == Outcome.CLIENT_ERROR
    assert "max_tokens" not in result.hint

"""The classifier as a pure function: tables of evidence in, outcome/detail/hint out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.domain.answers import json_lookup, provider_message
from monitor.domain.evidence import Evidence, Outcome, Timings, TransportError
from monitor.probing.classify import classify, rate_limit_hint, retirement_warning
from monitor.targets.hf import replacement_hint
from tests.helpers import make_config

HTTP_TARGET = make_config([{"name": "t", "kind": "http", "url": "http://x/"}]).targets[0]
CHAT_TARGET = make_config(
    [{"name": "c", "kind": "openai-chat", "model": "m", "token_env": "OPENAI_KEY"}]
).targets[0]


def ev(
    status: int | None = 200, body: Any = b"", headers: dict[str, str] | None = None, **kw: Any
) -> Evidence:
    raw = body if isinstance(body, bytes) else body.encode()
    return Evidence(
        url="http://x/",
        method="POST",
        started_at=kw.pop("started_at", datetime.now(UTC)),
        token_sent=kw.pop("token", True),
        status=status,
        headers=headers or {},
        body=raw,
        timings=Timings(total_ms=12.0),
        **kw,
    )


@pytest.mark.parametrize(
    ("headers", "hint"),
    [
        ({"retry-after": "30"}, "retry after 30 s (Retry-After)"),
        (
            {"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"},
            "retry after Wed, 21 Oct 2026 07:28:00 GMT",
        ),
        ({"ratelimit": '"api";r=0;t=293'}, "resets in 293 s, 0 requests left"),
        ({"x-ratelimit-reset-requests": "6m0s"}, "resets in 6m0s"),
        ({}, "probe less often"),
    ],
)
def test_rate_limit_hints_name_the_reset(headers: dict[str, str], hint: str) -> None:
    assert hint in rate_limit_hint(headers)


@pytest.mark.parametrize(
    ("headers", "text"),
    [
        ({"deprecation": "@1767225600"}, "deprecated since 2026-01-01"),
        ({"deprecation": "true"}, "deprecated since an unspecified date"),
        ({"sunset": "Wed, 01 Jul 2026 00:00:00 GMT"}, "retires on 2026-07-01"),
        ({"sunset": "soon-ish"}, "retires on soon-ish"),
        ({}, ""),
    ],
)
def test_retirement_headers_become_a_warning(headers: dict[str, str], text: str) -> None:
    warning = retirement_warning(headers)
    assert text in warning
    assert bool(warning) == bool(text)


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        ('{"error":"plain string"}', {}, "plain string"),
        ('{"error":{"message":"object message","code":"x"}}', {}, "object message"),
        (
            '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
            {},
            "Overloaded",
        ),
        ('{"detail":"fastapi style"}', {}, "fastapi style"),
        ("", {"x-error-message": "from the header"}, "from the header"),
        ("Not Found", {}, "Not Found"),
        (
            "<html><head><title>502 Bad &amp; Gateway</title></head></html>",
            {},
            "HTML page: 502 Bad & Gateway",
        ),
        ("first line\nsecond line", {}, "first line"),
        # Whole: the result is cut after redaction (tests/test_pipeline.py).
        ('{"error":"' + "x" * 1000 + '"}', {}, "x" * 1000),
        ('{"error":"two\\nlines  and   runs"}', {}, "two lines and runs"),
    ],
)
def test_it_reads_the_providers_own_words(body: str, headers: dict[str, str], message: str) -> None:
    assert provider_message(ev(400, body, headers)) == message


@pytest.mark.parametrize(
    ("message", "hint"),
    [
        (
            "https://a is no longer supported. Please use https://router.huggingface.co instead.",
            "switch to https://router.huggingface.co (named",
        ),
        (
            "X is gone; use https://new.example/v2 instead",
            "switch to https://new.example/v2 (named",
        ),
        ("The model is deprecated", ""),
    ],
)
def test_it_pulls_the_replacement_url(message: str, hint: str) -> None:
    assert replacement_hint(message).startswith(hint) if hint else replacement_hint(message) == ""


@pytest.mark.parametrize(
    ("data", "path", "found", "value"),
    [
        ({"a": {"b": [1, {"c": 3}]}}, "a.b.1.c", True, 3),
        ({"a": [1, 2]}, "a.-1", True, 2),
        ({"a": [1, 2]}, "a.5", False, None),
        ({"a": None}, "a.b", False, None),
        (None, "a", False, None),
    ],
)
def test_json_lookup(data: Any, path: str, found: bool, value: Any) -> None:
    assert json_lookup(data, path) == (found, value)


def test_a_401_without_a_token_names_the_missing_variable() -> None:
    verdict = classify(CHAT_TARGET, ev(401, '{"error":"Unauthorized"}', token=False))
    assert verdict.outcome == Outcome.AUTH_MISSING
    assert verdict.hint.startswith("OPENAI_KEY is not set")


def test_a_401_without_token_env_says_to_configure_one() -> None:
    verdict = classify(HTTP_TARGET, ev(401, "", token=False))
    assert verdict.outcome == Outcome.AUTH_MISSING
    assert "set token_env" in verdict.hint


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (TransportError.TIMEOUT, Outcome.TIMEOUT),
        (TransportError.DNS, Outcome.DNS_ERROR),
        (TransportError.CONNECT, Outcome.CONNECT_ERROR),
        (TransportError.TLS, Outcome.TLS_ERROR),
        (TransportError.PROTOCOL, Outcome.BAD_RESPONSE),
        (TransportError.REDIRECTS, Outcome.BAD_RESPONSE),
    ],
)
def test_transport_errors_map_to_outcomes(error: TransportError, outcome: Outcome) -> None:
    verdict = classify(HTTP_TARGET, ev(None, error=error, error_detail="what happened"))
    assert verdict.outcome == outcome
    assert verdict.detail == "what happened"
    assert verdict.hint


def test_a_head_request_needs_no_json_body() -> None:
    target = make_config(
        [{"name": "t", "kind": "http", "url": "http://x/", "method": "HEAD"}]
    ).targets[0]
    assert classify(target, ev(200, "")).outcome == Outcome.OK


@pytest.mark.parametrize("header", ["x-api-key", "x-goog-api-key", "api-key", "Authorization"])
def test_a_key_in_any_credential_header_counts_as_a_token_sent(header: str) -> None:
    from monitor.domain.evidence import RequestSpec

    spec = RequestSpec("POST", "http://x/", headers={header: "k"})
    verdict = classify(CHAT_TARGET, ev(401, '{"error":"invalid x-api-key"}', token=spec.token_sent))
    assert verdict.outcome == Outcome.AUTH_INVALID


# ---------------------------------------------------------------- structured facts

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "facts"),
    [
        ({"retry-after": "30"}, {"retry_after_s": 30.0, "retry_at": "2026-11-20T12:00:30+00:00"}),
        (
            {"retry-after": "Fri, 20 Nov 2026 12:05:00 GMT"},
            {"retry_after_s": 300.0, "retry_at": "2026-11-20T12:05:00+00:00"},
        ),
        (
            {"ratelimit": '"api";r=0;t=293'},
            {"retry_after_s": 293.0, "retry_at": "2026-11-20T12:04:53+00:00"},
        ),
        (
            {"x-ratelimit-reset-requests": "6m0s"},
            {"retry_after_s": 360.0, "retry_at": "2026-11-20T12:06:00+00:00"},
        ),
        (
            {"x-ratelimit-reset-tokens": "3.89s"},
            {"retry_after_s": 3.89, "retry_at": "2026-11-20T12:00:03+00:00"},
        ),
        (
            {"x-ratelimit-reset-tokens": "120ms"},
            {"retry_after_s": 0.12, "retry_at": T0.isoformat()},
        ),
        (
            {"x-ratelimit-reset": "1795176000"},  # Unix seconds
            {"retry_after_s": 0.0, "retry_at": "2026-11-20T12:00:00+00:00"},
        ),
        # Not computable: the hint still says what was sent, no fact is made up.
        ({"retry-after": "soon"}, {}),
        ({"retry-after": "²"}, {}),
        ({"x-ratelimit-reset": "nan"}, {}),
        ({"x-ratelimit-reset-requests": "9" * 60}, {}),
        ({"ratelimit": '"api";r=0;t=' + "9" * 40}, {}),
        ({}, {}),
    ],
)
def test_a_rate_limit_carries_when_it_resets(
    headers: dict[str, str], facts: dict[str, Any]
) -> None:
    verdict = classify(CHAT_TARGET, ev(429, '{"error":"slow down"}', headers, started_at=T0))
    assert verdict.outcome == Outcome.RATE_LIMITED
    assert verdict.facts == facts
    assert verdict.hint == rate_limit_hint(headers)


def test_an_announced_retirement_carries_its_dates() -> None:
    headers = {"deprecation": "@1767225600", "sunset": "Wed, 01 Jul 2026 00:00:00 GMT"}
    verdict = classify(HTTP_TARGET, ev(200, "fine", headers))
    assert verdict.outcome == Outcome.OK
    assert verdict.facts == {"deprecation": "2026-01-01", "sunset": "2026-07-01"}
    undated = classify(HTTP_TARGET, ev(200, "fine", {"deprecation": "true"}))
    assert undated.facts == {"deprecation": "true"}


def test_facts_sit_next_to_the_hints_they_restate() -> None:
    gone = (
        '{"error":"x is no longer supported. Please use https://router.huggingface.co/ instead."}'
    )
    retired = classify(CHAT_TARGET, ev(410, gone))
    assert retired.facts == {"replacement_url": "https://router.huggingface.co"}
    assert retired.hint.startswith("switch to https://router.huggingface.co ")

    scope = (
        '{"error":"This authentication method does not have sufficient permissions to call '
        'Inference Providers on behalf of user u"}'
    )
    denied = classify(CHAT_TARGET, ev(403, scope))
    assert denied.outcome == Outcome.TOKEN_SCOPE
    assert denied.facts == {
        "missing_permission": "Make calls to Inference Providers",
        "missing_permission_id": "inference.serverless.write",
    }

    loading = classify(
        CHAT_TARGET, ev(503, '{"error":"Model m is currently loading","estimated_time":20.0}')
    )
    assert loading.outcome == Outcome.LOADING and loading.facts == {"estimated_time_s": 20.0}
    assert "in about 20 s" in loading.hint


def test_a_verdict_without_facts_has_an_empty_dict() -> None:
    assert classify(HTTP_TARGET, ev(500, "")).facts == {}
    assert classify(HTTP_TARGET, ev(None, error=TransportError.DNS)).facts == {}

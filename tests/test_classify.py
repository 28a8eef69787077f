"""The classifier as a pure function: tables of evidence in, outcome/detail/hint out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.domain.answers import json_lookup, provider_message
from monitor.domain.evidence import Evidence, Outcome, Timings, TransportError
from monitor.probing.classify import classify, rate_limit_hint, retirement_warning
from monitor.targets.hf import replacement_hint
from tests.conftest import make_config

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
        started_at=datetime.now(UTC),
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
        ('{"error":"' + "x" * 1000 + '"}', {}, "x" * 299 + "…"),
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

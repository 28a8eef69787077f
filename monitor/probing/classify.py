"""Pure: one probe's evidence -> outcome, one-line detail, hint (what to do) and warning.

Reads the error shapes of the real providers (see shared/provider-errors.md): Hugging Face's
string `error`, OpenAI-style `error.{message,type,code}`, Anthropic's `error.type`, TGI's
`error_type`, Gemini's `error.status`, plain-text and HTML answers from proxies.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import replace
from datetime import UTC, datetime
from http import HTTPStatus

from monitor.domain.answers import error_codes, json_lookup, provider_message
from monitor.domain.evidence import Evidence, Outcome, TransportError, Verdict
from monitor.domain.text import one_line
from monitor.targets import TargetBase
from monitor.targets.hf import SCOPE_HINT, SCOPE_MARKER, replacement_hint

BILLING_CODES = {"insufficient_quota", "billing_error", "billing_hard_limit_reached"}
LOADING_MARKERS = ("currently loading", "is loading", "scaling up", "scaled to zero", "initializ")


def classify(target: TargetBase, ev: Evidence) -> Verdict:
    """The whole judgement of one probe. Never raises on odd input."""
    verdict = _judge(target, ev)
    warning = retirement_warning(ev.headers)
    return replace(verdict, warning=warning) if warning else verdict


def _judge(target: TargetBase, ev: Evidence) -> Verdict:
    if ev.error is not None or ev.status is None:
        return transport_verdict(target, ev)
    expect = target.expect
    if not expect.accepts_status(ev.status):
        return target.judge_error(ev) or status_verdict(target, ev)
    failure = _shape_problem(target, ev) or _expect_problem(target, ev)
    if failure:
        return failure
    total = ev.timings.total_ms or 0.0
    if expect.max_latency is not None and total > expect.max_latency * 1000:
        return Verdict(
            Outcome.SLOW,
            detail=f"HTTP {ev.status} in {total:.0f} ms, over the {expect.max_latency * 1000:.0f} "
            "ms limit",
            hint="the endpoint works but answers slowly; see the latency chart for a trend",
        )
    return Verdict(Outcome.OK, detail=f"HTTP {ev.status} in {total:.0f} ms")


# ---------------------------------------------------------------- transport failures

_TRANSPORT = {
    TransportError.TIMEOUT: (
        Outcome.TIMEOUT,
        "a cold model, an overloaded provider or a "
        "network problem; raise `timeout` if answers are just slow",
    ),
    TransportError.DNS: (Outcome.DNS_ERROR, "check the host name in the target's URL"),
    TransportError.CONNECT: (
        Outcome.CONNECT_ERROR,
        "nothing accepted the connection: is the service running and the port right?",
    ),
    TransportError.TLS: (
        Outcome.TLS_ERROR,
        "the certificate is untrusted, expired or for another host",
    ),
    TransportError.PROTOCOL: (Outcome.BAD_RESPONSE, "the peer does not speak HTTP on this port"),
    TransportError.REDIRECTS: (Outcome.BAD_RESPONSE, "point the target at the final URL"),
    TransportError.REQUEST: (
        Outcome.CLIENT_ERROR,
        "check the token and the headers for stray spaces or newlines",
    ),
}


def transport_verdict(target: TargetBase, ev: Evidence) -> Verdict:
    outcome, hint = _TRANSPORT.get(ev.error or TransportError.CONNECT)
    return Verdict(outcome, detail=one_line(ev.error_detail or str(outcome)), hint=hint)


# ---------------------------------------------------------------- HTTP errors


def status_verdict(target: TargetBase, ev: Evidence) -> Verdict:
    """Read a status that `expect` does not accept, the way the providers mean it."""
    status = ev.status or 0
    message = provider_message(ev)
    codes = error_codes(ev)
    low = message.lower()
    detail = f"HTTP {status}: {message}" if message else f"HTTP {status} {_reason(status)}"

    def verdict(outcome: Outcome, hint: str = "") -> Verdict:
        return Verdict(outcome, detail=detail, hint=hint)

    env = target.token_env
    if "gatedrepo" in codes or ("gated" in low and status in (401, 403)):
        return verdict(
            Outcome.GATED,
            "the model is gated: accept its conditions on its Hugging Face page with the "
            "token's account, and allow 'Read access to public gated repos'",
        )
    if status == 402 or codes & BILLING_CODES or ("credits" in low and status in (403, 429)):
        return verdict(
            Outcome.PAYMENT_REQUIRED,
            "the account is out of credits or quota; add credits or raise the plan "
            "(retrying will not help)",
        )
    if status == 401 or "api key not valid" in low:
        if not ev.token_sent:
            if env:
                return verdict(Outcome.AUTH_MISSING, f"{env} is not set: export it and restart")
            return verdict(
                Outcome.AUTH_MISSING,
                "this endpoint needs a token: set token_env to the name of a variable holding it",
            )
        return verdict(
            Outcome.AUTH_INVALID,
            f"the token in {env or 'the request'} was rejected: it is wrong, expired or "
            "revoked; create a new one",
        )
    if status == 403:
        if SCOPE_MARKER in low:
            return verdict(Outcome.TOKEN_SCOPE, SCOPE_HINT.format(env=env or "HF_TOKEN"))
        return verdict(Outcome.FORBIDDEN, "the credentials are valid but not allowed here")
    if status == 410 or "deprecat" in low or "no longer supported" in low:
        return verdict(
            Outcome.DEPRECATED,
            replacement_hint(message)
            or "the provider retired this endpoint or model; pick a replacement",
        )
    if "model_not_supported" in codes or "not supported by" in low:
        return verdict(
            Outcome.MODEL_UNSUPPORTED,
            "no enabled provider serves this model: enable one at "
            "https://huggingface.co/settings/inference-providers or pick another model",
        )
    if status == 404:
        return verdict(Outcome.NOT_FOUND, "check the model id and the base URL")
    if status == 529 or "overloaded" in low or "overloaded" in codes:
        return verdict(Outcome.OVERLOADED, "the provider is over capacity; it usually passes")
    if status == 429:
        return verdict(Outcome.RATE_LIMITED, rate_limit_hint(ev.headers))
    if status == 503 and (
        _estimated_time(ev) is not None or any(m in low for m in LOADING_MARKERS)
    ):
        return verdict(Outcome.LOADING, loading_hint(ev))
    if 500 <= status < 600:
        return verdict(Outcome.SERVER_ERROR, "the provider failed; it is not your request")
    if 400 <= status < 500:
        return verdict(Outcome.CLIENT_ERROR, "the provider refused the request as sent")
    location = ev.headers.get("location")
    return Verdict(
        Outcome.BAD_RESPONSE,
        detail=f"unexpected HTTP {status}" + (f" to {location}" if location else ""),
        hint="set expect.status if this answer is right",
    )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


# ---------------------------------------------------------------- answers with the wrong shape


def _shape_problem(target: TargetBase, ev: Evidence) -> Verdict | None:
    if target.kind != "http" and ev.method != "HEAD" and ev.json is None:
        what = ev.headers.get("content-type", "no content type").split(";")[0]
        cut = " cut at the read limit" if ev.body_truncated else ""
        snippet = provider_message(ev)
        return Verdict(
            Outcome.BAD_RESPONSE,
            detail=f"expected JSON, got {what}{cut}" + (f": {snippet}" if snippet else ""),
            hint="a proxy or gateway may be answering instead of the model API",
        )
    return target.judge_body(ev)


def _expect_problem(target: TargetBase, ev: Evidence) -> Verdict | None:
    expect = target.expect
    if expect.body_contains is not None and expect.body_contains not in ev.text:
        return Verdict(
            Outcome.BAD_RESPONSE, detail=f"the body does not contain {expect.body_contains!r}"
        )
    for path, wanted in (expect.json_path or {}).items():
        found, value = json_lookup(ev.json, path)
        if not found:
            return Verdict(Outcome.BAD_RESPONSE, detail=f"JSON path {path!r} is missing")
        if value != wanted:
            return Verdict(
                Outcome.BAD_RESPONSE,
                detail=f"JSON path {path!r} is {value!r}, expected {wanted!r}",
            )
    return None


# ---------------------------------------------------------------- reading provider answers


def _estimated_time(ev: Evidence) -> float | None:
    data = ev.json
    value = data.get("estimated_time") if isinstance(data, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def loading_hint(ev: Evidence) -> str:
    eta = _estimated_time(ev)
    when = f" in about {eta:.0f} s" if eta is not None else ""
    return (
        f"the model is starting and should answer{when}; this is only worth attention if it "
        "lasts (send x-wait-for-model: true to wait instead)"
    )


def rate_limit_hint(headers: dict[str, str]) -> str:
    """When the limit resets, from whichever header the provider sent."""
    retry = headers.get("retry-after")
    if retry:
        if retry.strip().isdigit():
            return f"rate limited; retry after {retry.strip()} s (Retry-After)"
        return f"rate limited; retry after {retry.strip()} (Retry-After)"
    ratelimit = headers.get("ratelimit")
    if ratelimit and (m := re.search(r"\bt=(\d+)", ratelimit)):
        remaining = re.search(r"\br=(\d+)", ratelimit)
        left = f", {remaining.group(1)} requests left" if remaining else ""
        return f"rate limited; the window resets in {m.group(1)} s{left} (RateLimit)"
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens", "x-ratelimit-reset"):
        if headers.get(name):
            return f"rate limited; resets in {headers[name]} ({name})"
    return "rate limited; probe less often or raise the plan's limits"


def retirement_warning(headers: dict[str, str]) -> str:
    """An announced retirement (RFC 9745 Deprecation, RFC 8594 Sunset), even on an ok probe."""
    parts = []
    if headers.get("deprecation"):
        parts.append(f"deprecated since {_http_date(headers['deprecation'])}")
    if headers.get("sunset"):
        parts.append(f"retires on {_http_date(headers['sunset'])}")
    if not parts:
        return ""
    link = re.search(r"<([^>]+)>\s*;\s*rel=\"?(?:deprecation|sunset)", headers.get("link", ""))
    more = f"; see {link.group(1)}" if link else ""
    return "the provider announced this endpoint's retirement: " + ", ".join(parts) + more


def _http_date(value: str) -> str:
    value = value.strip()
    if value.lower() == "true":
        return "an unspecified date"
    if value.startswith("@") and value[1:].lstrip("-").isdigit():
        when = datetime.fromtimestamp(int(value[1:]), UTC)
        return when.strftime("%Y-%m-%d")
    try:
        return email.utils.parsedate_to_datetime(value).strftime("%Y-%m-%d")
    except (TypeError, ValueError):
        return value

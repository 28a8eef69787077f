"""Pure: one probe's evidence -> outcome, one-line detail, hint (what to do), warning, facts.

Generic: transport failures, HTTP families, the standard headers (Retry-After, RateLimit,
x-ratelimit-reset-*, Deprecation, Sunset) and words every provider uses. What one provider's
answers mean is the kinds' knowledge (monitor/targets/hf.py, monitor/targets/openai.py),
asked first through `TargetBase.judge_error`. The answers themselves are those of
../shared/provider-errors.md.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.domain.answers import (
    error_codes,
    json_lookup,
    provider_message,
    says_overloaded,
    says_retired,
)
from monitor.domain.evidence import Evidence, Outcome, StreamReading, TransportError, Verdict
from monitor.domain.text import one_line
from monitor.targets import TargetBase
from monitor.targets.base import PAYMENT_HINT, error_verdict, loading_hint

LOADING_MARKERS = ("currently loading", "is loading", "scaling up", "scaled to zero", "initializ")


def classify(target: TargetBase, ev: Evidence) -> Verdict:
    """The whole judgement of one probe. Never raises on odd input."""
    verdict = _judge(target, ev)
    if verdict.outcome in (Outcome.OK, Outcome.SLOW):
        note, facts = target.ok_notes(ev)
        verdict = replace(verdict, warning=note or verdict.warning, facts=verdict.facts | facts)
    if verdict.outcome in (Outcome.OK, Outcome.SLOW) and (swap := substitution(target, ev)):
        verdict = replace(verdict, warning="; ".join(filter(None, (verdict.warning, swap))))
    warning = retirement_warning(ev.headers)
    if not warning:
        return verdict
    return replace(verdict, warning=warning, facts=verdict.facts | retirement_facts(ev.headers))


def _judge(target: TargetBase, ev: Evidence) -> Verdict:
    if ev.error is not None or ev.status is None:
        verdict = transport_verdict(target, ev)
        return _stream_so_far(verdict, ev) if ev.stream is not None and ev.status else verdict
    expect = target.expect
    if not expect.accepts_status(ev.status):
        return target.judge_error(ev) or status_verdict(target, ev)
    shape = _stream_problem(target, ev) if ev.stream is not None else _shape_problem(target, ev)
    failure = shape or _expect_problem(target, ev)
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
    if ev.stream is not None:
        return _stream_pace(target, ev.stream, f"HTTP {ev.status}", total)
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
    outcome, hint = _TRANSPORT[ev.error or TransportError.CONNECT]  # every kind is listed
    return Verdict(outcome, detail=one_line(ev.error_detail or str(outcome), limit=None), hint=hint)


# ---------------------------------------------------------------- HTTP errors


def status_verdict(target: TargetBase, ev: Evidence) -> Verdict:
    """The generic reading of a status `expect` does not accept, after the kind's own.

    HTTP families and words every provider uses; what one provider's answers mean is read by
    the kinds (monitor/targets/hf.py, monitor/targets/openai.py) before this.
    """
    status = ev.status or 0
    message = provider_message(ev)
    low = message.lower()

    def verdict(outcome: Outcome, hint: str = "", facts: dict[str, Any] | None = None) -> Verdict:
        return error_verdict(ev, outcome, hint, facts)

    env = target.token_env
    if status == 402:
        return verdict(Outcome.PAYMENT_REQUIRED, PAYMENT_HINT)
    if status == 401 or "api key not valid" in low:  # Gemini answers a bad key with a 400
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
        return verdict(Outcome.FORBIDDEN, "the credentials are valid but not allowed here")
    if status == 410 or says_retired(message):
        return verdict(
            Outcome.DEPRECATED, "the provider retired this endpoint or model; pick a replacement"
        )
    if status == 404:
        return verdict(Outcome.NOT_FOUND, "check the model id and the base URL")
    if status == 529 or says_overloaded(message, error_codes(ev)):
        return verdict(Outcome.OVERLOADED, "the provider is over capacity; it usually passes")
    if status == 429:
        hint, facts = rate_limit(ev.headers, ev.started_at)
        return verdict(Outcome.RATE_LIMITED, hint, facts)
    if status == 503 and any(m in low for m in LOADING_MARKERS):
        return verdict(Outcome.LOADING, loading_hint(None))
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


# ---------------------------------------------------------------- answers with the wrong shape


def _shape_problem(target: TargetBase, ev: Evidence) -> Verdict | None:
    if target.kind != "http" and ev.method != "HEAD" and ev.json is None:
        what = ev.headers.get("content-type", "no content type").split(";")[0]
        cut = " cut at the read limit" if ev.body_truncated else ""
        snippet = provider_message(ev)
        return Verdict(
            Outcome.BAD_RESPONSE,
            detail=f"expected JSON, got {what}{cut}" + (f": {snippet}" if snippet else ""),
            hint=target.not_json_hint,
        )
    return _error_object(ev) or target.judge_body(ev)


def _error_object(ev: Evidence) -> Verdict | None:
    """A success status whose body is an `{"error": ...}` object: the provider (or a gateway
    in front of it) failed and said so, whatever the status claims."""
    data = ev.json
    if not (200 <= (ev.status or 0) < 300 and isinstance(data, dict) and data.get("error")):
        return None
    message = provider_message(ev) or "an error object"
    return Verdict(
        Outcome.BAD_RESPONSE,
        detail=f"HTTP {ev.status} carrying an error: {message}",
        hint="the provider reported success but answered with an error; see the body excerpt",
    )


# ---------------------------------------------------------------- silent model substitution

# What a provider may append to the model asked for and still answer with it: a snapshot
# date or version (gpt-4o-2024-08-06, claude-sonnet-4-5-20250929, gemini-1.5-flash-002).
_SNAPSHOT = r"(?:-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{3,4}))?"


def substitution(target: TargetBase, ev: Evidence) -> str:
    """A warning when the answer names another model than the one asked for, else ""."""
    requested = getattr(target, "model", None)
    answered = target.answered_model(ev)
    if not (isinstance(requested, str) and answered) or same_model(requested, answered):
        return ""
    return (
        f"asked for model {requested!r} but {answered!r} answered: the provider may have "
        "substituted another model (a retired one answered by its successor)"
    )


def same_model(requested: str, answered: str) -> bool:
    """The same model, allowing a snapshot suffix, case, an organisation prefix on one side
    only, and a routing suffix (Hugging Face's `model:provider`) or `-latest` alias."""
    if requested.lower() == answered.lower():
        return True
    want = requested.split(":", 1)[0].lower().removesuffix("-latest")
    got = answered.split(":", 1)[0].lower()
    if ("/" in want) != ("/" in got):
        want, got = want.rsplit("/", 1)[-1], got.rsplit("/", 1)[-1]
    return re.fullmatch(re.escape(want) + _SNAPSHOT, got) is not None


def _stream_problem(target: TargetBase, ev: Evidence) -> Verdict | None:
    """A streamed answer that failed after its 200: an error event (judged like the error
    answer it carries), no event stream at all, no content token, or no end."""
    reading = ev.stream
    assert reading is not None
    if reading.error is not None:
        failed = replace(
            ev, status=reading.error_status, body=reading.error.encode(), events=None, stream=None
        )
        verdict = target.judge_error(failed) or status_verdict(target, failed)
        said = provider_message(failed) or f"HTTP {reading.error_status}"
        return replace(verdict, detail=f"HTTP {ev.status}, then an error event: {said}")
    events = ev.events or ()
    what = ev.headers.get("content-type", "no content type").split(";")[0].strip().lower()
    if not events and what != "text/event-stream":
        return Verdict(
            Outcome.BAD_RESPONSE,
            detail=f"expected an event stream, got {what}",
            hint="the endpoint does not stream: remove `stream: true`, or check that `base_url` "
            "reaches the model API and not a proxy that buffers answers",
        )
    if ev.body_truncated and not reading.ended:
        return Verdict(
            Outcome.BAD_RESPONSE,
            detail=f"the stream was cut at the read limit after {len(events)} events, "
            "before its end",
            hint="the endpoint streams far more than a small answer; check `base_url` and "
            "max_tokens",
        )
    if reading.ttft_ms is None:
        return Verdict(
            Outcome.BAD_RESPONSE,
            detail=f"the stream sent {len(events)} events but no content token",
            hint="the model answered nothing visible: a reasoning model may spend the whole "
            "max_tokens thinking; raise max_tokens",
        )
    if not reading.ended:
        return Verdict(
            Outcome.SERVER_ERROR,
            detail=f"the stream stopped after {len(events)} events, before its end",
            hint="the provider or a proxy cut the answer off; it is not your request",
        )
    return None


def _stream_so_far(verdict: Verdict, ev: Evidence) -> Verdict:
    """A stream cut off (its timeout, a dropped connection): how far it had come, so endless
    keep-alives read differently from a model that stalled mid-answer."""
    assert ev.stream is not None
    first = ev.stream.ttft_ms
    token = f"first token after {first:.0f} ms" if first is not None else "no content token"
    came = f"HTTP {ev.status}, {len(ev.events or ())} events, {token}"
    return replace(verdict, detail=f"{verdict.detail} ({came})")


def _stream_pace(target: TargetBase, reading: StreamReading, head: str, total: float) -> Verdict:
    """ok, or slow when the first token or the pace misses `expect.max_ttft` / min_tokens_per_s."""
    expect = target.expect
    ttft = reading.ttft_ms or 0.0
    rate = reading.tokens_per_s
    pace = f", {rate:.1f} tokens/s" if rate is not None else ""
    if expect.max_ttft is not None and ttft > expect.max_ttft * 1000:
        return Verdict(
            Outcome.SLOW,
            detail=f"{head}, first token after {ttft:.0f} ms, over the max_ttft limit of "
            f"{expect.max_ttft * 1000:.0f} ms",
            hint="the model starts answering late (a queue or a cold start at the provider); "
            "see the time-to-first-token chart for a trend",
        )
    if expect.min_tokens_per_s is not None and rate is not None and rate < expect.min_tokens_per_s:
        return Verdict(
            Outcome.SLOW,
            detail=f"{head}, {rate:.1f} tokens/s, under the min_tokens_per_s limit of "
            f"{expect.min_tokens_per_s:g}",
            hint="the model generates slowly (a busy provider or a slower replica); see the "
            "tokens-per-second chart for a trend",
        )
    return Verdict(
        Outcome.OK, detail=f"{head}, first token after {ttft:.0f} ms{pace}, {total:.0f} ms in all"
    )


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


# ---------------------------------------------------------------- standard headers


def rate_limit_hint(headers: dict[str, str]) -> str:
    """When the limit resets, from whichever header the provider sent."""
    return rate_limit(headers, None)[0]


def rate_limit(headers: dict[str, str], now: datetime | None) -> tuple[str, dict[str, Any]]:
    """The hint, and the facts retry_after_s / retry_at (retry_at needs `now`, the probe's
    start, unless the header gives a date)."""
    if raw := headers.get("retry-after"):
        retry = raw.strip()
        if retry.isdigit():
            return f"rate limited; retry after {retry} s (Retry-After)", _after(retry, now)
        return f"rate limited; retry after {retry} (Retry-After)", _until(_date(retry), now)
    ratelimit = headers.get("ratelimit")
    if ratelimit and (m := re.search(r"\bt=(\d+)", ratelimit)):
        remaining = re.search(r"\br=(\d+)", ratelimit)
        left = f", {remaining.group(1)} requests left" if remaining else ""
        hint = f"rate limited; the window resets in {m.group(1)} s{left} (RateLimit)"
        return hint, _after(m.group(1), now)
    for name in (*_spent_first(headers), "x-ratelimit-reset"):
        if headers.get(name):
            facts = _reset_facts(headers[name].strip(), now)
            return f"rate limited; resets in {headers[name]} ({name})", facts
    return "rate limited; probe less often or raise the plan's limits", {}


def _spent_first(headers: dict[str, str]) -> list[str]:
    """The reset headers of the requests and tokens limits, the most used-up limit first
    (a 429 on tokens per minute comes with a requests limit far from spent)."""

    def left(kind: str) -> float:
        try:
            limit = float(headers[f"x-ratelimit-limit-{kind}"])
            return float(headers[f"x-ratelimit-remaining-{kind}"]) / limit if limit > 0 else 1.0
        except (KeyError, ValueError):
            return 1.0

    return [f"x-ratelimit-reset-{k}" for k in sorted(("requests", "tokens"), key=left)]


# OpenAI-style durations: "20s", "3.89s", "6m0s", "1h2m3s", "120ms".
_DURATION = re.compile(
    r"(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m(?!s))?"
    r"(?:(?P<s>\d+(?:\.\d+)?)s)?(?:(?P<ms>\d+(?:\.\d+)?)ms)?"
)
_NUMBER = re.compile(r"\d{1,12}(?:\.\d{1,6})?")
_EPOCH = 1_000_000_000  # a bare number this large is a time (Unix seconds), not a wait
_MAX_WAIT = 366 * 86400.0  # a longer "wait" is not a rate limit's reset: no fact


def _reset_facts(value: str, now: datetime | None) -> dict[str, Any]:
    if len(value) > 40:
        return {}
    if _NUMBER.fullmatch(value):
        number = float(value)
        return _until(_from_unix(number), now) if number >= _EPOCH else _after(value, now)
    match = _DURATION.fullmatch(value) if value else None
    if match is None:
        return {}
    parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
    seconds = parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)
    return _after(seconds + parts.get("ms", 0) / 1000, now)


def _after(seconds: float | str, now: datetime | None) -> dict[str, Any]:
    """retry_after_s (and retry_at from `now`) for a wait given in seconds."""
    if isinstance(seconds, str):
        if not (seconds.isascii() and _NUMBER.fullmatch(seconds)):
            return {}
        seconds = float(seconds)
    if not 0 <= seconds <= _MAX_WAIT:
        return {}
    facts: dict[str, Any] = {"retry_after_s": round(seconds, 3)}
    if now is not None:
        facts["retry_at"] = _iso(_utc(now) + timedelta(seconds=seconds))
    return facts


def _until(at: datetime | None, now: datetime | None) -> dict[str, Any]:
    if at is None:
        return {}
    at = _utc(at)
    facts: dict[str, Any] = {"retry_at": _iso(at)}
    if now is not None:
        facts["retry_after_s"] = round(max((at - _utc(now)).total_seconds(), 0.0), 3)
    return facts


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


def retirement_facts(headers: dict[str, str]) -> dict[str, Any]:
    """deprecation / sunset: the announced dates (YYYY-MM-DD), else the header as sent."""
    facts = {}
    for name in ("deprecation", "sunset"):
        if value := (headers.get(name) or "").strip():
            when = _date(value)
            facts[name] = when.strftime("%Y-%m-%d") if when else value
    return facts


def _http_date(value: str) -> str:
    value = value.strip()
    if value.lower() == "true":
        return "an unspecified date"
    when = _date(value)
    return when.strftime("%Y-%m-%d") if when else value


def _date(value: str) -> datetime | None:
    """An HTTP-date (in the zone it names), or RFC 9745's @<Unix seconds>; else None."""
    value = value.strip()
    if value.startswith("@") and value[1:].lstrip("-").isdigit():
        return _from_unix(int(value[1:]))
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _from_unix(seconds: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")

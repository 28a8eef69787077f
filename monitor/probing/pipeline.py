"""One probe: target -> request -> evidence -> verdict -> redacted result (`probe_one`), and
one pass over many targets (`probe_targets`). The monitor (monitor/agent/service.py) and the
`inferwatch probe` command both go through `probe_one`.

Plain function calls with plain data; the only I/O is the prober's HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from monitor.config.model import Config
from monitor.domain.evidence import Evidence, Outcome, ProbeResult, StreamReading, Verdict
from monitor.domain.redact import CUT_MARK, Redactor
from monitor.domain.text import MAX_DETAIL, utcnow
from monitor.probing.classify import classify
from monitor.probing.engine import Prober
from monitor.targets import TargetBase

log = logging.getLogger(__name__)

BODY_EXCERPT_BYTES = 512
# The sizes of probe_results.request_id and .provider: PostgreSQL refuses a longer value (and
# with it the writer's whole batch), so a provider's odd header is cut to fit.
REQUEST_ID_CHARS, PROVIDER_CHARS = 200, 100
# Response headers worth keeping as evidence. Authorization is a request header and is never
# kept; anything not listed here is dropped.
KEPT_HEADERS = (
    "content-type",
    "x-request-id",
    "request-id",  # Anthropic's
    "x-amz-cf-id",
    "x-inference-provider",
    "x-error-code",
    "x-error-message",
    "ratelimit",
    "ratelimit-policy",
    "retry-after",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
    "x-compute-type",
    "x-compute-time",
    "deprecation",
    "sunset",
    "link",
    "location",
)


def token_for(target: TargetBase, env: Mapping[str, str]) -> str | None:
    """The target's token; surrounding whitespace (a pasted newline) is never part of it."""
    return ((env.get(target.token_env) or "").strip() or None) if target.token_env else None


def read_stream(target: TargetBase, ev: Evidence) -> Evidence:
    """A streamed probe's evidence with its kind's reading of the events, and the time to
    first token in its timings; a bug in reading loses nothing else of the probe."""
    if ev.events is None:
        return ev
    try:
        reading = target.read_stream(ev.events)
    except Exception:
        log.exception("could not read the stream of %s", target.name)
        reading = StreamReading()  # judged as a stream without a token, with its body kept
    return replace(ev, stream=reading, timings=replace(ev.timings, ttft_ms=reading.ttft_ms))


def judge(target: TargetBase, ev: Evidence) -> Verdict:
    """Classify, but never let a bug in judging lose the probe."""
    try:
        return classify(target, ev)
    except Exception as exc:
        log.exception("could not classify the answer of %s", target.name)
        return Verdict(Outcome.BAD_RESPONSE, detail=f"inferwatch could not judge the answer: {exc}")


def to_result(target: TargetBase, ev: Evidence, verdict: Verdict, redact: Redactor) -> ProbeResult:
    headers = {k: redact(ev.headers[k]) for k in KEPT_HEADERS if k in ev.headers}
    own_id = target.request_id(ev)
    request_id = (
        redact(own_id) if own_id else headers.get("x-request-id") or headers.get("x-amz-cf-id")
    )
    return ProbeResult(
        target=target.name,
        kind=target.kind,
        url=_no_nul(redact(ev.url)),
        checked_at=ev.started_at,
        outcome=verdict.outcome,
        http_status=ev.status,
        timings=ev.timings,
        detail=clean_line(verdict.detail, redact),
        hint=clean_line(verdict.hint, redact),
        warning=clean_line(verdict.warning, redact),
        request_id=_fit(_no_nul(request_id), REQUEST_ID_CHARS) if request_id else request_id,
        provider=_fit(headers.get("x-inference-provider"), PROVIDER_CHARS),
        headers=headers,
        body_excerpt=_no_nul(redact.cut(ev.text, BODY_EXCERPT_BYTES)),
        facts=_clean_facts(verdict.facts, redact),
        tokens_per_s=ev.stream.tokens_per_s if ev.stream is not None else None,
        usage_tokens=spent_tokens(target, ev),
    )


def spent_tokens(target: TargetBase, ev: Evidence) -> int | None:
    """What the answer says the probe cost in tokens (a stream's usage event, else the kind's
    reading of the body); error answers are not billed. A bug here loses only this figure."""
    if not 200 <= (ev.status or 0) < 300:
        return None
    if ev.stream is not None and ev.stream.usage_tokens is not None:
        return ev.stream.usage_tokens
    try:
        return target.usage_tokens(ev)
    except Exception:
        log.exception("could not read the token usage of %s", target.name)
        return None


# Enough UTF-8 bytes to hold MAX_DETAIL characters and one more (which says "cut here").
_LINE_BYTES = 4 * (MAX_DETAIL + 1)


def clean_line(text: str, redact: Redactor) -> str:
    """`text` redacted, THEN cut to MAX_DETAIL characters (with "…").

    Cutting first could leave the start of an encoded token before the "…", which no
    redactor recognises whole. `Redactor.cut` redacts only as much of a long text (a
    provider's message may be a megabyte) as can end up in the line. The provider's words
    arrive on one line already (monitor/domain/answers.py).
    """
    clean = _no_nul(redact.cut(text, _LINE_BYTES)) if text else text
    return clean if len(clean) <= MAX_DETAIL else clean[: MAX_DETAIL - 1] + CUT_MARK


def _fit(text: str | None, chars: int) -> str | None:
    return text if text is None or len(text) <= chars else text[: chars - 1] + CUT_MARK


def _no_nul(text: str) -> str:
    """NUL as U+FFFD, like an undecodable byte. PostgreSQL's text columns refuse NUL (SQLite's
    take it): one in a provider's answer would fail the writer's whole batch."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _clean_facts(facts: Mapping[str, Any], redact: Redactor) -> dict[str, Any]:
    """The facts as strict JSON, every string redacted (a replacement URL may carry a token)."""

    def clean(value: Any) -> Any:
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else None  # NaN is not JSON
        if isinstance(value, Mapping):
            return {redact(str(k)): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return redact(str(value))

    return {redact(str(k)): clean(v) for k, v in facts.items()}


async def probe_one(
    target: TargetBase, prober: Prober, timeout: float, token: str | None, redact: Redactor
) -> ProbeResult:
    """Probe one target and judge the answer. Never raises: even a bug of ours is a result.

    (Cancellation still propagates: a probe cut off at shutdown is not a result.)
    """
    try:
        spec = target.build_request(token)
    except Exception as exc:
        log.exception("could not build the request of %s", target.name)
        ev = _unsent(target, token)
        verdict = Verdict(
            Outcome.BAD_RESPONSE, detail=f"inferwatch could not build the request: {exc}"
        )
    else:
        try:
            ev = await prober.probe(spec, timeout)  # never raises, but a bug must not escape
        except Exception as exc:
            log.exception("could not probe %s", target.name)
            ev = _unsent(target, token)
            verdict = Verdict(Outcome.BAD_RESPONSE, detail=f"inferwatch could not probe: {exc}")
        else:
            ev = read_stream(target, ev)
            verdict = judge(target, ev)
    try:
        return to_result(target, ev, verdict, redact)
    except Exception:
        log.exception("could not record the probe of %s", target.name)
        return _unrecorded(target, ev)


def _unsent(target: TargetBase, token: str | None) -> Evidence:
    """Evidence of a request that never left."""
    try:
        url = target.endpoint
    except Exception:
        url = ""
    return Evidence(url=url, method="", started_at=utcnow(), token_sent=token is not None)


def _unrecorded(target: TargetBase, ev: Evidence) -> ProbeResult:
    """The last resort when building a result failed: nothing of the answer, so no secret."""
    return ProbeResult(
        target=target.name,
        kind=target.kind,
        url="",
        checked_at=ev.started_at,
        outcome=Outcome.BAD_RESPONSE,
        http_status=ev.status,
        timings=ev.timings,
        detail="inferwatch could not record this answer; see its log",
        hint="",
        warning="",
        request_id=None,
        provider=None,
        headers={},
        body_excerpt="",
    )


async def probe_targets(
    config: Config,
    targets: Sequence[TargetBase],
    prober: Prober,
    env: Mapping[str, str],
) -> list[ProbeResult]:
    """Probe targets concurrently (bounded by the prober) and judge each answer."""
    redact = config.redactor()
    return list(
        await asyncio.gather(
            *(
                probe_one(t, prober, config.timeout_of(t), token_for(t, env), redact)
                for t in targets
            )
        )
    )

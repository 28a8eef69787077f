"""Plain data passed along the flow: request spec -> evidence -> verdict -> result.

No I/O and no behaviour beyond small derived properties, so every stage stays a pure function
of these values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any


class Outcome(StrEnum):
    """Stable lowercase names used in the DB, JSON, emails and the dashboard."""

    OK = "ok"
    SLOW = "slow"
    AUTH_MISSING = "auth_missing"
    AUTH_INVALID = "auth_invalid"
    TOKEN_SCOPE = "token_scope"
    GATED = "gated"
    FORBIDDEN = "forbidden"
    PAYMENT_REQUIRED = "payment_required"
    NOT_FOUND = "not_found"
    MODEL_UNSUPPORTED = "model_unsupported"
    DEPRECATED = "deprecated"
    RATE_LIMITED = "rate_limited"
    LOADING = "loading"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    CLIENT_ERROR = "client_error"
    BAD_RESPONSE = "bad_response"
    # The provider refused the probe's own request (a parameter the model does not take, a
    # token floor, a missing version header): fix the probe, the model may be fine.
    REQUEST_REJECTED = "request_rejected"
    # The provider's status page reports an incident (a `statuspage` target).
    PROVIDER_INCIDENT = "provider_incident"
    TIMEOUT = "timeout"
    DNS_ERROR = "dns_error"
    CONNECT_ERROR = "connect_error"
    TLS_ERROR = "tls_error"


class OutcomeClass(StrEnum):
    """How an outcome is treated: alert at once, only when sustained, or not at all."""

    OK = "ok"
    TRANSIENT = "transient"  # retrying may fix it: alert only when sustained
    CONTRACT = "contract"  # retrying will not fix it: alert at once


TRANSIENT_OUTCOMES = frozenset(
    {
        Outcome.SLOW,
        Outcome.RATE_LIMITED,
        Outcome.LOADING,
        Outcome.OVERLOADED,
        Outcome.SERVER_ERROR,
        Outcome.TIMEOUT,
        Outcome.DNS_ERROR,
        Outcome.CONNECT_ERROR,
        Outcome.TLS_ERROR,
        Outcome.PROVIDER_INCIDENT,
    }
)


def outcome_class(outcome: Outcome | str) -> OutcomeClass:
    if outcome == Outcome.OK:
        return OutcomeClass.OK
    return OutcomeClass.TRANSIENT if outcome in TRANSIENT_OUTCOMES else OutcomeClass.CONTRACT


# The one palette (emails, dashboard pages and charts): ok green, transient amber, contract red,
# and grey for "no data" (no probes: the monitor was not running), which is never uptime.
NO_DATA = "no_data"
CLASS_COLOUR: dict[str, str] = {
    OutcomeClass.OK: "#1a7f37",
    OutcomeClass.TRANSIENT: "#b58100",
    OutcomeClass.CONTRACT: "#cf222e",
    NO_DATA: "#8c959f",
}


# Headers that carry credentials: Authorization, and the API-key headers of OpenAI-style
# proxies, Anthropic (x-api-key) and Gemini (x-goog-api-key).
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key"}
)


@dataclass(frozen=True)
class RequestSpec:
    """What a target kind wants sent; the probe engine sends exactly this."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    follow_redirects: bool = True
    stream: bool = False  # read the answer as server-sent events (Evidence.events)

    @property
    def token_sent(self) -> bool:
        """Whether the request carried credentials (a 401 then means they were rejected)."""
        return any(k.lower() in CREDENTIAL_HEADERS for k in self.headers)


@dataclass(frozen=True)
class Timings:
    """Phase durations in milliseconds; None when the phase did not happen (e.g. no TLS)."""

    connect_ms: float | None = None
    tls_ms: float | None = None
    ttfb_ms: float | None = None
    total_ms: float | None = None
    # Streamed probes only: to the first non-empty content token (not a keep-alive or role).
    ttft_ms: float | None = None


@dataclass(frozen=True)
class StreamEvent:
    """One server-sent event of a streamed answer (comments are not events)."""

    event: str  # "message" when the stream names none
    data: str
    at_ms: float  # when it arrived, ms since the probe started


@dataclass(frozen=True)
class StreamReading:
    """What a kind read from its provider's events (`TargetBase.read_stream`)."""

    ttft_ms: float | None = None  # the first non-empty content delta (not a role or a ping)
    last_token_ms: float | None = None  # the last content delta
    output_tokens: int = 0  # the provider's usage count when it sends one, else deltas counted
    usage_tokens: int | None = None  # all tokens the provider's usage reports (the probe's cost)
    ended: bool = False  # the answer said it was complete (a finish reason, [DONE], message_stop)
    error: str | None = None  # the data of an error event after the 200 (the provider's JSON)
    error_status: int = 500  # the HTTP status that error stands for (Anthropic's error types)

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens after the first, over the time after the first; None without two
        tokens apart in time (one chunk carrying all of them says nothing about speed)."""
        if self.ttft_ms is None or self.last_token_ms is None or self.output_tokens < 2:
            return None
        span_ms = self.last_token_ms - self.ttft_ms
        return (self.output_tokens - 1) / (span_ms / 1000) if span_ms > 0 else None


class TransportError(StrEnum):
    """Why no (usable) HTTP answer arrived."""

    TIMEOUT = "timeout"
    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    PROTOCOL = "protocol"  # the peer answered something that is not HTTP
    REQUEST = "request"  # our own request could not be sent (e.g. a newline in a header)
    REDIRECTS = "redirects"


@dataclass(frozen=True)
class Evidence:
    """Everything observed during one probe, before any judgement."""

    url: str
    method: str
    started_at: datetime
    token_sent: bool
    timings: Timings = field(default_factory=Timings)
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    body: bytes = b""
    body_truncated: bool = False
    error: TransportError | None = None
    error_detail: str = ""
    events: tuple[StreamEvent, ...] | None = None  # a streamed probe's events, as they came
    stream: StreamReading | None = None  # the kind's reading of them (probing/pipeline.py)

    @cached_property
    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON (or was cut off)."""
        if not self.body or self.body_truncated:
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    @cached_property
    def text(self) -> str:
        """The body as text, decoded once (the classifier and the kinds read it repeatedly)."""
        return self.body.decode("utf-8", errors="replace")


# The structured facts a verdict may carry next to its prose hint, so that nothing downstream
# (the store, alert events, the dashboard) parses the hint back. JSON-serialisable; string
# values are redacted with the rest of the result. Only the facts an answer gives are present:
#   replacement_url       str    the URL a retired endpoint's answer names as its replacement
#                                (410 / deprecated answers; Hugging Face's "Please use … instead")
#   missing_permission    str    the token permission a scope failure lacks, as the provider's
#                                settings page names it ("Make calls to Inference Providers")
#   missing_permission_id str    the same permission's identifier ("inference.serverless.write")
#   retry_after_s         float  seconds until a rate limit resets (Retry-After, RateLimit t=,
#                                x-ratelimit-reset-*)
#   retry_at              str    when it resets, ISO 8601 UTC, when computable (an HTTP-date
#                                Retry-After, or the probe's start plus retry_after_s)
#   estimated_time_s      float  the provider's estimate of how long a loading model needs
#   deprecation, sunset   str    an announced retirement (RFC 9745 / RFC 8594 headers): the date
#                                as YYYY-MM-DD, or the header as sent when it is not a date
#   live_providers        [str]  hf-model: the providers serving the model live, sorted
#   providers_added,      [str]  hf-model: how live_providers changed since the target's last
#   providers_dropped            known set (added by the writer, monitor/domain/sampling.py)
#   indicator             str    statuspage: the page's status.indicator (minor, major, critical)
#   incidents             [str]  statuspage: the names of the open incidents
#   incident_url          str    statuspage: the first open incident's shortlink
#   maintenance           [str]  statuspage: the maintenance in progress (or components under it)
FACT_KEYS = frozenset(
    {
        "replacement_url",
        "missing_permission",
        "missing_permission_id",
        "retry_after_s",
        "retry_at",
        "estimated_time_s",
        "deprecation",
        "sunset",
        "live_providers",
        "providers_added",
        "providers_dropped",
        "indicator",
        "incidents",
        "incident_url",
        "maintenance",
    }
)


@dataclass(frozen=True)
class Verdict:
    """The classifier's judgement of one piece of evidence."""

    outcome: Outcome
    detail: str = ""
    hint: str = ""
    warning: str = ""  # e.g. an announced retirement (Deprecation/Sunset) on an ok probe
    facts: dict[str, Any] = field(default_factory=dict, hash=False)  # see FACT_KEYS


@dataclass(frozen=True)
class ProbeResult:
    """One stored and printed probe: evidence and verdict, redacted."""

    target: str
    kind: str
    url: str
    checked_at: datetime
    outcome: Outcome
    http_status: int | None
    timings: Timings
    detail: str
    hint: str
    warning: str
    request_id: str | None
    provider: str | None
    headers: dict[str, str]
    body_excerpt: str
    facts: dict[str, Any] = field(default_factory=dict, hash=False)  # see FACT_KEYS
    # Streamed probes: output tokens per second after the first one.
    tokens_per_s: float | None = None
    # What the probe cost: total tokens from the provider's `usage`, when it reports them.
    usage_tokens: int | None = None

    @property
    def latency_ms(self) -> float | None:
        return self.timings.total_ms

    def as_dict(self) -> dict[str, Any]:
        """The `inferwatch probe --format json` row (facts are stored, not printed)."""
        return {
            "target": self.target,
            "kind": self.kind,
            "url": self.url,
            "outcome": str(self.outcome),
            "http_status": self.http_status,
            "latency_ms": _round(self.timings.total_ms),
            "connect_ms": _round(self.timings.connect_ms),
            "tls_ms": _round(self.timings.tls_ms),
            "ttfb_ms": _round(self.timings.ttfb_ms),
            "ttft_ms": _round(self.timings.ttft_ms),
            "tokens_per_s": _round(self.tokens_per_s),
            "usage_tokens": self.usage_tokens,
            "detail": self.detail,
            "hint": self.hint,
            "warning": self.warning,
            "request_id": self.request_id,
            "provider": self.provider,
            "headers": self.headers,
            "body_excerpt": self.body_excerpt,
            "checked_at": self.checked_at.isoformat(),
        }


def _round(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 1)

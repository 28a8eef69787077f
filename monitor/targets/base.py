"""What every target kind shares: common fields, headers, URL checks, response-shape helpers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

import httpx
from pydantic import AfterValidator, Field

from monitor import __version__
from monitor.config.types import ENV_NAME, Duration, Expect, Quorum, StrictModel
from monitor.domain.answers import error_detail
from monitor.domain.evidence import (
    Evidence,
    Outcome,
    RequestSpec,
    StreamEvent,
    StreamReading,
    Verdict,
)

USER_AGENT = f"inferwatch/{__version__} (+availability probe)"
PROBE_TEXT = "inferwatch availability probe"


def _check_url(value: str) -> str:
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"{value!r} is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value


def _check_base_url(value: str) -> str:
    """A base gets paths appended, so a trailing slash would double up: drop it."""
    _check_url(value)
    if "?" in value or "#" in value:
        raise ValueError(f"{value!r}: a base URL cannot have a query or fragment")
    return value.rstrip("/")


Url = Annotated[str, AfterValidator(_check_url)]  # used exactly as written
BaseUrl = Annotated[str, AfterValidator(_check_base_url)]
ModelId = Annotated[str, Field(min_length=1, pattern=r"^[^\s/][^\s]*$")]


class TargetBase(StrictModel):
    """Fields every kind accepts; subclasses add their own and say how to probe and judge."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", description="unique name used everywhere"
    )
    interval: Duration | None = Field(default=None, description="time between probes")
    timeout: Duration | None = Field(default=None, description="limit for the whole probe")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    tags: list[str] = Field(default_factory=list, description="free labels for grouping")
    token_env: str | None = Field(
        default=None,
        pattern=ENV_NAME,
        description="NAME of the environment variable holding the bearer token",
    )
    expect: Expect = Field(default_factory=Expect)
    failure_threshold: int | None = Field(default=None, ge=1, le=100)
    success_threshold: int | None = Field(default=None, ge=1, le=100)
    contract_threshold: int | None = Field(default=None, ge=1, le=100)
    recipients: list[str] | None = Field(
        default=None, description="alert recipients for this target instead of alerts.email's"
    )
    channels: list[Literal["email", "webhook", "slack", "apprise"]] | None = Field(
        default=None, description="the alert channels this target uses (default: all configured)"
    )
    status_page: str | None = Field(
        default=None,
        description="the name of a statuspage target for this provider, quoted in alerts",
    )
    regions: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None,
        min_length=1,
        description="the agents' regions that probe it (default: every region)",
    )
    quorum: Quorum | None = Field(
        default=None, description="regions that must confirm a change (default: defaults.quorum)"
    )

    kind: str
    default_interval: ClassVar[float | None] = None  # overrides defaults.interval for a kind
    # Every probe is billed in tokens (a model call): `inferwatch check` shows the cost.
    spends_tokens: ClassVar[bool] = False
    # Headers a kind always sends (e.g. an API version); the user's `headers` override them.
    default_headers: ClassVar[Mapping[str, str]] = {}
    # Whether its probes report a model's live providers (fact `live_providers`), whose
    # changes the writer marks (monitor/domain/sampling.py).
    tracks_providers: ClassVar[bool] = False
    # What an answer that is not JSON most likely means for this kind.
    not_json_hint: ClassVar[str] = "a proxy or gateway may be answering instead of the model API"

    @property
    def endpoint(self) -> str:
        """The URL this target probes."""
        raise NotImplementedError

    def build_request(self, token: str | None) -> RequestSpec:
        raise NotImplementedError

    def auth_headers(self, token: str) -> dict[str, str]:
        """The headers that carry the token (lower-case names); Bearer unless a kind says else.

        Every name must be in CREDENTIAL_HEADERS (monitor/domain/evidence.py), so a 401 reads
        as a rejected token rather than a missing one. The token is a configured secret (see
        config/load.py), so the Redactor masks it inside any value built here, in every
        encoding, base64 of the whole value included.
        """
        return {"authorization": f"Bearer {token}"}

    def judge_error(self, ev: Evidence) -> Verdict | None:
        """The kind's provider reading of a status `expect` does not accept (None: generic).

        Called before the generic classifier (monitor/probing/classify.py), which knows only
        HTTP families and words every provider uses.
        """
        return None

    def judge_body(self, ev: Evidence) -> Verdict | None:
        """A kind-specific check of an accepted answer: a failing Verdict, or None if fine."""
        return None

    def read_stream(self, events: Sequence[StreamEvent]) -> StreamReading:
        """What a streamed answer's events say (first token, usage, an error after the 200);
        only kinds that send streamed requests have events to read."""
        return StreamReading()

    def ok_notes(self, ev: Evidence) -> tuple[str, dict[str, Any]]:
        """What a healthy answer says worth keeping: a warning (maintenance a status page
        announces) and facts (the live providers of a model); ("", {}) for most kinds."""
        return "", {}

    def usage_tokens(self, ev: Evidence) -> int | None:
        """Tokens the provider says this probe spent (its `usage` block), None if it does not
        say; an ok answer only. Read into ProbeResult.usage_tokens for the cost figures."""
        return None

    def answered_model(self, ev: Evidence) -> str | None:
        """The model id the provider says answered (e.g. a `model` field), None if unsaid;
        compared with the requested one to warn about a silent substitution."""
        return None

    def request_id(self, ev: Evidence) -> str | None:
        """The provider's id of this request when it has its own (Anthropic's `request-id`),
        None for the generic headers (x-request-id, CloudFront's id)."""
        return None

    def config_errors(self) -> list[tuple[str, str]]:
        """(field, message) pairs for combinations of fields that cannot work."""
        errors = self._stream_limit_errors()
        if not self.token_env:
            return errors
        mine = {name.lower() for name in self.headers}
        for name in self.auth_headers("token"):
            if name in mine:
                label = "an Authorization" if name == "authorization" else f"a {name}"
                return [("headers", f"{label} header and token_env both set the token; keep one")]
        return errors

    def _stream_limit_errors(self) -> list[tuple[str, str]]:
        """A streamed probe's limits on a target that does not stream would never apply."""
        if getattr(self, "stream", False):  # the kinds that stream have a `stream` field
            return []
        limits = [f for f in ("max_ttft", "min_tokens_per_s") if getattr(self.expect, f)]
        how = "set stream: true" if "stream" in type(self).model_fields else "remove it"
        return [(f"expect.{limit}", f"applies only to streamed probes: {how}") for limit in limits]

    def config_warnings(self) -> list[tuple[str, str]]:
        """(field, message) pairs for settings that work but are probably unwanted."""
        return []

    def request_headers(self, token: str | None) -> dict[str, str]:
        """Our defaults, the kind's, then the user's (names are case-insensitive), then the
        token's headers."""
        headers = {"user-agent": USER_AGENT, "accept": "application/json"}
        headers |= {name.lower(): value for name, value in self.default_headers.items()}
        headers |= {name.lower(): value for name, value in self.headers.items()}
        if token:
            headers |= {name.lower(): value for name, value in self.auth_headers(token).items()}
        return headers


class ModelTarget(TargetBase):
    """A kind that calls a model by id on some base URL with a JSON payload."""

    spends_tokens: ClassVar[bool] = True

    model: ModelId = Field(description="model id, e.g. sentence-transformers/all-MiniLM-L6-v2")
    base_url: BaseUrl
    payload: Any = Field(default=None, description="replace the minimal request body")

    def post(self, url: str, body: Any, token: str | None) -> RequestSpec:
        return RequestSpec(
            method="POST",
            url=url,
            headers=self.request_headers(token),
            json=self.payload if self.payload is not None else body,
        )


def bad_response(detail: str, hint: str = "") -> Verdict:
    return Verdict(Outcome.BAD_RESPONSE, detail=detail, hint=hint)


# ---------------------------------------------------------------- verdicts on error answers
# Given both by the generic classifier and by the kinds' provider rules, so they read alike.

MAX_RETRY_WAIT = 366 * 86400.0  # a longer "wait" is not a rate limit's reset
PAYMENT_HINT = (
    "the account is out of credits or quota; add credits or raise the plan (retrying will not help)"
)


def error_verdict(
    ev: Evidence, outcome: Outcome, hint: str = "", facts: dict[str, Any] | None = None
) -> Verdict:
    """A verdict on an error answer, its detail the status and the provider's words."""
    return Verdict(outcome, detail=error_detail(ev), hint=hint, facts=facts or {})


def retry_facts(seconds: float, started_at: datetime) -> dict[str, Any]:
    """retry_after_s and retry_at for a limit that resets `seconds` after the probe started."""
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_RETRY_WAIT):
        return {}  # not a rate limit's reset
    at = started_at.replace(tzinfo=UTC) if started_at.tzinfo is None else started_at
    return {
        "retry_after_s": round(seconds, 3),
        "retry_at": (at + timedelta(seconds=seconds)).astimezone(UTC).isoformat(timespec="seconds"),
    }


def loading_hint(eta: float | None) -> str:
    when = f" in about {eta:.0f} s" if eta is not None else ""
    return (
        f"the model is starting and should answer{when}; this is only worth attention if it "
        "lasts (send x-wait-for-model: true to wait instead)"
    )


def vector_problem(value: Any, expected_dim: int | None) -> str | None:
    """What is wrong with an embedding answer (a vector or nested lists of vectors), or None."""
    vectors = _vectors(value)
    if vectors is None:
        return "the answer is not a numeric vector"
    if not vectors or any(len(v) == 0 for v in vectors):
        return "the embedding is empty"
    for vector in vectors:
        if not all(math.isfinite(x) for x in vector):
            return "the embedding contains NaN or infinite values"
        if expected_dim is not None and len(vector) != expected_dim:
            return f"the embedding has {len(vector)} dimensions, expected {expected_dim}"
    return None


def _vectors(value: Any) -> list[list[float]] | None:
    if not isinstance(value, list):
        return None
    if all(_is_number(x) for x in value):
        return [value]
    nested: list[list[float]] = []
    for item in value:
        inner = _vectors(item)
        if inner is None:
            return None
        nested += inner
    return nested


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)

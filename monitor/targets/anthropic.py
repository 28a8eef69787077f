"""`anthropic-messages`: Anthropic's Messages API, one user message, one token (or a small
streamed answer, to time its first token and pace).

Errors are `{"type": "error", "error": {"type", "message"}, "request_id"}` with the same id in
the `request-id` header (../shared/provider-errors.md); the error type decides the outcome.
A 429 says when it resets in `retry-after` and in `anthropic-ratelimit-<limit>-reset` (RFC 3339).
A stream is named events (message_start, content_block_delta, message_delta, message_stop) with
`ping` keep-alives; a failure after the 200 is `event: error` carrying the same error shape.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field

from monitor.domain.answers import provider_message
from monitor.domain.evidence import (
    Evidence,
    Outcome,
    RequestSpec,
    StreamEvent,
    StreamReading,
    Verdict,
)
from monitor.targets.base import (
    BaseUrl,
    ModelTarget,
    bad_response,
    error_verdict,
    retry_facts,
)
from monitor.targets.streaming import ChatFields, Step, number, read_events, streamed

KEYS_URL = "https://console.anthropic.com/settings/keys"
BILLING_URL = "https://console.anthropic.com/settings/billing"
LIMITS_URL = "https://console.anthropic.com/settings/limits"
STATUS_URL = "https://status.claude.com"
MODELS_URL = "https://docs.anthropic.com/en/docs/about-claude/models"
# The limits a 429 names, in the order a hint names the one used up.
LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")
_MAX_ID = 200  # a request id longer than this is not one
# The status each error type is sent with: an error event after a 200 is judged as that answer.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicMessagesTarget(ChatFields, ModelTarget):
    kind: Literal["anthropic-messages"]
    base_url: BaseUrl = "https://api.anthropic.com"
    anthropic_version: str = Field(
        default="2023-06-01", min_length=1, description="the anthropic-version header sent"
    )

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/v1/messages"

    def build_request(self, token: str | None) -> RequestSpec:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.budget,
            "messages": [{"role": "user", "content": self.prompt}],
        }
        if not self.stream:
            return self.post(self.endpoint, body, token)
        spec = self.post(self.endpoint, body | {"stream": True}, token)
        return streamed(spec)

    def read_stream(self, events: Sequence[StreamEvent]) -> StreamReading:
        return read_events(events, _event_step)

    def request_headers(self, token: str | None) -> dict[str, str]:
        # Sent even without a key, so a missing key is answered as such; `headers` may override.
        return {"anthropic-version": self.anthropic_version} | super().request_headers(token)

    def auth_headers(self, token: str) -> dict[str, str]:
        return {"x-api-key": token}

    def judge_error(self, ev: Evidence) -> Verdict | None:
        return judge_anthropic_answer(ev, self.token_env)

    def judge_body(self, ev: Evidence) -> Verdict | None:
        # (A 200 carrying an `error` object is read by the classifier for every kind.)
        content = ev.json.get("content") if isinstance(ev.json, dict) else None
        if not (isinstance(content, list) and content):
            return bad_response("the answer has no content")
        return None

    def usage_tokens(self, ev: Evidence) -> int | None:
        inputs = number(ev.json, "usage", "input_tokens")
        outputs = number(ev.json, "usage", "output_tokens")
        return inputs + outputs if inputs is not None and outputs is not None else None

    def answered_model(self, ev: Evidence) -> str | None:
        data = ev.json if ev.events is None else _message_start(ev.events)
        model = data.get("model") if isinstance(data, dict) else None
        return model if isinstance(model, str) and model else None

    def request_id(self, ev: Evidence) -> str | None:
        body_id = ev.json.get("request_id") if isinstance(ev.json, dict) else None
        for value in (body_id, ev.headers.get("request-id")):
            if isinstance(value, str) and 0 < len(value) <= _MAX_ID:
                return value
        return None

    def config_errors(self) -> list[tuple[str, str]]:
        if any(name.lower() == "origin" for name in self.headers):
            return [
                (
                    "headers",
                    "Anthropic refuses requests with an Origin header (401 'CORS requests are "
                    "not allowed'); remove it",
                )
            ]
        return super().config_errors()

    def config_warnings(self) -> list[tuple[str, str]]:
        warnings = super().config_warnings()
        if not self.token_env:
            warnings.append(("token_env", "anthropic-messages without a key can only answer 401"))
        return warnings


def judge_anthropic_answer(ev: Evidence, token_env: str | None) -> Verdict | None:
    """Anthropic's reading of an error answer by its error type, or None for the generic
    classifier (an answer not in Anthropic's shape: a proxy's, a gateway's)."""
    data = ev.json
    error = data.get("error") if isinstance(data, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    if not isinstance(kind, str):
        return None
    low = provider_message(ev).lower()
    env = token_env or "the token_env variable"

    def verdict(outcome: Outcome, hint: str, facts: dict[str, Any] | None = None) -> Verdict:
        return error_verdict(ev, outcome, hint, facts)

    if "credit balance" in low or kind == "billing_error":
        return verdict(
            Outcome.PAYMENT_REQUIRED,
            f"the Anthropic account is out of credits; add credits at {BILLING_URL} "
            "(retrying will not help)",
        )
    if "cors requests are not allowed" in low:
        return verdict(
            Outcome.REQUEST_REJECTED,
            "Anthropic refused the probe because it carried an Origin header: remove Origin "
            "from the target's headers",
        )
    if kind == "authentication_error":
        if not ev.token_sent or "is required" in low:
            where = (
                f"{token_env} is not set: export it and restart"
                if token_env
                else "set token_env to the name of a variable holding the key"
            )
            return verdict(Outcome.AUTH_MISSING, f"no API key was sent; {where}")
        return verdict(
            Outcome.AUTH_INVALID,
            f"Anthropic rejected the key in {env}: it is wrong or revoked; create one at "
            f"{KEYS_URL}",
        )
    if kind == "permission_error":
        return verdict(
            Outcome.FORBIDDEN,
            f"the key in {env} is valid but may not use this model or resource; check its "
            f"workspace's model access at {KEYS_URL}",
        )
    if kind == "not_found_error":
        return verdict(
            Outcome.NOT_FOUND,
            "Anthropic knows no such model (retired ones answer this too): check `model` "
            f"against {MODELS_URL}, and `base_url`",
        )
    if kind == "rate_limit_error":
        hint, facts = _rate_limit(ev)
        return verdict(Outcome.RATE_LIMITED, hint, facts)
    if kind == "overloaded_error":
        return verdict(
            Outcome.OVERLOADED,
            "Anthropic's API is overloaded for everyone, not your rate limit; it usually "
            f"passes within minutes (status: {STATUS_URL})",
        )
    if kind in ("api_error", "timeout_error"):
        return verdict(
            Outcome.SERVER_ERROR,
            f"Anthropic's API failed ({kind}); it is not your request (status: {STATUS_URL})",
        )
    if kind == "request_too_large":
        return verdict(
            Outcome.REQUEST_REJECTED,
            "the probe's request is over Anthropic's size limit: shorten `prompt` or `payload`",
        )
    if kind == "invalid_request_error":
        return verdict(Outcome.REQUEST_REJECTED, _rejected_hint(low))
    return None


def _rejected_hint(low: str) -> str:
    """Which probe field to change, from what Anthropic says is wrong with the request."""
    if "anthropic-version" in low:
        return (
            "Anthropic needs the anthropic-version header: set `anthropic_version` "
            "(2023-06-01) and do not override it in `headers`"
        )
    if "max_tokens" in low:
        return "the model does not take this token budget: set `max_tokens` as the message says"
    return (
        "Anthropic refused the probe's own request (the model may be fine): fix `payload`, "
        "`prompt` or `headers` as the message says"
    )


def _rate_limit(ev: Evidence) -> tuple[str, dict[str, Any]]:
    """The hint naming the limit used up and when it resets; retry_after_s / retry_at."""
    headers = ev.headers
    spent = [name for name in LIMITS if headers.get(f"anthropic-ratelimit-{name}-remaining") == "0"]
    named = spent[0] if spent else None
    reset = _rfc3339(headers.get(f"anthropic-ratelimit-{named}-reset", "")) if named else None
    facts: dict[str, Any] = {}
    retry = headers.get("retry-after", "").strip()
    if retry.isdigit() and len(retry) <= 9:
        facts = retry_facts(float(retry), ev.started_at)
    elif reset is not None:
        facts = retry_facts((reset - _utc(ev.started_at)).total_seconds(), ev.started_at)
    which = f"the {named} per-minute limit is used up" if named else "rate limited"
    if reset is not None:
        when = f"; it resets at {reset.isoformat(timespec='seconds')}"
    elif "retry_after_s" in facts:
        when = f"; retry after {facts['retry_after_s']:g} s"
    else:
        when = ""
    return f"{which}{when}; your tier's limits are at {LIMITS_URL}", facts


def _rfc3339(value: str) -> datetime | None:
    try:
        return _utc(datetime.fromisoformat(value.strip())) if 0 < len(value) <= 40 else None
    except ValueError:
        return None


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _event_step(event: StreamEvent, data: Any) -> Step:
    """One event of a Messages stream. message_start carries the input usage, each text delta
    a token (a thinking delta is not one), message_delta the output usage so far."""
    kind = data.get("type") if isinstance(data, dict) else event.event
    if kind == "error" or event.event == "error":
        error = data.get("error") if isinstance(data, dict) else None
        error_type = error.get("type") if isinstance(error, dict) else None
        return Step(error_status=ERROR_STATUS.get(str(error_type), 500))
    if kind == "message_start":
        return Step(
            input_tokens=number(data, "message", "usage", "input_tokens"),
            output_tokens=number(data, "message", "usage", "output_tokens"),
        )
    if kind == "content_block_delta":
        delta = data.get("delta") if isinstance(data, dict) else None
        text = delta.get("text") if isinstance(delta, dict) else None
        is_text = isinstance(delta, dict) and delta.get("type") == "text_delta"
        return Step(text=text if is_text and isinstance(text, str) else "")
    if kind == "message_delta":
        return Step(output_tokens=number(data, "usage", "output_tokens"))
    return Step(end=kind == "message_stop")  # ping, block start and stop: nothing yet


def _message_start(events: Sequence[StreamEvent]) -> dict[str, Any] | None:
    """The message a stream starts with (its model, id and input usage)."""
    for event in events:
        if event.event == "message_start":
            try:
                message = json.loads(event.data).get("message")
            except (ValueError, AttributeError):
                return None
            return message if isinstance(message, dict) else None
    return None

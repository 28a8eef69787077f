"""What OpenAI-style answers mean, for the OpenAI-compatible kinds (openai-chat, -embeddings).

The error shape is `{"error": {"message", "type", "param", "code"}}` (../shared/provider-errors.md);
providers behind OpenAI-compatible front ends reuse it with their own codes (Anthropic's
`billing_error`, Groq's `model_decommissioned`, Azure's `DeploymentNotFound`, OpenRouter's 402).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from monitor.domain.answers import error_codes, provider_message, says_retired
from monitor.domain.evidence import Evidence, Outcome, Verdict
from monitor.targets.base import PAYMENT_HINT, BaseUrl, ModelTarget, error_verdict
from monitor.targets.hf import judge_hf_answer

# Billing, not a rate limit: OpenAI answers 429 insufficient_quota, so the code decides.
BILLING_CODES = frozenset({"insufficient_quota", "billing_error", "billing_hard_limit_reached"})
# Statuses a provider uses to refuse the request itself (429: a request over the TPM limit).
_REFUSING = frozenset({400, 413, 422, 429})
_URL = re.compile(r"https?://[^\s\"'<>()]{1,2048}")
_FLOOR = re.compile(r"expected a value >= ?(\d{1,7})", re.I)
_PARAM = re.compile(r"unsupported parameter: '([\w.]{1,64})'", re.I)


@dataclass(frozen=True)
class Rejection:
    """What of the probe's own request the provider refused; the kind says what to change."""

    reason: Literal["parameter", "token_floor", "budget", "context", "too_large"]
    param: str | None = None  # the refused parameter, for "parameter"
    floor: int | None = None  # the least max_tokens accepted, for "token_floor"


def request_rejection(ev: Evidence) -> Rejection | None:
    """The provider refusing the probe's own request (retrying cannot help), or None."""
    if ev.status not in _REFUSING:
        return None
    message = provider_message(ev)
    low = message.lower()
    codes = error_codes(ev)
    if ev.status == 429:
        # A request larger than the whole tokens-per-minute limit fails every time.
        return Rejection("too_large") if "request too large" in low else None
    if (floor := _FLOOR.search(message)) and "token" in low:  # not a temperature's floor
        return Rejection("token_floor", floor=int(floor.group(1)))
    if "could not finish the message because max_tokens" in low:
        return Rejection("budget")
    if "context_length_exceeded" in codes or "maximum context length" in low:
        return Rejection("context")
    named = _PARAM.search(message)
    if "unsupported_parameter" in codes or named:
        param = _param(ev) or (named.group(1) if named else None)
        return Rejection("parameter", param=param)
    return None


def _param(ev: Evidence) -> str | None:
    data = ev.json
    err = data.get("error") if isinstance(data, dict) else None
    param = err.get("param") if isinstance(err, dict) else None
    return param if isinstance(param, str) and param else None


def judge_openai_answer(ev: Evidence, model: str = "") -> Verdict | None:
    """The OpenAI-style reading of an error answer, or None for the generic classifier."""
    status = ev.status
    message = provider_message(ev)
    low = message.lower()
    codes = error_codes(ev)
    url = _first_url(message)
    if status == 402 or codes & BILLING_CODES:
        hint = (
            f"the account is out of credits or quota; add credits at {url} (retrying will not help)"
            if url
            else PAYMENT_HINT
        )
        return error_verdict(ev, Outcome.PAYMENT_REQUIRED, hint)
    if "ip not authorized" in low:
        return error_verdict(
            ev,
            Outcome.FORBIDDEN,
            "the key's project accepts calls only from listed IP addresses: add this monitor's "
            "address to its allowlist",
        )
    if "unsupported_country_region_territory" in codes or "territory not supported" in low:
        return error_verdict(
            ev,
            Outcome.FORBIDDEN,
            "the provider does not serve the country or region this monitor calls from; run "
            "the probe from a supported region",
        )
    if "mismatched_organization" in codes:
        return error_verdict(
            ev,
            Outcome.AUTH_INVALID,
            "the key is not a member of the organization in the OpenAI-Organization header: "
            "fix or remove that header in `headers`",
        )
    if "model_decommissioned" in codes or says_retired(message):
        where = f" (see {url})" if url else ""
        return error_verdict(
            ev, Outcome.DEPRECATED, f"the provider retired this model; pick its successor{where}"
        )
    if "deploymentnotfound" in codes:
        return error_verdict(
            ev,
            Outcome.NOT_FOUND,
            f"this Azure resource has no deployment named {model!r}: set `model` to the "
            "deployment's name (a deployment made in the last 5 minutes may not be ready yet)",
        )
    if status == 404 and codes == {"404"} and low == "resource not found":
        return error_verdict(
            ev,
            Outcome.NOT_FOUND,
            "Azure answers this to a wrong path or a missing or unsupported api-version: use "
            "base_url https://<resource>.openai.azure.com/openai/v1, which needs none",
        )
    return None


def _first_url(message: str) -> str | None:
    match = _URL.search(message)
    return match.group(0).rstrip(".,;:") if match else None


class OpenAICompatibleTarget(ModelTarget):
    """What openai-chat and openai-embeddings share: the base URL and the error reading."""

    base_url: BaseUrl = "https://router.huggingface.co/v1"

    def judge_error(self, ev: Evidence) -> Verdict | None:
        if rejection := request_rejection(ev):
            return error_verdict(ev, Outcome.REQUEST_REJECTED, self.rejection_hint(rejection))
        # The default base is Hugging Face's router, which answers in OpenAI's shape with
        # Hugging Face's own codes (model_not_supported, the token-scope 403, GatedRepo).
        return judge_hf_answer(ev, self.token_env) or judge_openai_answer(ev, self.model)

    def rejection_hint(self, rejection: Rejection) -> str:
        """What to change in the target so the provider accepts the probe."""
        if rejection.reason == "parameter" and rejection.param:
            return f"the provider does not accept `{rejection.param}`: change `payload`"
        if rejection.reason == "context":
            return "the probe's input is longer than the model accepts: shorten it in `payload`"
        return "the provider refuses the probe's request as sent: change `payload`"

    def usage_tokens(self, ev: Evidence) -> int | None:
        return openai_usage(ev.json)

    def answered_model(self, ev: Evidence) -> str | None:
        data = ev.json
        model = data.get("model") if isinstance(data, dict) else None
        return model if isinstance(model, str) and model else None


def openai_usage(data: Any) -> int | None:
    """`usage.total_tokens` (else prompt + completion) of an OpenAI-style answer."""
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return None
    total = usage.get("total_tokens")
    if _count(total):
        return int(total)
    parts = [usage.get(k) for k in ("prompt_tokens", "completion_tokens")]
    counted = [int(p) for p in parts if _count(p)]
    return sum(counted) if counted else None


def _count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12

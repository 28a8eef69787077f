"""What Hugging Face's answers mean (Hub, router, legacy host), for the kinds that call it.

The answers are those of ../shared/provider-errors.md: the GatedRepo error code, the token-scope
403, the router's `model_not_supported`, a loading model's `estimated_time`, the retirement
message naming the replacement URL, and the credits messages of Inference Providers.
"""

from __future__ import annotations

import math
import re
from typing import Any

from monitor.domain.answers import error_codes, provider_message, says_overloaded, says_retired
from monitor.domain.evidence import Evidence, Outcome, Verdict
from monitor.targets.base import PAYMENT_HINT, error_verdict, loading_hint

SCOPE_MARKER = "sufficient permissions to call inference providers"
INFERENCE_PERMISSION = "inference.serverless.write"
INFERENCE_PERMISSION_LABEL = "Make calls to Inference Providers"  # as the token page names it
SCOPE_HINT = (
    f"create a token with '{INFERENCE_PERMISSION_LABEL}' at "
    "https://huggingface.co/settings/tokens (or tick it on this token) and put it in ${env}"
)
SCOPE_FACTS: dict[str, Any] = {
    "missing_permission": INFERENCE_PERMISSION_LABEL,
    "missing_permission_id": INFERENCE_PERMISSION,
}
GATED_HINT = (
    "the model is gated: accept its conditions on its Hugging Face page with the "
    "token's account, and allow 'Read access to public gated repos'"
)
UNSUPPORTED_HINT = (
    "no enabled provider serves this model: enable one at "
    "https://huggingface.co/settings/inference-providers or pick another model"
)

# A URL is at most 2,048 characters in practice; the bound keeps a hostile message cheap.
_REPLACEMENT = re.compile(r"(?:please\s+)?use\s+(https?://[^\s\"']{1,2048}?)[./]?\s+instead", re.I)


def replacement_hint(message: str) -> str:
    """'…no longer supported. Please use https://router.huggingface.co instead.' -> a hint."""
    url = _replacement(message)
    return f"switch to {url} (named by the provider as the replacement)" if url else ""


def replacement_facts(message: str) -> dict[str, Any]:
    """{'replacement_url': …} when the message names one, as the hint does."""
    url = _replacement(message)
    # What a reader takes as the URL: a comma or period after it ends the sentence.
    return {"replacement_url": url.rstrip(".,")} if url else {}


def _replacement(message: str) -> str | None:
    match = _REPLACEMENT.search(message)
    return match.group(1) if match else None


def estimated_time(ev: Evidence) -> float | None:
    """A loading model's `estimated_time` (seconds), when the answer gives one."""
    data = ev.json
    value = data.get("estimated_time") if isinstance(data, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def judge_hf_answer(ev: Evidence, token_env: str | None) -> Verdict | None:
    """Hugging Face's reading of an error answer, or None for the generic classifier.

    The status guards keep the generic classifier's precedence: a 401, 402 or 403 is read as
    such before any retirement or unsupported-model wording, a retirement before an
    unsupported model, an overload before a loading model.
    """
    status = ev.status
    message = provider_message(ev)
    low = message.lower()
    codes = error_codes(ev)
    if "gatedrepo" in codes or ("gated" in low and status in (401, 403)):
        return error_verdict(ev, Outcome.GATED, GATED_HINT)
    if "credits" in low and status in (403, 429):
        return error_verdict(ev, Outcome.PAYMENT_REQUIRED, PAYMENT_HINT)
    if status == 403 and SCOPE_MARKER in low:
        hint = SCOPE_HINT.format(env=token_env or "HF_TOKEN")
        return error_verdict(ev, Outcome.TOKEN_SCOPE, hint, dict(SCOPE_FACTS))
    if status in (401, 402, 403):
        return None
    retired = status == 410 or says_retired(message)
    if retired and (hint := replacement_hint(message)):
        return error_verdict(ev, Outcome.DEPRECATED, hint, replacement_facts(message))
    if retired:
        return None
    if "model_not_supported" in codes or "not supported by" in low:
        return error_verdict(ev, Outcome.MODEL_UNSUPPORTED, UNSUPPORTED_HINT)
    eta = estimated_time(ev)
    if status == 503 and eta is not None and not says_overloaded(message, codes):
        facts = {"estimated_time_s": eta} if math.isfinite(eta) else {}  # JSON has no NaN
        return error_verdict(ev, Outcome.LOADING, loading_hint(eta), facts)
    return None

"""What OpenAI-style answers mean, for the OpenAI-compatible kinds (openai-chat, -embeddings).

The error shape is `{"error": {"message", "type", "code"}}` (../shared/provider-errors.md);
providers behind OpenAI-compatible front ends reuse it with their own codes (Anthropic's
`billing_error`).
"""

from __future__ import annotations

from monitor.domain.answers import error_codes
from monitor.domain.evidence import Evidence, Outcome, Verdict
from monitor.targets.base import PAYMENT_HINT, BaseUrl, ModelTarget, error_verdict
from monitor.targets.hf import judge_hf_answer

# Billing, not a rate limit: OpenAI answers 429 insufficient_quota, so the code decides.
BILLING_CODES = frozenset({"insufficient_quota", "billing_error", "billing_hard_limit_reached"})


def judge_openai_answer(ev: Evidence) -> Verdict | None:
    """The OpenAI-style reading of an error answer, or None for the generic classifier."""
    if error_codes(ev) & BILLING_CODES:
        return error_verdict(ev, Outcome.PAYMENT_REQUIRED, PAYMENT_HINT)
    return None


class OpenAICompatibleTarget(ModelTarget):
    """What openai-chat and openai-embeddings share: the base URL and the error reading."""

    base_url: BaseUrl = "https://router.huggingface.co/v1"

    def judge_error(self, ev: Evidence) -> Verdict | None:
        # The default base is Hugging Face's router, which answers in OpenAI's shape with
        # Hugging Face's own codes (model_not_supported, the token-scope 403, GatedRepo).
        return judge_hf_answer(ev, self.token_env) or judge_openai_answer(ev)
